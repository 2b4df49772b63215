import gymnasium as gym
import numpy as np
import pytest

import lewm.envs  # noqa: F401  (registers lewm/TwoRoom-v0)
from lewm.envs import make_env
from lewm.envs.tworoom import (
    DEFAULT_LAYOUT,
    HI,
    LO,
    TwoRoomBatch,
    TwoRoomEnv,
    TwoRoomExpert,
    render_batch,
    step_dynamics,
)


def test_gymnasium_make_and_unknown_name():
    env = gym.make("lewm/TwoRoom-v0", resolution=32)
    obs, info = env.reset(seed=0)
    assert obs.shape == (4,) and env.render().shape == (32, 32, 3)
    with pytest.raises(ValueError, match="unknown environment 'maze'; available: tworoom"):
        make_env("maze")


def test_reset_to_state_and_goal_rendering_roundtrip():
    env = TwoRoomEnv(resolution=64)
    s, g = np.array([60.0, 150.0]), np.array([170.0, 40.0])
    _, info = env.reset(options={"state": s, "goal_state": g})
    np.testing.assert_array_equal(env.state, s)
    np.testing.assert_array_equal(info["goal_state"], g)
    img = env.render()
    np.testing.assert_array_equal(img, env.render_state(s))
    assert not np.array_equal(img, env.render_state(g))
    # the reddest pixel maps back to the state within one pixel
    redness = img[..., 0].astype(int) - img[..., 1].astype(int)
    row, col = np.unravel_index(np.argmax(redness), redness.shape)
    px = 224 / 64
    assert abs((col + 0.5) * px - s[0]) <= px and abs((row + 0.5) * px - s[1]) <= px
    # rendering at 224 (paper size) from the same code
    assert TwoRoomEnv(resolution=224).render_state(s).shape == (224, 224, 3)


@pytest.mark.parametrize(
    "bad, match",
    [
        ({"state": [112.0, 150.0]}, "inside the wall"),
        ({"state": [5.0, 50.0]}, "outside the arena"),
        ({"state": [1.0]}, "finite"),
        ({"goal_state": [np.nan, 3.0]}, "finite"),
        ({"start": [50.0, 50.0]}, "unknown reset option"),
    ],
)
def test_reset_rejects_bad_options(bad, match):
    with pytest.raises(ValueError, match=match):
        TwoRoomEnv().reset(options=bad)


def test_success_threshold_clipping_and_border():
    env = TwoRoomEnv()
    env.reset(options={"state": [50.0, 100.0], "goal_state": [50.0, 115.5]})
    _, _, term, _, info = env.step([0.0, 0.0])
    assert term and info["distance"] < 16
    env.reset(options={"state": [50.0, 100.0], "goal_state": [50.0, 116.5]})
    assert not env.step([0.0, 0.0])[2]
    env.reset(options={"state": [50.0, 100.0], "goal_state": [150.0, 150.0]})
    env.step([7.0, -3.0])  # clipped to (1, -1): 5 units per axis
    np.testing.assert_allclose(env.state, [55.0, 95.0])
    env.reset(options={"state": [LO + 1, HI - 1], "goal_state": [150.0, 150.0]})
    env.step([-1.0, 1.0])
    np.testing.assert_allclose(env.state, [LO, HI])
    with pytest.raises(ValueError, match="velocities"):
        env.step([1.0, 0.0, 0.0])


def test_wall_is_never_crossed_outside_the_door():
    rng = np.random.default_rng(0)
    L = DEFAULT_LAYOUT
    pos = rng.uniform(LO, HI, size=(20000, 2))
    pos = pos[~L.in_wall(pos)]
    # half random actions, half aimed straight at the wall
    act = rng.uniform(-1.5, 1.5, size=pos.shape)
    act[::2, 0] = np.where(pos[::2, 0] < L.wall_x, 1.0, -1.0)
    for _ in range(30):
        new = step_dynamics(pos, act)
        crossed = L.side(pos[:, 0]) != L.side(new[:, 0])
        assert L.in_door(pos[crossed, 1]).all() and L.in_door(new[crossed, 1]).all()
        assert not L.in_wall(new).any()
        pos = new


def test_agent_passes_through_the_door():
    env = TwoRoomEnv()
    env.reset(options={"state": [95.0, 49.0], "goal_state": [180.0, 49.0]})
    for _ in range(10):
        env.step([1.0, 0.0])
    assert env.state[0] > 140
    env.reset(options={"state": [95.0, 150.0], "goal_state": [180.0, 150.0]})
    for _ in range(10):
        env.step([1.0, 0.0])
    assert env.state[0] < DEFAULT_LAYOUT.wall_x  # blocked by the wall


def _run_expert(noise, n=400, seed=0):
    rng = np.random.default_rng(seed)
    batch, expert = TwoRoomBatch(n, rng), TwoRoomExpert(noise, rng)
    for _ in range(100):
        batch.step(expert.act(batch.pos, batch.target), mask=~batch.success())
    return batch.success().mean()


def test_expert_reaches_targets():
    assert _run_expert(0.0) >= 0.99
    assert _run_expert(2.0) > 0.5  # very noisy (sigma 2 on a unit direction), still purposeful


def test_render_batch_matches_single_renders():
    states = np.array([[30.0, 40.0], [190.0, 200.0]])
    batch = render_batch(states, 48)
    env = TwoRoomEnv(resolution=48)
    for i, s in enumerate(states):
        np.testing.assert_array_equal(batch[i], env.render_state(s))
