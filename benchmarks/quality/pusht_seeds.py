r"""Push-T end to end for several seeds: collect -> train (preset pusht-cpu) -> plan on 50
held-out tasks (paper protocol) -> random baseline; prints a markdown table.

    python benchmarks/quality/pusht_seeds.py --seeds 0 1 2 --out runs/pusht_seeds
    python benchmarks/quality/pusht_seeds.py --seeds 0 1 2 --out runs/pusht_seeds --table-only
    python benchmarks/quality/pusht_seeds.py --seeds 0 --steps 300 train.lr=5e-4
    python benchmarks/quality/pusht_seeds.py --seeds 0 --out /tmp/pt --episodes 8 \
        --eval-tasks 10 --steps 4 train.batch_size=8 eval.episodes=2 \
        eval.solver.num_samples=8 eval.solver.num_elites=2 eval.solver.iterations=2  # smoke run

Every step is a plain `lewm` command (printed before it runs), so any row can be reproduced by
hand. Seed s collects its own training data (`--seed s`, noisy pusher with random segments),
trains `--preset pusht-cpu` (the best CPU recipe so far: 64-px CNN, history 3, a 1.15 M-parameter
predictor, 13,000 steps; `lewm config --preset pusht-cpu` prints it) with `train.seed=s`, and
plans on 50 tasks of a separate 100-episode file collected with the default pusher
(`--seed 10000+s`, never trained on), `--seed s`. Extra `eval.*` overrides go to `lewm eval`,
all other overrides to `lewm train`. Results land in OUT/seed_S/summary.json.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/
from _shared import run_lewm  # noqa: E402

PRESET = "pusht-cpu"


def run_seed(out: Path, seed: int, a: argparse.Namespace) -> dict:
    out.mkdir(parents=True, exist_ok=True)
    data = out / "pusht.h5"
    train_extra = [o for o in a.extra if not o.startswith("eval.")]
    eval_extra = [o for o in a.extra if o.startswith("eval.")]
    steps = [f"train.steps={a.steps}"] if a.steps else []
    summary = {"seed": seed, "episodes": a.episodes, "preset": PRESET, "steps": a.steps}
    summary.update(overrides=train_extra, eval_overrides=eval_extra)
    summary.update(noise=a.noise, explore=a.explore)
    if not data.exists():
        summary["collect"] = run_lewm(
            "collect", "pusht", "--episodes", str(a.episodes), "--out", str(data),
            "--seed", str(seed), "--noise", str(a.noise), "--explore", str(a.explore),
            "--no-progress",
        )  # fmt: skip
    run = out / "run"
    summary["train"] = run_lewm(
        "train", "--data", str(data), "--out", str(run), "--overwrite", "--no-progress",
        "--preset", PRESET, *steps, f"train.seed={seed}", *train_extra,
    )  # fmt: skip
    summary["steps"] = summary["train"]["steps"]
    # Tasks come from a separate file collected with the default pusher (noise 0.1, no random
    # segments), so that every recipe is scored on the same kind of purposeful pushes.
    tasks = out / "eval_tasks.h5"
    if not tasks.exists():
        summary["collect_eval"] = run_lewm(
            "collect", "pusht", "--episodes", str(a.eval_tasks), "--out", str(tasks),
            "--seed", str(10_000 + seed), "--no-progress",
        )  # fmt: skip
    common = ["--env", "pusht", "--data", str(tasks), "--split", "all", "--preset", PRESET]
    common += ["--seed", str(seed), "--no-progress", *eval_extra]  # the preset: 50 tasks
    summary["plan"] = run_lewm("eval", str(run), *common, "--out", str(out / "eval_plan"))
    summary["random"] = run_lewm(
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
    p.add_argument(
        "--steps",
        type=int,
        default=None,
        help="training steps (default: the preset's, 13,000: ~51 min on 2 cores)",
    )
    p.add_argument("--eval-tasks", type=int, default=100, help="episodes of the separate task file")
    p.add_argument("--table-only", action="store_true", help="only read existing summaries")
    p.add_argument(
        "extra",
        nargs="*",
        help="config overrides, e.g. train.lr=5e-4 (eval.* ones go to `lewm eval`)",
    )
    a = p.parse_args()
    rows = []
    for s in a.seeds:
        out = Path(a.out) / f"seed_{s}"
        rows.append(
            json.loads((out / "summary.json").read_text()) if a.table_only else run_seed(out, s, a)
        )
    print("| seed | success (unseen tasks) | random | s/plan | train min | eval s |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        pl = r["plan"]
        print(
            f"| {r['seed']} | {100 * pl['success_rate']:.0f} % of {pl['episodes']} | "
            f"{100 * r['random']['success_rate']:.0f} % | {pl['plan_seconds_mean']:.3f} | "
            f"{r['train']['seconds'] / 60:.1f} | {pl['wall_seconds']} |"
        )
    mean = sum(r["plan"]["success_rate"] for r in rows) / len(rows)
    print(f"\nmean success over {len(rows)} seeds: {100 * mean:.1f} %")


if __name__ == "__main__":
    main()
