"""Clip-loading throughput: how fast ClipSampler.gather assembles training batches.

    python benchmarks/speed/loader_speed.py --data data/tworoom.h5 --history 1 --batch 128
    python benchmarks/speed/loader_speed.py      # generates a 64-px toy dataset first
    python benchmarks/speed/loader_speed.py --episodes 20 --batch 8 --batches 2   # smoke run

Reports clips/s for the in-RAM path (what `lewm train` uses) and the per-frame on-disk path;
compare with benchmarks/speed/train_speed.py: the loader must be far faster than training.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np

from lewm.data.clips import ClipSampler, EpochBatches
from lewm.data.hdf5 import EpisodeDataset
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
    a = p.parse_args()
    with tempfile.TemporaryDirectory() as d:
        path = a.data or make_toy_dataset(
            Path(d) / "toy64.h5", episodes=a.episodes, length=100, resolution=64
        )
        for in_memory in (True, False):
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
