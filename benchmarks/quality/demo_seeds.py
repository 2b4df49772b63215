"""Run `lewm demo` for several seeds (sequentially) and print a markdown table of the results.

    python benchmarks/quality/demo_seeds.py --seeds 0 1 2 --out runs/demo_seeds
    python benchmarks/quality/demo_seeds.py --seeds 0 1 2 --out runs/demo_seeds --table-only
    python benchmarks/quality/demo_seeds.py --seeds 0 --quick --out /tmp/demo_seeds  # ~2 min

Each seed changes the collected data (train and held-out files), the initialisation, the batch
order and the evaluation tasks. `lewm demo` trains preset tworoom-cpu (--quick: tworoom-quick)
and plans on 50 held-out tasks (--quick: 10). Results land in OUT/seed_K/summary.json.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--out", default="runs/demo_seeds")
    p.add_argument("--quick", action="store_true", help="`lewm demo --quick` (a smoke run)")
    p.add_argument("--table-only", action="store_true", help="only read existing summaries")
    a = p.parse_args()
    rows = []
    for s in a.seeds:
        out = Path(a.out) / f"seed_{s}"
        if not a.table_only:
            cmd = [
                sys.executable,
                "-m",
                "lewm.cli.main",
                "demo",
                "--out",
                str(out),
                "--seed",
                str(s),
                "--overwrite",
            ] + (["--quick"] if a.quick else [])
            subprocess.run(cmd, check=True)
        rows.append(json.loads((out / "summary.json").read_text()))
    print(
        "| seed | success (held-out tasks) | random | s/plan | plans | eval s | train s | total s |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        t = r["timings_s"]
        print(
            f"| {r['seed']} | {100 * r['success_rate']:.0f} % of {r['episodes']} | "
            f"{100 * r['random_success_rate']:.0f} % | {r['plan_seconds_mean']:.3f} | "
            f"{r['plans']} | {t['eval']} | {t['train']} | {r['total_seconds']} |"
        )
    mean = sum(r["success_rate"] for r in rows) / len(rows)
    print(f"\nmean success over {len(rows)} seeds: {100 * mean:.1f} %")


if __name__ == "__main__":
    main()
