"""An episode file written by the paper authors' own HDF5 writer (stable-worldmodel 0.1.1
``HDF5Writer``), a Blosc-compressed copy of it, and the training windows their loader
(``HDF5Dataset``) cuts from it, for lewm's reader tests (tests/fixtures/). Runs with the python of
the authors' virtual environment ($PEER_PYTHON, see benchmarks/README.md); does not import lewm.

    $PEER_PYTHON benchmarks/comparison/swm_dataset.py OUT_DIR [--episodes 4]

Writes OUT_DIR/swm_writer.h5 (their writer, as their collection scripts call it: one column per
key, chunks of one row, ``ep_len`` int32 / ``ep_offset`` int64), OUT_DIR/swm_blosc.h5 (the same
columns re-written with hdf5plugin's Blosc/zstd filter, as some released files are) and
OUT_DIR/swm_windows.npz: for num_steps 4, frameskip 5 (the paper's training window) the number of
windows and, for a few of them, the episode, start, pixels and action block their loader returns.

Frames are smooth colour ramps (Blosc compresses them), actions random with a NaN on the last
row of each episode (no action leaves the last frame), plus ``proprio``, ``state``,
``episode_idx`` and ``step_idx`` columns as their collection writes.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from peer_plan import import_peer  # noqa: E402


def episodes(n: int, res: int, seed: int) -> list[dict]:
    rng = np.random.default_rng(seed)
    lengths = [22, 25, 30, 21, 27, 24][:n] + [20 + i for i in range(max(0, n - 6))]
    out = []
    yy, xx = np.mgrid[0:res, 0:res].astype(np.float32) / res
    for e, L in enumerate(lengths):
        t = np.arange(L, dtype=np.float32)[:, None, None] / L
        px = np.stack(
            [255 * (xx * 0 + t), 255 * yy + 0 * t, 255 * (xx * (1 - t) + 0.1 * e)], axis=-1
        )
        action = rng.normal(size=(L, 2)).astype(np.float32)
        action[-1] = np.nan
        out.append(
            {
                "pixels": np.clip(px, 0, 255).astype(np.uint8),
                "action": action,
                "proprio": rng.normal(size=(L, 4)).astype(np.float32),
                "state": rng.normal(size=(L, 6)).astype(np.float32),
                "episode_idx": np.full(L, e, dtype=np.int64),
                "step_idx": np.arange(L, dtype=np.int64),
            }
        )
    return out


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("out")
    p.add_argument("--episodes", type=int, default=4)
    p.add_argument("--resolution", type=int, default=16)
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args()
    import_peer()
    import h5py
    import hdf5plugin
    from stable_worldmodel.data.formats.hdf5 import HDF5Dataset, HDF5Writer

    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    plain, blosc = out / "swm_writer.h5", out / "swm_blosc.h5"
    with HDF5Writer(plain, mode="error") as w:
        w.write_episodes(episodes(a.episodes, a.resolution, a.seed))
    with h5py.File(plain, "r") as src, h5py.File(blosc, "w-") as dst:
        for k in src:
            d = src[k]
            chunks = (min(len(d), 64), *d.shape[1:]) if d.ndim else None
            dst.create_dataset(
                k, data=d[:], chunks=chunks, **hdf5plugin.Blosc(cname="zstd", clevel=5)
            )
    ds = HDF5Dataset(path=plain, frameskip=5, num_steps=4)
    picks = [0, 1, len(ds) // 2, len(ds) - 1]
    windows = {
        "count": np.int64(len(ds)),
        "index": np.array(picks),
        "clip": np.array([ds.clip_indices[i] for i in picks]),  # (episode, start)
        "pixels": np.stack([ds[i]["pixels"].numpy() for i in picks]),  # (K, 4, 3, h, w)
        "action": np.stack([ds[i]["action"].numpy() for i in picks]),  # (K, 4, 10)
    }
    np.savez(out / "swm_windows.npz", **windows)
    print(
        json.dumps(
            {
                "bench": "swm_dataset",
                "files": [plain.name, blosc.name, "swm_windows.npz"],
                "windows": len(ds),
                "lengths": ds.lengths.tolist(),
                "bytes": {f.name: f.stat().st_size for f in (plain, blosc)},
            }
        )
    )


if __name__ == "__main__":
    main()
