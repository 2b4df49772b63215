r"""The Push-T screening proxy for one or more runs (issue 16): does the latent keep the block's
angle, and how much does the planning cost weigh it?

    python benchmarks/quality/angle_screen.py RUN [RUN ...] --data runs/pusht/eval_100_s99.h5 \
        [--frames 6000] [--states 300] [--json OUT.json]

For each run (a run folder, or a checkpoint folder) on held-out frames of ``--data``:
  * probes (``lewm.analysis.probe``, what ``lewm probe`` does): linear and MLP r for the block
    angle (sin, cos) and the block position, on the latent, beside the random-init floor;
  * local sensitivity (``latent_sensitivity.py``): median latent distance for a 20-degree turn
    and for a 5-unit block shift, their ratio (> 1: the cost weighs the success tolerance's
    angle above a 5-unit shift) and the block shift costing as much as the 20-degree turn;
  * latent straightness (paper Eq. 9) on training-length windows;
  * the last logged prediction loss (train and val) from ``metrics.jsonl``, to compare levers at
    matched prediction loss rather than matched step (a run that barely left its init keeps the
    angle trivially).
Prints one markdown row per run (and the floor once); ``--json`` keeps everything.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch

from lewm.analysis.geometry import dataset_straightness
from lewm.analysis.probe import ProbeConfig, run_probe
from lewm.data.hdf5 import EpisodeDataset
from lewm.envs import get_spec
from lewm.models import load, model_device, resolve_checkpoint
from lewm.training.trainer import resolve_device

sys.path.insert(0, str(Path(__file__).resolve().parent))
from latent_sensitivity import perturbed_states  # noqa: E402


def last_losses(run: Path) -> dict:
    """The last train and val prediction losses logged in a run's metrics.jsonl (for a checkpoint
    folder RUN/checkpoints/step_N: the last ones logged up to step N)."""
    out: dict = {}
    upto = None
    path = run / "metrics.jsonl"
    if run.parent.name == "checkpoints" and run.name.startswith("step_"):
        path, upto = run.parent.parent / "metrics.jsonl", int(run.name.split("_")[1])
    elif not path.exists():  # a model imported beside the peer trainer's log (peer_train.py)
        path = run.parent / "metrics.jsonl"
    if not path.exists():
        return out
    for line in path.read_text().splitlines():
        rec = json.loads(line)
        if upto is not None and rec.get("step", 0) > upto:
            continue
        if "pred_loss" in rec:  # peer_train.py's names
            rec["train/pred_loss"] = rec["pred_loss"]
        for key in ("train/pred_loss", "val/pred_loss", "train/straightness"):
            if key in rec:
                out[key] = rec[key]
        if "step" in rec:
            out["step"] = rec["step"]
    return out


@torch.inference_mode()
def sensitivity(model, data: EpisodeDataset, n: int, seed: int) -> dict:
    rng = np.random.default_rng(seed)
    state = np.asarray(data.column("state"), np.float64)
    base = state[np.sort(rng.choice(len(state), min(n, len(state)), replace=False)), :5]
    variants = perturbed_states(base, [20.0, 45.0], [5.0, 10.0, 20.0], rng)
    render = get_spec("pusht").render

    dev = model_device(model)

    def encode(states: np.ndarray) -> torch.Tensor:
        px = torch.as_tensor(render(states, model.image_size))[:, None]
        return model.encode(px.to(dev))[:, 0].float().cpu()

    z0 = encode(base)
    dist = {k: float((encode(v) - z0).norm(dim=1).median()) for k, v in variants.items()}
    shifts = [5.0, 10.0, 20.0]
    block = [dist[f"block {d:g}"] for d in shifts]
    turn = dist["turn 20 deg"]
    return {
        "turn20": turn,
        "block5": dist["block 5"],
        "ratio_turn20_block5": turn / max(dist["block 5"], 1e-12),
        "block_shift_equal_to_20_deg": None
        if turn < block[0]
        else float(np.interp(turn, block, shifts)),
        "median_distance": dist,
    }


def screen(path: str, data: EpisodeDataset, a: argparse.Namespace) -> dict:
    ckpt = resolve_checkpoint(path)
    model = load(ckpt).to(resolve_device(a.device))
    run = Path(path)
    probe = run_probe(model, data, "pusht", ProbeConfig(max_frames=a.frames, seed=a.seed))
    t = probe["trained"]
    return {
        "run": path,
        "checkpoint": str(ckpt),
        "angle_linear_r": t["angle"]["linear"]["r"],
        "angle_mlp_r": t["angle"]["mlp"]["r"],
        "block_linear_r": t["block"]["linear"]["r"],
        "floor": {q: {k: probe["random_init"][q][k]["r"] for k in ("linear", "mlp")} for q in t},
        "sensitivity": sensitivity(model, data, a.states, a.seed),
        "straightness": dataset_straightness(model, data, max_windows=a.windows)["straightness"],
        "losses": last_losses(run),
    }


def row(r: dict) -> str:
    s, lo = r["sensitivity"], r["losses"]
    eq = s["block_shift_equal_to_20_deg"]
    return (
        f"| {r['run']} | {lo.get('step', '-')} | {lo.get('train/pred_loss', float('nan')):.4f} | "
        f"{lo.get('val/pred_loss', float('nan')):.4f} | {r['angle_linear_r']:.3f} | "
        f"{r['angle_mlp_r']:.3f} | {r['block_linear_r']:.3f} | {s['ratio_turn20_block5']:.2f} | "
        f"{'< 5' if eq is None else f'{eq:.1f}'} | {r['straightness']:.3f} |"
    )


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("runs", nargs="+")
    p.add_argument("--data", required=True, help="Push-T episode file (held out from training)")
    p.add_argument("--frames", type=int, default=6000, help="probe frames")
    p.add_argument("--states", type=int, default=300, help="sensitivity states")
    p.add_argument("--windows", type=int, default=1000, help="straightness windows")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=0)
    p.add_argument("--device", default="auto", help="cpu, cuda or auto (default: CUDA if any)")
    p.add_argument("--json", default=None)
    a = p.parse_args()
    if a.threads:
        torch.set_num_threads(a.threads)
    data = EpisodeDataset(a.data, in_memory=False)
    results = [screen(r, data, a) for r in a.runs]
    print(
        "| run | step | train pred loss | val pred loss | angle r (lin) | angle r (MLP) | "
        "block r (lin) | 20° turn / 5-unit shift | shift = 20° turn | straightness |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in results:
        print(row(r))
    f = results[0]["floor"]
    print(
        f"\nrandom-init floor ({results[0]['run']}'s architecture): angle r "
        f"{f['angle']['linear']:.3f} / {f['angle']['mlp']:.3f}, block r {f['block']['linear']:.3f}"
    )
    if a.json:
        Path(a.json).write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
