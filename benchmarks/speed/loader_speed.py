"""Clip-loading throughput: how fast ClipSampler.gather assembles training batches.

    python benchmarks/speed/loader_speed.py --data data/tworoom.h5 --history 1 --batch 128
    python benchmarks/speed/loader_speed.py      # generates a 64-px toy dataset first
    python benchmarks/speed/loader_speed.py --episodes 20 --batch 8 --batches 2   # smoke run

Reports clips/s for the in-RAM path and the per-frame on-disk path in this thread; with
``--workers 1,2`` also the streamed path of ``lewm train`` (``data.mode=stream``: loader processes
read whole batches ahead, lewm.data.loader.BatchStream), with the process tree's peak memory.
``--shuffle episodes`` orders batches by episode blocks (``data.shuffle=episodes``). Compare with
benchmarks/speed/train_speed.py: the loader must be far faster than training.

    python benchmarks/speed/loader_speed.py --data big.h5 --workers 1,2 --batches 40 --skip-thread
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import numpy as np
from stream_memory import children, rss  # benchmarks/speed/, beside this script

from lewm.data.clips import ClipSampler, EpisodeBlockBatches, EpochBatches
from lewm.data.hdf5 import EpisodeDataset
from lewm.data.loader import BatchStream
from lewm.data.normalize import Normalizer
from lewm.data.synthetic import make_toy_dataset


def bench(path: str, in_memory: bool, history: int, frameskip: int, batch: int, n: int) -> dict:
    t = time.perf_counter()
    ds = EpisodeDataset(path, in_memory=in_memory)
    open_s = time.perf_counter() - t
    eps = np.arange(ds.num_episodes)
    norm = Normalizer.fit({"action": np.asarray(ds.column("action"))})
    clips = ClipSampler(ds, eps, history, frameskip, norm)
    batches = EpochBatches(len(clips), batch, 0)
    clips.gather(batches(0))
    t = time.perf_counter()
    for s in range(1, n + 1):
        clips.gather(batches(s))
    dt = (time.perf_counter() - t) / n
    return {
        "in_memory": in_memory,
        "open_s": round(open_s, 2),
        "ms_per_batch": round(1e3 * dt, 2),
        "clips_per_s": round(batch / dt),
        "batch": batch,
        "history": history,
        "image": list(ds.image_shape),
        "steps": ds.num_steps,
    }


def _tree_rss() -> int:
    """Resident bytes of this process and its descendants (the loader processes)."""
    me = os.getpid()
    return rss(me) + sum(rss(k) for k in children(me))


def bench_stream(
    path: str, workers: int, history: int, frameskip: int, batch: int, n: int, shuffle: str
) -> dict:
    ds = EpisodeDataset(path, in_memory=False)
    eps = np.arange(ds.num_episodes)
    norm = Normalizer.fit({"action": np.asarray(ds.column("action"))})
    clips = ClipSampler(ds, eps, history, frameskip, norm)
    batches = (
        EpisodeBlockBatches(clips, batch, 0, 64)
        if shuffle == "episodes"
        else EpochBatches(len(clips), batch, 0)
    )
    stream = BatchStream(clips, batches, 0, n + 1, workers=workers, prefetch=2)
    next(stream)  # the loader processes start
    t = time.perf_counter()
    peak = 0
    for _ in range(n):
        next(stream)
        peak = max(peak, _tree_rss())
    dt = (time.perf_counter() - t) / n
    stream.close()
    return {
        "path": f"stream, {workers} loader process(es)",
        "shuffle": shuffle,
        "ms_per_batch": round(1e3 * dt, 2),
        "clips_per_s": round(batch / dt),
        "frames_per_s": round(batch * (history + 1) / dt),
        "MB_per_s": round(batch * (history + 1) * int(np.prod(ds.image_shape)) / dt / 1e6),
        "peak_tree_rss_gib": round(peak / 2**30, 3),
        "data_gib": round(ds.nbytes / 2**30, 2),
        "batch": batch,
        "batches": n,
        "image": list(ds.image_shape),
    }


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--data", default=None, help="episode file (default: a generated toy file)")
    p.add_argument("--episodes", type=int, default=200, help="episodes of the toy file")
    p.add_argument("--history", type=int, default=3)
    p.add_argument("--frameskip", type=int, default=5)
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--batches", type=int, default=20)
    p.add_argument("--workers", default="", help="streamed path with these process counts: 1,2")
    p.add_argument("--shuffle", default="clips", choices=["clips", "episodes"])
    p.add_argument("--skip-thread", action="store_true", help="only the --workers rows")
    a = p.parse_args()
    with tempfile.TemporaryDirectory() as d:
        path = a.data or make_toy_dataset(
            Path(d) / "toy64.h5", episodes=a.episodes, length=100, resolution=64
        )
        for w in [int(x) for x in a.workers.split(",") if x.strip()]:
            rec = bench_stream(path, w, a.history, a.frameskip, a.batch, a.batches, a.shuffle)
            print(json.dumps(rec), flush=True)
        for in_memory in () if a.skip_thread else (True, False):
            print(
                json.dumps(
                    bench(
                        path,
                        in_memory,
                        a.history,
                        a.frameskip,
                        a.batch,
                        a.batches if in_memory else max(2, a.batches // 4),
                    )
                )
            )


if __name__ == "__main__":
    main()
