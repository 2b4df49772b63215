"""benchmarks/quality/baseline_table.py end to end on tiny data (slow: ~1 min): every stage runs,
a row identical to the preset is not trained twice, and the table holds what the runs measured."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
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


@pytest.mark.slow
def test_a_training_stopped_midway_is_resumed_from_its_checkpoint_and_timed_over_both_attempts(
    tmp_path,
):
    """SIGTERM to the table and its `lewm train` (what stopping a long table does): the next call
    continues the run with `lewm train --resume` from the checkpoint the stop wrote, not from step
    0, and the row's training time is the two attempts' sum."""
    out = tmp_path / "t"
    steps = 120
    cmd = [sys.executable, str(SCRIPT), "--env", "tworoom", "--out", str(out), "--smoke",
           "--seeds", "0", "--jobs", "1", "--rows", "lewm", "--steps", str(steps),
           "train.log_every=5"]  # fmt: skip
    rd = out / "seed_0" / "lewm"
    first = subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True
    )
    metrics = rd / "run" / "metrics.jsonl"
    deadline = time.monotonic() + 300
    while not (metrics.exists() and metrics.read_text().count("\n") >= 3):
        assert first.poll() is None, first.stdout.read().decode()[-3000:]
        assert time.monotonic() < deadline, "training never logged"
        time.sleep(0.2)
    os.killpg(first.pid, signal.SIGTERM)
    first.wait(timeout=120)
    while True:  # `lewm train` writes its checkpoint and leaves after the script has gone
        try:
            os.killpg(first.pid, 0)
        except ProcessLookupError:
            break
        assert time.monotonic() < deadline, "lewm train did not stop"
        time.sleep(0.2)
    assert not (rd / "train.json").exists()
    ledger = json.loads((rd / "train_attempts.json").read_text())
    assert len(ledger) == 1 and "seconds" not in ledger[0]
    stopped_at = max(int(p.name.split("_")[1]) for p in (rd / "run" / "checkpoints").glob("step_*"))
    assert 0 < stopped_at < steps

    again = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
    assert "resume lewm (attempt 2)" in again.stdout
    ledger = json.loads((rd / "train_attempts.json").read_text())
    assert [a["resumed"] for a in ledger] == [False, True]
    assert ledger[0]["interrupted"] and all(a["seconds"] > 0 for a in ledger)
    tr = json.loads((rd / "train.json").read_text())
    assert tr["attempts"] == 2
    assert tr["seconds"] == pytest.approx(sum(a["seconds"] for a in ledger))
    run = json.loads((rd / "run" / "run.json").read_text())
    assert [r["step"] for r in run["resumes"]] == [stopped_at]
    lines = [json.loads(x) for x in metrics.read_text().splitlines()]
    logged = [m["step"] for m in lines if "train/loss" in m]
    assert logged[-1] == steps and logged == sorted(set(logged))  # no step logged twice
    res = json.loads((out / "table.json").read_text())
    assert res["rows"]["lewm"]["seeds"][0]["train_s"] == pytest.approx(tr["seconds"])
    n = os.cpu_count()  # --jobs 1: each attempt had every core
    assert f"lewm seed 0 (2 attempts, threads {n}/{n})" in (out / "table.md").read_text()
