"""benchmarks/quality/planner_screen.py on a tiny Two-Room model: every variant plans the same
tasks, the table compares each with the control task by task, and a second call re-plans nothing."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "quality" / "planner_screen.py"
SMALL = "--samples 12 --elites 3 --iterations 2"


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    sys.path.insert(0, str(Path(__file__).parent / "planning"))
    from toys import tiny_tworoom_run

    return tiny_tworoom_run(tmp_path_factory.mktemp("screen"), episodes=6, history=1)


def _screen(run_dir: Path, out: Path, *variants: str) -> subprocess.CompletedProcess:
    cmd = [sys.executable, str(SCRIPT), "--env", "tworoom", "--out", str(out), "--episodes", "3"]
    cmd += ["--model", str(run_dir / "run"), str(run_dir / "tr.h5")]
    for v in variants:
        cmd += ["--variant", v]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=300)


def test_screen_compares_variants_on_the_same_tasks_and_resumes(tiny_run, tmp_path):
    out = tmp_path / "s"
    a, b = f"cem={SMALL}", f"rand=--policy random {SMALL}"
    r = _screen(tiny_run, out, a, b)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    rows = json.loads((out / "screen.json").read_text())
    assert [x["variant"] for x in rows] == ["cem", "rand"]
    for x in rows:
        ev = json.loads((out / x["variant"] / "m0" / "eval.json").read_text())
        assert x["per_model"] == [ev["success_rate"]] and len(ev["successes"]) == 3
    assert rows[0]["vs_control"] == 0.0
    want = rows[1]["mean"] - rows[0]["mean"]  # one model: the paired mean is the difference
    assert rows[1]["vs_control"] == pytest.approx(want)
    md = (out / "screen.md").read_text()
    assert "| cem |" in md and "| rand |" in md and "control" in md
    # extending the screen runs only the new variant
    again = _screen(tiny_run, out, a, b, f"icem=--solver icem {SMALL} eval.solver.keep_elites=1")
    assert again.returncode == 0, again.stderr[-2000:]
    ran = [ln.split()[0] for ln in again.stdout.splitlines() if ln.endswith(" s")]
    assert ran == ["icem"]


def test_screen_refuses_bad_variants_and_reports_a_failed_eval(tiny_run, tmp_path):
    r = _screen(tiny_run, tmp_path / "s", "no-equals-sign")
    assert r.returncode == 2 and "NAME=ARGS" in r.stderr
    r = _screen(tiny_run, tmp_path / "s", "a=--episodes 2", "a=--seed 3")
    assert r.returncode == 2 and "must differ" in r.stderr
    r = _screen(tiny_run, tmp_path / "s", "bad=--solver nosuchsolver")
    assert (
        r.returncode == 1 and "failed" in r.stdout and (tmp_path / "s" / "bad" / "m0.log").exists()
    )
