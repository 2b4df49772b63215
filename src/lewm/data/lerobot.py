"""Read a local LeRobotDataset folder (LeRobot's codebase version ``v3.0``) as an episode dataset.

The v3.0 layout, as LeRobot's writer produces it (``lerobot/datasets/dataset_writer.py``,
``dataset_metadata.py``, ``utils.py``; conversion from v2.1 in
``lerobot/scripts/convert_dataset_v21_to_v30.py``)::

    meta/info.json                         codebase_version, fps, robot_type, features (dtype,
                                           shape, names; video features carry an ``info`` dict),
                                           data_path / video_path templates
    meta/episodes/chunk-000/file-000.parquet
                                           one row per episode: episode_index, tasks, length,
                                           data/chunk_index, data/file_index,
                                           dataset_from_index, dataset_to_index,
                                           videos/<camera>/{chunk_index, file_index,
                                           from_timestamp, to_timestamp}, stats/<feature>/<stat>
    meta/tasks.parquet                     task_index + task (older exports: meta/tasks.jsonl)
    meta/stats.json                        dataset statistics per feature
    data/chunk-000/file-000.parquet        one row per frame, many episodes per file: index,
                                           episode_index, frame_index, timestamp, task_index,
                                           action, observation.state, image features (PNG)
    videos/<camera>/chunk-000/file-000.mp4 one video per camera and file, episodes concatenated;
                                           an episode is its [from_timestamp, to_timestamp) span

Frame t of an episode is the video frame at ``from_timestamp + timestamp[t]`` (the lookup
LeRobot's own reader does), matched here within half a frame period.

Rows follow lewm's episode layout (see :mod:`lewm.data.hdf5`): episodes in ``episode_index``
order, row t = frame t of its episode and the action taken from it. LeRobot records the
observation first and then the command it sends (``record_loop`` in
``lerobot/scripts/lerobot_record.py``: ``get_observation`` -> ``send_action`` -> ``add_frame``),
so its ``action`` at frame t is exactly lewm's "action taken from frame t", which moves the
system to frame t+1.

pyarrow (parquet) and PyAV (video) are imported only when a dataset is opened:
``pip install 'lewm[lerobot]'``.
"""

from __future__ import annotations

import importlib
import io
import json
import logging
import math
import os
from collections import OrderedDict
from pathlib import Path
from typing import Any

import numpy as np

from lewm.data.hdf5 import DataError, first_bad_action
from lewm.utils.progress import progress_bar

log = logging.getLogger(__name__)

SUPPORTED_VERSIONS = ("v3.0",)
INFO_PATH = "meta/info.json"
EPISODES_DIR = "meta/episodes"
TASKS_PATH = "meta/tasks.parquet"
LEGACY_TASKS_PATH = "meta/tasks.jsonl"
STATS_PATH = "meta/stats.json"
DEFAULT_DATA_PATH = "data/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet"
DEFAULT_VIDEO_PATH = "videos/{video_key}/chunk-{chunk_index:03d}/file-{file_index:03d}.mp4"
CAMERA_DTYPES = ("video", "image")
DEFAULT_STATE_KEY = "observation.state"
# decoded episodes kept by a dataset opened with in_memory=False
LAZY_CACHE_BYTES = 256 * 2**20


def _import(module: str, package: str) -> Any:
    try:
        return importlib.import_module(module)
    except ImportError as e:
        raise ImportError(
            f"reading a LeRobot dataset needs {package}, which is not installed: "
            f"pip install 'lewm[lerobot]' (or pip install {package})"
        ) from e


def _one_line(e: BaseException) -> str:
    return " ".join(str(e).split()) or type(e).__name__


class LeRobotDataset:
    """A local LeRobot v3.0 dataset folder with :class:`lewm.data.hdf5.EpisodeDataset`'s interface.

    Columns: ``pixels`` uint8 (N, H, W, 3) from ``camera`` (default: the first RGB video or
    image feature), ``action`` float32 (N, A) from ``action_key``, and ``state`` = ``proprio``
    float32 from ``state_key`` when the dataset has it (``state_key=None`` leaves them out).

    With ``in_memory=True`` (default) every frame is decoded once, here, into one array: the
    trainer's random clip reads then cost microseconds. Otherwise frames are decoded an episode
    at a time when first read, and the most recent episodes are kept (:data:`LAZY_CACHE_BYTES`).

    Every problem with the folder (missing or unreadable files, an unknown codebase version, a
    camera that does not exist, data rows without a video frame) is one :class:`DataError`.
    """

    def __init__(
        self,
        path: str | os.PathLike,
        *,
        camera: str | None = None,
        action_key: str = "action",
        state_key: str | None = DEFAULT_STATE_KEY,
        in_memory: bool = True,
    ) -> None:
        self.path = Path(path)
        self.in_memory = in_memory
        self._options = {"camera": camera, "action_key": action_key, "state_key": state_key}
        self._pa = _import("pyarrow", "pyarrow")
        self._pq = _import("pyarrow.parquet", "pyarrow")
        info = self._read_info()
        self.info = info
        self.fps = float(info["fps"])
        self.features: dict[str, dict] = info["features"]
        self.camera = self._pick_camera(camera)
        self._video = self.features[self.camera]["dtype"] == "video"
        if self._video:
            self._av = _import("av", "av (PyAV)")
        self.action_key = action_key
        self.state_key = self._pick_state(state_key)
        self._action_shape = self._numeric_feature(action_key, "action_key")
        self._state_shape = (
            self._numeric_feature(self.state_key, "state_key") if self.state_key else None
        )
        self._image_hw = self._camera_size()

        meta = self._read_episodes()
        self.episode_index = meta["episode_index"]  # LeRobot's index of lewm episode i
        self.ep_len = meta["length"]
        self.ep_offset = np.concatenate([[0], np.cumsum(self.ep_len)[:-1]]).astype(np.int64)
        self._meta = meta
        self.tasks = self._read_tasks()
        self.stats = self._read_stats()

        self._cache: dict[str, np.ndarray] = {}
        self._read_frames()
        self.columns = ["pixels", "action"] + (["state", "proprio"] if self.state_key else [])
        self._lazy: OrderedDict[int, np.ndarray] = OrderedDict()
        if in_memory:
            self._cache["pixels"] = self._decode_all()
            self._images = None  # PNG bytes of image features: decoded, no longer needed
        self.attrs: dict[str, Any] = {
            "env": info.get("robot_type") or self.path.resolve().name,
            "fps": self.fps,
            "format": "lerobot",
            "codebase_version": info["codebase_version"],
            "camera": self.camera,
            "action_key": action_key,
            "state_key": self.state_key,
        }
        names = self.features[action_key].get("names")
        if isinstance(names, list) and all(isinstance(n, str) for n in names):
            self.attrs["action_names"] = list(names)

    # -- metadata ------------------------------------------------------------------------------
    def _where(self, rel: str) -> str:
        return f"dataset {self.path}: {rel}"

    def _read_info(self) -> dict:
        if not self.path.exists():
            raise DataError(
                f"dataset {self.path} does not exist; a LeRobot dataset is a folder with "
                f"{INFO_PATH}, data/ and videos/"
            )
        if not self.path.is_dir():
            raise DataError(
                f"{self.path} is a file, not a LeRobot dataset folder (one with {INFO_PATH}); "
                "open episode HDF5 files with lewm.data.open_dataset"
            )
        file = self.path / INFO_PATH
        if not file.is_file():
            raise DataError(
                f"{self.path} has no {INFO_PATH}: not a LeRobot dataset folder, or an incomplete "
                "download; download the whole dataset (meta/, data/, videos/) again"
            )
        try:
            info = json.loads(file.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
            raise DataError(
                f"{self._where(INFO_PATH)} is not readable JSON ({_one_line(e)}); download the "
                "dataset again"
            ) from e
        if not isinstance(info, dict):
            raise DataError(f"{self._where(INFO_PATH)} must hold a JSON object")
        version = info.get("codebase_version")
        if version not in SUPPORTED_VERSIONS:
            hint = (
                "convert it with LeRobot: python -m lerobot.scripts.convert_dataset_v21_to_v30 "
                "--repo-id=<id> --root=<folder> --push-to-hub=false"
                if isinstance(version, str) and version.startswith("v2")
                else "this lewm reads only that layout"
            )
            raise DataError(
                f"{self._where(INFO_PATH)}: codebase_version {version!r} is not supported; lewm "
                f"reads LeRobot datasets of version {', '.join(SUPPORTED_VERSIONS)} - {hint}"
            )
        fps = info.get("fps")
        if isinstance(fps, bool) or not isinstance(fps, int | float) or not fps > 0:
            raise DataError(f"{self._where(INFO_PATH)}: fps must be a positive number, got {fps!r}")
        features = info.get("features")
        if not isinstance(features, dict) or not all(
            isinstance(v, dict) and "dtype" in v for v in features.values()
        ):
            raise DataError(
                f"{self._where(INFO_PATH)}: 'features' must map each feature name to a dict "
                "with a dtype"
            )
        return info

    def _cameras(self) -> list[str]:
        return [k for k, ft in self.features.items() if ft["dtype"] in CAMERA_DTYPES]

    def _is_rgb(self, key: str) -> bool:
        ft = self.features[key]
        info = ft.get("info") or {}
        depth = info.get("is_depth_map") or info.get("video.is_depth_map")
        shape = list(ft.get("shape") or [])
        return not depth and len(shape) == 3 and 3 in (shape[0], shape[-1])

    def _pick_camera(self, camera: str | None) -> str:
        cameras = self._cameras()
        if camera is None:
            rgb = [k for k in cameras if self._is_rgb(k)]
            if not rgb:
                raise DataError(
                    f"{self._where(INFO_PATH)}: no RGB camera (a feature of dtype video or "
                    f"image); lewm learns from pixels. Features: {sorted(self.features)}"
                )
            return rgb[0]
        if camera not in self.features or camera not in cameras:
            raise DataError(
                f"dataset {self.path} has no camera {camera!r}; its cameras: {cameras or 'none'}"
            )
        if not self._is_rgb(camera):
            raise DataError(
                f"dataset {self.path}: camera {camera!r} is not an RGB camera (a depth map, or "
                f"shape {self.features[camera].get('shape')}); lewm needs 3-channel frames"
            )
        return camera

    def _numeric_keys(self) -> list[str]:
        return sorted(
            k
            for k, ft in self.features.items()
            if isinstance(ft["dtype"], str)
            and ft["dtype"].startswith(("float", "int", "uint"))
            and len(ft.get("shape") or [1]) == 1
        )

    def _pick_state(self, state_key: str | None) -> str | None:
        if state_key is None or state_key in self.features:
            return state_key
        if state_key == DEFAULT_STATE_KEY:  # the default: a dataset without a state is fine
            return None
        raise DataError(
            f"dataset {self.path} has no feature {state_key!r} (state_key); numeric features: "
            f"{self._numeric_keys()}"
        )

    def _numeric_feature(self, key: str, option: str) -> tuple[int, ...]:
        if key not in self.features:
            raise DataError(
                f"dataset {self.path} has no feature {key!r} ({option}); numeric features: "
                f"{self._numeric_keys()}"
            )
        ft = self.features[key]
        shape = tuple(ft.get("shape") or (1,))
        if key not in self._numeric_keys() or not all(isinstance(s, int) and s >= 1 for s in shape):
            raise DataError(
                f"dataset {self.path}: feature {key!r} ({option}) must be a numeric vector, got "
                f"dtype {ft['dtype']!r} shape {list(shape)}; numeric features: "
                f"{self._numeric_keys()}"
            )
        return shape

    def _camera_size(self) -> tuple[int, int]:
        ft = self.features[self.camera]
        shape = list(ft["shape"])
        names = ft.get("names")
        if isinstance(names, list) and "height" in names and "width" in names:
            return int(shape[names.index("height")]), int(shape[names.index("width")])
        # LeRobot's v3 features are (height, width, channels); old exports were channel-first
        return (int(shape[0]), int(shape[1])) if shape[-1] == 3 else (int(shape[1]), int(shape[2]))

    def _read_parquet(self, rel: str, columns: list[str] | None, what: str):
        file = self.path / rel
        if not file.is_file():
            raise DataError(
                f"{self._where(rel)} is missing ({what}); the download is incomplete - download "
                "the dataset again"
            )
        pa = self._pa
        try:
            names = self._pq.read_schema(file).names
            missing = [c for c in columns or [] if c not in names]
            if missing:
                raise DataError(
                    f"{self._where(rel)} lacks column(s) {missing} ({what}); it was not written "
                    "by LeRobot v3.0, or belongs to another dataset"
                )
            return self._pq.read_table(file, columns=columns)
        except (OSError, ValueError, pa.ArrowException) as e:
            if isinstance(e, DataError):
                raise
            raise DataError(
                f"{self._where(rel)} is not a readable parquet file ({_one_line(e)}); it may be "
                "truncated - download the dataset again"
            ) from e

    def _read_episodes(self) -> dict[str, np.ndarray]:
        root = self.path / EPISODES_DIR
        files = sorted(root.glob("*/*.parquet"))
        if not files:
            raise DataError(
                f"{self._where(EPISODES_DIR)} holds no episode index "
                "(chunk-XXX/file-YYY.parquet); download the dataset's meta/ folder again"
            )
        cols = ["episode_index", "length", "data/chunk_index", "data/file_index"]
        if self._video:
            cols += [
                f"videos/{self.camera}/{k}"
                for k in ("chunk_index", "file_index", "from_timestamp", "to_timestamp")
            ]
        parts: dict[str, list[np.ndarray]] = {c: [] for c in cols}
        for file in files:
            rel = str(file.relative_to(self.path))
            table = self._read_parquet(rel, cols, "the episode index")
            for c in cols:
                col = table.column(c)
                if col.null_count:
                    ep = table.column("episode_index").to_numpy()[
                        np.asarray(col.is_null().to_numpy(zero_copy_only=False))
                    ]
                    what = "no video" if c.startswith("videos/") else "no value"
                    raise DataError(
                        f"{self._where(rel)}: episode(s) {ep[:5].tolist()} have {what} for {c!r}"
                    )
                parts[c].append(col.to_numpy())
        meta = {c: np.concatenate(v) for c, v in parts.items()}
        order = np.argsort(meta["episode_index"], kind="stable")
        meta = {c: v[order] for c, v in meta.items()}
        for c in cols:
            if not c.endswith("timestamp"):
                meta[c] = meta[c].astype(np.int64)
        ids = meta["episode_index"]
        if len(np.unique(ids)) != len(ids):
            dup = int(ids[np.flatnonzero(np.diff(ids) == 0)[0]])
            raise DataError(f"{self._where(EPISODES_DIR)} lists episode {dup} more than once")
        if (meta["length"] < 1).any():
            bad = int(ids[np.flatnonzero(meta["length"] < 1)[0]])
            raise DataError(f"{self._where(EPISODES_DIR)}: episode {bad} has no frames")
        total = self.info.get("total_episodes")
        if isinstance(total, int) and total != len(ids):
            log.warning(
                "dataset %s: %s says %d episodes, %s lists %d (incomplete download?)",
                self.path,
                INFO_PATH,
                total,
                EPISODES_DIR,
                len(ids),
            )
        return meta

    def _read_tasks(self) -> dict[int, str]:
        """task_index -> task (the natural-language instruction); empty when there are none."""
        if (self.path / TASKS_PATH).is_file():
            table = self._read_parquet(TASKS_PATH, None, "the task list")
            names = table.column_names
            # LeRobot writes a pandas frame indexed by the task string: the index is a column
            key = next((c for c in ("task", "__index_level_0__") if c in names), None)
            if "task_index" not in names or key is None:
                raise DataError(f"{self._where(TASKS_PATH)} must have columns task_index and task")
            idx, text = table.column("task_index").to_pylist(), table.column(key).to_pylist()
            return {int(i): str(t) for i, t in zip(idx, text, strict=True)}
        if (self.path / LEGACY_TASKS_PATH).is_file():
            tasks = {}
            try:
                for line in (self.path / LEGACY_TASKS_PATH).read_text("utf-8").splitlines():
                    if line.strip():
                        item = json.loads(line)
                        tasks[int(item["task_index"])] = str(item["task"])
            except (OSError, ValueError, KeyError, TypeError) as e:
                raise DataError(
                    f"{self._where(LEGACY_TASKS_PATH)} is not a valid task list ({_one_line(e)})"
                ) from e
            return tasks
        return {}

    def _read_stats(self) -> dict | None:
        file = self.path / STATS_PATH
        if not file.is_file():
            return None
        try:
            return json.loads(file.read_text("utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
            raise DataError(
                f"{self._where(STATS_PATH)} is not readable JSON ({_one_line(e)}); download the "
                "dataset again"
            ) from e

    # -- frames ------------------------------------------------------------------------------
    def _vector(self, table, key: str, shape: tuple[int, ...], rel: str) -> np.ndarray:
        """A numeric feature (scalar or nested list column) -> float32 (n, prod(shape))."""
        pa = self._pa
        arr = table.column(key).combine_chunks()
        n, width = len(arr), math.prod(shape)
        while (
            pa.types.is_list(arr.type)
            or pa.types.is_large_list(arr.type)
            or pa.types.is_fixed_size_list(arr.type)
        ):
            if arr.null_count:
                break
            if not pa.types.is_fixed_size_list(arr.type):
                lengths = arr.value_lengths().to_numpy(zero_copy_only=False)
                if len(lengths) and (lengths != lengths[0]).any():
                    raise DataError(
                        f"{self._where(rel)}: column {key!r} has rows of unequal length"
                    )
            arr = arr.flatten()
        if arr.null_count or not (pa.types.is_integer(arr.type) or pa.types.is_floating(arr.type)):
            raise DataError(
                f"{self._where(rel)}: column {key!r} must hold numbers without nulls, got "
                f"{table.column(key).type} ({arr.null_count} nulls)"
            )
        values = arr.to_numpy(zero_copy_only=False)
        if values.size != n * width:
            raise DataError(
                f"{self._where(rel)}: column {key!r} has {values.size // max(n, 1)} values per "
                f"row, {INFO_PATH} declares shape {list(shape)}"
            )
        return values.reshape(n, width).astype(np.float32)  # (n, prod(shape))

    def _read_frames(self) -> None:
        """Read the data rows of every episode, in lewm's row order, and check the index."""
        N = int(self.ep_len.sum())
        A, S = math.prod(self._action_shape), math.prod(self._state_shape or (1,))
        action = np.empty((N, A), np.float32)
        state = np.empty((N, S), np.float32) if self.state_key else None
        timestamp = np.empty(N, np.float64)
        images = np.empty(N, dtype=object) if not self._video else None
        template = self.info.get("data_path") or DEFAULT_DATA_PATH
        cols = ["episode_index", "frame_index", "timestamp", self.action_key]
        cols += [self.state_key] if self.state_key else []
        cols += [self.camera] if not self._video else []
        file_of = np.stack([self._meta["data/chunk_index"], self._meta["data/file_index"]], 1)
        for chunk, fidx in np.unique(file_of, axis=0):
            try:
                rel = template.format(chunk_index=int(chunk), file_index=int(fidx))
            except (KeyError, IndexError, ValueError) as e:
                raise DataError(
                    f"{self._where(INFO_PATH)}: data_path {template!r} is not a valid template "
                    f"({_one_line(e)})"
                ) from e
            mine = np.flatnonzero((file_of == (chunk, fidx)).all(axis=1))  # lewm episode ids
            table = self._read_parquet(rel, cols, "frames of episodes " + _ids(self, mine))
            ep = table.column("episode_index").to_numpy(zero_copy_only=False).astype(np.int64)
            frame = table.column("frame_index").to_numpy(zero_copy_only=False).astype(np.int64)
            order = np.lexsort((frame, ep))
            ep_sorted = ep[order]
            starts = np.searchsorted(ep_sorted, self.episode_index[mine], side="left")
            stops = np.searchsorted(ep_sorted, self.episode_index[mine], side="right")
            take = np.concatenate([order[a:b] for a, b in zip(starts, stops, strict=True)])
            sub = table.take(self._pa.array(take))
            ts = sub.column("timestamp").to_numpy(zero_copy_only=False).astype(np.float64)
            act = self._vector(sub, self.action_key, self._action_shape, rel)
            st = (
                self._vector(sub, self.state_key, self._state_shape, rel)
                if state is not None
                else None
            )
            png = sub.column(self.camera).to_pylist() if images is not None else None
            pos = 0
            for i, a, b in zip(mine, starts, stops, strict=True):
                L, off, e = int(self.ep_len[i]), int(self.ep_offset[i]), int(self.episode_index[i])
                if b - a != L:
                    raise DataError(
                        f"{self._where(rel)}: episode {e} has {b - a} rows, {EPISODES_DIR} says "
                        f"{L} frames; the file is incomplete or belongs to another version"
                    )
                if not np.array_equal(frame[order[a:b]], np.arange(L)):
                    raise DataError(
                        f"{self._where(rel)}: episode {e}'s frame_index is not 0..{L - 1}"
                    )
                t = ts[pos : pos + L]
                if L > 1 and not (np.diff(t) > 0).all():
                    raise DataError(f"{self._where(rel)}: episode {e}'s timestamps do not increase")
                timestamp[off : off + L] = t
                action[off : off + L] = act[pos : pos + L]
                if state is not None:
                    state[off : off + L] = st[pos : pos + L]
                if images is not None:
                    images[off : off + L] = png[pos : pos + L]
                pos += L
        self._check_actions(action)
        self._cache["action"] = action
        if state is not None:
            self._cache["state"] = state
            self._cache["proprio"] = state  # the robot's own state is what lewm calls proprio
        self._timestamp = timestamp
        self._images = images

    def _check_actions(self, action: np.ndarray) -> None:
        # LeRobot records an action with every frame, the last one included: the command sent
        # after the last observation, whose outcome was not recorded. It stays as recorded --
        # it is real data, ClipSampler never reads it (a clip's actions end one step before its
        # last frame) and the EpisodeDataset contract allows a finite last action. Only a
        # non-finite action elsewhere is an error, as for an episode HDF5 file.
        found = first_bad_action(action, self.ep_offset, self.ep_len)
        if found is not None:
            row, i = found
            raise DataError(
                f"dataset {self.path}: non-finite {self.action_key!r} in episode "
                f"{int(self.episode_index[i])} at frame {row - int(self.ep_offset[i])}"
            )

    # -- pixels ------------------------------------------------------------------------------
    def _video_file(self, i: int) -> str:
        template = self.info.get("video_path") or DEFAULT_VIDEO_PATH
        try:
            return template.format(
                video_key=self.camera,
                chunk_index=int(self._meta[f"videos/{self.camera}/chunk_index"][i]),
                file_index=int(self._meta[f"videos/{self.camera}/file_index"][i]),
            )
        except (KeyError, IndexError, ValueError) as e:
            raise DataError(
                f"{self._where(INFO_PATH)}: video_path {template!r} is not a valid template "
                f"({_one_line(e)})"
            ) from e

    def _decode_all(self) -> np.ndarray:
        H, W = self._image_hw
        pixels = np.empty((self.num_steps, H, W, 3), np.uint8)  # (N, H, W, 3)
        bar = progress_bar(self.num_steps, f"decoding {self.camera}", None, unit="frame")
        try:
            if not self._video:
                for i in range(self.num_episodes):
                    s, L = int(self.ep_offset[i]), int(self.ep_len[i])
                    pixels[s : s + L] = self._decode_images(i)
                    bar.update(L)
                return pixels
            files: dict[str, list[int]] = {}
            for i in range(self.num_episodes):
                files.setdefault(self._video_file(i), []).append(i)
            for rel, eps in files.items():
                views = [
                    pixels[self.ep_offset[i] : self.ep_offset[i] + self.ep_len[i]] for i in eps
                ]
                self._decode_video(rel, eps, views, seek=False)
                bar.update(int(sum(self.ep_len[i] for i in eps)))
            return pixels
        finally:
            bar.close()

    def _decode_images(self, i: int) -> np.ndarray:
        """Episode ``i``'s frames from image features (PNG bytes in the data parquet)."""
        from PIL import Image

        H, W = self._image_hw
        s, L = int(self.ep_offset[i]), int(self.ep_len[i])
        out = np.empty((L, H, W, 3), np.uint8)
        for t in range(L):
            item = self._images[s + t]
            try:
                data = item.get("bytes") if isinstance(item, dict) else item
                if data is None and isinstance(item, dict) and item.get("path"):
                    data = (self.path / item["path"]).read_bytes()
                if data is None:
                    raise ValueError("no image bytes")
                with Image.open(io.BytesIO(data)) as img:
                    arr = np.asarray(img.convert("RGB"))
            except (OSError, ValueError, TypeError) as e:
                raise DataError(
                    f"dataset {self.path}: episode {int(self.episode_index[i])} frame {t}: "
                    f"{self.camera!r} is not a readable image ({_one_line(e)})"
                ) from e
            if arr.shape != (H, W, 3):
                raise DataError(
                    f"dataset {self.path}: episode {int(self.episode_index[i])} frame {t}: image "
                    f"{arr.shape} differs from {INFO_PATH}'s {(H, W, 3)}"
                )
            out[t] = arr
        return out

    def _decode_video(self, rel: str, eps: list[int], out: list[np.ndarray], seek: bool) -> None:
        """Decode the frames of lewm episodes ``eps`` (all in video ``rel``) into ``out``.

        Episode i spans [from_timestamp, to_timestamp) of the file; its row t wants the frame at
        from_timestamp + timestamp[t]. Every frame of the span must match exactly one row within
        half a frame period, and every row must get a frame.
        """
        av = self._av
        file = self.path / rel
        if not file.is_file():
            raise DataError(
                f"{self._where(rel)} is missing (video of episodes {_ids(self, eps)}); the "
                "download is incomplete - download the dataset again"
            )
        key = f"videos/{self.camera}/"
        by_start = sorted(range(len(eps)), key=lambda j: self._meta[key + "from_timestamp"][eps[j]])
        eps, out = [eps[j] for j in by_start], [out[j] for j in by_start]
        tol = 0.5 / self.fps
        lo = np.array([self._meta[key + "from_timestamp"][i] for i in eps], np.float64) - tol
        hi = np.array([self._meta[key + "to_timestamp"][i] for i in eps], np.float64) - tol
        queries = [
            lo[j] + tol + self._timestamp[self.ep_offset[i] : self.ep_offset[i] + self.ep_len[i]]
            for j, i in enumerate(eps)
        ]
        filled = [np.zeros(len(q), dtype=bool) for q in queries]
        H, W = self._image_hw
        codec = "unknown"
        try:
            with av.open(str(file)) as container:
                stream = container.streams.video[0]
                codec = stream.codec_context.name
                stream.thread_type = "AUTO"
                if seek and lo[0] > 0:
                    container.seek(
                        int(lo[0] / stream.time_base), stream=stream, backward=True, any_frame=False
                    )
                for frame in container.decode(stream):
                    if frame.pts is None:
                        continue
                    t = float(frame.pts * stream.time_base)
                    if t >= hi[-1]:
                        break
                    j = int(np.searchsorted(lo, t, side="right")) - 1
                    if j < 0 or t >= hi[j]:
                        continue  # a frame of an episode that is not read here
                    q = queries[j]
                    k = int(np.clip(np.searchsorted(q, t), 1, len(q) - 1)) if len(q) > 1 else 0
                    if len(q) > 1 and abs(q[k - 1] - t) <= abs(q[k] - t):
                        k -= 1
                    e = int(self.episode_index[eps[j]])
                    if abs(q[k] - t) >= tol or filled[j][k]:
                        raise DataError(
                            f"{self._where(rel)}: episode {e} has a video frame at {t:.4f}s that "
                            f"matches no data row (nearest: frame {k} at {q[k]:.4f}s); the video "
                            "holds more frames than the episode, or is out of sync with the data"
                        )
                    img = frame.to_ndarray(format="rgb24")  # (h, w, 3)
                    if img.shape != (H, W, 3):
                        raise DataError(
                            f"{self._where(rel)}: frames are {img.shape[1]}x{img.shape[0]}, "
                            f"{INFO_PATH} declares {self.camera!r} as {W}x{H}"
                        )
                    out[j][k] = img
                    filled[j][k] = True
        except DataError:
            raise
        except (av.FFmpegError, OSError, ValueError, IndexError) as e:
            raise DataError(
                f"{self._where(rel)} cannot be decoded (codec {codec}, {_one_line(e)}); the file "
                "may be truncated (download it again), or this PyAV build lacks the decoder"
            ) from e
        for j, i in enumerate(eps):
            if not filled[j].all():
                k = int(np.flatnonzero(~filled[j])[0])
                raise DataError(
                    f"{self._where(rel)}: episode {int(self.episode_index[i])} has no video frame "
                    f"for frame {k} at {queries[j][k]:.4f}s ({int((~filled[j]).sum())} of "
                    f"{len(filled[j])} frames missing): the video is shorter than the episode or "
                    "out of sync with the data"
                )

    def _episode_pixels(self, i: int) -> np.ndarray:
        """Episode ``i``'s frames (L, H, W, 3), decoded on first use (in_memory=False)."""
        if "pixels" in self._cache:
            s = int(self.ep_offset[i])
            return self._cache["pixels"][s : s + int(self.ep_len[i])]
        if i in self._lazy:
            self._lazy.move_to_end(i)
            return self._lazy[i]
        if self._video:
            H, W = self._image_hw
            frames = np.empty((int(self.ep_len[i]), H, W, 3), np.uint8)
            self._decode_video(self._video_file(i), [i], [frames], seek=True)
        else:
            frames = self._decode_images(i)
        self._lazy[i] = frames
        while len(self._lazy) > 1 and sum(v.nbytes for v in self._lazy.values()) > LAZY_CACHE_BYTES:
            self._lazy.popitem(last=False)
        return frames

    # -- accessors (EpisodeDataset's interface) ------------------------------------------------
    @property
    def num_episodes(self) -> int:
        return len(self.ep_len)

    @property
    def num_steps(self) -> int:
        return int(self.ep_len.sum())

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return (*self._image_hw, 3)

    @property
    def action_dim(self) -> int:
        return int(self._cache["action"].shape[1])

    def has(self, column: str) -> bool:
        return column in self.columns

    def column(self, name: str) -> np.ndarray | _LazyPixels:
        """The whole column (an array; pixels of a dataset not in memory: a lazy view)."""
        if name not in self.columns:
            raise DataError(
                f"dataset {self.path} has no column {name!r}; columns: {sorted(self.columns)}"
            )
        if name == "pixels" and "pixels" not in self._cache:
            return _LazyPixels(self)
        return self._cache[name]

    def rows(self, name: str, rows: np.ndarray) -> np.ndarray:
        """Gather rows (any shape of int indices) of a column."""
        col = self.column(name)
        rows = np.asarray(rows)
        if isinstance(col, np.ndarray):
            return col[rows]
        flat = rows.reshape(-1).astype(np.int64)
        flat = np.where(flat < 0, flat + self.num_steps, flat)
        if flat.size and (flat.min() < 0 or flat.max() >= self.num_steps):
            raise IndexError(f"row index out of range [0, {self.num_steps})")
        out = np.empty((len(flat), *self.image_shape), np.uint8)
        eps = np.searchsorted(self.ep_offset, flat, side="right") - 1
        for i in np.unique(eps):
            sel = eps == i
            out[sel] = self._episode_pixels(int(i))[flat[sel] - self.ep_offset[i]]
        return out.reshape(*rows.shape, *self.image_shape)  # (*rows.shape, H, W, 3)

    def episode(self, i: int) -> dict[str, np.ndarray]:
        """All columns of episode ``i`` (the i-th by LeRobot's episode_index)."""
        if not 0 <= i < self.num_episodes:
            raise IndexError(f"episode {i} out of range [0, {self.num_episodes})")
        s, L = int(self.ep_offset[i]), int(self.ep_len[i])
        out = {name: self._cache[name][s : s + L] for name in self.columns if name != "pixels"}
        out["pixels"] = self._episode_pixels(i)
        return out

    @property
    def nbytes(self) -> int:
        """Bytes of the columns once every frame is decoded into memory."""
        frames = self.num_steps * int(np.prod(self.image_shape))
        return frames + sum(v.nbytes for k, v in self._cache.items() if k != "pixels")

    def to_memory(self) -> None:
        """Decode every frame into one array (random clip reads then cost microseconds)."""
        if "pixels" not in self._cache:
            self._cache["pixels"] = self._decode_all()
            self._images = None
            self._lazy.clear()
        self.in_memory = True

    def __reduce__(self) -> tuple[Any, ...]:
        # a worker process reads the folder again (decoders and modules do not cross processes)
        return (_reopen, (str(self.path), self._options, self.in_memory))

    def close(self) -> None:
        """Drop the decoded frames (no file stays open between reads)."""
        self._cache.pop("pixels", None)
        self._lazy.clear()

    def __repr__(self) -> str:
        return (
            f"LeRobotDataset({str(self.path)!r}, camera={self.camera!r}, "
            f"episodes={self.num_episodes}, steps={self.num_steps}, image={self.image_shape}, "
            f"action_dim={self.action_dim}, columns={sorted(self.columns)})"
        )


def _reopen(path: str, options: dict[str, Any], in_memory: bool) -> LeRobotDataset:
    return LeRobotDataset(path, in_memory=in_memory, **options)


class _LazyPixels:
    """``column("pixels")`` of a dataset not held in memory: indexable like an array."""

    def __init__(self, ds: LeRobotDataset) -> None:
        self._ds = ds
        self.shape = (ds.num_steps, *ds.image_shape)
        self.dtype = np.dtype(np.uint8)
        self.ndim = 4

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, key) -> np.ndarray:
        rest: tuple = ()
        if isinstance(key, tuple):
            key, rest = key[0], key[1:]
        idx = np.arange(self.shape[0])[key]
        out = self._ds.rows("pixels", idx)
        return out[rest] if idx.ndim == 0 else out[(slice(None), *rest)]

    def __array__(self, dtype=None, copy=None) -> np.ndarray:
        out = self[:]
        return out if dtype is None else out.astype(dtype)


def _ids(ds: LeRobotDataset, lewm_ids) -> str:
    ids = [int(ds.episode_index[i]) for i in lewm_ids]
    return ", ".join(map(str, ids[:5])) + (", ..." if len(ids) > 5 else "")
