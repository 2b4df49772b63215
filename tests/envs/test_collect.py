import time

import h5py
import numpy as np
import pytest

from lewm.data.hdf5 import EpisodeDataset
from lewm.envs.tworoom import SUCCESS_DIST, collect_tworoom, render_batch, step_dynamics


def test_collection_layout_and_consistency(tmp_path):
    stats = collect_tworoom(
        tmp_path / "tr.h5", 12, resolution=32, seed=1, num_envs=5, max_steps=60, progress=False
    )
    ds = EpisodeDataset(tmp_path / "tr.h5")
    assert ds.num_episodes == stats["episodes"] == 12 and ds.num_steps == stats["steps"]
    assert set(ds.columns) == {"pixels", "action", "state", "proprio", "goal_state"}
    assert ds.image_shape == (32, 32, 3) and ds.action_dim == 2
    assert ds.attrs["env"] == "tworoom" and ds.attrs["resolution"] == 32
    assert ds.attrs["seed"] == 1 and ds.attrs["max_steps"] == 60 and ds.attrs["noise_std"] == 2.0
    np.testing.assert_array_equal(ds.ep_offset, np.concatenate([[0], np.cumsum(ds.ep_len)[:-1]]))
    assert stats["min_length"] == ds.ep_len.min() and stats["max_length"] == ds.ep_len.max()
    assert ds.ep_len.max() <= 61 and ds.ep_len.min() >= 2
    ends = []
    for i in range(ds.num_episodes):
        ep = ds.episode(i)
        assert ep["action"].dtype == np.float32 and ep["state"].dtype == np.float32
        assert np.isnan(ep["action"][-1]).all() and np.isfinite(ep["action"][:-1]).all()
        assert np.abs(ep["action"][:-1]).max() <= 1.0
        # replaying the recorded actions reproduces the recorded states and frames exactly
        replay = step_dynamics(ep["state"][:-1], ep["action"][:-1])
        np.testing.assert_array_equal(replay, ep["state"][1:])
        np.testing.assert_array_equal(render_batch(ep["state"], 32), ep["pixels"])
        np.testing.assert_array_equal(ep["proprio"], ep["state"])
        assert (ep["goal_state"] == ep["goal_state"][0]).all()
        d = np.linalg.norm(ep["state"] - ep["goal_state"], axis=1)
        assert (d[:-1] >= SUCCESS_DIST).all()  # episodes end at the first success ...
        ends.append(d[-1] < SUCCESS_DIST)
        assert ends[-1] or len(d) == 61  # ... or after max_steps actions
    assert stats["success_fraction"] == pytest.approx(np.mean(ends))


def test_collection_is_deterministic_whatever_the_batching(tmp_path):
    collect_tworoom(tmp_path / "a.h5", 7, resolution=16, seed=3, progress=False)
    collect_tworoom(tmp_path / "b.h5", 7, resolution=16, seed=3, num_envs=3, progress=False)
    collect_tworoom(tmp_path / "c.h5", 7, resolution=16, seed=4, progress=False)
    with h5py.File(tmp_path / "a.h5") as a, h5py.File(tmp_path / "b.h5") as b:
        assert set(a) == set(b)
        for col in a:
            assert a[col][:].tobytes() == b[col][:].tobytes(), col
    # 20 episodes over two workers: blocks of 3 (the last of 2), in whichever worker
    kw = {"resolution": 16, "seed": 3, "max_steps": 30, "progress": False}
    one = collect_tworoom(tmp_path / "d.h5", 20, **kw)
    two = collect_tworoom(tmp_path / "e.h5", 20, workers=2, **kw)
    assert (one["workers"], two["workers"], one["steps"]) == (1, 2, two["steps"])
    with h5py.File(tmp_path / "d.h5") as d, h5py.File(tmp_path / "e.h5") as e:
        assert set(d) == set(e) and dict(d.attrs) == dict(e.attrs)
        for col in d:
            assert d[col][:].tobytes() == e[col][:].tobytes(), col
    a, c = (EpisodeDataset(tmp_path / f"{x}.h5") for x in "ac")
    assert not np.array_equal(a.column("state")[:5], c.column("state")[:5])


def test_collection_refuses_to_overwrite_before_any_work(tmp_path):
    path = tmp_path / "a.h5"
    collect_tworoom(path, 2, resolution=16, progress=False)
    before = path.read_bytes()
    t0 = time.perf_counter()
    with pytest.raises(FileExistsError, match="--overwrite"):
        collect_tworoom(path, 10**7, progress=False)  # would take hours if it started
    assert time.perf_counter() - t0 < 1.0
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.h5"]  # no temp files left
    stats = collect_tworoom(path, 3, resolution=16, seed=5, overwrite=True, progress=False)
    assert stats["episodes"] == EpisodeDataset(path).num_episodes == 3


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"episodes": 0}, "episodes"),
        ({"resolution": 4}, "resolution"),
        ({"max_steps": 0}, "max_steps"),
        ({"noise_std": -1.0}, "noise_std"),
        ({"num_envs": 0}, "num_envs"),
        ({"workers": 0}, "workers"),
        ({"workers": 300}, "workers"),
    ],
)
def test_collection_rejects_bad_arguments(tmp_path, kwargs, match):
    kwargs = {"episodes": 2, **kwargs}
    with pytest.raises(ValueError, match=match):
        collect_tworoom(tmp_path / "x.h5", progress=False, **kwargs)
    assert not (tmp_path / "x.h5").exists()


def test_cli_noise_option_reaches_the_collector(tmp_path, capsys):
    from lewm.cli.main import main
    from lewm.data.hdf5 import EpisodeDataset

    out = tmp_path / "quiet.h5"
    args = ["collect", "tworoom", "--episodes", "2", "--out", str(out), "--no-progress"]
    assert main([*args, "--noise", "0"]) == 0
    assert EpisodeDataset(out).attrs["noise_std"] == 0.0
    capsys.readouterr()
    assert main([*args[:-2], str(tmp_path / "bad.h5"), "--noise", "-1"]) == 2
    assert "argument --noise: must be a finite number in [0" in capsys.readouterr().err
    assert not (tmp_path / "bad.h5").exists()


def test_cli_workers_option_reaches_every_collector_and_is_checked(tmp_path, capsys):
    import json

    from lewm.cli.main import main

    args = ["collect", "tworoom", "--episodes", "3", "--max-steps", "5", "--no-progress"]
    capsys.readouterr()
    assert main([*args, "--out", str(tmp_path / "w.h5"), "--workers", "2"]) == 0
    assert json.loads(capsys.readouterr().out)["workers"] == 2
    for bad, msg in [
        ("0", "must be an integer in [1, 256], got 0"),
        ("257", "must be an integer in [1, 256], got 257"),
        ("1.5", "expected an integer, got '1.5'"),
        ("two", "expected an integer, got 'two'"),
    ]:
        assert main([*args, "--out", str(tmp_path / "bad.h5"), "--workers", bad]) == 2
        assert f"argument --workers: {msg}" in capsys.readouterr().err
    assert not (tmp_path / "bad.h5").exists()


def test_cli_max_steps_defaults_to_the_environments(tmp_path):
    from lewm.cli.main import main

    args = ["collect", "tworoom", "--episodes", "3", "--no-progress", "--noise", "0"]
    assert main([*args, "--out", str(tmp_path / "default.h5")]) == 0
    assert EpisodeDataset(tmp_path / "default.h5").attrs["max_steps"] == 100
    assert main([*args, "--out", str(tmp_path / "short.h5"), "--max-steps", "4"]) == 0
    short = EpisodeDataset(tmp_path / "short.h5")
    assert short.attrs["max_steps"] == 4 and short.ep_len.max() <= 5


def test_cli_explore_option_reaches_the_pusher_and_is_checked(tmp_path, capsys):
    pytest.importorskip("pymunk")
    from lewm.cli.main import main
    from lewm.data.hdf5 import EpisodeDataset

    out = tmp_path / "explore.h5"
    args = ["collect", "pusht", "--episodes", "2", "--out", str(out), "--no-progress"]
    assert main([*args, "--explore", "0.3"]) == 0
    assert EpisodeDataset(out).attrs["explore"] == 0.3
    capsys.readouterr()
    assert main([*args[:-3], "--out", str(tmp_path / "bad.h5"), "--explore", "1.5"]) == 2
    assert "argument --explore: must be a finite number in [0, 1)" in capsys.readouterr().err
    tw = ["collect", "tworoom", "--episodes", "2", "--out", str(tmp_path / "tw.h5")]
    assert main([*tw, "--explore", "0.3"]) == 2
    err = capsys.readouterr().err
    assert "--explore (explore) is not an option of the tworoom collector" in err
    assert "it takes: noise_std, num_envs" in err
    assert not (tmp_path / "bad.h5").exists() and not (tmp_path / "tw.h5").exists()


def test_cli_pusht_target_options_reach_the_pusher_and_are_checked(tmp_path, capsys):
    pytest.importorskip("pymunk")
    from lewm.cli.main import main
    from lewm.data.hdf5 import EpisodeDataset

    args = ["collect", "pusht", "--episodes", "2", "--max-steps", "30", "--no-progress"]
    assert main([*args, "--out", str(tmp_path / "d.h5")]) == 0
    assert main([*args, "--out", str(tmp_path / "g.h5"), "--targets", "goal"]) == 0
    assert main([*args, "--out", str(tmp_path / "t.h5"), "--max-turn", "180"]) == 0
    d, g, t = (EpisodeDataset(tmp_path / f"{n}.h5") for n in "dgt")
    assert (d.attrs["targets"], d.attrs["max_turn"]) == ("random", 90.0)
    assert (g.attrs["targets"], t.attrs["max_turn"]) == ("goal", 180.0)
    # the same seed, another first target: other actions
    assert not np.array_equal(d.rows("action", np.arange(30)), g.rows("action", np.arange(30)))
    capsys.readouterr()
    assert main([*args, "--out", str(tmp_path / "bad.h5"), "--max-turn", "200"]) == 2
    assert "argument --max-turn: must be a finite number in [0, 180]" in capsys.readouterr().err
    assert main([*args, "--out", str(tmp_path / "bad.h5"), "--targets", "corner"]) == 2
    assert "invalid choice: 'corner'" in capsys.readouterr().err
    tw = ["collect", "tworoom", "--episodes", "2", "--out", str(tmp_path / "tw.h5")]
    assert main([*tw, "--targets", "goal"]) == 2
    assert "--targets (targets) is not an option of the tworoom collector" in (
        capsys.readouterr().err
    )
    assert not (tmp_path / "bad.h5").exists() and not (tmp_path / "tw.h5").exists()
