r"""The GPU path in one go (issue 21): environment, bf16 training throughput and planning latency
of the paper preset, a device smoke of every registered solver, and data-parallel training under
torchrun (NCCL on GPUs, gloo on the CPU). Writes OUT/report.json and OUT/report.md.

    python benchmarks/gpu/check.py --out runs/gpu_check               # a GPU machine (<= 8 min)
    python benchmarks/gpu/check.py --device cpu --out /tmp/check      # toy sizes, ~1 min, 2 cores
    python benchmarks/gpu/check.py --device cpu --skip ddp --out /tmp/check
    bash benchmarks/gpu/check.sh                                      # the wrapper (SMOKE=1: CPU)

Sections (``--only`` / ``--skip`` choose among them), each timed and each with a time cap so the
whole run fits the budget; a section that fails is recorded (status "fail", the error) and the
others still run, so a report with a FAILED section beats no report:

- env: torch, CUDA devices, bf16 support, memory, TF32 flags, NCCL.
- train: optimizer steps of the paper preset (18,034,478 parameters, 224 px, 4 frames a clip) at
  batch 128 on random clips, exactly as ``lewm train`` steps (benchmarks/speed/train_speed.py):
  bf16 autocast, fp32, and on CUDA fp32 with TF32 matmuls; warm-up steps, then the median s/step,
  clips/s and peak GPU memory.
- plan: one CEM plan at the paper's evaluation settings (the preset's ``eval``: 300 samples x 30
  iterations, 30 elites, horizon 5, receding 5, one context frame), median seconds over several
  plans after warm-up (synchronised), for one episode (target < 0.1 s on one GPU; the paper
  reports 0.98 s) and per episode when the 50 evaluation episodes are planned together.
- solvers: one plan with every solver in the registry (lewm.planning.SOLVERS), each with its own
  defaults and 3 iterations, for 2 episodes with a full context window, on the paper model with
  its weights moved off their init (benchmarks/_shared.perturb: at the AdaLN-zero init the plan
  does not change the cost): the right shape, finite, on the device. A solver that plans from
  a proposal (``policy``) gets an untrained goal-conditioned policy of the model's sizes.
- ddp: ``torchrun --standalone --nproc_per_node=N -m lewm.cli.main train --distributed`` on a
  generated dataset for a handful of steps (N = the visible GPUs; 2 gloo processes with
  --device cpu): finishes, writes the model, clips/s from its metrics.
- stream: ``lewm train`` of the paper preset at batch 128 on an uncompressed 224-px file written
  for the purpose (2 GiB), with ``data.mode=stream`` (loader processes read ahead): the median
  share of a step spent waiting for data (target < 5 %) and clips/s.

--device cpu uses toy sizes (the tiny preset, small batches, few samples); numbers then test the
script, not the hardware, and the targets read "n/a". Exit status: 0 when every section passed (a
missed target is reported, not an error), 1 otherwise.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import math
import os
import platform
import signal
import statistics
import subprocess
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT / "benchmarks"), str(ROOT / "benchmarks" / "speed")]
from _shared import perturb  # noqa: E402
from plan_speed import time_plan  # noqa: E402
from train_speed import time_train_steps  # noqa: E402

import lewm  # noqa: E402
from lewm.config import preset  # noqa: E402
from lewm.data.synthetic import make_toy_dataset  # noqa: E402
from lewm.models import build_model  # noqa: E402
from lewm.planning import SOLVERS, GoalCost, Planner, make_solver  # noqa: E402
from lewm.planning.policy import GoalPolicy, PolicyConfig  # noqa: E402

SECTIONS = ("env", "train", "plan", "solvers", "ddp", "stream")
TARGET_DATA_WAIT = 0.05  # streamed data: the share of a step spent waiting for the loader
PAPER_PARAMS = 18_034_478  # the paper preset (ViT-tiny/14 at 224 px, 6-layer predictor)
PAPER_PLAN_S = 0.98  # the paper's planning time per plan (CEM 300 x 30)
TARGET_PLAN_S = 0.1  # ours, one episode on one GPU

# Sizes and per-section time caps (seconds) of each mode. The caps add up to the budget; the
# train/plan/solvers caps are cooperative (timed loops stop, variants are skipped), the ddp cap
# kills the torchrun job.
MODES: dict[str, dict[str, Any]] = {
    "cuda": {
        "caps": {"env": 20, "train": 100, "plan": 70, "solvers": 45, "ddp": 140, "stream": 85},
        "train": {"preset": "paper", "batch": 128, "warmup": 3, "steps": 20},
        "plan": {"preset": "paper", "solver": {}, "warmup": 2, "repeats": 10, "batch_repeats": 2},
        "solvers": {"preset": "paper", "samples": 300, "iterations": 3, "episodes": 2},
        "ddp": {
            "preset": "paper",
            "resolution": 224,
            "episodes": 16,
            "length": 60,
            "steps": 20,
            "batch_per_process": 32,
            "log_every": 5,
        },
        # the paper preset streamed from an uncompressed 224-px file (data.mode=stream)
        "stream": {"preset": "paper", "resolution": 224, "gib": 2.0, "steps": 40, "batch": 128},
    },
    "cpu": {
        "caps": {"env": 10, "train": 20, "plan": 15, "solvers": 15, "ddp": 60, "stream": 40},
        "train": {"preset": "tiny", "batch": 8, "warmup": 1, "steps": 3},
        "plan": {
            "preset": "tiny",
            "solver": {"num_samples": 30, "iterations": 3},
            "warmup": 1,
            "repeats": 3,
            "batch_repeats": 1,
            "batch": 4,
        },
        "solvers": {"preset": "tiny", "samples": 32, "iterations": 2, "episodes": 2},
        "ddp": {
            "preset": "tiny",
            "resolution": 16,
            "episodes": 8,
            "length": 20,
            "steps": 4,
            "batch_per_process": 4,
            "log_every": 2,
            "nproc": 2,
        },
        "stream": {"preset": "tiny", "resolution": 32, "gib": 0.02, "steps": 6, "batch": 8},
    },
}


class CheckFailed(RuntimeError):
    """A section ran but a check on its output did not hold."""


class Stopped(BaseException):
    """SIGTERM (the wrapper's time limit): finish the report and stop."""


class Ctx:
    """What a section sees: the mode's sizes, the device, the output folder, its deadline."""

    def __init__(self, mode: str, device: torch.device, out: Path, nproc: int | None) -> None:
        self.mode, self.device, self.out, self.nproc = mode, device, out, nproc
        self.sizes = MODES[mode]
        self.deadline = math.inf

    def left(self) -> float:
        return self.deadline - time.perf_counter()


def _finite(*values: float) -> bool:
    return all(isinstance(v, int | float) and math.isfinite(v) for v in values)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _free(device: torch.device) -> None:
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()


# -- sections ----------------------------------------------------------------------------------


def section_env(ctx: Ctx, rec: dict[str, Any]) -> None:
    cuda = torch.cuda.is_available()
    info: dict[str, Any] = {
        "mode": ctx.mode,
        "device": str(ctx.device),
        "torch": torch.__version__,
        "lewm": lewm.__version__,
        "python": platform.python_version(),
        "cpu_threads": torch.get_num_threads(),
        "cuda_available": cuda,
        "cuda_version": torch.version.cuda,
        "gpu_count": torch.cuda.device_count() if cuda else 0,
        "nccl_available": torch.distributed.is_available()
        and torch.distributed.is_nccl_available(),
        "tf32_matmul_default": torch.backends.cuda.matmul.allow_tf32,
        "tf32_cudnn_default": torch.backends.cudnn.allow_tf32,
        "float32_matmul_precision": torch.get_float32_matmul_precision(),
    }
    if cuda:
        info["bf16_supported"] = torch.cuda.is_bf16_supported()
        info["cudnn"] = torch.backends.cudnn.version()
        with contextlib.suppress(Exception):
            info["nccl_version"] = ".".join(map(str, torch.cuda.nccl.version()))
    rec["info"] = info
    rec["rows"] = []
    for i in range(info["gpu_count"]):
        p = torch.cuda.get_device_properties(i)
        free, total = torch.cuda.mem_get_info(i)
        rec["rows"].append(
            {
                "gpu": i,
                "name": p.name,
                "capability": f"{p.major}.{p.minor}",
                "memory_gib": round(total / 2**30, 1),
                "free_gib": round(free / 2**30, 1),
                "SMs": p.multi_processor_count,
            }
        )
    if ctx.device.type == "cuda":
        x = torch.randn(256, 256, device=ctx.device)
        if not _finite(float((x @ x).sum())):
            raise CheckFailed("a matmul on the GPU is not finite")
        if not info["bf16_supported"]:
            raise CheckFailed("this GPU does not support bf16 (the paper's training precision)")


def section_train(ctx: Ctx, rec: dict[str, Any]) -> None:
    sz = ctx.sizes["train"]
    cfg = preset(sz["preset"])
    variants = [("bf16", "bf16", False), ("fp32", "fp32", False)]
    if ctx.device.type == "cuda":
        variants.append(("fp32 + TF32", "fp32", True))
    rec.update(preset=sz["preset"], batch=sz["batch"], rows=[], notes=[])
    rec["notes"].append(
        "lewm sets no TF32 flag: bf16 and fp32 run with torch's defaults "
        f"(matmul.allow_tf32={torch.backends.cuda.matmul.allow_tf32}, "
        f"cudnn.allow_tf32={torch.backends.cudnn.allow_tf32})"
    )
    errors = []
    for i, (name, precision, tf32) in enumerate(variants):
        share = ctx.left() / (len(variants) - i)
        if i and share < 5:
            rec["rows"].append({"variant": name, "status": "skipped (section time cap)"})
            continue
        old = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
        try:
            if tf32:
                torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True
            r = time_train_steps(
                cfg, sz["batch"], sz["steps"], precision, ctx.device, sz["warmup"], share
            )
            row = {"variant": name, "tf32_matmul": torch.backends.cuda.matmul.allow_tf32, **r}
            if not _finite(r["s_per_step"], r["clips_per_s"], r["loss"]):
                raise CheckFailed(f"{name}: non-finite step time or loss: {r}")
            row["status"] = "pass"
        except Exception as e:  # one variant failing (e.g. out of memory) keeps the others
            row = {"variant": name, "status": "fail", "error": f"{type(e).__name__}: {e}"[:500]}
            errors.append(row["error"])
        finally:
            torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = old
            _free(ctx.device)
        rec["rows"].append(row)
    by = {r["variant"]: r for r in rec["rows"] if r.get("status") == "pass"}
    if "bf16" in by and "fp32" in by:
        rec["bf16_speedup_over_fp32"] = round(
            by["fp32"]["s_per_step"] / by["bf16"]["s_per_step"], 2
        )
    if "bf16" in by:
        rec["params"] = by["bf16"]["params"]
        if sz["preset"] == "paper" and rec["params"] != PAPER_PARAMS:
            errors.append(
                f"the paper preset has {rec['params']:,} parameters, not {PAPER_PARAMS:,}"
            )
    if errors or "bf16" not in by:
        raise CheckFailed("; ".join(errors) or "the bf16 run did not finish")


def _planner(cfg, model, solver_options: dict[str, Any]) -> Planner:
    """The planner lewm eval builds from ``cfg.eval``, with ``solver_options`` on top."""
    ev = cfg.eval
    options = {k: v for k, v in asdict(ev.solver).items() if k != "kind"}
    options.update(solver_options)
    if "num_elites" in options and "num_samples" in options:
        options["num_elites"] = min(options["num_elites"], options["num_samples"])
    solver = make_solver(ev.solver.kind, **{**options, "seed": ev.seed})
    return Planner(
        model, solver, objective=GoalCost(ev.cost), horizon=ev.horizon, receding=ev.receding
    )


def section_plan(ctx: Ctx, rec: dict[str, Any]) -> None:
    sz = ctx.sizes["plan"]
    cfg = preset(sz["preset"])
    torch.manual_seed(0)
    model = build_model(cfg.model).to(ctx.device).eval()
    planner = _planner(cfg, model, sz["solver"])
    sc, ev = planner.solver.config, cfg.eval
    s, Ab, C = model.image_size, model.action_block_dim, ev.context
    batch = sz.get("batch", ev.episodes)
    rec.update(
        preset=sz["preset"],
        params=sum(p.numel() for p in model.parameters()),
        solver=ev.solver.kind,
        samples=sc.num_samples,
        iterations=sc.iterations,
        elites=sc.num_elites,
        horizon=planner.horizon,
        receding=planner.receding,
        context=C,
        cost=ev.cost,
    )
    single = time_plan(
        planner, 1, C, s, Ab, sz["repeats"], warmup=sz["warmup"], budget_s=ctx.left() / 2
    )
    rows = [{"episodes per call": 1, "s per plan": round(single, 4), "s per episode": single}]
    if ctx.left() > 3 * single * batch**0.5:
        t = time_plan(planner, batch, C, s, Ab, sz["batch_repeats"], budget_s=ctx.left() / 2)
        rows.append(
            {"episodes per call": batch, "s per plan": round(t, 4), "s per episode": t / batch}
        )
    else:
        rec.setdefault("notes", []).append(f"batched plan ({batch} episodes) skipped: time cap")
    for r in rows:
        r["s per episode"] = round(r["s per episode"], 4)
    rec["rows"] = rows
    rec["s_per_plan"] = round(single, 4)
    rec["paper_over_ours"] = round(PAPER_PLAN_S / single, 1)
    obs = torch.randint(0, 256, (1, C, s, s, 3), dtype=torch.uint8)
    goal = torch.randint(0, 256, (1, s, s, 3), dtype=torch.uint8)
    res = planner.plan(obs, goal)
    if not (_finite(single) and bool(torch.isfinite(res.actions).all())):
        raise CheckFailed(f"non-finite plan or time ({single})")
    del model, planner
    _free(ctx.device)


def section_solvers(ctx: Ctx, rec: dict[str, Any]) -> None:
    sz = ctx.sizes["solvers"]
    cfg = preset(sz["preset"])
    torch.manual_seed(0)
    model = build_model(cfg.model).eval()
    perturb(model, 0)  # off the AdaLN-zero init, where the plan would not change the cost
    model.to(ctx.device)
    B, C, s, Ab = sz["episodes"], model.history, model.image_size, model.action_block_dim
    H = cfg.eval.horizon
    g = torch.Generator().manual_seed(0)
    obs = torch.randint(0, 256, (B, C, s, s, 3), dtype=torch.uint8, generator=g)
    goal = torch.randint(0, 256, (B, s, s, 3), dtype=torch.uint8, generator=g)
    hist = torch.randn(B, C - 1, Ab, generator=g) if C > 1 else None
    rec.update(preset=sz["preset"], episodes=B, context=C, horizon=H, rows=[])
    # each solver's own defaults (what lewm eval runs), fewer iterations; num_samples stays at or
    # above the default elite counts (30)
    options = {"num_samples": sz["samples"], "iterations": sz["iterations"]}
    failed = []
    for kind in sorted(SOLVERS):
        row: dict[str, Any] = {"solver": kind}
        if ctx.left() < 1:
            row["status"] = "fail: no time left (section cap)"
            failed.append(kind)
            rec["rows"].append(row)
            continue
        try:
            solver = make_solver(kind, **options, seed=0)
            proposal = None
            if getattr(solver, "needs_proposal", False):  # e.g. "policy": an (untrained)
                # goal-conditioned policy of the model's sizes stands in for `lewm policy RUN`
                pc = PolicyConfig(latent_dim=model.latent_dim, action_block_dim=Ab, horizon=H)
                proposal = GoalPolicy(pc).eval().to(ctx.device)
                row["proposal"] = "GoalPolicy (untrained)"
            planner = Planner(model, solver, horizon=H, receding=H, proposal=proposal)
            _sync(ctx.device)
            t = time.perf_counter()
            res = planner.plan(obs, goal, hist)
            _sync(ctx.device)
            row["seconds"] = round(time.perf_counter() - t, 4)
            a, cost = res.actions, res.cost
            row.update(
                shape=list(a.shape), device=str(a.device), cost=round(float(cost.float().mean()), 4)
            )
            problems = []
            if tuple(a.shape) != (B, H, Ab):
                problems.append(f"shape {tuple(a.shape)} != {(B, H, Ab)}")
            if a.device.type != ctx.device.type:
                problems.append(f"plan on {a.device}, not {ctx.device}")
            if not bool(torch.isfinite(a).all()):
                problems.append("non-finite actions")
            if tuple(cost.shape) != (B,) or not bool(torch.isfinite(cost).all()):
                problems.append(f"cost {tuple(cost.shape)} not ({B},) finite")
            row["status"] = "fail: " + "; ".join(problems) if problems else "pass"
        except Exception as e:
            row["status"] = f"fail: {type(e).__name__}: {e}"[:500]
        if row["status"] != "pass":
            failed.append(kind)
        rec["rows"].append(row)
    del model
    _free(ctx.device)
    if failed:
        raise CheckFailed(f"solvers failing: {', '.join(failed)}")


def _kill(proc: subprocess.Popen) -> None:
    """Stop a job started in its own session: SIGTERM to the group, SIGKILL after 10 s."""
    for sig, wait in ((signal.SIGTERM, 10), (signal.SIGKILL, 5)):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)
        try:
            proc.wait(wait)
            return
        except subprocess.TimeoutExpired:
            continue


def _run_job(
    cmd: list[str],
    work: Path,
    ctx: Ctx,
    rec: dict[str, Any],
    env_defaults: dict[str, str] | None = None,
) -> tuple[int | None, str]:
    """Run ``cmd`` (lewm from this checkout) in its own session until the section's deadline,
    output in WORK/stdout.txt and stderr.txt; (exit code or None when stopped at the cap, the
    stderr text). Records the command and its wall time in ``rec``."""
    rec["command"] = " ".join(cmd[1:])
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT / "src"), env.get("PYTHONPATH")]))
    for k, v in (env_defaults or {}).items():
        env.setdefault(k, v)
    t = time.perf_counter()
    with open(work / "stdout.txt", "w") as fo, open(work / "stderr.txt", "w") as fe:
        proc = subprocess.Popen(cmd, stdout=fo, stderr=fe, env=env, start_new_session=True)
        try:
            rc = proc.wait(timeout=max(5.0, ctx.left()))
        except subprocess.TimeoutExpired:
            _kill(proc)
            rc = None
        except BaseException:  # Stopped (SIGTERM): do not leave the workers behind
            _kill(proc)
            raise
    rec["job_s"] = round(time.perf_counter() - t, 1)
    return rc, (work / "stderr.txt").read_text(errors="replace")


def section_ddp(ctx: Ctx, rec: dict[str, Any]) -> None:
    sz = ctx.sizes["ddp"]
    cuda = ctx.device.type == "cuda"
    n = ctx.nproc or (torch.cuda.device_count() if cuda else sz.get("nproc", 2))
    backend = "nccl" if cuda else "gloo"
    work = ctx.out / "ddp"
    work.mkdir(parents=True, exist_ok=True)
    t = time.perf_counter()
    episodes = sz["episodes"] * max(1, math.ceil(n / 4))
    data = make_toy_dataset(
        work / "data.h5", episodes, sz["length"], sz["resolution"], seed=0, overwrite=True
    )
    rec.update(
        processes=n,
        backend=backend,
        preset=sz["preset"],
        dataset=f"{episodes} generated episodes x {sz['length']} steps at {sz['resolution']} px",
        data_s=round(time.perf_counter() - t, 1),
        steps=sz["steps"],
        batch=sz["batch_per_process"] * n,
    )
    if n == 1:
        rec["notes"] = [
            f"1 visible GPU: torchrun runs 1 process ({backend} group of 1); DDP wraps the model "
            "only with 2 or more processes, so no gradient all-reduce was exercised"
        ]
    overrides = [
        f"train.steps={sz['steps']}",
        f"train.batch_size={sz['batch_per_process'] * n}",
        f"train.log_every={sz['log_every']}",
        "train.val_every=0",
        "train.ckpt_every=0",
        f"train.device={'cuda' if cuda else 'cpu'}",
    ]
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        f"--nproc_per_node={n}",
        "-m",
        "lewm.cli.main",
        "train",
        "--distributed",
        "--data",
        str(data),
        "--out",
        str(work / "run"),
        "--overwrite",
        "--no-progress",
        "--preset",
        sz["preset"],
        *overrides,
    ]
    rc, err = _run_job(cmd, work, ctx, rec, {"OMP_NUM_THREADS": "1"})
    if rc is None:
        raise CheckFailed(f"torchrun did not finish within the cap; stderr tail:\n{err[-1500:]}")
    if rc != 0:
        raise CheckFailed(f"torchrun exit {rc}; stderr tail:\n{err[-1500:]}")
    out = (work / "stdout.txt").read_text()
    summary = json.loads(out[out.index("{") :])
    metrics = [json.loads(ln) for ln in (work / "run" / "metrics.jsonl").read_text().splitlines()]
    windows = [m["train/samples_per_s"] for m in metrics if "train/samples_per_s" in m]
    steady = windows[1:] or windows  # the first window holds the warm-up
    rec["clips_per_s"] = round(statistics.median(steady), 1)
    rec["train_s"] = summary.get("seconds")
    rec["rows"] = [
        {"step": m["step"], "loss": round(m["train/loss"], 4), "clips/s": round(m[k], 1)}
        for m in metrics
        if (k := "train/samples_per_s") in m
    ]
    joined = f"backend {backend}" in err or n == 1 or f"({backend})" in err
    problems = []
    if summary.get("steps") != sz["steps"]:
        problems.append(f"trained {summary.get('steps')} steps, not {sz['steps']}")
    rec["loss"] = summary.get("train/loss")
    if not _finite(summary.get("train/loss", float("nan")), rec["clips_per_s"]):
        problems.append(f"non-finite loss or clips/s: {summary}")
    model_dir = Path(summary["model"])
    if not ((model_dir / "config.json").exists() and any(model_dir.glob("*.safetensors"))):
        problems.append(f"no model (config.json + weights) written in {model_dir}")
    if not joined:
        problems.append(f"the log does not show a {backend} process group")
    if problems:
        raise CheckFailed("; ".join(problems))


def section_stream(ctx: Ctx, rec: dict[str, Any]) -> None:
    """``lewm train`` of the paper preset on data streamed from disk: does the loader keep up
    (``train/data_wait``, the share of each step spent waiting for data, < 5 %)?"""
    from stream_memory import write_file

    sz = ctx.sizes["stream"]
    cuda = ctx.device.type == "cuda"
    work = ctx.out / "stream"
    work.mkdir(parents=True, exist_ok=True)
    data = work / "frames.h5"
    if data.exists():
        data.unlink()
    rec["dataset"] = write_file(data, sz["gib"], sz["resolution"])  # uncompressed, on disk
    cmd = [
        sys.executable, "-m", "lewm.cli.main", "train", "--data", str(data),
        "--out", str(work / "run"), "--overwrite", "--no-progress", "--preset", sz["preset"],
        f"model.encoder.image_size={sz['resolution']}", f"train.steps={sz['steps']}",
        f"train.batch_size={sz['batch']}", "train.log_every=1", "train.val_every=0",
        "train.ckpt_every=0", "data.mode=stream", f"train.device={'cuda' if cuda else 'cpu'}",
    ]  # fmt: skip
    rc, err = _run_job(cmd, work, ctx, rec)
    metrics_f = work / "run" / "metrics.jsonl"
    rows = (
        [json.loads(ln) for ln in metrics_f.read_text().splitlines()] if metrics_f.exists() else []
    )
    rows = [r for r in rows if "train/data_wait" in r][2:]  # the first steps start the loaders
    if rows:
        rec["steps_timed"] = len(rows)
        rec["data_wait_median"] = round(statistics.median(r["train/data_wait"] for r in rows), 4)
        rec["data_wait_max"] = round(max(r["train/data_wait"] for r in rows), 4)
        rec["clips_per_s"] = round(statistics.median(r["train/samples_per_s"] for r in rows), 1)
        rec["s_per_step"] = round(sz["batch"] / rec["clips_per_s"], 4)
    rec["loader"] = [ln for ln in err.splitlines() if "data.mode" in ln][-1:]
    if rc is None and not rows:
        raise CheckFailed(f"the streamed run timed out before its metrics; stderr:\n{err[-1500:]}")
    if rc not in (0, None):
        raise CheckFailed(f"lewm train exit {rc}; stderr tail:\n{err[-1500:]}")
    if rc is None:
        rec["notes"] = ["stopped at the section cap; the numbers are those of the steps it ran"]
    if not rows:
        raise CheckFailed("no timed steps in metrics.jsonl")
    data.unlink()  # gigabytes of frames: not a result


RUNNERS: dict[str, Callable[[Ctx, dict[str, Any]], None]] = {
    "env": section_env,
    "train": section_train,
    "plan": section_plan,
    "solvers": section_solvers,
    "ddp": section_ddp,
    "stream": section_stream,
}


# -- the report --------------------------------------------------------------------------------


def targets(report: dict[str, Any]) -> list[dict[str, Any]]:
    """The target comparisons: measured numbers beside the paper's and the goals."""
    gpu = report["mode"] == "cuda"
    sec = report["sections"]
    rows = []
    plan = sec.get("plan", {})
    if "s_per_plan" in plan:
        s = plan["s_per_plan"]
        rows.append(
            {
                "what": "planning latency, 1 episode (CEM 300 x 30, H 5)"
                if gpu
                else "planning latency, 1 episode (toy sizes)",
                "measured": f"{s:.4f} s",
                "target": f"< {TARGET_PLAN_S} s",
                "paper": f"{PAPER_PLAN_S} s ({plan['paper_over_ours']}x ours)",
                "met": (s < TARGET_PLAN_S) if gpu else None,
            }
        )
    train = sec.get("train", {})
    if train.get("preset") == "paper" and "params" in train:
        rows.append(
            {
                "what": f"{train['preset']} preset parameters",
                "measured": f"{train['params']:,}",
                "target": f"{PAPER_PARAMS:,}",
                "paper": f"{PAPER_PARAMS:,}",
                "met": train["params"] == PAPER_PARAMS,
            }
        )
    if "bf16_speedup_over_fp32" in train:
        rows.append(
            {
                "what": "bf16 speed-up over fp32 (training step)",
                "measured": f"{train['bf16_speedup_over_fp32']}x",
                "target": "> 1x",
                "paper": "-",
                "met": (train["bf16_speedup_over_fp32"] > 1) if gpu else None,
            }
        )
    ddp = sec.get("ddp", {})
    if "clips_per_s" in ddp:
        rows.append(
            {
                "what": f"torchrun {ddp['processes']} x {ddp['backend']} finishes",
                "measured": f"{ddp['clips_per_s']} clips/s",
                "target": "exit 0, model written",
                "paper": "-",
                "met": ddp.get("status") == "pass",
            }
        )
    stream = sec.get("stream", {})
    if "data_wait_median" in stream:
        rows.append(
            {
                "what": "streamed paper preset: time waiting for data"
                if gpu
                else "streamed training: time waiting for data (toy sizes)",
                "measured": f"{100 * stream['data_wait_median']:.1f} % of a step",
                "target": f"< {100 * TARGET_DATA_WAIT:.0f} %",
                "paper": "-",
                "met": (stream["data_wait_median"] < TARGET_DATA_WAIT) if gpu else None,
            }
        )
    return rows


def _cell(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    if isinstance(v, list):
        return "x".join(map(str, v)) if all(isinstance(x, int) for x in v) else str(v)
    return str(v).replace("|", "\\|").replace("\n", " ")


def _table(rows: list[dict[str, Any]]) -> list[str]:
    keys: list[str] = []
    for r in rows:
        keys += [k for k in r if k not in keys]
    lines = ["| " + " | ".join(keys) + " |", "|" + "---|" * len(keys)]
    lines += ["| " + " | ".join(_cell(r.get(k, "")) for k in keys) + " |" for r in rows]
    return lines


def markdown(report: dict[str, Any]) -> str:
    env = report["sections"].get("env", {}).get("info", {})
    gpus = report["sections"].get("env", {}).get("rows", [])
    where = ", ".join(sorted({g["name"] for g in gpus})) or "CPU"
    lines = [
        f"# GPU check ({report['mode']} mode) on {where}",
        "",
        f"{report['date']}, lewm {report['lewm']} ({report.get('commit') or 'commit unknown'}), "
        f"torch {env.get('torch', torch.__version__)}; {report['total_s']} s in all "
        f"(budget {report['budget_s']} s). Overall: **{report['status'].upper()}**.",
    ]
    if report["mode"] == "cpu":
        lines += ["", "CPU mode: toy sizes (tiny preset); the numbers test the script only."]
    lines += ["", "| section | status | seconds | cap s |", "|---|---|---|---|"]
    for name, sec in report["sections"].items():
        status = sec["status"] if sec["status"] == "pass" else f"**{sec['status'].upper()}**"
        lines.append(f"| {name} | {status} | {sec.get('seconds', '')} | {sec.get('cap_s', '')} |")
    tg = report.get("targets", [])
    if tg:
        lines += ["", "## Targets", ""]
        shown = [{**r, "met": {True: "yes", False: "**NO**", None: "n/a"}[r["met"]]} for r in tg]
        lines += _table(shown)
    skip = {"status", "seconds", "cap_s", "rows", "error", "notes", "info"}
    for name, sec in report["sections"].items():
        lines += ["", f"## {name}: {sec['status']}", ""]
        if sec.get("info"):
            lines += _table([{"key": k, "value": v} for k, v in sec["info"].items()]) + [""]
        scalars = {k: v for k, v in sec.items() if k not in skip}
        if scalars:
            lines += [f"- {k}: {_cell(v)}" for k, v in scalars.items()] + [""]
        if sec.get("rows"):
            lines += _table(sec["rows"]) + [""]
        lines += [f"- note: {n}" for n in sec.get("notes", [])]
        if sec.get("error"):
            lines += ["", "```", sec["error"].rstrip(), "```"]
    return "\n".join(lines).rstrip() + "\n"


def _commit() -> str | None:
    try:
        r = subprocess.run(
            ["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            timeout=10,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return r.stdout.strip() or None


def write_report(report: dict[str, Any], out: Path) -> None:
    """OUT/report.json and OUT/report.md, each replaced atomically (rewritten after every
    section, so a run cut short still leaves what it measured)."""
    report["targets"] = targets(report)
    for name, text in (
        ("report.json", json.dumps(report, indent=2, default=str) + "\n"),
        ("report.md", markdown(report)),
    ):
        tmp = out / f".{name}.tmp"
        tmp.write_text(text)
        tmp.replace(out / name)


def _stop(signum: int, frame: Any) -> None:
    raise Stopped(signal.Signals(signum).name)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--out", default="runs/gpu_check", help="report folder (default: %(default)s)")
    p.add_argument(
        "--device",
        default="auto",
        choices=["auto", "cuda", "cpu"],
        help="auto: cuda when available; cpu: toy sizes (the smoke mode)",
    )
    p.add_argument("--only", default="", help=f"comma-separated sections among {SECTIONS}")
    p.add_argument("--skip", default="", help="comma-separated sections to leave out")
    p.add_argument(
        "--nproc", type=int, default=None, help="ddp processes (default: GPUs; 2 on CPU)"
    )
    a = p.parse_args(argv)
    chosen = [s for s in a.only.split(",") if s] or list(SECTIONS)
    skipped = {s for s in a.skip.split(",") if s}
    unknown = sorted((set(chosen) | skipped) - set(SECTIONS))
    if unknown:
        p.error(f"unknown section(s) {unknown}; sections: {', '.join(SECTIONS)}")
    if a.device == "cuda" and not torch.cuda.is_available():
        p.error("--device cuda: CUDA is not available here (use --device cpu for the smoke run)")
    mode = (
        "cuda"
        if a.device == "cuda" or (a.device == "auto" and torch.cuda.is_available())
        else "cpu"
    )
    device = torch.device("cuda", 0) if mode == "cuda" else torch.device("cpu")
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "timeline.txt").write_text("")
    ctx = Ctx(mode, device, out, a.nproc)
    names = [s for s in SECTIONS if s in chosen and s not in skipped]
    caps = MODES[mode]["caps"]
    report: dict[str, Any] = {
        "check": "gpu_check",
        "mode": mode,
        "date": time.strftime("%Y-%m-%d %H:%M:%S"),
        "lewm": lewm.__version__,
        "commit": _commit(),
        "budget_s": sum(caps[s] for s in names),
        "status": "running",
        "sections": {s: {"status": "pending", "cap_s": caps[s]} for s in names},
    }
    old_handler = signal.signal(signal.SIGTERM, _stop)
    t_all = time.perf_counter()

    def stamp(what: str) -> None:  # progress, also in OUT/timeline.txt (a run cut short says where)
        line = f"{time.perf_counter() - t_all:.0f} s: {what}"
        print(line, file=sys.stderr, flush=True)
        with open(out / "timeline.txt", "a") as f:
            f.write(line + "\n")

    stopped = None
    try:
        for name in names:
            rec = report["sections"][name]
            if stopped:
                rec["status"] = "skipped"
                rec["error"] = f"not run: stopped by {stopped}"
                continue
            rec["status"] = "running"
            write_report({**report, "total_s": round(time.perf_counter() - t_all, 1)}, out)
            stamp(f"{name} (cap {caps[name]} s)")
            t = time.perf_counter()
            ctx.deadline = t + caps[name]
            try:
                RUNNERS[name](ctx, rec)
                rec["status"] = "pass"
            except Stopped as e:
                stopped = str(e)
                rec["status"], rec["error"] = "fail", f"stopped by {e} (the time limit) mid-section"
            except Exception as e:
                rec["status"] = "fail"
                tb = traceback.format_exc(limit=4) if not isinstance(e, CheckFailed) else str(e)
                rec["error"] = tb[-3000:]
                _free(device)
            rec["seconds"] = round(time.perf_counter() - t, 1)
            stamp(f"{name}: {rec['status']} in {rec['seconds']} s")
    finally:
        signal.signal(signal.SIGTERM, old_handler)
    ok = all(s["status"] == "pass" for s in report["sections"].values())
    report["status"] = "pass" if ok else "fail"
    report["total_s"] = round(time.perf_counter() - t_all, 1)
    write_report(report, out)
    print(
        f"report: {out / 'report.md'} and report.json; overall {report['status']}", file=sys.stderr
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
