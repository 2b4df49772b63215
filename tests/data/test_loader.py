"""Streaming from disk and several files as one dataset: the same batches, the same training,
whatever the mode, the number of loader processes or the way the episodes are split into files."""

from __future__ import annotations

import json
import os
import pickle
import signal
import threading

import numpy as np
import pytest

from lewm.config import apply_overrides
from lewm.data import loader
from lewm.data.clips import ClipSampler, EpisodeBlockBatches, EpochBatches
from lewm.data.config import DataConfig
from lewm.data.hdf5 import DataError, EpisodeDataset, EpisodeWriter
from lewm.data.multi import MultiEpisodeDataset, canonical, split_spec
from lewm.data.normalize import Normalizer
from lewm.data.open import open_dataset
from lewm.training.trainer import Trainer, train
from lewm.utils.config import ConfigError


@pytest.fixture
def cfg(tiny_config):
    return apply_overrides(
        tiny_config,
        ["train.steps=6", "train.ckpt_every=0", "train.val_every=0", "train.log_every=1"],
    )


def _losses(run):
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    return [r["train/loss"] for r in rows if "train/loss" in r]


def _split_file(src, paths, cuts):
    """Write episodes [cuts[k], cuts[k+1]) of ``src`` into ``paths[k]``."""
    ds = EpisodeDataset(src)
    for path, a, b in zip(paths, cuts[:-1], cuts[1:], strict=True):
        with EpisodeWriter(path, attrs=ds.attrs) as w:
            for i in range(a, b):
                w.add_episode(**ds.episode(i))
    ds.close()


def test_streamed_training_equals_in_memory_training(tmp_path, toy_h5, cfg):
    mem = train(
        apply_overrides(cfg, ["data.mode=memory"]), toy_h5, tmp_path / "mem", progress=False
    )
    one = train(
        apply_overrides(cfg, ["data.mode=stream", "data.workers=0"]),
        toy_h5,
        tmp_path / "thread",
        progress=False,
    )
    two = train(
        apply_overrides(cfg, ["data.mode=stream", "data.workers=2", "data.prefetch=1"]),
        toy_h5,
        tmp_path / "workers",
        progress=False,
    )
    ref = _losses(mem.run_dir)
    assert len(ref) == 6
    assert _losses(one.run_dir) == ref  # bit for bit: the same batches, read another way
    assert _losses(two.run_dir) == ref
    waits = [
        json.loads(line)["train/data_wait"]
        for line in (two.run_dir / "metrics.jsonl").read_text().splitlines()
        if "train/data_wait" in line
    ]
    assert len(waits) == 6 and all(0.0 <= w <= 1.0 for w in waits)


def test_a_run_resumes_exactly_in_the_other_mode(tmp_path, toy_h5, cfg):
    ref = train(cfg, toy_h5, tmp_path / "ref", progress=False)
    first = apply_overrides(cfg, ["data.mode=memory", "train.ckpt_every=3"])
    t = Trainer(first, toy_h5, tmp_path / "run", progress=False)
    t.fit(stop_after=3)
    t.close()
    again = apply_overrides(first, ["data.mode=stream", "data.workers=1"])
    res = train(again, toy_h5, tmp_path / "run", resume=True, progress=False)
    assert _losses(res.run_dir) == _losses(ref.run_dir)
    run = json.loads((tmp_path / "run" / "run.json").read_text())
    assert run["resumes"][-1]["changed"]["data.mode"] == ["memory", "stream"]


def test_several_files_train_like_the_one_file_they_came_from(tmp_path, toy_h5, cfg):
    parts = [tmp_path / f"part_{k}.h5" for k in range(3)]
    _split_file(toy_h5, parts, [0, 5, 6, 16])
    ref = train(cfg, toy_h5, tmp_path / "one", progress=False)
    for spec in (f"{tmp_path}/part_*.h5", ",".join(map(str, parts)), str(tmp_path)):
        out = tmp_path / f"run_{abs(hash(spec))}"
        res = train(apply_overrides(cfg, ["data.mode=stream"]), spec, out, progress=False)
        assert _losses(res.run_dir) == _losses(ref.run_dir), spec
    meta = json.loads((res.model_dir / "config.json").read_text())["metadata"]
    assert meta["dataset"] == canonical(str(tmp_path))
    assert meta["dataset"].split(",") == [str(p.resolve()) for p in parts]


def test_multi_file_rows_episodes_and_columns(tmp_path, toy_h5):
    parts = [tmp_path / "a.h5", tmp_path / "b.h5"]
    _split_file(toy_h5, parts, [0, 7, 16])
    one = EpisodeDataset(toy_h5)
    for in_memory in (True, False):
        multi = open_dataset(f"{parts[0]},{parts[1]}", in_memory=in_memory)
        assert isinstance(multi, MultiEpisodeDataset)
        assert (multi.num_episodes, multi.num_steps) == (one.num_episodes, one.num_steps)
        np.testing.assert_array_equal(multi.ep_offset, one.ep_offset)
        rows = np.array([[0, 279, 280], [639, 5, 300]])  # across the boundary at row 280
        for col in ("pixels", "action", "state"):
            np.testing.assert_array_equal(multi.rows(col, rows), one.rows(col, rows))
            if col != "pixels":
                np.testing.assert_array_equal(multi.column(col), one.column(col))
        for i in (0, 6, 7, 15):
            for k, v in one.episode(i).items():
                np.testing.assert_array_equal(multi.episode(i)[k], v)
        back = pickle.loads(pickle.dumps(multi))  # what a loader process receives
        np.testing.assert_array_equal(back.rows("pixels", rows), one.rows("pixels", rows))
        assert back.in_memory == in_memory
        back.close()
        multi.close()


def test_multi_file_refusals(tmp_path, toy_h5):
    from lewm.data.synthetic import make_toy_dataset

    other = make_toy_dataset(tmp_path / "big.h5", episodes=2, length=10, resolution=24)
    with pytest.raises(DataError, match="disagree on the frame shape"):
        open_dataset(f"{toy_h5},{other}")
    with pytest.raises(DataError, match="matches no file"):
        open_dataset(f"{tmp_path}/nothing_*.h5")
    with pytest.raises(DataError, match="named twice"):
        open_dataset(f"{toy_h5},{toy_h5}")
    with pytest.raises(DataError, match="not a file"):
        open_dataset(f"{toy_h5},{tmp_path}/missing.h5")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="folder without .h5 files"):
        open_dataset(tmp_path / "empty")
    assert split_spec(toy_h5) == [type(split_spec(toy_h5)[0])(toy_h5)]


def test_stream_mode_pickles_without_loading_pixels(toy_h5):
    ds = EpisodeDataset(toy_h5, in_memory=False)
    assert not ds.in_memory and "pixels" not in ds._cache
    back = pickle.loads(pickle.dumps(ds))
    assert not back.in_memory and "pixels" not in back._cache
    rows = np.arange(0, 640, 37)
    np.testing.assert_array_equal(back.rows("pixels", rows), ds.rows("pixels", rows))
    assert ds.nbytes == sum(np.asarray(ds.column(c)).nbytes for c in ds.columns)
    ds.to_memory()
    assert ds.in_memory and isinstance(ds.column("pixels"), np.ndarray)


def test_auto_mode_streams_what_does_not_fit(monkeypatch):
    gib = 2**30
    monkeypatch.setattr(loader, "memory_room", lambda: (4 * gib, "the cgroup memory limit"))
    assert loader.choose_in_memory("auto", 1 * gib)[0] is True
    in_memory, why = loader.choose_in_memory("auto", 3 * gib)
    assert in_memory is False and "cgroup" in why and "streamed" in why
    assert loader.choose_in_memory("auto", 1 * gib, copies=4)[0] is False  # 4 ranks, 4 copies
    assert loader.choose_in_memory("memory", 3 * gib)[0] is True  # forced, and it fits
    with pytest.raises(DataError, match=r"data.mode=memory: .*5.00 GiB do not fit in the 4.0 GiB"):
        loader.choose_in_memory("memory", 5 * gib)
    assert loader.choose_in_memory("stream", 1)[0] is False


def test_memory_room_reads_the_address_space_limit():
    import subprocess
    import sys

    code = (
        "import resource; from lewm.data.loader import memory_room;"
        "soft, hard = resource.getrlimit(resource.RLIMIT_AS);"
        "resource.setrlimit(resource.RLIMIT_AS, (8 * 2**30, hard));"
        "room, what = memory_room(); print(room, what)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    room, what = out.stdout.split(maxsplit=1)
    assert 0 <= int(room) < 8 * 2**30 and "ulimit -v" in what


def test_episode_blocks_cover_every_clip_once_per_epoch_from_few_episodes(toy_h5):
    ds = EpisodeDataset(toy_h5)
    eps = np.arange(16)
    clips = ClipSampler(ds, eps, 3, 1, Normalizer.fit({"action": ds.column("action")}))
    b = EpisodeBlockBatches(clips, batch_size=8, seed=3, block=2)
    per_epoch = b.steps_per_epoch
    seen = np.concatenate([b(s) for s in range(per_epoch)])
    assert len(np.unique(seen)) == len(seen) == per_epoch * 8  # no clip twice in an epoch
    episode_of = np.repeat(np.arange(16), clips.episode_clips)
    touched = [len(np.unique(episode_of[b(s)])) for s in range(per_epoch)]
    assert max(touched) <= 4  # two blocks of two episodes at most
    again = EpisodeBlockBatches(clips, batch_size=8, seed=3, block=2)
    for s in (per_epoch + 3, 1, 2 * per_epoch):  # any step, in any order: the same batch
        np.testing.assert_array_equal(again(s), b(s))
    assert not np.array_equal(b(per_epoch), b(0))  # another epoch, another order
    flat = EpochBatches(len(clips), 8, 3)
    assert max(len(np.unique(episode_of[flat(s)])) for s in range(per_epoch)) > 4


def test_episode_shuffle_trains_and_changes_the_batches(tmp_path, toy_h5, cfg):
    ref = train(cfg, toy_h5, tmp_path / "clips", progress=False)
    res = train(
        apply_overrides(cfg, ["data.shuffle=episodes", "data.block_episodes=4"]),
        toy_h5,
        tmp_path / "eps",
        progress=False,
    )
    assert _losses(res.run_dir) != _losses(ref.run_dir)
    assert all(np.isfinite(_losses(res.run_dir)))


@pytest.mark.parametrize(
    "override, match",
    [
        ("data.mode=disk", "data.mode must be one of auto, memory, stream"),
        ("data.workers=-2", r"data.workers must be an integer in \[-1, 4096\]"),
        ("data.prefetch=0", r"data.prefetch must be an integer in \[1, 4096\]"),
        ("data.shuffle=frames", "data.shuffle must be one of clips, episodes"),
    ],
)
def test_bad_loader_settings_are_refused(tiny_config, override, match):
    with pytest.raises(ConfigError, match=match):
        apply_overrides(tiny_config, [override])


def test_feature_options_leave_the_loader_settings_out():
    dc = DataConfig(camera="top", mode="stream", workers=3)
    assert dc.options() == {"camera": "top"}
    assert DataConfig.recorded({"data_options": {"camera": "top"}}).mode == "auto"


def test_a_corrupt_frame_read_by_a_worker_is_one_clear_error(tmp_path, toy_h5, cfg):
    import h5py

    bad = tmp_path / "bad.h5"
    with h5py.File(toy_h5, "r") as src, h5py.File(bad, "w") as dst:
        for name, d in src.items():  # pixels compressed frame by frame: a chunk can be damaged
            opts = {"chunks": (1, *d.shape[1:]), "compression": "gzip"} if name == "pixels" else {}
            dst.create_dataset(name, data=d[:], **opts)
        dst.attrs.update(src.attrs)
    with h5py.File(bad, "r") as f:
        chunks = [f["pixels"].id.get_chunk_info(i) for i in range(f["pixels"].shape[0])]
    with open(bad, "r+b") as fh:  # every frame's compressed bytes overwritten
        for c in chunks:
            fh.seek(c.byte_offset)
            fh.write(b"\xff" * c.size)
    with pytest.raises(DataError, match=r"bad.h5: cannot read column 'pixels'"):
        train(
            apply_overrides(cfg, ["data.mode=stream", "data.workers=1"]),
            bad,
            tmp_path / "run",
            progress=False,
        )


@pytest.mark.skipif(not hasattr(signal, "pthread_sigmask"), reason="signal masks are POSIX")
def test_stop_signals_sent_while_the_workers_start_neither_kill_them_nor_get_lost(toy_h5):
    # `timeout`/Slurm signal the whole process group; a spawned worker needs a second or more
    # to import torch before it can ignore the signal, and one killed in that window crashed the
    # trainer before it could write its checkpoint (a CI failure)
    ds = EpisodeDataset(toy_h5, in_memory=False)
    clips = ClipSampler(
        ds, np.arange(ds.num_episodes), 2, 1, Normalizer.fit({"action": ds.column("action")})
    )
    batches = EpochBatches(len(clips), 4, 0)
    got = []
    old = signal.signal(signal.SIGTERM, lambda *_: got.append("parent"))
    try:
        stream = loader.BatchStream(clips, batches, 0, 6, workers=2)
        try:
            pids = [w.pid for w in stream._it._workers]
            assert len(pids) == 2
            for pid in pids:  # at once: the workers are still importing torch
                os.kill(pid, signal.SIGTERM)
            steps = [next(stream) for _ in range(6)]  # a killed worker would raise here
        finally:
            stream.close()
        assert all(p.shape[0] == 4 for p, _ in steps)
        # the block covers the parent's starting thread too, only while it starts the workers: a
        # SIGTERM sent to that thread then reaches the handler when the workers exist. (Sent to
        # the whole process it may be taken by another thread of the process, e.g. one a library
        # left running, and reach the handler at once — harmless, and it made this check flaky.)
        other = threading.Event()
        helper = threading.Thread(target=other.wait, daemon=True)  # a thread that takes signals
        helper.start()
        try:
            with loader._stop_signals_blocked():
                signal.pthread_kill(threading.get_ident(), signal.SIGTERM)
                assert signal.SIGTERM in signal.sigpending()
                assert got == []
        finally:
            other.set()
            helper.join()
        assert got == ["parent"]
        assert not signal.pthread_sigmask(signal.SIG_BLOCK, []) & {signal.SIGTERM, signal.SIGINT}
    finally:
        signal.signal(signal.SIGTERM, old)
