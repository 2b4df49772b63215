"""The amortised planner against CEM: success and seconds per plan, one `lewm eval` per row.

    python benchmarks/quality/policy_table.py RUN --data HELDOUT.h5 --out runs/policy_table
    python benchmarks/quality/policy_table.py RUN --data HELDOUT.h5 --out runs/policy_table \\
        --row "cem 300x30=--samples 300 --elites 30 --iterations 30" \\
        --row "policy=--solver policy" --repeats 2
    python benchmarks/quality/policy_table.py RUN --out runs/policy_table --table-only

RUN needs a trained policy (`lewm policy RUN`). Every row is `lewm eval RUN --env ENV --data
DATA --split all` plus the row's own arguments (the paper's protocol otherwise: 50 tasks, goal
25 steps ahead, budget 50, horizon 5, receding 5), written to OUT/ROW_r{k}/eval.json. With
--repeats N each row runs N times in turn (rows interleaved, so a busy machine slows them all
alike); the table gives the mean success and the median seconds per plan, and each row's time
as a fraction of the first row's (the reference, CEM 300 x 30 by default).
"""

from __future__ import annotations

import argparse
import json
import re
import shlex
import statistics
import subprocess
import sys
from pathlib import Path

DEFAULT_ROWS = [
    "cem 300x30=--samples 300 --elites 30 --iterations 30",
    "policy=--solver policy",
    "policy + cem 30x3=--proposal policy --samples 30 --elites 3 --iterations 3 "
    "eval.solver.init_std=0.5",
    "policy + cem 64x5=--proposal policy --samples 64 --elites 6 --iterations 5 "
    "eval.solver.init_std=0.5",
    "cem 30x3=--samples 30 --elites 3 --iterations 3",
]


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "_", name).strip("_")


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("run", help="run folder or checkpoint with a trained policy/")
    p.add_argument("--data", default=None, help="episode file (default: the model's)")
    p.add_argument("--env", default=None, help="environment (default: the model's)")
    p.add_argument("--out", default="runs/policy_table")
    p.add_argument("--row", action="append", help="NAME=lewm eval arguments (repeatable)")
    p.add_argument("--repeats", type=int, default=1)
    p.add_argument("--table-only", action="store_true", help="only read existing eval.json")
    a = p.parse_args()
    rows = [r.split("=", 1) for r in (a.row or DEFAULT_ROWS)]
    out = Path(a.out)
    if not a.table_only:
        base = [sys.executable, "-m", "lewm.cli.main", "eval", a.run, "--split", "all"]
        base += ["--no-progress", "--gifs", "0", "--overwrite"]
        base += ["--data", a.data] if a.data else []
        base += ["--env", a.env] if a.env else []
        for k in range(a.repeats):
            for name, extra in rows:
                folder = out / f"{_slug(name)}_r{k}"
                cmd = [*base, *shlex.split(extra), "--out", str(folder)]
                print("+", shlex.join(cmd), file=sys.stderr, flush=True)
                subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    results = []
    for name, extra in rows:
        runs = [json.loads(f.read_text()) for f in sorted(out.glob(f"{_slug(name)}_r*/eval.json"))]
        if not runs:
            continue
        results.append(
            (
                name,
                extra,
                statistics.mean(r["success_rate"] for r in runs),
                statistics.median(r["plan_seconds_mean"] or 0.0 for r in runs),
                runs[0]["plans"],
                len(runs),
            )
        )
    if not results:
        sys.exit(f"no eval.json under {out}")
    ref = results[0][3]
    print("| planner | success | s / plan (median) | time vs first row | plans | runs |")
    print("|---|---|---|---|---|---|")
    for name, _, success, secs, plans, n in results:
        ratio = f"1/{ref / secs:.0f}" if secs > 0 else "—"  # the random policy plans nothing
        print(f"| {name} | {100 * success:.0f} % | {secs:.4f} | {ratio} | {plans} | {n} |")


if __name__ == "__main__":
    main()
