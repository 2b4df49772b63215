"""Push-T end to end for several seeds: collect -> train (CPU preset) -> plan on 50 held-out
tasks (paper protocol) -> random baseline; prints a markdown table.

    python benchmarks/pusht_seeds.py --seeds 0 1 2 --out runs/pusht_seeds
    python benchmarks/pusht_seeds.py --seeds 0 1 2 --out runs/pusht_seeds --table-only

Every step is a plain `lewm` command (printed before it runs), so any row can be reproduced by
hand. Seed s collects its own training data (`--seed s`, noisy pusher with random segments),
trains with `train.seed=s`, and plans on 50 tasks of a separate 100-episode file collected with
the default pusher (`--seed 10000+s`, never trained on), `--seed s`. Results land in
OUT/seed_S/summary.json.
"""

from __future__ import annotations

import argparse
import json
import shlex
import subprocess
import sys
import time
from pathlib import Path

# The CPU preset (64 px CNN, history 3 as the paper's Push-T) with a larger predictor (1.15 M
# parameters instead of 183 k) and a shorter schedule: the best CPU recipe so far
# (docs/results.md, Push-T, sessions 3-4; 13,000 steps since session 4).
RECIPE = [
    "train.batch_size=64",
    "train.val_every=1000",
    "train.ckpt_every=1000",
    "model.predictor.depth=4",
    "model.predictor.heads=8",
    "model.predictor.head_dim=64",
    "model.predictor.mlp_dim=1024",
    "model.predictor.dropout=0",
]


def _lewm(*args: str) -> dict:
    cmd = [sys.executable, "-m", "lewm.cli.main", *args]
    print("+ lewm " + shlex.join(args), flush=True)
    t = time.perf_counter()
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    res = json.loads(out[out.index("{") :])
    res["_seconds"] = round(time.perf_counter() - t, 1)
    return res


def run_seed(out: Path, seed: int, a: argparse.Namespace) -> dict:
    out.mkdir(parents=True, exist_ok=True)
    data = out / "pusht.h5"
    summary = {"seed": seed, "episodes": a.episodes, "steps": a.steps, "recipe": RECIPE + a.extra}
    summary.update(noise=a.noise, explore=a.explore)
    if not data.exists():
        summary["collect"] = _lewm(
            "collect", "pusht", "--episodes", str(a.episodes), "--out", str(data),
            "--seed", str(seed), "--noise", str(a.noise), "--explore", str(a.explore),
            "--no-progress",
        )  # fmt: skip
    run = out / "run"
    summary["train"] = _lewm(
        "train", "--data", str(data), "--out", str(run), "--overwrite", "--no-progress",
        f"train.steps={a.steps}", f"train.seed={seed}", *RECIPE, *a.extra,
    )  # fmt: skip
    # Tasks come from a separate file collected with the default pusher (noise 0.1, no random
    # segments), so that every recipe is scored on the same kind of purposeful pushes.
    tasks = out / "eval_tasks.h5"
    if not tasks.exists():
        summary["collect_eval"] = _lewm(
            "collect", "pusht", "--episodes", "100", "--out", str(tasks),
            "--seed", str(10_000 + seed), "--no-progress",
        )  # fmt: skip
    common = ["--env", "pusht", "--data", str(tasks), "--split", "all", "--episodes", "50"]
    common += ["--seed", str(seed), "--no-progress"]
    summary["plan"] = _lewm("eval", str(run), *common, "--out", str(out / "eval_plan"))
    summary["random"] = _lewm(
        "eval", str(run), *common, "--policy", "random", "--out", str(out / "eval_random")
    )
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    return summary


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--out", default="runs/pusht_seeds")
    p.add_argument("--episodes", type=int, default=2000, help="episodes collected per seed")
    p.add_argument("--noise", type=float, default=0.3, help="pusher action noise")
    p.add_argument("--explore", type=float, default=0.3, help="pusher random-segment fraction")
    p.add_argument("--steps", type=int, default=13000, help="training steps (~51 min on 2 cores)")
    p.add_argument("--table-only", action="store_true", help="only read existing summaries")
    p.add_argument("extra", nargs="*", help="more config overrides, e.g. train.lr=5e-4")
    a = p.parse_args()
    rows = []
    for s in a.seeds:
        out = Path(a.out) / f"seed_{s}"
        rows.append(
            json.loads((out / "summary.json").read_text()) if a.table_only else run_seed(out, s, a)
        )
    print("| seed | success (50 unseen tasks) | random | s/plan | train min | eval s |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        pl = r["plan"]
        print(
            f"| {r['seed']} | {100 * pl['success_rate']:.0f} % | "
            f"{100 * r['random']['success_rate']:.0f} % | {pl['plan_seconds_mean']:.3f} | "
            f"{r['train']['seconds'] / 60:.1f} | {pl['wall_seconds']} |"
        )
    mean = sum(r["plan"]["success_rate"] for r in rows) / len(rows)
    print(f"\nmean success over {len(rows)} seeds: {100 * mean:.1f} %")


if __name__ == "__main__":
    main()
