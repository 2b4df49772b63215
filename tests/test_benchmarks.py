"""Every benchmark script still starts with the current library (``python SCRIPT --help``), so
the scripts in benchmarks/ cannot silently rot. They never run for real in the test suite."""

from __future__ import annotations

import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"
# scripts; modules named _*.py are helpers they import (benchmarks/_shared.py)
SCRIPTS = sorted(p for p in BENCHMARKS.glob("**/*.py") if not p.name.startswith("_"))


def _help(script: Path) -> tuple[Path, subprocess.CompletedProcess]:
    cmd = [sys.executable, str(script), "--help"]
    return script, subprocess.run(cmd, capture_output=True, text=True, timeout=120)


def test_every_benchmark_script_starts():
    assert SCRIPTS, f"no scripts found under {BENCHMARKS}"
    # each --help imports torch and lewm (~1 s); a few at a time keeps the whole under ~10 s
    with ThreadPoolExecutor(max_workers=min(4, os.cpu_count() or 1)) as pool:
        results = list(pool.map(_help, SCRIPTS))
    failed = [
        f"{script.relative_to(BENCHMARKS.parent)} (exit {r.returncode}):\n{r.stderr[-2000:]}"
        for script, r in results
        if r.returncode != 0 or "usage:" not in r.stdout
    ]
    assert not failed, "benchmark scripts that do not start:\n\n" + "\n\n".join(failed)


def test_every_benchmark_shell_script_parses():
    """``bash -n`` on the shell scripts (benchmarks/gpu/*.sh run on a GPU machine, rarely)."""
    shells = sorted(BENCHMARKS.glob("**/*.sh"))
    assert shells, f"no shell scripts found under {BENCHMARKS}"
    for script in shells:
        r = subprocess.run(["bash", "-n", str(script)], capture_output=True, text=True)
        assert r.returncode == 0, f"{script.name}: {r.stderr}"
