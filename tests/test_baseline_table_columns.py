"""benchmarks/quality/baseline_table.py's table from results on disk (fast: `--table-only` runs no
stage): an env with several planners gets one success and one time column per planner, each
filled from that planner's own evaluation, and a seed missing one planner's evaluation is left out
of the row rather than mixed in."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "quality" / "baseline_table.py"


def _write(path: Path, obj: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj))


def _fake_row(
    rd: Path, rates: dict[str, float], plan_s: dict[str, float], concurrent: int | None = None
) -> None:
    _write(
        rd / "train.json",
        {"seconds": 700.0, "threads": 2, "parameters": {"trainable": 10, "total": 12},
         "last": {"val/pred_loss": 0.02, "step": 3000},
         **({"concurrent_runs": concurrent} if concurrent else {})},
    )  # fmt: skip
    _write(rd / "probe" / "probe.json", {"trained": {"joints": {"linear": {"r": 0.9}}}})
    for d, rate in rates.items():
        n = int(rate * 50)
        _write(
            rd / d / "eval.json",
            {"success_rate": rate, "successes": [True] * n + [False] * (50 - n),
             "plan_seconds_mean": plan_s[d]},
        )  # fmt: skip


def test_one_column_per_planner_each_from_its_own_evaluation(tmp_path):
    out = tmp_path / "t"
    dirs = ["eval", "eval_cem_3_frames_path", "eval_reacher_cpu_planner"]
    plan_s = dict(zip(dirs, [0.31, 0.33, 0.37], strict=True))
    _fake_row(out / "seed_3" / "lewm", dict(zip(dirs, [0.5, 0.7, 0.8], strict=True)), plan_s)
    _fake_row(out / "seed_4" / "lewm", dict(zip(dirs, [0.6, 0.7, 0.9], strict=True)), plan_s)
    # seed 5: the preset's planner has not run yet, so the seed must not enter the row
    _fake_row(out / "seed_5" / "lewm", dict(zip(dirs[:2], [0.0, 0.0], strict=True)), plan_s)
    for s in (3, 4):
        _write(out / f"seed_{s}" / "eval_random" / "eval.json", {"success_rate": 0.1})
        _write(
            out / f"seed_{s}" / "collect.json", {"seconds": {"train": 244.0 + 2 * s, "heldout": 30}}
        )
    r = subprocess.run(
        [sys.executable, str(SCRIPT), "--env", "reacher", "--out", str(out), "--table-only",
         "--seeds", "3", "4", "5", "--rows", "lewm"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    res = json.loads((out / "table.json").read_text())
    seeds = res["rows"]["lewm"]["seeds"]
    assert [s["seed"] for s in seeds] == [3, 4]
    assert seeds[1]["by_planner"]["reacher-cpu planner"] == {"success": 0.9, "plan_s": 0.37}
    assert seeds[0]["success"] == 0.5  # the main column is the first planner's (the paper's)
    md = (out / "table.md").read_text().splitlines()
    head = [c.strip() for c in md[0].strip("|").split("|")]
    row = [c.strip() for c in next(x for x in md if x.startswith("| lewm |")).strip("|").split("|")]
    cell = dict(zip(head, row, strict=True))
    assert cell["success % (paper planner)"] == "55.0 ± 5.0"
    assert cell["success % (CEM 3 frames path)"] == "70.0 ± 0.0"
    assert cell["success % (reacher-cpu planner)"] == "85.0 ± 5.0"
    assert cell["s / plan (reacher-cpu planner)"] == "0.37 ± 0.00"
    assert cell["seeds"] == "2" and cell["paper %"] == "86"
    assert "| random actions | — | 2 | 10.0 ± 0.0 | 10 |" in "\n".join(md)
    assert "held-out file, once per seed, before any row): 281 ± 1 s." in "\n".join(md)
    assert "paper planner: the preset's eval settings with `--solver cem --context 1" in "\n".join(
        md
    )
    # trained one at a time (the records say so), though the table is drawn with --jobs 2
    assert "thread(s) per run. " in "\n".join(md) and "sharing" not in "\n".join(md)


def test_the_note_on_shared_cores_comes_from_how_each_seed_was_trained(tmp_path):
    out = tmp_path / "t"
    for s, concurrent in ((3, 2), (4, None)):  # seed 4: a record from before the field existed
        _fake_row(out / f"seed_{s}" / "lewm", {"eval": 0.5}, {"eval": 0.3}, concurrent)
        _write(out / f"seed_{s}" / "eval_random" / "eval.json", {"success_rate": 0.1})
    r = subprocess.run(
        [sys.executable, str(SCRIPT), "--env", "tworoom", "--out", str(out), "--table-only",
         "--seeds", "3", "4", "--rows", "lewm", "--jobs", "1"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    assert "(two runs sharing the cores for some of them)" in (out / "table.md").read_text()
