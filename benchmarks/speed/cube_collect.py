"""Cube data speed (issue 19, item 2): where the time of a collected frame goes, and what each
lever buys. Measures, on this machine:

- physics + OGBench's oracle alone (env steps/s, no frames);
- rendering alone per look and resolution (frames/s, one process);
- OGBench's own pixel env (``visual-cube-single-v0``, the reference: ~7 frames/s);
- `lewm collect cube` end to end (stored frames/s) per look and worker count.

    .venv/bin/python benchmarks/speed/cube_collect.py [--episodes 8] [--out runs/bench/cube.json]

Run it on a quiet machine: the numbers are throughputs of the whole CPU.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np


def physics_rate(steps: int = 400) -> float:
    from lewm.envs.cube import physics
    from lewm.envs.cube.collect import OraclePolicy

    rng = np.random.default_rng(0)
    data = physics.new_data()
    physics.sample_scene(data, rng)
    policy = OraclePolicy(rng)
    t0 = time.perf_counter()
    for _ in range(steps):
        physics.step(data, policy.act(data))
        physics.get_state(data)
    return steps / (time.perf_counter() - t0)


def render_rate(look: str, resolution: int, frames: int = 40) -> float:
    from lewm.envs.cube import physics
    from lewm.envs.cube.render import render_batch

    data = physics.new_data()
    physics.sample_scene(data, np.random.default_rng(1))
    states = np.repeat(physics.get_state(data)[None], frames, 0)
    render_batch(states[:1], resolution, look=look)  # the renderer's set-up
    t0 = time.perf_counter()
    render_batch(states, resolution, look=look)
    return frames / (time.perf_counter() - t0)


def ogbench_pixel_env_rate(steps: int = 30) -> float:
    """OGBench's own pixel env (in a subprocess: one renderer per process)."""
    import subprocess
    import sys

    code = (
        "import time, warnings, numpy as np\n"
        "warnings.simplefilter('ignore')\n"
        "from lewm.envs.cube.backend import import_ogbench_cube\n"
        "import_ogbench_cube()\n"
        "import gymnasium, ogbench\n"
        "env = gymnasium.make('visual-cube-single-v0')\n"
        "env.reset(seed=0)\n"
        "env.step(env.action_space.sample())\n"
        f"t0 = time.perf_counter()\n"
        f"for _ in range({steps}): env.step(env.action_space.sample())\n"
        f"print({steps} / (time.perf_counter() - t0))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return float(out.stdout.strip().splitlines()[-1])


def collect_rate(look: str, workers: int, episodes: int) -> dict:
    from lewm.envs.cube import collect_cube

    with tempfile.TemporaryDirectory() as tmp:
        stats = collect_cube(
            Path(tmp) / "c.h5", episodes, look=look, workers=workers, progress=False
        )
    return {"look": look, "workers": workers, "frames_per_s": stats["steps_per_s"]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--episodes", type=int, default=8, help="episodes per collection run")
    ap.add_argument("--out", default=None, help="also write the results here (JSON)")
    args = ap.parse_args()
    warnings.simplefilter("ignore")
    res = {
        "physics_and_oracle_steps_per_s": round(physics_rate(), 1),
        "ogbench_pixel_env_frames_per_s": round(ogbench_pixel_env_rate(), 2),
        "render_frames_per_s": {
            f"{look}_{r}px": round(render_rate(look, r), 1)
            for look in ("fast", "ogbench")
            for r in (64, 224)
        },
        "collect": [
            collect_rate(look, w, args.episodes) for look in ("fast", "ogbench") for w in (1, 2)
        ],
    }
    print(json.dumps(res, indent=2))
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(res, indent=2))


if __name__ == "__main__":
    main()
