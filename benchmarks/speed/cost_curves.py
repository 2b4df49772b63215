r"""How cost grows: training step time, planning time, evaluation time and training memory,
each measured over a range of settings, with a fitted cost model, so that a user can read what a
run will cost before starting it.

    python benchmarks/speed/cost_curves.py --out runs/cost_curves --threads 2   # full (~8 min)
    python benchmarks/speed/cost_curves.py --quick --out /tmp/cc --threads 1    # smoke (< 60 s)
    python benchmarks/speed/cost_curves.py --only memory --modes memory,stream --out runs/cc_mem
    python benchmarks/speed/cost_curves.py --only eval --eval-run runs/demo_s0/run \
        --eval-data runs/demo_s0/tworoom_heldout.h5 --out runs/cc_eval   # a trained model

The full sweep estimate (2 quiet cores, from docs/results.md's step and plan times): train
~100 s, plan ~80 s, eval ~3.5 min, memory ~1 min per mode; it needs ~4 GB of RAM and 2 GB of
scratch disk (``--workdir``).

Sweeps (``--only``, comma-separated; default all):

train   median s per optimizer step (forward, objective, backward, clipping, AdamW; random uint8
        clips; one warm-up step, as train_speed.py) vs batch size (cpu preset, history 3 and 1),
        vs image side (cpu preset), and vs batch size at the paper preset (224 px ViT).
        Fits: s/step = a + b * batch, s/step = a + b * side^2, and one joint model per preset,
        s/step = a + c * batch * side^2.
plan    median s per single-episode CEM plan through the real Planner (random weights, one
        context frame; one warm-up) vs samples x iterations, vs horizon, vs history (cpu preset),
        and a few paper-preset points. Fits: s/plan = a + b * S*I, a + b * H, a + b * history,
        and the joint s/plan = a + c * S*I*H.
eval    wall s of ``lewm eval`` (the paper's protocol on Two-Room) vs episodes, on a model
        trained a couple of steps (or --eval-run RUN --eval-data FILE: a trained one). An
        untrained model rarely reaches its goal, so every episode uses its full step budget:
        an upper bound. Fit: s = overhead + per_episode * episodes.
memory  peak RSS of a short ``lewm train`` process vs dataset size (generated uncompressed HDF5
        files of random pixels), per data mode (``--modes``): ``memory`` (``data.mode=memory``, the
        dataset loaded into RAM) and ``stream`` (``data.mode=stream``, frames read from disk by
        a loader process). Fit: MB = a + b * GB.

Writes ``cost_curves.json`` (every point with its settings or command, machine, date, threads,
load average, the fits) and one PNG per sweep (``cost_train.png``, ``cost_plan.png``,
``cost_eval.png``, ``cost_memory.png``) to ``--out``, and prints a markdown table per sweep
(also saved as ``cost_curves.md``). Timings are only meaningful on a quiet machine: the JSON
records the load average before and after each sweep.
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import os
import platform
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from lewm.config import preset
from lewm.models import build_model, build_objective
from lewm.planning import Planner, make_solver

SWEEPS = ("train", "plan", "eval", "memory")
MODES = ("memory", "stream")

# The points of each sweep. FULL is sized for ~8 min on 2 quiet cores (estimates from the
# step and plan times in docs/results.md); QUICK runs the same code at toy sizes.
FULL: dict[str, Any] = {
    "train": {
        "steps": 5,  # timed steps per point, after one warm-up
        "batch": [16, 32, 64, 128, 256],
        "batch_series": [
            ("cpu, history 3", "cpu", []),
            ("tworoom-cpu, history 1", "tworoom-cpu", []),
        ],
        "image": [32, 48, 64, 96, 128],
        "image_batch": 64,
        "image_preset": "cpu",
        "paper_batch": [1, 2, 4, 8],
        "paper_steps": 3,
    },
    "plan": {
        "repeats": 3,
        "preset": "cpu",
        "samples_iters": [
            (75, 8),
            (100, 10),
            (150, 15),
            (300, 10),
            (300, 20),
            (300, 30),
            (600, 30),
        ],
        "horizon": [1, 3, 5, 8, 10, 15],
        "history": [1, 2, 3],
        "base": (300, 30, 5),  # samples, iterations, horizon of the horizon/history series
        "paper_samples_iters": [(100, 10), (300, 10), (300, 30)],
        "paper_repeats": 1,
    },
    "eval": {
        "episodes": [4, 8, 16, 32],
        "preset": "tworoom-cpu",
        "resolution": 64,
        "collect_episodes": 60,
        "eval_args": [],  # the paper's protocol: CEM 300 x 30, horizon 5, budget 50
    },
    "memory": {
        "gb": [0.125, 0.5, 1.0, 2.0],
        "resolution": 64,
        "episode_len": 100,
        "preset": "cpu",
        "overrides": ["train.steps=3", "train.batch_size=32", "train.val_batches=1"],
    },
}
QUICK: dict[str, Any] = {
    "train": {
        "steps": 2,
        "batch": [4, 8],
        "batch_series": [
            ("cpu, history 3", "cpu", []),
            ("tworoom-cpu, history 1", "tworoom-cpu", []),
        ],
        "image": [32, 64],
        "image_batch": 4,
        "image_preset": "cpu",
        "paper_batch": [],
        "paper_steps": 1,
    },
    "plan": {
        "repeats": 1,
        "preset": "cpu",
        "samples_iters": [(16, 2), (32, 3)],
        "horizon": [1, 3],
        "history": [1, 2],
        "base": (32, 2, 3),
        "paper_samples_iters": [],
        "paper_repeats": 1,
    },
    "eval": {
        "episodes": [1, 2],
        "preset": "tiny",
        "resolution": 16,
        "collect_episodes": 8,
        "eval_args": ["--samples", "8", "--iterations", "2", "--elites", "2", "--horizon", "2"]
        + ["--receding", "2", "--goal-offset", "4", "--budget", "4"],
    },
    "memory": {
        "gb": [0.004, 0.016],
        "resolution": 16,
        "episode_len": 40,
        "preset": "tiny",
        "overrides": ["train.steps=2", "train.batch_size=4", "train.val_batches=1"],
    },
}


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


# -- cost models ---------------------------------------------------------------------------------


def linfit(x: list[float], y: list[float]) -> dict[str, float] | None:
    """Least squares y = a + b * x; None with fewer than two distinct x."""
    xa, ya = np.asarray(x, float), np.asarray(y, float)
    if len(xa) < 2 or np.ptp(xa) == 0:
        return None
    b, a = np.polyfit(xa, ya, 1)
    pred = a + b * xa
    ss = float(((ya - ya.mean()) ** 2).sum())
    r2 = 1.0 - float(((ya - pred) ** 2).sum()) / ss if ss > 0 else 1.0
    return {"a": float(a), "b": float(b), "r2": round(r2, 4)}


def add_fit(fits: list[dict], sweep: str, series: str, model: str, x, y) -> dict | None:
    """Fit ``model`` ("y = a + b * FEATURE") to the points and record it in ``fits``."""
    f = linfit(x, y)
    if f is not None:
        fits.append({"sweep": sweep, "series": series, "model": model, **f})
    return f


def fmt_fit(f: dict) -> str:
    return f"{f['model']}: a = {f['a']:.4g}, b = {f['b']:.4g} (R² {f['r2']:.3f})"


# -- (a) training step time ----------------------------------------------------------------------


def time_train_step(
    preset_name: str, overrides: list[str], batch: int, steps: int
) -> dict[str, Any]:
    """One warm-up step, then the median of ``steps`` timed AdamW steps of the preset's model and
    objective on random uint8 clips of its image size (fp32), as benchmarks/speed/train_speed.py."""
    torch.manual_seed(0)
    cfg = preset(preset_name, overrides)
    tc = cfg.train
    model = build_model(cfg.model).train()
    objective = build_objective(cfg.model, tc)
    opt = torch.optim.AdamW(model.parameters(), lr=tc.lr, weight_decay=tc.weight_decay)
    s, N = model.image_size, model.history
    px = torch.randint(0, 256, (batch, N + 1, s, s, 3), dtype=torch.uint8)  # (B, N+1, s, s, 3)
    blocks = torch.randn(batch, N, model.action_block_dim)  # (B, N, Ab)
    times = []
    for i in range(steps + 1):
        t = time.perf_counter()
        loss = objective(**model(px, blocks))["loss"]
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), tc.grad_clip)
        opt.step()
        loss.item()
        if i:
            times.append(time.perf_counter() - t)
    step = statistics.median(times)
    rec = {
        "preset": preset_name,
        "overrides": list(overrides),
        "params": sum(q.numel() for q in model.parameters()),
        "image": s,
        "history": N,
        "frames_per_clip": N + 1,
        "batch": batch,
        "steps_timed": steps,
        "s_per_step": step,
        "clips_per_s": batch / step,
    }
    del model, objective, opt
    gc.collect()
    return rec


def sweep_train(spec: dict, ctx: dict) -> tuple[list[dict], list[dict]]:
    points, fits = [], []

    def run(series: str, x_name: str, preset_name: str, overrides: list[str], batch: int, steps):
        r = time_train_step(preset_name, overrides, batch, steps)
        r.update(sweep="train", series=series, x=x_name)
        log(f"  train {series}: batch {batch}, {r['image']} px: {r['s_per_step']:.4f} s/step")
        points.append(r)
        return r

    for label, name, extra in spec["batch_series"]:
        rows = [run(label, "batch", name, extra, b, spec["steps"]) for b in spec["batch"]]
        add_fit(
            fits,
            "train",
            label,
            "s/step = a + b * batch",
            [r["batch"] for r in rows],
            [r["s_per_step"] for r in rows],
        )
    label = f"{spec['image_preset']}, batch {spec['image_batch']}"
    rows = [
        run(
            label,
            "image",
            spec["image_preset"],
            [f"model.encoder.image_size={s}"],
            spec["image_batch"],
            spec["steps"],
        )
        for s in spec["image"]
    ]
    add_fit(
        fits,
        "train",
        label,
        "s/step = a + b * side^2",
        [r["image"] ** 2 for r in rows],
        [r["s_per_step"] for r in rows],
    )
    # one joint model over the cpu preset's points at history 3 (batch series + image series)
    joint = [r for r in points if r["preset"] == "cpu" and r["history"] == 3]
    add_fit(
        fits,
        "train",
        "cpu, history 3 (all points)",
        "s/step = a + b * batch * side^2",
        [r["batch"] * r["image"] ** 2 for r in joint],
        [r["s_per_step"] for r in joint],
    )
    if spec["paper_batch"]:
        rows = [
            run("paper (224 px ViT)", "batch", "paper", [], b, spec["paper_steps"])
            for b in spec["paper_batch"]
        ]
        add_fit(
            fits,
            "train",
            "paper (224 px ViT)",
            "s/step = a + b * batch",
            [r["batch"] for r in rows],
            [r["s_per_step"] for r in rows],
        )
    return points, fits


# -- (b) planning time ---------------------------------------------------------------------------


def time_plan(
    preset_name: str,
    overrides: list[str],
    samples: int,
    iterations: int,
    horizon: int,
    repeats: int,
    elites: int | None = None,
) -> dict[str, Any]:
    """Median s of one single-episode CEM plan (one context frame) after a warm-up, as
    benchmarks/speed/plan_speed.py; random (seeded) weights, which do not change the cost."""
    torch.manual_seed(0)
    cfg = preset(preset_name, overrides)
    model = build_model(cfg.model).eval()
    elites = elites or max(2, samples // 10)  # the paper's 30 of 300
    solver = make_solver("cem", num_samples=samples, iterations=iterations, num_elites=elites)
    planner = Planner(model, solver, horizon=horizon, receding=horizon)
    s = model.image_size
    obs = torch.randint(0, 256, (1, 1, s, s, 3), dtype=torch.uint8)  # (B, C, s, s, 3)
    goal = torch.randint(0, 256, (1, s, s, 3), dtype=torch.uint8)  # (B, s, s, 3)
    planner.plan(obs, goal)  # warm-up
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        planner.plan(obs, goal)
        times.append(time.perf_counter() - t)
    rec = {
        "preset": preset_name,
        "overrides": list(overrides),
        "solver": "cem",
        "samples": samples,
        "iterations": iterations,
        "elites": elites,
        "horizon": horizon,
        "history": model.history,
        "context": 1,
        "image": s,
        "repeats": repeats,
        "s_per_plan": statistics.median(times),
    }
    del model, planner
    gc.collect()
    return rec


def sweep_plan(spec: dict, ctx: dict) -> tuple[list[dict], list[dict]]:
    points, fits = [], []
    P, reps = spec["preset"], spec["repeats"]
    S0, I0, H0 = spec["base"]

    def run(series: str, x_name: str, preset_name: str, overrides, S, I, H, repeats):
        r = time_plan(preset_name, overrides, S, I, H, repeats)
        r.update(sweep="plan", series=series, x=x_name)
        log(
            f"  plan {series}: {S} x {I}, H {H}, history {r['history']}: "
            f"{r['s_per_plan']:.4f} s/plan"
        )
        points.append(r)
        return r

    si = [
        run(f"{P}, H {H0}", "samples_iters", P, [], S, I, H0, reps)
        for S, I in spec["samples_iters"]
    ]
    add_fit(
        fits,
        "plan",
        f"{P}, H {H0}",
        "s/plan = a + b * samples*iterations",
        [r["samples"] * r["iterations"] for r in si],
        [r["s_per_plan"] for r in si],
    )
    hs = [run(f"{P}, {S0} x {I0}", "horizon", P, [], S0, I0, H, reps) for H in spec["horizon"]]
    add_fit(
        fits,
        "plan",
        f"{P}, {S0} x {I0}",
        "s/plan = a + b * horizon",
        [r["horizon"] for r in hs],
        [r["s_per_plan"] for r in hs],
    )
    hist = [
        run(
            f"{P}, {S0} x {I0}, H {H0}",
            "history",
            P,
            [f"model.predictor.history={n}"],
            S0,
            I0,
            H0,
            reps,
        )
        for n in spec["history"]
    ]
    add_fit(
        fits,
        "plan",
        f"{P}, {S0} x {I0}, H {H0}",
        "s/plan = a + b * history",
        [r["history"] for r in hist],
        [r["s_per_plan"] for r in hist],
    )
    joint = [r for r in si + hs if r["history"] == preset(P).model.predictor.history]
    add_fit(
        fits,
        "plan",
        f"{P} (samples x iterations and horizon points)",
        "s/plan = a + b * samples*iterations*horizon",
        [r["samples"] * r["iterations"] * r["horizon"] for r in joint],
        [r["s_per_plan"] for r in joint],
    )
    if spec["paper_samples_iters"]:
        pp = [
            run(f"paper, H {H0}", "samples_iters", "paper", [], S, I, H0, spec["paper_repeats"])
            for S, I in spec["paper_samples_iters"]
        ]
        add_fit(
            fits,
            "plan",
            f"paper, H {H0}",
            "s/plan = a + b * samples*iterations",
            [r["samples"] * r["iterations"] for r in pp],
            [r["s_per_plan"] for r in pp],
        )
    return points, fits


# -- child processes: `lewm ...`, timed and measured ---------------------------------------------


def lewm_cmd(*args: Any) -> list[str]:
    return [sys.executable, "-m", "lewm.cli.main", *(str(a) for a in args)]


def _tree(root: int) -> list[int]:
    """``root`` and all its descendants now (from /proc)."""
    parent: dict[int, int] = {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open(f"/proc/{d}/stat") as f:
                    stat = f.read()
                parent[int(d)] = int(stat[stat.rindex(")") + 2 :].split()[1])
            except (OSError, ValueError, IndexError):
                continue
    tree, frontier = [root], [root]
    while frontier:
        p = frontier.pop()
        kids = [c for c, pp in parent.items() if pp == p and c not in tree]
        tree += kids
        frontier += kids
    return tree


def _memory_kib(pid: int) -> tuple[int, int]:
    """(VmRSS, VmHWM) of ``pid`` in KiB; (0, 0) once it is gone."""
    rss = hwm = 0
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    rss = int(line.split()[1])
                elif line.startswith("VmHWM:"):
                    hwm = int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return rss, hwm


def measure(cmd: list[str], poll_s: float = 0.05) -> dict[str, Any]:
    """Run ``cmd``: its wall time, exit code, output and memory, sampled from /proc every
    ``poll_s`` s: ``peak_rss_mb``, the process's own high-water mark (VmHWM; exact unless the
    peak falls in its last ``poll_s``), and ``peak_tree_rss_mb``, the largest summed RSS of the
    process and its descendants (data-loader workers count), at least ``peak_rss_mb``.

    Not ``getrusage``/``wait4``: on Linux a child's ``ru_maxrss`` starts from the RSS of the
    parent it was forked from (this script, torch loaded), which would hide small datasets."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        t = time.perf_counter()
        p = subprocess.Popen(cmd, stdout=out, stderr=err)
        hwm = tree_peak = 0
        while True:
            mem = [_memory_kib(pid) for pid in _tree(p.pid)]  # a finished process reads (0, 0)
            hwm = max(hwm, mem[0][1])
            tree_peak = max(tree_peak, sum(rss for rss, _ in mem))
            if p.poll() is not None:
                break
            time.sleep(poll_s)
        wall = time.perf_counter() - t
        out.seek(0), err.seek(0)
        stdout, stderr = out.read().decode(errors="replace"), err.read().decode(errors="replace")
    return {
        "rc": p.returncode,
        "wall_s": wall,
        "peak_rss_mb": hwm / 1024,
        "peak_tree_rss_mb": max(tree_peak, hwm) / 1024,
        "stdout": stdout,
        "stderr": stderr,
    }


def run_json(cmd: list[str]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Run a ``lewm`` command: (its JSON summary from stdout, the :func:`measure` record)."""
    log("  + " + shlex.join(cmd[2:]))
    m = measure(cmd)
    if m["rc"] != 0 or "{" not in m["stdout"]:
        raise RuntimeError(f"{shlex.join(cmd[2:])} failed (exit {m['rc']}):\n{m['stderr'][-3000:]}")
    return json.loads(m["stdout"][m["stdout"].index("{") :]), m


# -- (c) evaluation time -------------------------------------------------------------------------


EVAL_TIMES = (("wall_s", "whole command"), ("eval_wall_s", "inside evaluate()"))


def sweep_eval(spec: dict, ctx: dict) -> tuple[list[dict], list[dict]]:
    work = Path(ctx["workdir"]) / "eval"
    work.mkdir(parents=True, exist_ok=True)
    run, data = ctx.get("eval_run"), ctx.get("eval_data")
    trained = run is not None
    if not trained:  # a model trained for two steps: every episode uses its whole budget
        data = work / "tworoom.h5"
        run_json(
            lewm_cmd(
                "collect",
                "tworoom",
                "--episodes",
                spec["collect_episodes"],
                "--out",
                data,
                "--resolution",
                spec["resolution"],
                "--seed",
                0,
                "--no-progress",
                "--overwrite",
            )
        )
        run = work / "run"
        run_json(
            lewm_cmd(
                "train",
                "--data",
                data,
                "--out",
                run,
                "--preset",
                spec["preset"],
                "--no-progress",
                "--overwrite",
                "train.steps=2",
                "train.val_every=0",
                "train.ckpt_every=0",
                "train.val_batches=1",
                *ctx["train_threads"],
            )
        )
    points = []
    for E in spec["episodes"]:
        cmd = lewm_cmd(
            "eval",
            run,
            "--data",
            data,
            "--split",
            "all",
            "--episodes",
            E,
            "--gifs",
            0,
            "--no-progress",
            "--overwrite",
            "--out",
            work / f"eval_{E}",
            *spec["eval_args"],
        )
        res, m = run_json(cmd)
        r = {
            "sweep": "eval",
            "series": "trained run" if trained else f"{spec['preset']}, untrained",
            "x": "episodes",
            "episodes": E,
            "command": shlex.join(["lewm", *cmd[3:]]),
            "wall_s": m["wall_s"],  # the whole command: start-up, model load, envs, planning
            # inside evaluate() (eval.json's exact value; the summary rounds it)
            "eval_wall_s": json.loads(Path(res["eval_json"]).read_text())["wall_seconds"],
            "plans": res["plans"],
            "plan_seconds_mean": res["plan_seconds_mean"],
            "success_rate": res["success_rate"],
            "peak_rss_mb": m["peak_rss_mb"],
        }
        log(f"  eval {E} episodes: {r['wall_s']:.2f} s ({r['plans']} episode-plans)")
        points.append(r)
    fits: list[dict] = []
    for key, what in EVAL_TIMES:
        add_fit(
            fits,
            "eval",
            f"{points[0]['series']}: {what}",
            "s = a + b * episodes",
            [r["episodes"] for r in points],
            [r[key] for r in points],
        )
    return points, fits


# -- (d) memory vs dataset size ------------------------------------------------------------------


def train_cmd(mode: str, data: Path, out: Path, spec: dict, ctx: dict) -> list[str]:
    """The ``lewm train`` command of one memory point in data ``mode`` ("memory": lewm's
    default, the dataset loaded into RAM; "stream": pixels read from disk)."""
    if mode not in MODES:
        raise ValueError(f"unknown data mode {mode!r}; choose from {MODES}")
    return lewm_cmd(
        "train",
        "--data",
        data,
        "--out",
        out,
        "--preset",
        spec["preset"],
        "--no-progress",
        "--overwrite",
        "train.val_every=0",
        "train.ckpt_every=0",
        *spec["overrides"],
        *ctx["train_threads"],
        f"data.mode={mode}",  # forced: auto would pick by the memory free at the time
    )


def write_pixels_file(path: Path, gb: float, resolution: int, episode_len: int) -> dict:
    """An uncompressed episode file holding ``gb`` GB (1e9 bytes) of random pixels."""
    from lewm.data.hdf5 import EpisodeWriter

    frame = resolution * resolution * 3
    episodes = max(2, math.ceil(gb * 1e9 / frame / episode_len))
    rng = np.random.default_rng(0)
    block = rng.integers(0, 256, (episode_len, resolution, resolution, 3), dtype=np.uint8)
    with EpisodeWriter(path, overwrite=True, compression=None, attrs={"env": "cost-curves"}) as w:
        for _ in range(episodes):
            act = rng.uniform(-1, 1, (episode_len, 2)).astype(np.float32)
            act[-1] = np.nan
            w.add_episode(pixels=block, action=act)
    return {
        "episodes": episodes,
        "frames": episodes * episode_len,
        "pixel_gb": episodes * episode_len * frame / 1e9,
        "file_gb": path.stat().st_size / 1e9,
    }


def sweep_memory(spec: dict, ctx: dict) -> tuple[list[dict], list[dict]]:
    modes = ctx["modes"]
    work = Path(ctx["workdir"]) / "memory"
    work.mkdir(parents=True, exist_ok=True)
    points = []
    for gb in spec["gb"]:
        data = work / f"pixels_{gb:g}GB.h5"
        info = write_pixels_file(data, gb, spec["resolution"], spec["episode_len"])
        try:
            for mode in modes:
                cmd = train_cmd(mode, data, work / f"run_{mode}", spec, ctx)
                _, m = run_json(cmd)
                r = {
                    "sweep": "memory",
                    "series": mode,
                    "x": "pixel_gb",
                    "mode": mode,
                    "gb_asked": gb,
                    **info,
                    "resolution": spec["resolution"],
                    "command": shlex.join(["lewm", *cmd[3:]]),
                    "wall_s": m["wall_s"],
                    "peak_rss_mb": m["peak_rss_mb"],
                    "peak_tree_rss_mb": m["peak_tree_rss_mb"],
                }
                log(
                    f"  memory {mode}, {info['pixel_gb']:.3f} GB: "
                    f"peak {r['peak_tree_rss_mb']:.0f} MB"
                )
                points.append(r)
        finally:
            data.unlink(missing_ok=True)
    fits: list[dict] = []
    for mode in modes:
        rows = [r for r in points if r["mode"] == mode]
        add_fit(
            fits,
            "memory",
            mode,
            "peak MB = a + b * pixel GB",
            [r["pixel_gb"] for r in rows],
            [r["peak_tree_rss_mb"] for r in rows],
        )
    return points, fits


# -- plots and tables ----------------------------------------------------------------------------


def _fit_of(fits: list[dict], sweep: str, series: str, model_part: str) -> dict | None:
    return next(
        (
            f
            for f in fits
            if f["sweep"] == sweep and f["series"] == series and model_part in f["model"]
        ),
        None,
    )


def _panel(ax, rows, fits, sweep, xkey, ykey, feature, labels, model_part, log_axes=False):
    """One panel: the points ``rows`` by series, each with its fitted line ``a + b *
    feature(x)``; ``labels`` = (title, x label, y label)."""
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    xs_all = []
    for series in dict.fromkeys(r["series"] for r in rows):
        sr = [r for r in rows if r["series"] == series]
        xs, ys = [xkey(r) for r in sr], [r[ykey] for r in sr]
        xs_all += xs
        (line,) = ax.plot(xs, ys, "o", label=series)
        f = _fit_of(fits, sweep, series, model_part)
        if f is not None:
            grid = (
                np.geomspace(min(xs), max(xs), 100)
                if log_axes
                else np.linspace(min(xs), max(xs), 100)
            )
            ax.plot(
                grid,
                f["a"] + f["b"] * feature(grid),
                "-",
                color=line.get_color(),
                alpha=0.6,
                label=f"fit: {f['a']:.3g} + {f['b']:.3g}·{model_part} (R² {f['r2']:.2f})",
            )
    if log_axes:
        ax.set_xscale("log")
        ax.set_yscale("log")
        for axis in (ax.xaxis, ax.yaxis):  # 1, 2, 5 per decade, as plain numbers
            axis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
            axis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
            axis.set_minor_formatter(NullFormatter())
    ticks = sorted(set(xs_all))
    if ticks and len(ticks) <= 10:
        ax.set_xticks(ticks)
        ax.set_xticklabels([f"{t:.3g}" for t in ticks])
    ax.set_title(labels[0])
    ax.set_xlabel(labels[1])
    ax.set_ylabel(labels[2])
    ax.grid(True, which="both", alpha=0.3)
    if rows:
        ax.legend(fontsize=7)


def plot(sweep: str, points: list[dict], fits: list[dict], out: Path, meta: dict) -> Path | None:
    """``out/cost_SWEEP.png``: one figure of ``sweep``'s points and fits (None: no points)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    pts = [r for r in points if r["sweep"] == sweep]
    if not pts:
        return None
    panels = []  # (rows, xkey, ykey, feature, labels, model_part, log_axes)
    if sweep == "train":
        lewm_b = [r for r in pts if r["x"] == "batch" and r["preset"] != "paper"]
        paper = [r for r in pts if r["preset"] == "paper"]
        image = [r for r in pts if r["x"] == "image"]
        side = f"{lewm_b[0]['image']} px" if lewm_b else ""
        panels.append(
            (
                lewm_b,
                lambda r: r["batch"],
                "s_per_step",
                lambda x: x,
                (f"training step vs batch ({side})", "batch (clips)", "s / step"),
                "batch",
                True,
            )
        )
        panels.append(
            (
                image,
                lambda r: r["image"],
                "s_per_step",
                lambda x: x**2,
                ("training step vs image side", "image side (px)", "s / step"),
                "side^2",
                True,
            )
        )
        if paper:
            panels.append(
                (
                    paper,
                    lambda r: r["batch"],
                    "s_per_step",
                    lambda x: x,
                    ("paper preset (ViT-tiny, 224 px)", "batch (clips)", "s / step"),
                    "batch",
                    True,
                )
            )
    elif sweep == "plan":
        by = {k: [r for r in pts if r["x"] == k] for k in ("samples_iters", "horizon", "history")}
        panels.append(
            (
                by["samples_iters"],
                lambda r: r["samples"] * r["iterations"],
                "s_per_plan",
                lambda x: x,
                (
                    "CEM plan vs search budget",
                    "samples × iterations (rollouts per plan)",
                    "s / plan (1 episode)",
                ),
                "samples*iterations",
                True,
            )
        )
        panels.append(
            (
                by["horizon"],
                lambda r: r["horizon"],
                "s_per_plan",
                lambda x: x,
                ("CEM plan vs horizon", "horizon (action blocks)", "s / plan"),
                "horizon",
                False,
            )
        )
        panels.append(
            (
                by["history"],
                lambda r: r["history"],
                "s_per_plan",
                lambda x: x,
                ("CEM plan vs history (1 context frame)", "predictor history (frames)", "s / plan"),
                "history",
                False,
            )
        )
    elif sweep == "eval":
        rows = [
            {**r, "series": f"{r['series']}: {what}", "y": r[key]}
            for key, what in EVAL_TIMES
            for r in pts
        ]
        panels.append(
            (
                rows,
                lambda r: r["episodes"],
                "y",
                lambda x: x,
                ("evaluation time vs episodes", "episodes", "s"),
                "episodes",
                False,
            )
        )
    else:
        panels.append(
            (
                pts,
                lambda r: r["pixel_gb"],
                "peak_tree_rss_mb",
                lambda x: x,
                (
                    "training memory vs dataset size",
                    "dataset pixels (GB, uncompressed)",
                    "peak RSS of `lewm train` (MB)",
                ),
                "pixel GB",
                False,
            )
        )
    fig, axes = plt.subplots(1, len(panels), figsize=(5.2 * len(panels) + 0.6, 4.6), squeeze=False)
    for ax, (rows, xkey, ykey, feature, labels, part, log_axes) in zip(
        axes[0], panels, strict=True
    ):
        _panel(ax, rows, fits, sweep, xkey, ykey, feature, labels, part, log_axes)
    title = f"{meta['cpu']} · {meta['threads']} threads · torch {meta['torch']} · {meta['date']}"
    fig.suptitle(("QUICK (toy sizes) · " if meta.get("quick") else "") + title, fontsize=8)
    fig.tight_layout()
    path = out / f"cost_{sweep}.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


TABLES = {  # the columns of each sweep's markdown table
    "train": ("series", "preset", "image", "history", "batch", "s_per_step", "clips_per_s"),
    "plan": ("series", "preset", "samples", "iterations", "elites", "horizon", "history")
    + ("s_per_plan",),
    "eval": ("series", "episodes", "plans", "plan_seconds_mean", "success_rate")
    + ("eval_wall_s", "wall_s"),
    "memory": ("mode", "pixel_gb", "file_gb", "frames", "wall_s", "peak_rss_mb")
    + ("peak_tree_rss_mb",),
}


def _cell(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


def table(sweep: str, points: list[dict], fits: list[dict]) -> str:
    cols = TABLES[sweep]
    rows = [r for r in points if r["sweep"] == sweep]
    lines = [f"### {sweep}", "", "| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(_cell(r.get(c, "")) for c in cols) + " |" for r in rows]
    sf = [f for f in fits if f["sweep"] == sweep]
    if sf:
        lines += ["", *[f"- {f['series']}: {fmt_fit(f)}" for f in sf]]
    return "\n".join(lines) + "\n"


# -- main ----------------------------------------------------------------------------------------


def machine_info() -> dict[str, Any]:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            cwd=Path(__file__).parent,
        ).stdout.strip()
    except OSError:
        commit = ""
    import lewm

    return {
        "cpu": cpu,
        "cpu_count": os.cpu_count(),
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "lewm": lewm.__version__,
        "commit": commit,
        "python": platform.python_version(),
        "date": time.strftime("%Y-%m-%d %H:%M"),
    }


SWEEP_FNS = {"train": sweep_train, "plan": sweep_plan, "eval": sweep_eval, "memory": sweep_memory}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--out", required=True, help="folder for cost_curves.json, .md and PNGs")
    p.add_argument("--quick", action="store_true", help="toy points (< 60 s): checks the script")
    p.add_argument("--only", default=",".join(SWEEPS), help=f"sweeps, from {','.join(SWEEPS)}")
    p.add_argument(
        "--modes", default="memory,stream", help="memory sweep data modes: memory,stream"
    )
    p.add_argument("--threads", type=int, default=0, help="torch threads, here and in children")
    p.add_argument("--eval-run", default=None, help="time `lewm eval` of this trained run")
    p.add_argument("--eval-data", default=None, help="its episode file (with --eval-run)")
    p.add_argument("--workdir", default=None, help="scratch folder (default: a temporary one)")
    a = p.parse_args(argv)
    only = [s.strip() for s in a.only.split(",") if s.strip()]
    modes = [m.strip() for m in a.modes.split(",") if m.strip()]
    bad = [s for s in only if s not in SWEEPS] + [m for m in modes if m not in MODES]
    if bad:
        p.error(f"unknown sweep or mode {bad}; sweeps: {SWEEPS}, modes: {MODES}")
    if bool(a.eval_run) != bool(a.eval_data):
        p.error("--eval-run and --eval-data go together")
    if a.threads:
        torch.set_num_threads(a.threads)
        os.environ["OMP_NUM_THREADS"] = str(a.threads)  # the lewm child processes
    spec = QUICK if a.quick else FULL
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    meta = {**machine_info(), "quick": a.quick, "argv": sys.argv if argv is None else argv}
    points: list[dict] = []
    fits: list[dict] = []
    timing: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="cost_curves_", dir=a.workdir) as work:
        ctx = {
            "workdir": work,
            "modes": modes,
            "eval_run": a.eval_run,
            "eval_data": a.eval_data,
            "train_threads": [f"train.num_threads={a.threads}"] if a.threads else [],
        }
        for sweep in only:
            log(f"{sweep} sweep")
            t, load0 = time.perf_counter(), os.getloadavg()
            pts, fs = SWEEP_FNS[sweep](spec[sweep], ctx)
            timing[sweep] = {
                "seconds": round(time.perf_counter() - t, 1),
                "loadavg_before": load0,
                "loadavg_after": os.getloadavg(),
            }
            points += pts
            fits += fs
    result = {
        "meta": meta,
        "spec": {k: spec[k] for k in only},
        "timing": timing,
        "points": points,
        "fits": fits,
    }
    (out / "cost_curves.json").write_text(json.dumps(result, indent=1, default=str) + "\n")
    md = [table(s, points, fits) for s in only]
    (out / "cost_curves.md").write_text("\n".join(md))
    result["plots"] = [str(q) for q in (plot(s, points, fits, out, meta) for s in only) if q]
    print("\n".join(md))
    log("wrote " + ", ".join([str(out / "cost_curves.json"), *result["plots"]]))
    log("seconds per sweep: " + ", ".join(f"{k} {v['seconds']}" for k, v in timing.items()))
    return result


if __name__ == "__main__":
    main()
