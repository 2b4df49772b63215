"""The contract every registered environment keeps: what its spec and its env promise the rest
of the library (collection, evaluation, probes, surprise, latent maps). Runs over every entry of
the registry; an environment whose optional dependencies are missing is skipped."""

import inspect

import gymnasium as gym
import h5py
import numpy as np
import pytest

from lewm.data.hdf5 import EpisodeDataset
from lewm.envs import ENVS, get_spec, make_env

RES = 16  # pixels: every frame here is this size
STEPS = 12  # actions per collected episode at most
# every collector's keywords
COMMON = {"resolution", "seed", "max_steps", "overwrite", "progress", "workers"}


@pytest.fixture(scope="module", params=sorted(ENVS))
def spec(request):
    spec = get_spec(request.param)
    try:
        make_env(spec.name, resolution=RES).render()
    except ImportError as e:  # e.g. Push-T without pymunk / OpenCV
        pytest.skip(f"{spec.name} needs its optional dependencies ({spec.install_hint}): {e}")
    return spec


@pytest.fixture(scope="module")
def collected(spec, tmp_path_factory):
    """(path, stats) of two episodes collected with seed 0."""
    path = tmp_path_factory.mktemp(spec.name) / "a.h5"
    stats = spec.collect(path, 2, resolution=RES, seed=0, max_steps=STEPS, progress=False)
    return path, stats


def _stepped_env(spec, seed=0, steps=5):
    """An env reset with ``seed`` and moved by a few random actions (a state with history)."""
    env = make_env(spec.name, resolution=RES)
    env.reset(seed=seed)
    rng = np.random.default_rng(seed)
    for _ in range(steps):
        env.step(rng.uniform(-1, 1, env.action_space.shape).astype(np.float32))
    return env


def test_spec_is_registered_with_gymnasium(spec):
    env = gym.make(spec.id, resolution=RES)
    assert env.spec.max_episode_steps == spec.max_episode_steps
    cls = spec.entry_point.split(":")[1]
    assert type(make_env(spec.name, resolution=RES)).__name__ == cls
    assert get_spec(spec.name) is spec and ENVS[spec.name].id == spec.id


def test_collect_options_name_the_collectors_own_keywords(spec):
    params = inspect.signature(spec.collect).parameters
    keywords = {n for n, p in params.items() if p.kind is inspect.Parameter.KEYWORD_ONLY}
    assert COMMON <= keywords
    assert set(spec.collect_options) == keywords - COMMON
    assert params["max_steps"].default is None  # None: the environment's own episode length


def test_reset_to_state_roundtrip_and_render(spec):
    src = _stepped_env(spec)
    s, g = np.array(src.state), np.array(src.goal_state)
    env = make_env(spec.name, resolution=RES)
    obs, info = env.reset(options={"state": s, "goal_state": g})
    np.testing.assert_array_equal(env.state, s)
    np.testing.assert_array_equal(env.goal_state, g)
    np.testing.assert_array_equal(info["goal_state"], g.astype(np.float32))
    frame = env.render()
    assert frame.shape == (RES, RES, 3) and frame.dtype == np.uint8
    np.testing.assert_array_equal(frame, spec.render(s[None], RES)[0])
    np.testing.assert_array_equal(frame, env.render_state(s))


def test_goal_rendering_matches_the_spec_and_leaves_the_env_alone(spec):
    env = _stepped_env(spec)
    state, goal = np.array(env.state), np.array(env.goal_state)
    before = env.render()
    goal_img = env.render_state(goal)
    np.testing.assert_array_equal(goal_img, spec.render(goal[None], RES)[0])
    np.testing.assert_array_equal(env.state, state)
    np.testing.assert_array_equal(env.goal_state, goal)
    np.testing.assert_array_equal(env.render(), before)


def test_reset_is_deterministic_for_a_seed(spec):
    env = make_env(spec.name, resolution=RES)
    a, b, c = (env.reset(seed=s)[0] for s in (3, 3, 4))
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    np.testing.assert_array_equal(make_env(spec.name, resolution=RES).reset(seed=3)[0], a)


def test_collection_is_identical_for_a_seed(spec, collected, tmp_path):
    path, _ = collected
    kw = {"resolution": RES, "max_steps": STEPS, "progress": False}
    spec.collect(tmp_path / "b.h5", 2, seed=0, **kw)
    spec.collect(tmp_path / "c.h5", 2, seed=1, **kw)
    # the same arrays and attributes, to the byte (the files' own layout may differ: HDF5
    # places its metadata in an order that varies with flush timing, ~1 run in 30 here)
    with h5py.File(path) as a, h5py.File(tmp_path / "b.h5") as b:
        assert set(a) == set(b) and dict(a.attrs) == dict(b.attrs)
        for col in a:
            assert a[col].dtype == b[col].dtype and a[col][:].tobytes() == b[col][:].tobytes()
    with h5py.File(path) as a, h5py.File(tmp_path / "c.h5") as c:
        assert not np.array_equal(a["state"][:], c["state"][:])


def test_collection_is_identical_whatever_the_worker_count(spec, collected, tmp_path):
    """Two worker processes (one episode each) write the arrays one process wrote."""
    path, stats = collected
    kw = {"resolution": RES, "max_steps": STEPS, "progress": False}
    two = spec.collect(tmp_path / "w.h5", 2, seed=0, workers=2, **kw)
    assert stats["workers"] == 1 and two["workers"] == 2 and two["steps"] == stats["steps"]
    with h5py.File(path) as a, h5py.File(tmp_path / "w.h5") as b:
        assert set(a) == set(b) and dict(a.attrs) == dict(b.attrs)
        for col in a:
            assert a[col].dtype == b[col].dtype and a[col][:].tobytes() == b[col][:].tobytes()


@pytest.mark.parametrize("bad", [0, 257, 1.5])
def test_collection_refuses_a_bad_worker_count_before_any_work(spec, tmp_path, bad):
    with pytest.raises(ValueError, match=r"workers \(--workers\) must be an integer in \[1, 256\]"):
        spec.collect(tmp_path / "x.h5", 2, resolution=RES, workers=bad, progress=False)
    assert not (tmp_path / "x.h5").exists()


def test_collected_episodes_layout(spec, collected):
    path, stats = collected
    ds = EpisodeDataset(path)
    assert ds.num_episodes == stats["episodes"] == 2 and ds.num_steps == stats["steps"]
    assert {"pixels", "action", "state"} <= set(ds.columns)
    assert ds.image_shape == (RES, RES, 3) and ds.attrs["env"] == spec.name
    action_dim = make_env(spec.name, resolution=RES).action_space.shape[0]
    assert ds.action_dim == action_dim
    for i in range(ds.num_episodes):
        ep = ds.episode(i)
        assert 2 <= len(ep["pixels"]) <= STEPS + 1
        assert np.isnan(ep["action"][-1]).all() and np.isfinite(ep["action"][:-1]).all()
        assert np.abs(ep["action"][:-1]).max() <= 1.0
        np.testing.assert_array_equal(ep["pixels"], spec.render(ep["state"], RES))


def test_success_at_the_goal_and_not_far_from_it(spec):
    states, _, _ = spec.state_grid(4)  # grid corners are far apart
    near, far = states[0], states[-1]
    env = make_env(spec.name, resolution=RES)
    for goal, expected in ((near, True), (far, False)):
        _, info = env.reset(options={"state": near, "goal_state": goal})
        ok = spec.success(env.state, env.goal_state)
        assert bool(info["success"]) is bool(ok) is expected
    # vectorised over leading axes
    both = spec.success(np.stack([near, near]), np.stack([near, far])[:, : len(env.goal_state)])
    assert both.shape == (2,) and both.tolist() == [True, False]


def test_quantities_state_grid_and_surprise_shapes(spec, collected):
    state = EpisodeDataset(collected[0]).column("state")[:]  # (N, S)
    n_rows, state_dim = state.shape
    for name, fn in spec.quantities.items():
        q = fn(state)
        assert q.ndim == 2 and q.shape[0] == n_rows and q.shape[1] >= 1, name
        assert np.isfinite(q).all(), name

    states, pos, names = spec.state_grid(4)
    assert states.ndim == 2 and states.shape[1] == state_dim and len(states) >= 2
    assert pos.shape == (len(states), 2) and len(names) == 2
    assert spec.render(states, RES).shape == (len(states), RES, RES, 3)

    if spec.surprise is None:
        return
    n, steps, k = 2, 4, 2
    trip = spec.surprise(n, steps, k, RES, 0)
    assert set(trip) == {"none", "colour", "teleport"}
    action_dim = make_env(spec.name, resolution=RES).action_space.shape[0]
    none_px, none_act = trip["none"]
    for cond, (px, act) in trip.items():
        assert px.shape == (n, steps + 1, RES, RES, 3) and px.dtype == np.uint8, cond
        assert act.shape == (n, steps, action_dim), cond
        np.testing.assert_array_equal(act, none_act)  # the same actions in every condition
        np.testing.assert_array_equal(px[:, :k], none_px[:, :k])  # the same past
        if cond != "none":
            assert not np.array_equal(px[:, k:], none_px[:, k:]), cond
