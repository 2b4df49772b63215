"""benchmarks/gpu/check.py, the one-go GPU check, in its CPU mode (toy sizes): every section runs
and reports finite numbers, a failing section or solver is recorded without stopping the others,
and (slow) benchmarks/gpu/check.sh SMOKE=1 runs end to end, torchrun with 2 gloo processes
included. The CUDA parts themselves need a GPU machine (benchmarks/gpu/README.md)."""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from lewm.planning import SOLVERS
from lewm.planning.solvers import CEM, CEMConfig

ROOT = Path(__file__).resolve().parents[1]
CHECK = ROOT / "benchmarks" / "gpu" / "check.py"


@pytest.fixture(scope="module")
def check():
    """benchmarks/gpu/check.py as a module (it puts benchmarks/ and benchmarks/speed/ on
    sys.path to import its helpers; the path is restored afterwards)."""
    saved = list(sys.path)
    spec = importlib.util.spec_from_file_location("gpu_check", CHECK)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    yield module
    sys.path[:] = saved


def _finite_positive(x) -> bool:
    return isinstance(x, int | float) and math.isfinite(x) and x > 0


def _run(check, tmp_path: Path, *args: str) -> tuple[int, dict, str]:
    rc = check.main(["--device", "cpu", "--out", str(tmp_path), *args])
    report = json.loads((tmp_path / "report.json").read_text())
    return rc, report, (tmp_path / "report.md").read_text()


def test_cpu_mode_reports_every_section_with_finite_numbers(check, tmp_path):
    rc, report, md = _run(check, tmp_path, "--skip", "ddp")
    sections = report["sections"]
    assert list(sections) == ["env", "train", "plan", "solvers", "stream"]
    failed = {k: v.get("error") for k, v in sections.items() if v["status"] != "pass"}
    assert rc == 0 and report["status"] == "pass" and not failed, failed
    assert report["mode"] == "cpu"
    for name, sec in sections.items():
        assert _finite_positive(sec["seconds"] + 1e-9) and sec["seconds"] <= sec["cap_s"], name
    assert sections["env"]["info"]["torch"] == torch.__version__

    train = {r["variant"]: r for r in sections["train"]["rows"]}
    assert set(train) == {"bf16", "fp32"}  # the TF32 variant is CUDA only
    for row in train.values():
        assert row["status"] == "pass" and row["timed_steps"] >= 1
        for key in ("s_per_step", "clips_per_s", "loss"):
            assert _finite_positive(row[key]), (row["variant"], key, row[key])
    assert _finite_positive(sections["train"]["bf16_speedup_over_fp32"])

    plan = sections["plan"]
    assert _finite_positive(plan["s_per_plan"]) and _finite_positive(plan["paper_over_ours"])
    assert (plan["horizon"], plan["receding"], plan["context"]) == (5, 5, 1)  # the eval's
    assert all(_finite_positive(r["s per episode"]) for r in plan["rows"])

    solvers = {r["solver"]: r for r in sections["solvers"]["rows"]}
    assert set(solvers) == set(SOLVERS)  # read from the registry
    for kind, row in solvers.items():
        assert row["status"] == "pass", (kind, row)
        assert row["shape"] == [2, 5, 10] and math.isfinite(row["cost"])

    stream = sections["stream"]  # lewm train on a file streamed by a loader process
    assert stream["steps_timed"] >= 1 and _finite_positive(stream["clips_per_s"])
    assert 0.0 <= stream["data_wait_median"] <= stream["data_wait_max"] <= 1.0
    assert "data.mode=stream" in stream["loader"][0]
    assert not (tmp_path / "stream" / "frames.h5").exists()  # gigabytes on a GPU machine

    # the target row is there, and "n/a" on the CPU: toy sizes say nothing about the goal
    (latency,) = [t for t in report["targets"] if t["what"].startswith("planning latency")]
    assert latency["met"] is None
    for name in sections:
        assert f"## {name}: pass" in md
    assert "| section | status | seconds | cap s |" in md and "**FAIL**" not in md
    assert (tmp_path / "timeline.txt").read_text().count(": pass in ") == 5


class NaNSolver(CEM):
    """A registered solver that returns NaN plans: the smoke must catch it."""

    def solve(self, *args, **kwargs):
        res = super().solve(*args, **kwargs)
        return dataclasses.replace(res, actions=torch.full_like(res.actions, float("nan")))


def test_a_failing_section_or_solver_is_recorded_and_the_others_still_run(
    check, tmp_path, monkeypatch
):
    def broken(ctx, rec):
        rec["rows"] = [{"partial": 1}]
        raise RuntimeError("boom")

    monkeypatch.setitem(check.RUNNERS, "plan", broken)
    monkeypatch.setitem(SOLVERS, "nan", (CEMConfig, NaNSolver))
    rc, report, md = _run(check, tmp_path, "--only", "env,plan,solvers")
    sections = report["sections"]
    assert rc == 1 and report["status"] == "fail"
    assert sections["env"]["status"] == "pass"
    assert sections["plan"]["status"] == "fail" and "boom" in sections["plan"]["error"]
    assert sections["plan"]["rows"] == [{"partial": 1}]  # what it had measured is kept
    assert sections["solvers"]["status"] == "fail" and "nan" in sections["solvers"]["error"]
    rows = {r["solver"]: r["status"] for r in sections["solvers"]["rows"]}
    assert rows.pop("nan") == "fail: non-finite actions"
    assert set(rows.values()) == {"pass"}  # the registered solvers still ran and passed
    assert "| plan | **FAIL** |" in md and "boom" in md


@pytest.mark.slow
def test_check_sh_smoke_runs_end_to_end_with_torchrun(tmp_path):
    """SMOKE=1 benchmarks/gpu/check.sh: every section, torchrun with 2 gloo processes (~15 s)."""
    env = {**os.environ, "SMOKE": "1", "PY": sys.executable, "OUT": str(tmp_path / "out")}
    env["OMP_NUM_THREADS"] = "1"
    script = ROOT / "benchmarks" / "gpu" / "check.sh"
    r = subprocess.run(["bash", str(script)], capture_output=True, text=True, env=env, timeout=300)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert list(report["sections"]) == ["env", "train", "plan", "solvers", "ddp", "stream"]
    assert [s["status"] for s in report["sections"].values()] == ["pass"] * 6
    ddp = report["sections"]["ddp"]
    assert (ddp["processes"], ddp["backend"]) == (2, "gloo")
    assert _finite_positive(ddp["clips_per_s"]) and math.isfinite(ddp["loss"])
    assert [r["step"] for r in ddp["rows"]] == [2, 4]
    assert "## ddp: pass" in r.stdout  # the wrapper prints the report
