"""benchmarks/quality/baseline_table.py end to end on tiny data (slow: ~1 min): every stage runs,
a row identical to the preset is not trained twice, and the table holds what the runs measured."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "quality" / "baseline_table.py"


@pytest.mark.slow
def test_the_table_runs_from_nothing_and_resumes(tmp_path):
    out = tmp_path / "t"
    cmd = [sys.executable, str(SCRIPT), "--env", "tworoom", "--out", str(out), "--smoke",
           "--seeds", "0", "1", "--jobs", "2",
           "--rows", "pldm", "dinowm-lewm", "lewm/history-1", "lewm/lambda-0"]  # fmt: skip
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    res = json.loads((out / "table.json").read_text())
    rows = res["rows"]
    assert list(rows) == ["lewm", "pldm", "dinowm-lewm", "lewm/history-1", "lewm/lambda-0"]
    assert rows["lewm/history-1"]["same_as"] == "lewm"  # Two-Room's preset already has history 1
    assert not (out / "seed_0" / "lewm_history-1").exists()
    for name, row in rows.items():
        assert [s["seed"] for s in row["seeds"]] == [0, 1], name
        for s in row["seeds"]:
            assert 0.0 <= s["success"] <= 1.0 and s["tasks"] == 2 and s["steps"] == 6
            assert s["train_s"] > 0 and "agent" in s["probe_r"]
    dw = rows["dinowm-lewm"]["seeds"][0]["params"]
    assert 0 < dw["trainable"] < dw["total"]  # the frozen encoder is counted, not trained
    assert rows["pldm"]["seeds"][0]["params"]["total"] > rows["lewm"]["seeds"][0]["params"]["total"]
    assert len(res["random"]) == 2
    md = (out / "table.md").read_text()
    assert "| dinowm-lewm |" in md and "| random actions |" in md and "(= `lewm`)" in md
    # a second call finds every stage done and only rewrites the table
    again = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert again.returncode == 0 and "train" not in again.stdout.split("| row |")[0].replace(
        "trained once", ""
    )
