"""benchmarks/speed/cost_curves.py: its quick sweeps write a JSON of finite positive numbers,
fits and plots; the child-process memory measurement sees what a child allocates (its own
children included); the stream-mode hook fails clearly on a lewm without a streaming switch."""

from __future__ import annotations

import importlib.util
import json
import math
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "speed" / "cost_curves.py"


@pytest.fixture(scope="module")
def cc():
    spec = importlib.util.spec_from_file_location("cost_curves", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _positive(value) -> bool:
    return isinstance(value, int | float) and math.isfinite(value) and value > 0


def _check_sweeps(out: Path, measured: dict[str, str], picture) -> dict:
    """cost_curves.json holds >= 2 points of each sweep in ``measured`` (sweep -> the measured
    key), all finite and positive, finite fits, a plot and a table per sweep."""
    data = json.loads((out / "cost_curves.json").read_text())
    assert data["meta"]["quick"] is True and data["meta"]["threads"] >= 1
    md = (out / "cost_curves.md").read_text()
    for sweep, key in measured.items():
        pts = [p for p in data["points"] if p["sweep"] == sweep]
        assert len(pts) >= 2, f"{sweep}: {len(pts)} points"
        assert all(_positive(p[key]) for p in pts), [p[key] for p in pts]
        fits = [f for f in data["fits"] if f["sweep"] == sweep]
        assert fits and all(math.isfinite(f["a"]) and math.isfinite(f["b"]) for f in fits)
        picture(out / f"cost_{sweep}.png")
        assert f"### {sweep}" in md
    return data


def test_quick_train_and_plan_sweeps(cc, tmp_path, picture):
    out = tmp_path / "out"
    res = cc.main(["--quick", "--only", "train,plan", "--out", str(out)])
    data = _check_sweeps(out, {"train": "s_per_step", "plan": "s_per_plan"}, picture)
    assert sorted(res["plots"]) == sorted(str(out / f"cost_{s}.png") for s in ("train", "plan"))
    # the sweeps vary what they say they vary
    image = [p for p in data["points"] if p["sweep"] == "train" and p["x"] == "image"]
    assert sorted(p["image"] for p in image) == sorted(cc.QUICK["train"]["image"])
    batch = [p for p in data["points"] if p["sweep"] == "train" and p["x"] == "batch"]
    assert {p["history"] for p in batch} == {1, 3}
    hist = [p for p in data["points"] if p["sweep"] == "plan" and p["x"] == "history"]
    assert sorted(p["history"] for p in hist) == sorted(cc.QUICK["plan"]["history"])
    horizon = [p for p in data["points"] if p["sweep"] == "plan" and p["x"] == "horizon"]
    assert sorted(p["horizon"] for p in horizon) == sorted(cc.QUICK["plan"]["horizon"])


def test_one_memory_point(cc, tmp_path):
    """One `lewm train` on a generated file: a peak above the pixels it loads; the file is gone
    afterwards."""
    spec = {**cc.QUICK["memory"], "gb": [0.01]}
    ctx = {"workdir": tmp_path, "modes": ["memory", "stream"], "train_threads": []}
    points, fits = cc.sweep_memory(spec, ctx)
    mem, stream = sorted(points, key=lambda p: p["mode"])
    assert (mem["mode"], stream["mode"]) == ("memory", "stream")
    for p in points:
        assert p["pixel_gb"] >= 0.01 and "lewm train" in p["command"]
        assert p["command"].endswith(f"data.mode={p['mode']}")
        assert p["peak_tree_rss_mb"] >= p["peak_rss_mb"] > 0
    assert mem["peak_rss_mb"] > mem["pixel_gb"] * 1000  # the frames are in the trainer's RAM
    assert stream["peak_tree_rss_mb"] > stream["peak_rss_mb"]  # a loader process beside it
    assert fits == [] and not list((tmp_path / "memory").glob("*.h5"))


def test_measure_sees_a_child_and_its_children(cc):
    """A child holding 150 MB: its peak is 150 MB and some, not this (torch-sized) process's
    RSS, which Linux's ru_maxrss would report; a child whose own child holds 150 MB at the same
    time as it does: the tree's peak counts both."""
    hold = (
        "b = bytearray(150 * 2**20); b[::4096] = b'x' * len(b[::4096]); import time; time.sleep(1)"
    )
    one = cc.measure([sys.executable, "-c", hold])
    assert one["rc"] == 0 and 150 <= one["peak_rss_mb"] < 230, one
    two = cc.measure(
        [
            sys.executable,
            "-c",
            f"import subprocess, sys; p = subprocess.Popen([sys.executable, '-c', {hold!r}]); "
            f"{hold}; p.wait()",
        ]
    )
    assert two["rc"] == 0 and two["peak_tree_rss_mb"] >= 290, two
    assert 150 <= two["peak_rss_mb"] < 230, two


def test_stream_mode_hook(cc, tmp_path, monkeypatch):
    spec = cc.QUICK["memory"]
    ctx = {"train_threads": []}
    mem = cc.train_cmd("memory", tmp_path / "d.h5", tmp_path / "run", spec, ctx)
    stream = cc.train_cmd("stream", tmp_path / "d.h5", tmp_path / "run", spec, ctx)
    assert mem[1:4] == ["-m", "lewm.cli.main", "train"] and "--data" in mem
    assert mem[-1] == "data.mode=memory" and stream[-1] == "data.mode=stream"
    assert mem[:-1] == stream[:-1]
    with pytest.raises(ValueError, match="unknown data mode"):
        cc.train_cmd("mmap", tmp_path / "d.h5", tmp_path / "run", spec, ctx)


def test_linfit(cc):
    f = cc.linfit([1, 2, 4], [3.0, 5.0, 9.0])  # y = 1 + 2x
    assert f["a"] == pytest.approx(1) and f["b"] == pytest.approx(2) and f["r2"] == 1
    assert cc.linfit([2, 2], [1.0, 3.0]) is None and cc.linfit([1], [1.0]) is None


@pytest.mark.slow
def test_quick_eval_and_memory_sweeps(cc, tmp_path, picture):
    """collect + train + `lewm eval` at two episode counts, and two memory points (~30 s: six
    lewm processes)."""
    out = tmp_path / "out"
    cc.main(["--quick", "--only", "eval,memory", "--out", str(out)])
    data = _check_sweeps(out, {"eval": "wall_s", "memory": "peak_tree_rss_mb"}, picture)
    ev = [p for p in data["points"] if p["sweep"] == "eval"]
    assert [p["episodes"] for p in ev] == cc.QUICK["eval"]["episodes"]
    assert all(p["plans"] >= p["episodes"] for p in ev)
    assert len([f for f in data["fits"] if f["sweep"] == "eval"]) == 2
    mem = sorted((p for p in data["points"] if p["sweep"] == "memory"), key=lambda p: p["pixel_gb"])
    assert mem[0]["pixel_gb"] < mem[-1]["pixel_gb"] and {p["mode"] for p in mem} == {"memory"}
