"""Push-T end to end for several seeds: collect -> train (CPU preset) -> plan on 50 held-out
tasks (paper protocol) -> random baseline; prints a markdown table.

    python benchmarks/pusht_seeds.py --seeds 0 1 2 --out runs/pusht_seeds
    python benchmarks/pusht_seeds.py --seeds 0 1 2 --out runs/pusht_seeds --table-only

Every step is a plain `lewm` command (printed before it runs), so any row can be reproduced by
hand. Seed s collects its own data (`--seed s`), trains with `train.seed=s` and evaluates with
`--seed s`. Results land in OUT/seed_S/summary.json.
"""

from __future__ import annotations

import argparse
import json
import shlex
import subprocess
import sys
import time
from pathlib import Path

# The CPU preset (64 px CNN, history 3 as the paper's Push-T) with a shorter schedule.
RECIPE = ["train.batch_size=64", "train.val_every=1000", "train.ckpt_every=1000"]


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
    if not data.exists():
        summary["collect"] = _lewm(
            "collect", "pusht", "--episodes", str(a.episodes), "--out", str(data),
            "--seed", str(seed), "--no-progress",
        )  # fmt: skip
    run = out / "run"
    summary["train"] = _lewm(
        "train", "--data", str(data), "--out", str(run), "--overwrite", "--no-progress",
        f"train.steps={a.steps}", f"train.seed={seed}", *RECIPE, *a.extra,
    )  # fmt: skip
    common = ["--env", "pusht", "--episodes", "50", "--seed", str(seed), "--no-progress"]
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
    p.add_argument("--episodes", type=int, default=1000, help="episodes collected per seed")
    p.add_argument("--steps", type=int, default=6000, help="training steps")
    p.add_argument("--table-only", action="store_true", help="only read existing summaries")
    p.add_argument("extra", nargs="*", help="more config overrides, e.g. train.lr=5e-4")
    a = p.parse_args()
    rows = []
    for s in a.seeds:
        out = Path(a.out) / f"seed_{s}"
        rows.append(
            json.loads((out / "summary.json").read_text()) if a.table_only else run_seed(out, s, a)
        )
    print("| seed | success (50 held-out) | random | s/plan | train min | eval s |")
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
