"""Two planners on the same tasks, compared task by task: success of each, the paired
difference with its 95 % interval, and the discordant tasks.

    python benchmarks/quality/paired_success.py A1 B1 [A2 B2 ...]

Each Ai/Bi is an evaluation folder (its eval.json) or the file itself; Ai and Bi must have
planned the same tasks (the same --data, --seed and --episodes), which is checked. Pairs from
several task sets (seeds) are pooled. The interval is the normal one for the mean of the per-task
differences (B - A in {-1, 0, 1}); with few discordant tasks prefer an exact test.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path


def _load(path: str) -> dict:
    p = Path(path)
    p = p / "eval.json" if p.is_dir() else p
    try:
        return json.loads(p.read_text())
    except (OSError, ValueError) as e:
        sys.exit(f"paired_success: cannot read {p}: {e}")


def paired_difference(a: list[bool], b: list[bool]) -> tuple[float, float]:
    """Mean of the per-task differences b - a and the half-width of its normal 95 % interval
    (0 for a single task)."""
    d = [int(y) - int(x) for x, y in zip(a, b, strict=True)]
    n = len(d)
    mean = sum(d) / n
    sd = math.sqrt(sum((v - mean) ** 2 for v in d) / (n - 1)) if n > 1 else 0.0
    return mean, 1.96 * sd / math.sqrt(n)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("evals", nargs="+", help="A1 B1 [A2 B2 ...]: evaluation folders or files")
    args = ap.parse_args(argv)
    if len(args.evals) % 2:
        ap.error("give evaluations in pairs: A1 B1 [A2 B2 ...]")
    a_all: list[bool] = []
    b_all: list[bool] = []
    for a_path, b_path in zip(args.evals[::2], args.evals[1::2], strict=True):
        a, b = _load(a_path), _load(b_path)
        if a.get("tasks") != b.get("tasks"):
            sys.exit(f"paired_success: {a_path} and {b_path} planned different tasks")
        a_all += [bool(x) for x in a["successes"]]
        b_all += [bool(x) for x in b["successes"]]
        print(
            f"{a_path}: {sum(a['successes'])}/{len(a['successes'])}   "
            f"{b_path}: {sum(b['successes'])}/{len(b['successes'])}"
        )
    n = len(a_all)
    if n < 2:
        sys.exit("paired_success: need at least 2 tasks")
    mean, half = paired_difference(a_all, b_all)
    both = sum(x and y for x, y in zip(a_all, b_all, strict=True))
    print(
        json.dumps(
            {
                "tasks": n,
                "success_a": round(sum(a_all) / n, 4),
                "success_b": round(sum(b_all) / n, 4),
                "difference_b_minus_a": round(mean, 4),
                "ci95_half_width": round(half, 4),
                "both": both,
                "only_a": sum(a_all) - both,
                "only_b": sum(b_all) - both,
            },
            indent=2,
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
