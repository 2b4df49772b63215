"""LeRobot v3.0 folders read as episode datasets (lewm.data.lerobot, lewm.data.open)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import numpy as np
import pytest

pytest.importorskip("pyarrow")
pytest.importorskip("av")

from lerobot_fixture import CAMERAS, render, square_position, write_lerobot_dataset  # noqa: E402

from lewm.data.clips import ClipSampler  # noqa: E402
from lewm.data.hdf5 import DataError, EpisodeDataset  # noqa: E402
from lewm.data.lerobot import LeRobotDataset  # noqa: E402
from lewm.data.normalize import Normalizer  # noqa: E402
from lewm.data.open import is_lerobot, open_dataset  # noqa: E402

LENGTHS = (20, 23, 18)


@pytest.fixture(scope="module")
def lerobot(tmp_path_factory):
    """Three episodes, two video cameras and one image camera; written once, read-only."""
    root = tmp_path_factory.mktemp("lerobot") / "square_bot"
    return write_lerobot_dataset(root, lengths=LENGTHS, image_cameras=("observation.images.png",))


@pytest.fixture
def copy(lerobot, tmp_path):
    """A private copy of the fixture dataset, for tests that damage it."""
    return shutil.copytree(lerobot["root"], tmp_path / "copy")


def _positions(pixels: np.ndarray) -> np.ndarray:
    """(..., H, W, 3) frames -> (..., 2) square positions."""
    flat = pixels.reshape(-1, *pixels.shape[-3:])
    return np.array([square_position(p) for p in flat]).reshape(*pixels.shape[:-3], 2)


def test_episode_index_and_columns(lerobot):
    ds = LeRobotDataset(lerobot["root"])
    assert ds.num_episodes == 3 and ds.num_steps == sum(LENGTHS)
    assert ds.ep_len.tolist() == list(LENGTHS) and ds.ep_offset.tolist() == [0, 20, 43]
    assert ds.ep_len.dtype == ds.ep_offset.dtype == np.int64
    assert ds.episode_index.tolist() == [0, 1, 2]
    assert ds.image_shape == (32, 32, 3) and ds.action_dim == 2
    assert sorted(ds.columns) == ["action", "pixels", "proprio", "state"]
    assert ds.has("state") and not ds.has("goal_state")
    assert ds.camera == CAMERAS[0]  # the first video feature
    assert ds.attrs["env"] == "square_bot" and ds.attrs["fps"] == 10
    assert ds.tasks == {0: "push the square around", 1: "wander"}
    assert ds.stats["action"]["count"] == [sum(LENGTHS)]
    px = ds.column("pixels")
    assert px.dtype == np.uint8 and px.shape == (61, 32, 32, 3)
    assert ds.column("action").dtype == np.float32
    with pytest.raises(DataError, match="no column 'goal_state'"):
        ds.column("goal_state")


def test_row_t_holds_frame_t_state_t_and_the_action_taken_from_it(lerobot):
    ds = LeRobotDataset(lerobot["root"])
    for i in range(ds.num_episodes):
        ep = ds.episode(i)
        np.testing.assert_array_equal(ep["state"], lerobot["states"][i])
        np.testing.assert_array_equal(ep["proprio"], ep["state"])
        np.testing.assert_array_equal(ep["action"], lerobot["actions"][i])
        # the decoded (AV1, lossy) frame of row t shows the state of row t
        np.testing.assert_allclose(_positions(ep["pixels"]), ep["state"], atol=0.5)
        # the action of row t moves frame t to frame t+1
        np.testing.assert_array_equal(ep["action"][:-1], np.diff(ep["state"], axis=0))
        assert np.isfinite(ep["action"][-1]).all()  # LeRobot's last action, kept as recorded
    rows = np.array([[0, 19], [20, 60]])
    assert ds.rows("pixels", rows).shape == (2, 2, 32, 32, 3)
    np.testing.assert_allclose(
        _positions(ds.rows("pixels", rows)), ds.rows("state", rows), atol=0.5
    )


@pytest.mark.parametrize("camera", ["observation.images.side", "observation.images.png"])
def test_camera_choice(lerobot, camera):
    ds = LeRobotDataset(lerobot["root"], camera=camera)
    assert ds.camera == camera
    state = ds.column("state")
    if camera == "observation.images.side":  # the second camera draws the square at (y, x)
        np.testing.assert_allclose(_positions(ds.column("pixels")), state[:, ::-1], atol=0.5)
    else:  # image features are PNG: lossless
        expected = np.stack([render(s, camera=0) for s in state])
        np.testing.assert_array_equal(ds.column("pixels"), expected)


def test_pyav_decodes_av1():
    """LeRobot encodes AV1 by default (libsvtav1); PyAV's wheels decode it with dav1d."""
    import av

    decoders = []
    for name in ("libdav1d", "libaom-av1"):
        try:
            decoders.append(av.codec.Codec(name, "r").name)
        except Exception:  # not in this build
            pass
    assert decoders, "this PyAV build cannot decode AV1, LeRobot's default video codec"


@pytest.mark.parametrize("codec", ["libx264", "libx265", "mpeg4"])
def test_other_codecs(tmp_path, codec):
    import av

    try:
        av.codec.Codec(codec, "w")
    except Exception:
        pytest.skip(f"this PyAV build cannot encode {codec}")
    info = write_lerobot_dataset(tmp_path / "d", lengths=(12, 9), codec=codec)
    ds = LeRobotDataset(info["root"])
    np.testing.assert_allclose(_positions(ds.column("pixels")), ds.column("state"), atol=0.5)


def test_lazy_decoding_matches_in_memory(lerobot):
    full = LeRobotDataset(lerobot["root"])
    lazy = LeRobotDataset(lerobot["root"], in_memory=False)
    idx = np.random.default_rng(0).integers(0, full.num_steps, (4, 5))
    np.testing.assert_array_equal(lazy.rows("pixels", idx), full.rows("pixels", idx))
    np.testing.assert_array_equal(lazy.column("pixels")[18:23], full.column("pixels")[18:23])
    np.testing.assert_array_equal(lazy.column("pixels")[44], full.column("pixels")[44])
    for key in ("pixels", "action", "state"):
        np.testing.assert_array_equal(lazy.episode(2)[key], full.episode(2)[key])
    lazy.close()


def test_many_episodes_per_file_and_many_files(tmp_path):
    info = write_lerobot_dataset(tmp_path / "d", lengths=(12, 15, 11, 9), episodes_per_file=2)
    root = info["root"]
    assert (root / "data/chunk-000/file-001.parquet").is_file()
    assert (root / f"videos/{CAMERAS[1]}/chunk-000/file-001.mp4").is_file()
    assert (root / "meta/episodes/chunk-000/file-001.parquet").is_file()
    ds = LeRobotDataset(root, camera=CAMERAS[1])
    assert ds.ep_len.tolist() == [12, 15, 11, 9]
    np.testing.assert_array_equal(ds.column("state"), np.concatenate(info["states"]))
    np.testing.assert_allclose(
        _positions(ds.column("pixels")), ds.column("state")[:, ::-1], atol=0.5
    )


def test_feature_choice(lerobot):
    ds = LeRobotDataset(lerobot["root"], action_key="observation.state", state_key=None)
    assert ds.columns == ["pixels", "action"] and not ds.has("proprio")
    np.testing.assert_array_equal(ds.column("action"), np.concatenate(lerobot["states"]))


def test_clip_sampler_on_a_lerobot_dataset(lerobot):
    ds = LeRobotDataset(lerobot["root"])
    norm = Normalizer({"action": (np.zeros(2), np.ones(2))})
    clips = ClipSampler(ds, np.arange(3), history=2, frameskip=2, normalizer=norm)
    assert len(clips) == sum(L - 4 for L in LENGTHS)
    px, blocks = clips.gather(np.arange(len(clips)))
    assert px.shape == (len(clips), 3, 32, 32, 3) and blocks.shape == (len(clips), 2, 4)
    starts = clips.starts
    frames = _positions(px.numpy())  # (B, 3, 2) states seen in the clip's frames
    np.testing.assert_allclose(frames, ds.rows("state", starts[:, None] + [0, 2, 4]), atol=0.5)
    # block k holds the actions taken from frame k: together they move frame k to frame k+1
    moved = blocks.numpy().reshape(len(clips), 2, 2, 2).sum(2)  # (B, N, A)
    np.testing.assert_allclose(moved, np.diff(np.round(frames), axis=1))


def test_open_dataset_dispatch(lerobot, toy_h5, tmp_path):
    assert is_lerobot(lerobot["root"]) and not is_lerobot(toy_h5)
    ds = open_dataset(lerobot["root"], camera=CAMERAS[1], in_memory=False)
    assert isinstance(ds, LeRobotDataset) and ds.camera == CAMERAS[1] and not ds.in_memory
    assert isinstance(open_dataset(lerobot["root"], state_key=None), LeRobotDataset)
    assert isinstance(open_dataset(toy_h5), EpisodeDataset)
    with pytest.raises(DataError, match="HDF5 file.*camera, state_key apply only to LeRobot"):
        open_dataset(toy_h5, camera="top", state_key="s")
    with pytest.raises(DataError, match="does not exist"):
        open_dataset(tmp_path / "nothing")
    with pytest.raises(DataError, match="without meta/info.json"):
        open_dataset(tmp_path)


def test_missing_meta(copy):
    (copy / "meta/info.json").unlink()
    assert not is_lerobot(copy)
    with pytest.raises(DataError, match="has no meta/info.json"):
        LeRobotDataset(copy)


@pytest.mark.parametrize(
    "edit, match",
    [
        ({"codebase_version": "v2.1"}, "'v2.1' is not supported.*v3.0.*convert_dataset_v21_to_v30"),
        ({"codebase_version": "v4.0"}, "'v4.0' is not supported"),
        ({"fps": 0}, "fps must be a positive number"),
    ],
)
def test_bad_info(copy, edit, match):
    path = copy / "meta/info.json"
    path.write_text(json.dumps({**json.loads(path.read_text()), **edit}))
    with pytest.raises(DataError, match=match):
        LeRobotDataset(copy)


def test_unreadable_info(copy):
    (copy / "meta/info.json").write_text("{ not json")
    with pytest.raises(DataError, match="info.json is not readable JSON"):
        LeRobotDataset(copy)


def test_bad_feature_choices(lerobot):
    with pytest.raises(DataError, match=r"no camera 'wrist'; its cameras: \['observation.images"):
        LeRobotDataset(lerobot["root"], camera="wrist")
    with pytest.raises(DataError, match="no feature 'observation.effort'.*numeric features"):
        LeRobotDataset(lerobot["root"], state_key="observation.effort")
    with pytest.raises(DataError, match="no feature 'act'"):
        LeRobotDataset(lerobot["root"], action_key="act")
    with pytest.raises(DataError, match="'observation.images.top' .*must be a numeric vector"):
        LeRobotDataset(lerobot["root"], action_key="observation.images.top")


@pytest.mark.parametrize("damage", ["garbage", "truncated", "missing"])
def test_damaged_data_parquet(copy, damage):
    path = copy / "data/chunk-000/file-000.parquet"
    if damage == "garbage":
        path.write_bytes(b"this is not parquet")
    elif damage == "truncated":
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    else:
        path.unlink()
    what = "is missing" if damage == "missing" else "is not a readable parquet file"
    with pytest.raises(DataError, match=f"data/chunk-000/file-000.parquet {what}"):
        LeRobotDataset(copy)


def test_damaged_episode_index(copy):
    path = next((copy / "meta/episodes").glob("*/*.parquet"))
    path.write_bytes(b"PAR1 nonsense")
    with pytest.raises(DataError, match="meta/episodes/chunk-000/file-000.parquet is not"):
        LeRobotDataset(copy)
    path.unlink()
    with pytest.raises(DataError, match="holds no episode index"):
        LeRobotDataset(copy)


def test_missing_video(copy):
    (copy / f"videos/{CAMERAS[0]}/chunk-000/file-000.mp4").unlink()
    with pytest.raises(DataError, match="file-000.mp4 is missing"):
        LeRobotDataset(copy)
    LeRobotDataset(copy, camera=CAMERAS[1])  # the other camera is intact


@pytest.mark.parametrize("damage", ["garbage", "truncated"])
def test_damaged_video(copy, damage):
    path = copy / f"videos/{CAMERAS[0]}/chunk-000/file-000.mp4"
    data = path.read_bytes()
    path.write_bytes(b"not a video" * 50 if damage == "garbage" else data[: len(data) // 2])
    with pytest.raises(DataError, match="file-000.mp4(: episode| cannot be decoded)"):
        LeRobotDataset(copy)


@pytest.mark.parametrize("in_memory", [True, False])
def test_video_shorter_than_the_episode(tmp_path, in_memory):
    info = write_lerobot_dataset(tmp_path / "d", lengths=LENGTHS, short_video={1: 3})
    msg = r"episode 1 has no video frame for frame 20 .*3 of 23 frames missing.*shorter"
    if in_memory:
        with pytest.raises(DataError, match=msg):
            LeRobotDataset(info["root"])
        return
    ds = LeRobotDataset(info["root"], in_memory=False)  # opens; reading episode 1 fails
    assert ds.rows("pixels", np.array([0, 50])).shape == (2, 32, 32, 3)
    with pytest.raises(DataError, match=msg):
        ds.rows("pixels", np.array([25]))


def test_video_longer_than_the_episode(tmp_path):
    info = write_lerobot_dataset(tmp_path / "d", lengths=LENGTHS, long_video={2: 2})
    with pytest.raises(DataError, match="episode 2 has a video frame at .* matches no data row"):
        LeRobotDataset(info["root"])


def test_data_rows_missing_for_an_episode(copy):
    import pyarrow.parquet as pq

    path = copy / "data/chunk-000/file-000.parquet"
    table = pq.read_table(path)
    pq.write_table(table.slice(0, 60), path)  # the last frame of episode 2 is gone
    with pytest.raises(DataError, match="episode 2 has 17 rows, meta/episodes says 18 frames"):
        LeRobotDataset(copy)


def test_lewm_data_imports_without_pyarrow_and_av(lerobot):
    """lewm.data (and open_dataset) import without the extra; opening a folder names it."""
    code = f"""
import sys
class Block:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("pyarrow", "av"):
            raise ImportError("blocked " + name)
sys.meta_path.insert(0, Block())
from lewm.data.open import open_dataset
from lewm.data.lerobot import LeRobotDataset
try:
    open_dataset({str(lerobot["root"])!r})
except ImportError as e:
    print(e)
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "needs pyarrow" in out.stdout and "lewm[lerobot]" in out.stdout
