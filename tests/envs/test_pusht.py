import importlib.util
import sys

import numpy as np
import pytest

from lewm.envs.pusht import (
    AGENT_COLOUR,
    AGENT_HI,
    BLOCK_COLOUR,
    SUCCESS_ANGLE,
    motion_stats,
    pusht_success,
    render_batch,
    render_state,
)

needs_pymunk = pytest.mark.skipif(
    importlib.util.find_spec("pymunk") is None, reason="Push-T physics needs pymunk"
)

# a state with the agent left of the bar's end, at rest, block upright (stem pointing down)
S0 = np.array([120.0, 230.0, 256.0, 256.0, 0.0, 0.0, 0.0])


def _goal(state, d_agent=(0.0, 0.0), d_block=(0.0, 0.0), d_angle=0.0):
    g = np.asarray(state, float)[:5].copy()
    g[:2] += d_agent
    g[2:4] += d_block
    g[4] += d_angle
    return g


@pytest.mark.parametrize(
    "d_agent, d_block, d_angle, ok",
    [
        ((0, 0), (0, 0), 0.0, True),
        ((14, 0), (0, 14), 0.0, True),  # joint 4-d error 19.8
        ((15, 0), (0, 15), 0.0, False),  # joint 21.2, though each part is < 20
        ((0, 0), (0, 0), SUCCESS_ANGLE - 0.01, True),
        ((0, 0), (0, 0), -(SUCCESS_ANGLE + 0.01), False),
        ((0, 0), (0, 0), 2 * np.pi - 0.1, True),  # the T's symmetry is a full turn
        ((0, 0), (0, 0), np.pi, False),  # ... so a half turn is a different pose
    ],
)
def test_success_threshold_and_symmetry(d_agent, d_block, d_angle, ok):
    s = np.array([100.0, 100.0, 250.0, 250.0, 0.05, 3.0, 4.0])
    assert bool(pusht_success(s, _goal(s, d_agent, d_block, d_angle))[0]) is ok
    # a square-like symmetry (pi/2) makes a quarter turn count as the same pose
    assert pusht_success(s, _goal(s, d_angle=np.pi / 2), symmetry=np.pi / 2)[0]


def test_rendering_needs_no_pymunk_and_follows_the_state(monkeypatch):
    monkeypatch.setitem(sys.modules, "pymunk", None)  # rendering is pure numpy + OpenCV
    img = render_state(S0, 64)
    assert img.shape == (64, 64, 3) and img.dtype == np.uint8
    px = 512 / 64
    r, c = int(S0[1] / px), int(S0[0] / px)
    np.testing.assert_allclose(img[r, c], AGENT_COLOUR, atol=30)  # agent centre is blue
    r, c = int((S0[3] - 25) / px), int(S0[2] / px)
    np.testing.assert_allclose(img[r, c], BLOCK_COLOUR, atol=10)  # the bar, above the CoG
    assert img[r + 8, c + 6].mean() > 230  # beside the stem: background
    turned = render_state(S0 + np.array([0, 0, 0, 0, np.pi, 0, 0]), 64)
    assert not np.array_equal(img, turned)
    assert render_batch(np.stack([S0, S0]), 224).shape == (2, 224, 224, 3)


def test_missing_pymunk_gives_a_clear_error(monkeypatch):
    from lewm.envs.pusht import PushTEnv

    monkeypatch.setitem(sys.modules, "pymunk", None)
    with pytest.raises(ImportError, match=r"Push-T needs pymunk: pip install 'lewm\[pusht\]'"):
        PushTEnv(resolution=64)
    monkeypatch.setitem(sys.modules, "cv2", None)
    with pytest.raises(ImportError, match=r"rendering needs OpenCV"):
        render_state(S0, 32)


@needs_pymunk
def test_reset_to_state_roundtrip_render_and_colours():
    from lewm.envs.pusht import PushTEnv

    env = PushTEnv(resolution=64)
    s = np.array([80.0, 400.0, 300.0, 200.0, 5.5, 12.0, -3.0])
    g = np.array([100.0, 420.0, 310.0, 190.0, 1.0])
    obs, info = env.reset(options={"state": s, "goal_state": g})
    np.testing.assert_array_equal(env.state, s)
    np.testing.assert_array_equal(obs, s.astype(np.float32))
    np.testing.assert_array_equal(info["goal_state"], g.astype(np.float32))
    np.testing.assert_array_equal(env.render(), env.render_state(s))
    goal_img = env.render_state(g)  # a 5-d goal renders too, and leaves the env alone
    np.testing.assert_array_equal(env.state, s)
    assert not np.array_equal(goal_img, env.render())
    env.reset(options={"state": s[:5]})  # 5 values: the agent starts at rest
    np.testing.assert_array_equal(env.state, np.r_[s[:5], 0.0, 0.0])
    env.set_colours(agent=(255, 0, 0))
    recoloured = env.render()
    r, c = int(s[1] / 8), int(s[0] / 8)
    assert recoloured[r, c, 0] > 200 and recoloured[r, c, 2] < 60
    assert PushTEnv(resolution=224, block_colour=(0, 0, 0)).render().shape == (224, 224, 3)


@needs_pymunk
def test_agent_control_clipping_and_block_stops_when_not_pushed():
    from lewm.envs.pusht import PushTEnv

    env = PushTEnv()
    env.reset(options={"state": [100.0, 400.0, 300.0, 150.0, 0.0]})
    env.step([1.0, 0.0])
    # PD toward agent + 100: 29.6 units in the first 0.1 s from rest
    assert env.state[0] == pytest.approx(129.6, abs=0.2) and env.state[1] == 400.0
    env.reset(options={"state": [100.0, 400.0, 300.0, 150.0, 0.0]})
    env.step([7.0, 0.0])  # clipped to 1
    assert env.state[0] == pytest.approx(129.6, abs=0.2)
    for _ in range(5):
        env.step([1.0, 0.0])
    assert env.state[0] <= AGENT_HI + 1.0  # the PD target stays inside the walls
    # push the bar end to the right, then back off: the block stops (no momentum)
    env.reset(options={"state": S0, "goal_state": S0})
    for _ in range(6):
        env.step([0.5, 0.0])
    moved = env.state[2] - S0[2]
    env.step([-1.0, 0.0])
    env.step([-1.0, 0.0])
    after = env.state[2:5].copy()
    for _ in range(3):
        env.step([-0.5, 0.0])
    assert moved > 10.0
    np.testing.assert_array_equal(env.state[2:5], after)


@needs_pymunk
def test_env_reports_success_via_terminated_and_info():
    from lewm.envs.pusht import PushTEnv

    env = PushTEnv()
    env.reset(options={"state": S0, "goal_state": _goal(S0, d_angle=2 * np.pi - 0.2)})
    _, _, terminated, _, info = env.step([0.0, 0.0])
    assert terminated and info["success"] and info["angle_error"] == pytest.approx(0.2)
    env.reset(options={"state": S0, "goal_state": _goal(S0, d_block=(0.0, 25.0))})
    _, _, terminated, _, info = env.step([0.0, 0.0])
    assert not terminated and not info["success"] and info["pos_error"] == pytest.approx(25.0)


@needs_pymunk
@pytest.mark.parametrize(
    "bad, match",
    [
        ({"state": [1.0, 2.0, 3.0]}, "5 or 7 finite numbers"),
        ({"state": [1.0, 2.0, 3.0, np.nan, 0.0]}, "5 or 7 finite numbers"),
        ({"goal_state": [600.0, 2.0, 3.0, 4.0, 0.0]}, "outside the arena"),
        ({"start": S0}, "unknown reset option"),
    ],
)
def test_reset_rejects_bad_options(bad, match):
    from lewm.envs.pusht import PushTEnv

    with pytest.raises(ValueError, match=match):
        PushTEnv().reset(options=bad)


@needs_pymunk
def test_bad_action_shape_is_rejected():
    from lewm.envs.pusht import PushTEnv

    env = PushTEnv()
    env.reset(seed=0)
    with pytest.raises(ValueError, match=r"\(2,\)"):
        env.step([1.0, 0.0, 0.0])


@needs_pymunk
def test_expert_moves_and_turns_the_block():
    from lewm.envs.pusht import PushTEnv, PushTExpert

    env = PushTEnv()
    episodes = []
    for ep in range(2):
        env.reset(seed=ep)
        expert = PushTExpert(np.random.default_rng(ep), noise_std=0.1)
        states = [env.state]
        for _ in range(100):
            env.step(expert.act(states[-1]))
            states.append(env.state)
        episodes.append(np.array(states))
    stats = motion_stats(episodes)
    # Measured (10 episodes x 100 steps): mean 25-step displacement 50 units (46-57 for pairs of
    # episodes), rotation 0.70 rad, 98 % of windows move > 20 units or turn > pi/9; a uniform
    # random policy gives 3.8 units, 0.03 rad and 7.5 %. The bounds sit far from both.
    assert stats["block_disp_mean"] > 25.0
    assert stats["block_rot_mean"] > 0.25
    assert stats["moved_fraction"] > 0.8


def test_expert_exploration_segments_fill_the_requested_fraction():
    """explore = 0.3 spends ~30 % of steps in random AR(1) segments; explore = 0 leaves the
    pusher exactly as before (no extra draws from its generator)."""
    from lewm.envs.pusht import PushTExpert

    state = np.array([100.0, 100.0, 300.0, 300.0, 0.5, 0.0, 0.0])
    ex = PushTExpert(np.random.default_rng(0), noise_std=0.0, explore=0.3)
    acts, flags = [], []
    for _ in range(4000):
        acts.append(ex.act(state))
        flags.append(ex.exploring)
    acts, flags = np.array(acts), np.array(flags)
    frac = float(flags.mean())
    assert 0.22 < frac < 0.38, frac  # mean of a renewal process; ~0.30 expected
    # outside segments the noiseless pusher repeats its action for a fixed state (it changes only
    # when a new target is drawn); inside them the actions vary (AR(1), std 0.2-0.6)
    same = np.all(np.isclose(acts[1:], acts[:-1], atol=1e-6), axis=1)
    both_pushing = ~flags[1:] & ~flags[:-1]
    assert same[both_pushing].mean() > 0.9
    assert same[flags[1:] & flags[:-1]].mean() < 0.01
    assert acts[flags].std(axis=0).min() > 0.1
    # the same seed gives the same actions; explore = 0 leaves the pusher untouched
    a = [PushTExpert(np.random.default_rng(5), explore=0.3).act(state) for _ in range(3)]
    b = [PushTExpert(np.random.default_rng(5), explore=0.3).act(state) for _ in range(3)]
    assert np.array_equal(a, b)
    assert np.array_equal(
        PushTExpert(np.random.default_rng(1), explore=0.0).act(state),
        PushTExpert(np.random.default_rng(1)).act(state),
    )
    with pytest.raises(ValueError, match="explore must be in"):
        PushTExpert(explore=1.0)


@needs_pymunk
def test_collection_layout_replay_and_determinism(tmp_path):
    from lewm.data.hdf5 import EpisodeDataset
    from lewm.envs.pusht import PushTEnv, collect_pusht

    kw = {"resolution": 16, "max_steps": 30, "progress": False}
    stats = collect_pusht(tmp_path / "a.h5", 2, seed=5, **kw)
    collect_pusht(tmp_path / "b.h5", 2, seed=5, **kw)
    collect_pusht(tmp_path / "c.h5", 2, seed=6, **kw)
    a, b, c = (EpisodeDataset(tmp_path / f"{x}.h5") for x in "abc")
    assert a.num_episodes == stats["episodes"] == 2 and stats["steps"] == 62
    assert {"block_disp_mean", "block_rot_mean", "moved_fraction"} <= set(stats)
    assert set(a.columns) == {"pixels", "action", "state", "proprio"}
    assert a.image_shape == (16, 16, 3) and a.action_dim == 2 and a.attrs["env"] == "pusht"
    for col in a.columns:
        np.testing.assert_array_equal(a.column(col), b.column(col))
    assert not np.array_equal(a.column("state"), c.column("state"))
    ep = a.episode(1)
    assert ep["state"].shape == (31, 7) and ep["proprio"].shape == (31, 4)
    assert np.isnan(ep["action"][-1]).all() and (np.abs(ep["action"][:-1]) <= 1).all()
    np.testing.assert_array_equal(ep["proprio"], ep["state"][:, [0, 1, 5, 6]])
    np.testing.assert_array_equal(ep["pixels"], render_batch(ep["state"], 16))
    # the state is (nearly) Markov: resetting mid-episode and replaying the actions tracks it
    env = PushTEnv(resolution=16)
    env.reset(options={"state": ep["state"][10]})
    for t in range(10, 20):
        env.step(ep["action"][t])
    np.testing.assert_allclose(env.state, ep["state"][20], atol=1.0)
    with pytest.raises(FileExistsError, match="--overwrite"):
        collect_pusht(tmp_path / "a.h5", 1, **kw)


@needs_pymunk
def test_collection_with_workers_gives_the_same_arrays_for_every_option(tmp_path):
    import h5py

    from lewm.envs.pusht import collect_pusht

    kw = {"resolution": 16, "max_steps": 30, "progress": False, "seed": 2, "noise_std": 0.3}
    kw |= {"explore": 0.3, "targets": "goal", "max_turn": 180.0}
    one = collect_pusht(tmp_path / "a.h5", 3, **kw)
    two = collect_pusht(tmp_path / "b.h5", 3, workers=2, **kw)
    assert (one["workers"], two["workers"]) == (1, 2)
    assert one["block_disp_mean"] == two["block_disp_mean"]
    with h5py.File(tmp_path / "a.h5") as a, h5py.File(tmp_path / "b.h5") as b:
        assert set(a) == set(b) and dict(a.attrs) == dict(b.attrs)
        assert (b.attrs["targets"], b.attrs["explore"]) == ("goal", 0.3)
        for col in a:
            assert a[col][:].tobytes() == b[col][:].tobytes(), col


@needs_pymunk
def test_expert_with_the_goal_as_first_target_pushes_the_t_onto_it():
    """first_target = the task's goal pose: without noise the pusher brings the block within the
    success tolerances of the goal (measured: 30 / 30 episodes, median 85 steps), then draws
    random targets; the default pusher (random targets) does not aim there."""
    from lewm.envs.pusht import PushTEnv, PushTExpert
    from lewm.envs.pusht.physics import SUCCESS_ANGLE, SUCCESS_DIST, wrap_angle

    env = PushTEnv()
    goal = env.goal_state[2:5].copy()
    for first, expect in ((goal, True), (None, False)):
        reached = []
        for ep in range(3):
            env.reset(seed=ep)
            ex = PushTExpert(np.random.default_rng(ep), noise_std=0.0, first_target=first)
            hit, s = False, env.state
            for _ in range(250):
                env.step(ex.act(s))
                s = env.state
                d = np.linalg.norm(s[2:4] - goal[:2])
                hit |= bool(d < SUCCESS_DIST and abs(wrap_angle(s[4] - goal[2])) < SUCCESS_ANGLE)
            reached.append(hit)
            if first is not None:  # afterwards it moved on to a random target
                assert not np.allclose(ex.target, goal)
        assert all(reached) if expect else not all(reached)
    with pytest.raises(ValueError, match="first_target must be 3 finite numbers"):
        PushTExpert(first_target=(1.0, np.nan, 0.0))
