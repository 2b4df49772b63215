"""Episode files as the paper authors' code writes them (tests/fixtures/swm_*.h5, written by
stable-worldmodel 0.1.1's HDF5Writer with benchmarks/comparison/swm_dataset.py) open by path,
compressed ones too, and lewm's clips line up with their loader's windows."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from lewm.data.clips import ClipSampler
from lewm.data.hdf5 import DataError, EpisodeDataset, missing_filters
from lewm.data.normalize import Normalizer

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
PLAIN, BLOSC = FIXTURES / "swm_writer.h5", FIXTURES / "swm_blosc.h5"
WINDOWS = FIXTURES / "swm_windows.npz"


def test_their_writer_files_open_by_path():
    ds = EpisodeDataset(PLAIN)
    assert ds.num_episodes == 4 and ds.ep_len.tolist() == [22, 25, 30, 21]
    assert ds.image_shape == (16, 16, 3) and ds.action_dim == 2
    assert {"proprio", "state", "episode_idx", "step_idx"} <= set(ds.columns)
    last = ds.ep_offset + ds.ep_len - 1
    assert np.isnan(ds.column("action")[last]).all()


def test_blosc_compressed_file_reads_the_same_values():
    pytest.importorskip("hdf5plugin")
    import h5py

    with h5py.File(BLOSC, "r") as f:  # the fixture really is Blosc-compressed
        assert f["pixels"].id.get_create_plist().get_filter(0)[0] == 32001
    a, b = EpisodeDataset(PLAIN), EpisodeDataset(BLOSC)
    assert a.columns == b.columns
    for name in a.columns:
        np.testing.assert_array_equal(a.column(name), b.column(name))
    lazy = EpisodeDataset(BLOSC, in_memory=False)
    np.testing.assert_array_equal(
        lazy.rows("pixels", np.array([3, 40])), a.column("pixels")[[3, 40]]
    )
    assert missing_filters(h5py.File(BLOSC, "r")["pixels"]) == []


def test_without_hdf5plugin_the_error_names_the_filter_and_the_extra():
    """A process where hdf5plugin cannot be imported (and HDF5 finds no plugin folder)."""
    code = textwrap.dedent(
        f"""
        import builtins, sys
        real = builtins.__import__
        def block(name, *a, **k):
            if name.split(".")[0] == "hdf5plugin":
                raise ImportError("No module named 'hdf5plugin'")
            return real(name, *a, **k)
        builtins.__import__ = block
        from lewm.data.hdf5 import DataError, EpisodeDataset
        try:
            EpisodeDataset({str(BLOSC)!r})
        except DataError as e:
            print("ERROR", e)
        """
    )
    env = {"HDF5_PLUGIN_PATH": "/nonexistent", "PATH": "/usr/bin:/bin"}
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert r.returncode == 0, r.stderr
    assert "ERROR" in r.stdout, r.stdout
    assert "'blosc' (id 32001)" in r.stdout
    assert "lewm[hdf5]" in r.stdout and "truncated" not in r.stdout


def test_lewm_clips_and_their_windows():
    """lewm: history+1 frames and history blocks, needing history*frameskip + 1 rows; theirs:
    num_steps frames and num_steps blocks, needing num_steps*frameskip rows. With
    num_steps = history + 1 the frames and the first history blocks are the same."""
    w = np.load(WINDOWS)
    ds = EpisodeDataset(PLAIN)
    history, frameskip = 3, 5
    clips = ClipSampler(
        ds, np.arange(4), history, frameskip, Normalizer({"action": ([0, 0], [1, 1])})
    )
    span_theirs = (history + 1) * frameskip
    assert int(w["count"]) == sum(L - span_theirs + 1 for L in ds.ep_len)
    assert len(clips) == sum(L - history * frameskip for L in ds.ep_len)
    assert len(clips) - int(w["count"]) == ds.num_episodes * (frameskip - 1)
    for (ep, start), px, act in zip(w["clip"], w["pixels"], w["action"], strict=True):
        row = int(ds.ep_offset[ep]) + int(start)
        i = int(np.flatnonzero(clips.starts == row)[0])
        pixels, blocks = clips.gather(np.array([i]))
        np.testing.assert_array_equal(pixels[0].numpy(), px.transpose(0, 2, 3, 1))
        np.testing.assert_allclose(blocks[0].numpy(), act[:history], rtol=0, atol=0)


def test_a_corrupt_compressed_file_is_still_one_error(tmp_path):
    pytest.importorskip("hdf5plugin")
    data = BLOSC.read_bytes()
    bad = tmp_path / "bad.h5"
    bad.write_bytes(data[: len(data) // 2])
    with pytest.raises(DataError, match="truncated or corrupt|not a readable HDF5"):
        EpisodeDataset(bad)
