"""How much does the planning cost weigh a Push-T block turn against a shift? (Local sensitivity.)

The linear and MLP probes (``lewm probe``) ask whether a *global* readout of the block angle
exists. The planner never needs one: it compares a predicted latent with the goal's latent, so
what matters is how far the latent moves when the state changes a little. This script samples
states from an episode file, renders each one and copies of it with one thing changed, and
reports the median latent distance ``||z(perturbed) - z(state)||`` for

- the block turned by each of ``--turns`` (degrees; the sign is drawn at random per state),
- the block moved by each of ``--shifts`` (world units, in a random direction),
- the agent moved by the same distances.

The success test is "agent and block within 20 units jointly, and block angle within pi/9 (20
degrees)". The last line therefore gives the block shift that costs as much as a 20-degree turn;
well under 20 units means the terminal cost barely cares about orientation.

    python benchmarks/quality/latent_sensitivity.py runs/pt/model --data runs/pusht/eval_100_s99.h5
"""

from __future__ import annotations

import argparse
import json

import numpy as np
import torch

from lewm.data.hdf5 import EpisodeDataset
from lewm.envs import get_spec
from lewm.models import load


def perturbed_states(
    base: np.ndarray, turns_deg: list[float], shifts: list[float], rng: np.random.Generator
) -> dict[str, np.ndarray]:
    """base (N, 5) states -> {name: (N, 5) states with one change each}."""
    n = len(base)
    direction = rng.normal(size=(n, 2))
    direction /= np.linalg.norm(direction, axis=1, keepdims=True)
    sign = rng.choice([-1.0, 1.0], n)
    out = {}
    for t in turns_deg:
        s = base.copy()
        s[:, 4] += sign * np.deg2rad(t)
        out[f"turn {t:g} deg"] = s
    for d in shifts:
        s = base.copy()
        s[:, 2:4] += d * direction
        out[f"block {d:g}"] = s
        s = base.copy()
        s[:, 0:2] += d * direction
        out[f"agent {d:g}"] = s
    return out


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("checkpoint", nargs="+", help="run directories or checkpoint folders")
    p.add_argument("--data", required=True, help="Push-T episode file with a state column")
    p.add_argument("--states", type=int, default=300)
    p.add_argument("--turns", type=float, nargs="+", default=[5, 10, 20, 45, 90])
    p.add_argument("--shifts", type=float, nargs="+", default=[5, 10, 20, 40])
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=0)
    a = p.parse_args()
    if a.threads:
        torch.set_num_threads(a.threads)
    if 20.0 not in a.turns:
        p.error("--turns must include 20 (the success tolerance, pi/9)")

    ds = EpisodeDataset(a.data, in_memory=False)
    if not ds.has("state"):
        p.error(f"{a.data} has no 'state' column")
    rng = np.random.default_rng(a.seed)
    state = np.asarray(ds.column("state"), np.float64)
    base = state[np.sort(rng.choice(len(state), min(a.states, len(state)), replace=False)), :5]
    variants = perturbed_states(base, a.turns, a.shifts, rng)

    render = get_spec("pusht").render  # states (N, 5) -> frames (N, r, r, 3) uint8
    report = {}
    for ckpt in a.checkpoint:
        model = load(ckpt)  # any registered world model, in eval mode
        res = model.image_size

        def encode(states: np.ndarray, model=model, res=res) -> torch.Tensor:
            px = torch.as_tensor(render(states, res))[:, None]  # (N, 1, r, r, 3)
            with torch.inference_mode():
                return model.encode(px)[:, 0]  # (N, D)

        z0 = encode(base)  # (N, D)
        dist = {k: float((encode(v) - z0).norm(dim=1).median()) for k, v in variants.items()}
        shifts = sorted(a.shifts)
        block = [dist[f"block {d:g}"] for d in shifts]
        # block shift with the same median distance as a 20-degree turn (linear interpolation,
        # clipped to the measured range)
        equiv = float(np.interp(dist["turn 20 deg"], block, shifts))
        below = dist["turn 20 deg"] < block[0]
        report[ckpt] = {
            "median_distance": dist,
            "block_shift_equal_to_20_deg": None if below else equiv,
        }
        print(f"\n{ckpt}  ({len(base)} states of {a.data})")
        for k, v in dist.items():
            print(f"  {k:>14}: {v:.3f}")
        said = f"under {shifts[0]:g}" if below else f"{equiv:.1f}"
        print(f"  a 20-degree turn costs as much as a block shift of {said} units")
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
