"""lewm.envs.parallel: jobs in spawned worker processes, results in job order, and what happens
when a worker fails, dies or the user presses Ctrl-C. (That a seed gives the same data for any
worker count is part of the environment contract, tests/envs/test_env_contract.py.)"""

import math
import multiprocessing
import os
import time

import numpy as np
import pytest

from lewm.data.hdf5 import EpisodeDataset, EpisodeWriter
from lewm.envs.parallel import check_workers, ordered_map
from lewm.envs.tworoom import collect_tworoom


# module-level, so the spawned workers import them by name (spawn passes sys.path to children)
def _late_first(job: int) -> int:
    """Earlier jobs finish later: the order of results must still be the jobs' order."""
    time.sleep(0.1 * (3 - job) if job < 3 else 0.0)
    return job * job


def _episode_or_death(job: int) -> dict:
    """A one-row episode, or the worker process ends without a word (a native crash)."""
    if job == 3:
        os._exit(7)
    return {"pixels": np.full((1, 4, 4, 3), job, np.uint8), "action": np.zeros((1, 2))}


@pytest.mark.parametrize("bad", [0, 257, -1, 2.5, "2", True, None, math.nan, math.inf])
def test_worker_count_must_be_an_integer_in_range(bad):
    with pytest.raises(ValueError, match=r"workers \(--workers\) must be an integer in \[1, 256\]"):
        check_workers(bad)
    assert check_workers(1) == 1 and check_workers(256) == 256 and check_workers(2.0) == 2
    assert check_workers(np.int64(3)) == 3


def test_results_come_in_job_order_from_worker_processes():
    with ordered_map(_late_first, range(6), 1) as it:
        assert multiprocessing.active_children() == []  # one worker: this process
        assert list(it) == [0, 1, 4, 9, 16, 25]
    with ordered_map(_late_first, iter(range(6)), 2) as it:  # jobs read lazily
        assert list(it) == [0, 1, 4, 9, 16, 25]
    assert multiprocessing.active_children() == []  # the workers exited


def test_an_exception_in_a_worker_is_raised_again_as_it_was():
    with pytest.raises(ValueError, match="invalid literal") as info:
        with ordered_map(int, ["1", "x", "3"], 2) as it:
            assert next(it) == 1
            next(it)
    assert "job 1" in " ".join(getattr(info.value, "__notes__", ["job 1"]))
    assert multiprocessing.active_children() == []


def test_a_dead_worker_stops_the_collection_and_leaves_the_old_file(tmp_path):
    path = tmp_path / "d.h5"
    collect_tworoom(path, 2, resolution=16, max_steps=5, progress=False)
    before = path.read_bytes()
    t0 = time.perf_counter()
    with pytest.raises(ChildProcessError, match="worker process died unexpectedly"):
        with (
            EpisodeWriter(path, overwrite=True) as writer,
            ordered_map(_episode_or_death, range(8), 2) as episodes,
        ):
            for ep in episodes:
                writer.add_episode(**ep)
    assert time.perf_counter() - t0 < 30  # no hang (multiprocessing.Pool would wait forever)
    assert path.read_bytes() == before and EpisodeDataset(path).num_episodes == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d.h5"]  # no temporary file left
    assert multiprocessing.active_children() == []


def test_ctrl_c_ends_the_workers_at_once():
    t0 = time.perf_counter()
    with pytest.raises(KeyboardInterrupt):
        with ordered_map(time.sleep, [0.0] + [30.0] * 10, 2) as it:
            assert next(it) is None
            assert len(multiprocessing.active_children()) == 2
            raise KeyboardInterrupt
    assert multiprocessing.active_children() == []  # no orphans, and no wait for the sleepers
    assert time.perf_counter() - t0 < 20


def test_more_workers_than_episodes_are_clamped(tmp_path):
    kw = {"resolution": 16, "max_steps": 5, "progress": False}
    stats = collect_tworoom(tmp_path / "a.h5", 2, workers=8, **kw)
    assert stats["workers"] == 2 and stats["episodes"] == 2
    assert collect_tworoom(tmp_path / "b.h5", 2, **kw)["workers"] == 1
