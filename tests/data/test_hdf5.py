import h5py
import numpy as np
import pytest

from lewm.data.clips import ClipSampler, EpochBatches, split_episodes
from lewm.data.hdf5 import DataError, EpisodeDataset, EpisodeWriter
from lewm.data.normalize import Normalizer


def _episode(L=12, res=8, A=2, seed=0):
    rng = np.random.default_rng(seed)
    act = rng.normal(size=(L, A)).astype(np.float32)
    act[-1] = np.nan
    return {
        "pixels": rng.integers(0, 255, (L, res, res, 3), dtype=np.uint8),
        "action": act,
        "state": rng.normal(size=(L, 2)).astype(np.float32),
    }


def _write(path, n=3, **kw):
    with EpisodeWriter(path, **kw) as w:
        for i in range(n):
            w.add_episode(**_episode(L=10 + i, seed=i))
    return path


def test_roundtrip_layout(tmp_path):
    path = _write(tmp_path / "d.h5")
    with h5py.File(path) as f:
        assert list(f["ep_len"][:]) == [10, 11, 12]
        assert list(f["ep_offset"][:]) == [0, 10, 21]
        assert f["pixels"].shape == (33, 8, 8, 3) and f["pixels"].chunks == (1, 8, 8, 3)
        assert f["pixels"].compression == "lzf"
    ds = EpisodeDataset(path)
    assert ds.num_episodes == 3 and ds.action_dim == 2 and ds.image_shape == (8, 8, 3)
    ep = ds.episode(1)
    np.testing.assert_array_equal(ep["pixels"], _episode(L=11, seed=1)["pixels"])
    assert np.isnan(ep["action"][-1]).all()
    ondisk = EpisodeDataset(path, in_memory=False)
    rows = np.array([[0, 5], [30, 2]])
    np.testing.assert_array_equal(ondisk.rows("pixels", rows), ds.rows("pixels", rows))


def test_clip_sampler_strides_frames_and_blocks_actions(tmp_path):
    path = _write(tmp_path / "d.h5")
    ds = EpisodeDataset(path)
    norm = Normalizer({"action": (np.zeros(2), np.ones(2))})
    clips = ClipSampler(ds, np.array([2]), history=2, frameskip=3, normalizer=norm)
    assert len(clips) == 12 - 6  # starts 0..5 keep frame start+6 inside the 12-step episode
    px, blocks = clips.gather(np.array([1]))
    ep = ds.episode(2)
    np.testing.assert_array_equal(px[0].numpy(), ep["pixels"][[1, 4, 7]])
    np.testing.assert_allclose(blocks[0].numpy(), ep["action"][1:7].reshape(2, 6))
    assert np.isfinite(blocks.numpy()).all()


def test_splits_are_by_episode_and_batches_deterministic():
    tr, va = split_episodes(20, 0.1, seed=0)
    assert len(va) == 2 and not set(tr) & set(va) and len(tr) + len(va) == 20
    a, b = EpochBatches(100, 8, seed=1), EpochBatches(100, 8, seed=1)
    assert np.array_equal(a(37), b(37))
    assert not np.array_equal(a(0), a(12))  # new epoch, new permutation


def test_writer_refuses_overwrite_and_keeps_old_file(tmp_path):
    path = _write(tmp_path / "d.h5")
    before = path.read_bytes()
    with pytest.raises(FileExistsError, match="--overwrite"):
        EpisodeWriter(path)
    with pytest.raises(RuntimeError):
        with EpisodeWriter(path, overwrite=True) as w:
            w.add_episode(**_episode())
            raise RuntimeError("crash mid-write")
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["d.h5"]  # no temp file left behind


@pytest.mark.parametrize(
    "column, value, match",
    [
        ("pixels", np.zeros((10, 8, 8, 3), np.float32), "uint8"),
        ("pixels", np.zeros((10, 8, 8, 1), np.uint8), "uint8"),
        ("action", np.zeros((10,), np.float32), "action_dim"),
    ],
)
def test_writer_rejects_bad_columns(tmp_path, column, value, match):
    ep = _episode(L=10)
    ep[column] = value
    with pytest.raises(DataError, match=match):
        with EpisodeWriter(tmp_path / "x.h5") as w:
            w.add_episode(**ep)
    assert not (tmp_path / "x.h5").exists()


def _raw_file(path, **cols):
    with h5py.File(path, "w") as f:
        for k, v in cols.items():
            f[k] = v
    return path


def test_reader_errors(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        EpisodeDataset(tmp_path / "missing.h5")
    (tmp_path / "junk.h5").write_bytes(b"not an hdf5 file at all" * 10)
    with pytest.raises(DataError, match="not a readable HDF5"):
        EpisodeDataset(tmp_path / "junk.h5")
    good = _write(tmp_path / "good.h5")
    data = good.read_bytes()
    (tmp_path / "trunc.h5").write_bytes(data[: len(data) // 2])
    with pytest.raises(DataError, match="truncated or corrupt|not a readable"):
        EpisodeDataset(tmp_path / "trunc.h5")
    ep = _episode(L=10)
    idx = {"ep_len": np.array([10]), "ep_offset": np.array([0])}
    with pytest.raises(DataError, match=r"lacks column\(s\) \['action'\]"):
        EpisodeDataset(_raw_file(tmp_path / "noact.h5", pixels=ep["pixels"], **idx))
    with pytest.raises(DataError, match="uint8"):
        EpisodeDataset(
            _raw_file(
                tmp_path / "f.h5",
                pixels=ep["pixels"].astype(np.float32),
                action=ep["action"],
                **idx,
            )
        )
    with pytest.raises(DataError, match=r"\(N, H, W, 3\)"):
        EpisodeDataset(
            _raw_file(tmp_path / "g.h5", pixels=ep["pixels"][..., :1], action=ep["action"], **idx)
        )
    bad = ep["action"].copy()
    bad[3, 1] = np.nan
    with pytest.raises(DataError, match="non-finite action at row 3"):
        EpisodeDataset(_raw_file(tmp_path / "nan.h5", pixels=ep["pixels"], action=bad, **idx))
    with pytest.raises(DataError, match="do not tile"):
        EpisodeDataset(
            _raw_file(
                tmp_path / "idx.h5",
                pixels=ep["pixels"],
                action=ep["action"],
                ep_len=np.array([7]),
                ep_offset=np.array([0]),
            )
        )


def test_normalizer_roundtrip_ignores_nan_rows():
    x = np.array([[1.0, 5.0], [3.0, 5.0], [np.nan, np.nan]], np.float32)
    n = Normalizer.fit({"action": x})
    np.testing.assert_allclose(n.stats["action"][0], [2.0, 5.0])
    np.testing.assert_allclose(n.stats["action"][1], [1.0, 1.0])  # constant dim: std -> 1
    y = n.normalize("action", x[:2])
    np.testing.assert_allclose(n.denormalize("action", y), x[:2], rtol=1e-6)
    assert Normalizer.from_dict(n.to_dict()).to_dict() == n.to_dict()


def test_writer_stores_attrs_and_refuses_use_after_close(tmp_path):
    path = tmp_path / "d.h5"
    w = EpisodeWriter(path, attrs={"env": "toy", "seed": 3})  # attrs are stored when it opens
    w.add_episode(**_episode())
    w.close()
    w.close()  # a second close is a no-op
    with pytest.raises(DataError, match="closed"):
        w.add_episode(**_episode())
    ds = EpisodeDataset(path)
    assert ds.attrs == {"env": "toy", "seed": 3} and ds.num_episodes == 1
    assert [p.name for p in tmp_path.iterdir()] == ["d.h5"]


def test_writer_with_no_episodes_leaves_nothing(tmp_path):
    with pytest.raises(DataError, match="no episodes"):
        with EpisodeWriter(tmp_path / "d.h5"):
            pass
    assert list(tmp_path.iterdir()) == []
