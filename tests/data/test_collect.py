import numpy as np
import pytest

from lewm.data.collect import collect_tworoom
from lewm.data.hdf5 import EpisodeDataset
from lewm.envs.tworoom import SUCCESS_DIST, render_batch, step_dynamics


def test_collection_layout_and_consistency(tmp_path):
    stats = collect_tworoom(
        tmp_path / "tr.h5", 12, resolution=32, seed=1, num_envs=5, progress=False
    )
    ds = EpisodeDataset(tmp_path / "tr.h5")
    assert ds.num_episodes == stats["episodes"] == 12
    assert {"pixels", "action", "state", "proprio", "goal_state"} <= set(ds.columns)
    assert ds.image_shape == (32, 32, 3) and ds.attrs["env"] == "tworoom"
    for i in range(ds.num_episodes):
        ep = ds.episode(i)
        assert np.isnan(ep["action"][-1]).all() and np.isfinite(ep["action"][:-1]).all()
        # replaying the recorded actions reproduces the recorded states and frames
        replay = step_dynamics(ep["state"][:-1], ep["action"][:-1])
        np.testing.assert_allclose(replay, ep["state"][1:], atol=1e-4)
        np.testing.assert_array_equal(render_batch(ep["state"], 32), ep["pixels"])
        d = np.linalg.norm(ep["state"] - ep["goal_state"], axis=1)
        assert (d[:-1] >= SUCCESS_DIST).all()  # episodes end at the first success
        assert d[-1] < SUCCESS_DIST or len(d) == 101


def test_collection_is_deterministic_and_refuses_overwrite(tmp_path):
    collect_tworoom(tmp_path / "a.h5", 6, resolution=16, seed=3, progress=False)
    collect_tworoom(tmp_path / "b.h5", 6, resolution=16, seed=3, progress=False)
    collect_tworoom(tmp_path / "c.h5", 6, resolution=16, seed=4, progress=False)
    a, b, c = (EpisodeDataset(tmp_path / f"{x}.h5") for x in "abc")
    for col in a.columns:
        np.testing.assert_array_equal(a.column(col), b.column(col))
    assert not np.array_equal(a.column("state")[:5], c.column("state")[:5])
    before = (tmp_path / "a.h5").read_bytes()
    with pytest.raises(FileExistsError, match="--overwrite"):
        collect_tworoom(tmp_path / "a.h5", 2, progress=False)
    assert (tmp_path / "a.h5").read_bytes() == before
