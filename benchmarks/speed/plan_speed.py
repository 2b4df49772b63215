r"""Time one full CEM plan (300 samples x 30 iterations, horizon 5, 30 elites) with the real
Planner, for a preset: one episode at a time (median of --repeats after a warm-up), and batched
over --batch episodes (time per episode-plan). Random weights (seeded by --seed): planning cost
does not depend on them. The world model comes from the registry (``model.kind``).

    python benchmarks/speed/plan_speed.py --preset cpu model.predictor.history=1
    python benchmarks/speed/plan_speed.py --preset cpu --context 3
    python benchmarks/speed/plan_speed.py --preset paper --repeats 1 --batch 0
    python benchmarks/speed/plan_speed.py --preset tiny --samples 8 --iterations 2 --repeats 1
    python benchmarks/speed/plan_speed.py --preset paper --batch 0 --reference \
        --peer-python $PEER_PYTHON [--shim $SWM_SHIM]

--reference also times the plain window loop (``LeWM.rollout_reference``, i.e. ``fast=False``).
--peer (with the python of the paper authors' virtual environment from --peer-python PATH or
$LEWM_PEER_PYTHON; --peer-python alone implies --peer) also times their implementation
(stable-worldmodel 0.1.1, see benchmarks/comparison/peer_plan.py and benchmarks/README.md) on the
same model with the same weights: this model is saved as a checkpoint, converted by
benchmarks/comparison/peer_weights.py, and peer_plan.py runs their LeWM + CEMSolver with the same
samples, iterations, elites, horizon, context, repeats and threads (--shim DIR or $SWM_SHIM: a
torchvision stand-in folder put on that process's PYTHONPATH). With --context C > 1 their solver
is given H + C - 1 blocks (peer_plan.py --match-rollout), so both run H predictor steps over full
windows; --peer-asis times their solver as their policy calls it (H blocks, of which the first
C - 1 stand in for the executed ones: H - C + 1 steps). The record then holds ``peer`` (their
record) and ``peer_over_ours`` (their s / our s; > 1 means ours is faster); a small table goes
to stderr.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from lewm.config import PRESETS, apply_overrides, preset
from lewm.models import LeWM, WorldModel, build_model
from lewm.planning import SOLVERS, Planner, make_solver

COMPARISON = Path(__file__).resolve().parents[1] / "comparison"
PEER_PYTHON_ENV, SHIM_ENV = "LEWM_PEER_PYTHON", "SWM_SHIM"


class ReferenceRollout:
    """The model with its plain window-loop rollout (``LeWM.rollout(..., fast=False)``)."""

    def __init__(self, model: LeWM) -> None:
        self.model = model
        self.history, self.action_block_dim = model.history, model.action_block_dim

    def encode(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.model.encode(pixels)

    def rollout(self, z_context, actions, history_actions=None):
        return self.model.rollout(z_context, actions, history_actions, fast=False)

    def parameters(self):
        return self.model.parameters()


def _last_json(cmd: list[str], env: dict[str, str] | None = None) -> dict:
    """Run ``cmd``; its last stdout line starting with "{" is one JSON record."""
    r = subprocess.run(cmd, capture_output=True, text=True, env=env)
    lines = [ln for ln in r.stdout.splitlines() if ln.startswith("{")]
    if r.returncode != 0 or not lines:
        name = Path(cmd[1]).name
        raise RuntimeError(
            f"{name} failed (exit {r.returncode}):\n{r.stderr[-3000:]}\n{r.stdout[-1000:]}"
        )
    return json.loads(lines[-1])


def time_peer(a: argparse.Namespace, model: LeWM) -> dict:
    """Convert the model's weights (peer_weights.py, lewm's python) and time the authors'
    planner on them (peer_plan.py, the peer's python)."""
    env = dict(os.environ)
    if a.shim:
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [a.shim, env.get("PYTHONPATH")]))
    with tempfile.TemporaryDirectory() as tmp:
        ckpt, w = model.save_pretrained(Path(tmp) / "model"), Path(tmp) / "peer.safetensors"
        conv = [sys.executable, str(COMPARISON / "peer_weights.py"), str(w)]
        model_json = _last_json([*conv, "--checkpoint", str(ckpt)])["model_json"]
        args = ["--weights", str(w), "--model-json", json.dumps(model_json)]
        args += ["--samples", str(a.samples), "--iterations", str(a.iterations)]
        args += ["--elites", str(a.elites), "--horizon", str(a.horizon)]
        args += ["--context", str(a.context), "--repeats", str(a.repeats)]
        args += ["--threads", str(torch.get_num_threads()), "--seed", str(a.seed)]
        if a.context > 1 and not a.peer_asis:
            args.append("--match-rollout")
        if a.peer_batch:
            args += ["--batch", str(a.peer_batch)]
        rec = _last_json([a.peer_python, str(COMPARISON / "peer_plan.py"), *args], env)
    rec.pop("weights", None)
    return rec


def time_plan(
    planner: Planner,
    B: int,
    C: int,
    s: int,
    Ab: int,
    repeats: int,
    warmup: int = 1,
    budget_s: float | None = None,
) -> float:
    """Median wall seconds of one ``planner.plan`` call for B episodes (C context frames of
    s x s pixels, random), after ``warmup`` calls; on CUDA each call ends with a synchronize.
    With ``budget_s`` the timed calls stop once that many seconds are spent (at least one)."""
    obs = torch.randint(0, 256, (B, C, s, s, 3), dtype=torch.uint8)
    goal = torch.randint(0, 256, (B, s, s, 3), dtype=torch.uint8)
    hist = torch.randn(B, C - 1, Ab) if C > 1 else None
    cuda = planner.device.type == "cuda"
    t0 = time.perf_counter()
    for _ in range(warmup):
        planner.plan(obs, goal, hist)
    if cuda:
        torch.cuda.synchronize(planner.device)
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        planner.plan(obs, goal, hist)
        if cuda:
            torch.cuda.synchronize(planner.device)
        times.append(time.perf_counter() - t)
        if budget_s is not None and time.perf_counter() - t0 > budget_s:
            break
    return statistics.median(times)


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--preset", default="cpu", choices=list(PRESETS))
    p.add_argument("--samples", type=int, default=300)
    p.add_argument("--iterations", type=int, default=30)
    p.add_argument("--horizon", type=int, default=5)
    p.add_argument("--context", type=int, default=1, help="observed frames (<= history)")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--batch", type=int, default=50, help="episodes planned together (0: skip)")
    p.add_argument("--threads", type=int, default=0)
    p.add_argument("--elites", type=int, default=30, help="capped at --samples")
    p.add_argument(
        "--solver", default="cem", choices=sorted(SOLVERS), help="ours; the peer always runs CEM"
    )
    p.add_argument("--seed", type=int, default=0, help="seeds the random-init weights")
    p.add_argument("--reference", action="store_true", help="also time rollout(fast=False)")
    p.add_argument("--peer", action="store_true", help="also time the authors' implementation")
    p.add_argument(
        "--peer-python",
        default=None,
        help=f"python of the stable-worldmodel venv (implies --peer; default: ${PEER_PYTHON_ENV})",
    )
    p.add_argument(
        "--shim",
        default=os.environ.get(SHIM_ENV),
        help=f"torchvision stand-in folder for the peer's PYTHONPATH (default: ${SHIM_ENV})",
    )
    p.add_argument("--peer-asis", action="store_true", help="their solver as their policy calls it")
    p.add_argument("--peer-batch", type=int, default=0, help="also time B episodes on their side")
    p.add_argument("--out", default=None, help="append the JSON record to this file")
    p.add_argument("overrides", nargs="*", help="config overrides, e.g. model.predictor.history=1")
    a = p.parse_args()
    if a.threads:
        torch.set_num_threads(a.threads)
    cfg = apply_overrides(preset(a.preset), a.overrides)
    if a.peer or a.peer_python:
        a.peer_python = a.peer_python or os.environ.get(PEER_PYTHON_ENV)
        if not a.peer_python:
            p.error(
                "--peer needs the python of the authors' virtual environment: give "
                f"--peer-python PATH or set {PEER_PYTHON_ENV} (see benchmarks/README.md)"
            )
        if cfg.model.kind != "lewm" or cfg.model.encoder.kind != "vit":
            p.error("--peer compares LeWM with a ViT encoder only (e.g. --preset paper)")
    torch.manual_seed(a.seed)
    model: WorldModel = build_model(cfg.model).eval()
    if a.reference and not isinstance(model, LeWM):
        p.error(f"--reference times LeWM's plain rollout; model.kind is {cfg.model.kind!r}")
    a.elites = min(a.elites, a.samples)
    solver = make_solver(
        a.solver, num_samples=a.samples, iterations=a.iterations, num_elites=a.elites
    )
    planner = Planner(model, solver, horizon=a.horizon, receding=a.horizon)
    s, Ab = model.image_size, model.action_block_dim
    rec = {
        "bench": "plan_speed",
        "preset": a.preset,
        "overrides": a.overrides,
        "solver": a.solver,
        "samples": a.samples,
        "iterations": a.iterations,
        "elites": a.elites,
        "seed": a.seed,
        "horizon": a.horizon,
        "context": a.context,
        "kind": cfg.model.kind,
        "history": model.history,
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "date": time.strftime("%Y-%m-%d"),
        "s_per_plan_single": round(time_plan(planner, 1, a.context, s, Ab, a.repeats), 3),
    }
    if a.batch:
        t = time_plan(planner, a.batch, a.context, s, Ab, max(1, a.repeats // 3))
        rec.update(batch=a.batch, s_per_plan_batched=round(t / a.batch, 3))
    rows = [("lewm (fast rollout)", rec["s_per_plan_single"])]
    if a.reference:
        ref = Planner(ReferenceRollout(model), solver, horizon=a.horizon, receding=a.horizon)
        t = time_plan(ref, 1, a.context, s, Ab, a.repeats)
        rec["s_per_plan_single_reference"] = round(t, 3)
        rows.append(("lewm (reference rollout)", rec["s_per_plan_single_reference"]))
    if a.peer_python:
        peer = time_peer(a, model)
        rec["peer"] = peer
        rec["peer_over_ours"] = round(peer["s_per_plan_single"] / rec["s_per_plan_single"], 3)
        if a.reference:
            rec["peer_over_ours_reference"] = round(
                peer["s_per_plan_single"] / rec["s_per_plan_single_reference"], 3
            )
        name = f"{peer['impl']} ({peer['predictor_steps']} predictor steps)"
        rows.append((name, peer["s_per_plan_single"]))
    print(json.dumps(rec))
    if len(rows) > 1:
        base = rec["s_per_plan_single"]
        print("| planner | s / plan (1 episode) | x lewm fast |\n|---|---|---|", file=sys.stderr)
        for name, t in rows:
            print(f"| {name} | {t:.3f} | {t / base:.2f} |", file=sys.stderr)
    if a.out:
        with open(a.out, "a") as f:
            f.write(json.dumps(rec) + "\n")


if __name__ == "__main__":
    main()
