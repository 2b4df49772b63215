"""Write tiny LeRobot v3.0 datasets, laid out as LeRobot's own writer lays them out.

Not a test module (no ``test_`` prefix): ``tests/data/test_lerobot.py`` imports it. The layout
follows LeRobot 0.6.x (``CODEBASE_VERSION = "v3.0"``; ``lerobot/datasets/dataset_writer.py``,
``dataset_metadata.py``, ``utils.py``, ``video_utils.py``): per-episode videos encoded with
LeRobot's default settings (AV1 through libsvtav1, yuv420p, g=2, crf=30, preset 12) and then
concatenated into one file per camera with ffmpeg's concat demuxer (stream copy), so each
episode is a [from_timestamp, to_timestamp) span of that file; data rows of many episodes per
parquet file, one row group per episode, list features as fixed-size float32 lists; the episode
index in ``meta/episodes``, tasks in ``meta/tasks.parquet``, statistics in ``meta/stats.json``.

Each frame shows a bright 8x8 square on a dark 32x32 background at the agent's position, the
``observation.state`` (x, y) of its row, so a test can read the state back from a decoded frame
after lossy compression. The first camera draws the square at (x, y), the second at (y, x).
The action of row t is the step from frame t to frame t+1 (never zero in either axis); the
last row of an episode records one more step whose outcome is not recorded, as a robot does.
"""

from __future__ import annotations

import io
import json
import math
import tempfile
from pathlib import Path

import av
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

SIZE = 32  # frame side, pixels
SQUARE = 8  # side of the bright square
FPS = 10
CAMERAS = ("observation.images.top", "observation.images.side")
TASKS = ("push the square around", "wander")
DATA_PATH = "data/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet"
VIDEO_PATH = "videos/{video_key}/chunk-{chunk_index:03d}/file-{file_index:03d}.mp4"
EPISODES_PATH = "meta/episodes/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet"
DEFAULT_FEATURES = {
    "timestamp": {"dtype": "float32", "shape": [1], "names": None},
    "frame_index": {"dtype": "int64", "shape": [1], "names": None},
    "episode_index": {"dtype": "int64", "shape": [1], "names": None},
    "index": {"dtype": "int64", "shape": [1], "names": None},
    "task_index": {"dtype": "int64", "shape": [1], "names": None},
}
# LeRobot's VideoEncoderConfig defaults, as codec options (get_codec_options)
ENCODER = {"g": 2, "crf": 30, "preset": 12, "fast_decode": 0}
CODEC_OPTIONS = {
    "libsvtav1": {"g": "2", "crf": "30", "preset": "12", "svtav1-params": "fast-decode=0"},
    "libx264": {"g": "2", "crf": "30"},
    "mpeg4": {"g": "2", "qscale": "2"},
    "libx265": {"g": "2", "crf": "30"},  # hevc: LeRobot's other software codec, never picked
}


def pick_codec() -> str:
    """LeRobot's default encoder (libsvtav1, AV1) when this PyAV can encode it, else h264/mpeg4."""
    for name in ("libsvtav1", "libx264", "mpeg4"):
        try:
            av.codec.Codec(name, "w")
            return name
        except Exception:  # UnknownCodecError, or a build without the encoder
            continue
    raise RuntimeError("this PyAV build encodes none of libsvtav1, libx264, mpeg4")


def render(pos: np.ndarray, camera: int = 0) -> np.ndarray:
    """(32, 32, 3) uint8: the square at (x, y) = pos for camera 0, at (y, x) for camera 1."""
    x, y = (int(pos[0]), int(pos[1])) if camera == 0 else (int(pos[1]), int(pos[0]))
    img = np.full((SIZE, SIZE, 3), 30, np.uint8)
    img[y : y + SQUARE, x : x + SQUARE] = (240, 230, 220)
    return img


def square_position(img: np.ndarray) -> np.ndarray:
    """(x, y) of the square's top-left corner in a decoded frame, from its bright pixels."""
    ys, xs = np.nonzero(np.asarray(img, np.float32).mean(-1) > 128)
    return np.array([xs.mean(), ys.mean()]) - (SQUARE - 1) / 2


def random_walk(length: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """States (L, 2) and actions (L, 2): state[t+1] = state[t] + action[t], steps of 1 or 2."""
    hi = SIZE - SQUARE
    pos = rng.integers(0, hi + 1, 2)
    states, actions = [], []
    for _ in range(length):
        step = rng.choice([-2, -1, 1, 2], 2)
        step = np.where((pos + step < 0) | (pos + step > hi), -step, step)
        states.append(pos.copy())
        actions.append(step)
        pos = pos + step
    return np.asarray(states, np.float32), np.asarray(actions, np.float32)


def _feature_stats(x: np.ndarray, image: bool = False) -> dict[str, list]:
    """LeRobot's per-feature statistics: min/max/mean/std/count and quantiles q01..q99; images
    per channel with shape (3, 1, 1), scaled to [0, 1]."""
    if image:
        x = x.astype(np.float64).transpose(0, 3, 1, 2) / 255.0  # (L, 3, H, W)
        axes = (0, 2, 3)

        def reduce(f):
            return f(x, axis=axes, keepdims=True)[0]  # (3, 1, 1)
    else:
        x = x.astype(np.float64).reshape(len(x), -1)

        def reduce(f):
            return f(x, axis=0)

    out = {
        "min": reduce(np.min),
        "max": reduce(np.max),
        "mean": reduce(np.mean),
        "std": reduce(np.std),
    }
    for q in (0.01, 0.10, 0.50, 0.90, 0.99):
        out[f"q{int(q * 100):02d}"] = reduce(
            lambda a, axis, keepdims=False, q=q: np.quantile(a, q, axis=axis, keepdims=keepdims)
        )
    out = {k: np.asarray(v).tolist() for k, v in out.items()}
    out["count"] = [len(x)]
    return out


def _encode(frames: np.ndarray, path: Path, codec: str, fps: int) -> float:
    """Encode one episode's frames as LeRobot does; its duration in seconds."""
    with av.open(str(path), "w") as out:
        stream = out.add_stream(codec, fps, options=CODEC_OPTIONS[codec])
        stream.pix_fmt = "yuv420p"
        stream.width, stream.height = frames.shape[2], frames.shape[1]
        for img in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    with av.open(str(path)) as c:
        s = c.streams.video[0]
        return float(s.duration * s.time_base) if s.duration else c.duration / av.time_base


def _concatenate(parts: list[Path], dest: Path) -> None:
    """Join episode videos without re-encoding (ffmpeg's concat demuxer, as LeRobot does)."""
    listing = dest.with_suffix(".ffconcat")
    listing.write_text("ffconcat version 1.0\n" + "".join(f"file '{p.resolve()}'\n" for p in parts))
    with (
        av.open(str(listing), format="concat", options={"safe": "0"}) as src,
        av.open(str(dest), "w", options={"movflags": "faststart"}) as dst,
    ):
        streams = {}
        for s in src.streams.video:
            streams[s.index] = dst.add_stream_from_template(template=s, opaque=True)
            streams[s.index].time_base = s.time_base
        for packet in src.demux():
            if packet.stream.index in streams and packet.dts is not None:
                packet.stream = streams[packet.stream.index]
                dst.mux(packet)
    listing.unlink()


def _video_info(path: Path, codec: str) -> dict:
    """The ``info`` LeRobot stores with a video feature (probed from the file + encoder)."""
    with av.open(str(path)) as c:
        s = c.streams.video[0]
        info = {
            "video.height": s.height,
            "video.width": s.width,
            "video.codec": s.codec.canonical_name,
            "video.pix_fmt": s.pix_fmt,
            "video.fps": int(s.base_rate),
            "video.channels": len(av.VideoFormat(s.pix_fmt).components),
            "has_audio": False,
        }
    info.update({f"video.{k}": v for k, v in ENCODER.items()})
    if codec != "libsvtav1":  # LeRobot's presets are svt-av1's; other encoders get none
        info["video.preset"] = None
    info.update({"video.video_backend": "pyav", "video.extra_options": {}, "is_depth_map": False})
    return info


def _png(img: np.ndarray) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format="PNG")
    return buf.getvalue()


def _hf_type(ft: dict) -> dict:
    """The ``datasets`` feature a LeRobot feature is written as (schema metadata)."""
    if ft["dtype"] == "image":
        return {"_type": "Image"}
    value = {"dtype": ft["dtype"], "_type": "Value"}
    if list(ft["shape"]) == [1]:
        return value
    return {"feature": value, "length": ft["shape"][0], "_type": "List"}


def write_lerobot_dataset(
    root: str | Path,
    *,
    lengths: tuple[int, ...] = (20, 23, 18),
    cameras: tuple[str, ...] = CAMERAS,
    image_cameras: tuple[str, ...] = (),
    fps: int = FPS,
    codec: str | None = None,
    episodes_per_file: int | None = None,
    short_video: dict[int, int] | None = None,
    long_video: dict[int, int] | None = None,
    robot_type: str | None = "square_bot",
    seed: int = 0,
) -> dict:
    """Write a LeRobot v3.0 dataset to the folder ``root`` and return what it holds.

    ``cameras`` are video features, ``image_cameras`` image features (PNG in the data parquet);
    the i-th camera overall renders as :func:`render` camera ``i % 2``. ``episodes_per_file``
    splits data, videos and the episode index into files of that many episodes (default: one
    file each). ``short_video={episode: n}`` drops the last n frames of that episode's videos
    (their metadata stays true to the shorter videos, as LeRobot would write it);
    ``long_video={episode: n}`` appends n frames that no data row has.

    Returns ``{"root", "codec", "states", "actions", "tasks", "cameras"}``; states and actions
    are lists of (L, 2) float32 arrays, one per episode.
    """
    root = Path(root)
    codec = codec or pick_codec()
    rng = np.random.default_rng(seed)
    short_video, long_video = short_video or {}, long_video or {}
    E = len(lengths)
    per_file = episodes_per_file or E
    walks = [random_walk(L, rng) for L in lengths]
    task_of = [i % len(TASKS) for i in range(E)]
    all_cams = (*cameras, *image_cameras)
    frames = {
        cam: [np.stack([render(s, k % 2) for s in st]) for st, _ in walks]
        for k, cam in enumerate(all_cams)
    }

    features: dict[str, dict] = {
        "action": {"dtype": "float32", "shape": [2], "names": ["dx", "dy"]},
        "observation.state": {"dtype": "float32", "shape": [2], "names": ["x", "y"]},
    }
    for cam in all_cams:
        features[cam] = {
            "dtype": "video" if cam in cameras else "image",
            "shape": [SIZE, SIZE, 3],
            "names": ["height", "width", "channels"],
        }
    features.update(json.loads(json.dumps(DEFAULT_FEATURES)))
    table_features = {k: v for k, v in features.items() if v["dtype"] != "video"}
    hf = {"info": {"features": {k: _hf_type(v) for k, v in table_features.items()}}}
    fields = []
    for k, ft in table_features.items():
        if ft["dtype"] == "image":
            fields.append(pa.field(k, pa.struct([("bytes", pa.binary()), ("path", pa.string())])))
        elif ft["shape"] == [1]:
            fields.append(pa.field(k, pa.from_numpy_dtype(np.dtype(ft["dtype"]))))
        else:
            fields.append(pa.field(k, pa.list_(pa.float32(), ft["shape"][0])))
    schema = pa.schema(fields, metadata={"huggingface": json.dumps(hf)})

    # -- data: frames of many episodes per parquet file, one row group per episode --------------
    episodes: list[dict] = []
    writers: dict[int, pq.ParquetWriter] = {}
    index = 0
    try:
        for e, (states, actions) in enumerate(walks):
            L, f = lengths[e], e // per_file
            cols = {
                "action": pa.array(list(actions), pa.list_(pa.float32(), 2)),
                "observation.state": pa.array(list(states), pa.list_(pa.float32(), 2)),
            }
            for cam in image_cameras:
                cols[cam] = pa.array(
                    [{"bytes": _png(img), "path": None} for img in frames[cam][e]],
                    schema.field(cam).type,
                )
            cols["timestamp"] = pa.array(np.arange(L, dtype=np.float32) / np.float32(fps))
            cols["frame_index"] = pa.array(np.arange(L, dtype=np.int64))
            cols["episode_index"] = pa.array(np.full(L, e, np.int64))
            cols["index"] = pa.array(np.arange(index, index + L, dtype=np.int64))
            cols["task_index"] = pa.array(np.full(L, task_of[e], np.int64))
            if f not in writers:
                path = root / DATA_PATH.format(chunk_index=0, file_index=f)
                path.parent.mkdir(parents=True, exist_ok=True)
                writers[f] = pq.ParquetWriter(
                    path, schema, compression="snappy", use_dictionary=True
                )
            writers[f].write_table(pa.table(cols, schema=schema))
            episodes.append(
                {
                    "episode_index": e,
                    "tasks": [TASKS[task_of[e]]],
                    "length": L,
                    "data/chunk_index": 0,
                    "data/file_index": f,
                    "dataset_from_index": index,
                    "dataset_to_index": index + L,
                }
            )
            index += L
    finally:
        for w in writers.values():
            w.close()

    # -- videos: one file per camera (and file index), episodes concatenated --------------------
    video_info = {}
    with tempfile.TemporaryDirectory() as tmp:
        for cam in cameras:
            parts: dict[int, list[Path]] = {}
            t0: dict[int, float] = {}
            for e in range(E):
                f = e // per_file
                clip = frames[cam][e][: lengths[e] - short_video.get(e, 0)]
                clip = np.concatenate([clip] + [clip[-1:]] * long_video.get(e, 0))
                part = Path(tmp) / f"{cam}-{e}.mp4"
                duration = _encode(clip, part, codec, fps)
                start = t0.get(f, 0.0)
                episodes[e].update(
                    {
                        f"videos/{cam}/chunk_index": 0,
                        f"videos/{cam}/file_index": f,
                        f"videos/{cam}/from_timestamp": start,
                        f"videos/{cam}/to_timestamp": start + duration,
                    }
                )
                t0[f] = start + duration
                parts.setdefault(f, []).append(part)
            for f, files in parts.items():
                dest = root / VIDEO_PATH.format(video_key=cam, chunk_index=0, file_index=f)
                dest.parent.mkdir(parents=True, exist_ok=True)
                _concatenate(files, dest)
            first = root / VIDEO_PATH.format(video_key=cam, chunk_index=0, file_index=0)
            video_info[cam] = _video_info(first, codec)
    for cam in cameras:
        features[cam]["info"] = video_info[cam]

    # -- statistics, per episode (in the episode index) and over the dataset --------------------
    def columns_of(e: int) -> dict[str, tuple[np.ndarray, bool]]:
        states, actions = walks[e]
        L = lengths[e]
        start = episodes[e]["dataset_from_index"]
        out = {"action": (actions, False), "observation.state": (states, False)}
        out.update({cam: (frames[cam][e], True) for cam in all_cams})
        out.update(
            {
                "timestamp": (np.arange(L, dtype=np.float32) / np.float32(fps), False),
                "frame_index": (np.arange(L), False),
                "episode_index": (np.full(L, e), False),
                "index": (np.arange(start, start + L), False),
                "task_index": (np.full(L, task_of[e]), False),
            }
        )
        return out

    for e in range(E):
        for key, (x, image) in columns_of(e).items():
            for stat, value in _feature_stats(x, image).items():
                episodes[e][f"stats/{key}/{stat}"] = value
    everything = [columns_of(e) for e in range(E)]
    stats = {
        key: _feature_stats(np.concatenate([c[key][0] for c in everything]), image)
        for key, (_, image) in everything[0].items()
    }

    # -- meta/: episode index, tasks, stats, info -----------------------------------------------
    for f in range(math.ceil(E / per_file)):
        rows = episodes[f * per_file : (f + 1) * per_file]
        for row in rows:
            row["meta/episodes/chunk_index"] = 0
            row["meta/episodes/file_index"] = f
        path = root / EPISODES_PATH.format(chunk_index=0, file_index=f)
        path.parent.mkdir(parents=True, exist_ok=True)
        table = pa.Table.from_pylist(rows)
        pq.write_table(table, path, compression="snappy", use_dictionary=True)
    # LeRobot writes a pandas frame indexed by the task: the index becomes the "task" column
    tasks = pa.table(
        {"task_index": pa.array(range(len(TASKS)), pa.int64()), "task": pa.array(TASKS)}
    )
    pq.write_table(tasks, root / "meta/tasks.parquet")
    (root / "meta/stats.json").write_text(json.dumps(stats, indent=4))
    info = {
        "codebase_version": "v3.0",
        "fps": fps,
        "features": features,
        "total_episodes": E,
        "total_frames": int(sum(lengths)),
        "total_tasks": len(TASKS),
        "chunks_size": 1000,
        "data_files_size_in_mb": 100,
        "video_files_size_in_mb": 200,
        "data_path": DATA_PATH,
        "video_path": VIDEO_PATH if cameras else None,
        "robot_type": robot_type,
        "splits": {"train": f"0:{E}"},
    }
    (root / "meta/info.json").write_text(json.dumps(info, indent=4))
    return {
        "root": root,
        "codec": codec,
        "states": [w[0] for w in walks],
        "actions": [w[1] for w in walks],
        "tasks": [TASKS[t] for t in task_of],
        "cameras": all_cams,
    }
