"""Any Gymnasium environment through ``gym:ID`` (lewm.envs.gym_adapter), without gym-pusht: a
tiny pure-numpy environment registered under a test-only id stands in for it."""

from __future__ import annotations

import json
import sys

import gymnasium as gym
import numpy as np
import pytest

from lewm.cli.main import main
from lewm.data.hdf5 import EpisodeDataset
from lewm.envs import gym_config, make_env
from lewm.envs.gym_adapter import GymAdapter, collect_gym, resize_frame
from lewm.planning import CEMConfig
from lewm.planning.evaluate import EvalConfig, evaluate
from lewm.utils.config import ConfigError

ENV = "gym:lewm_test/Point-v0"  # "lewm_test" is no module: nothing is imported for it
SIDE = 32  # PointEnv's own frame size; the tests ask for 16 (resized) or 32 (as is)
GOAL = (12.0, 12.0)


def draw(pos, side: int = SIDE) -> np.ndarray:
    """A 2x2 white square at (2 x, 2 y) on black (side / 16 pixels per unit)."""
    img = np.zeros((side, side, 3), np.uint8)
    x, y = np.clip(np.rint(np.asarray(pos) * side / 16), 0, side - 2).astype(int)
    img[y : y + 2, x : x + 2] = 255
    return img


class PointEnv(gym.Env):
    """A point in [0, 15]^2 moved by 0.5 * (action - 4), actions in Box(0, 8); success within 1.0
    of the goal (``info["is_success"]``, also ``terminated``); truncated after ``limit`` steps.

    Reset to a state with ``options={"set_state": s}`` or the method :meth:`place`; it lands at
    ``s + offset`` (a quirk like gym-pusht's, 0 by default). ``options={"goal": g}`` moves the
    goal. Observations: the position (``obs_type="vector"``) or ``{"pixels", "pos"}``."""

    metadata = {"render_modes": ["rgb_array"]}
    received: list[np.ndarray] = []  # every action any instance executed (the class's record)

    def __init__(self, render_mode=None, limit=12, offset=0.0, obs_type="vector", side=SIDE):
        self.render_mode, self.limit, self.offset = render_mode, limit, offset
        self.obs_type, self.side = obs_type, side
        self.action_space = gym.spaces.Box(0.0, 8.0, shape=(2,), dtype=np.float32)
        vector = gym.spaces.Box(0.0, 15.0, shape=(2,), dtype=np.float32)
        pixels = gym.spaces.Box(0, 255, shape=(side, side, 3), dtype=np.uint8)
        self.observation_space = (
            vector if obs_type == "vector" else gym.spaces.Dict({"pixels": pixels, "pos": vector})
        )
        self.pos, self.goal, self.t = np.zeros(2), np.asarray(GOAL), 0

    def _obs(self):
        pos = self.pos.astype(np.float32)
        return pos if self.obs_type == "vector" else {"pixels": self.render(), "pos": pos}

    def _info(self) -> dict:
        return {"is_success": bool(np.linalg.norm(self.pos - self.goal) < 1.0), "pos": self.pos}

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        options = options or {}
        self.goal = np.asarray(options.get("goal", GOAL), np.float64)
        if "set_state" in options:
            self.pos = np.clip(np.asarray(options["set_state"], np.float64) + self.offset, 0, 15)
        else:
            self.pos = self.np_random.uniform(0, 15, 2)
        self.t = 0
        return self._obs(), self._info()

    def place(self, state):
        self.pos = np.clip(np.asarray(state, np.float64) + self.offset, 0, 15)
        return self._obs()

    def step(self, action):
        a = np.asarray(action)
        if not self.action_space.contains(a):  # as a real robot interface would
            raise AssertionError(f"action {a} outside {self.action_space}")
        PointEnv.received.append(a.copy())
        self.pos = np.clip(self.pos + 0.5 * (a - 4.0), 0, 15)
        self.t += 1
        info = self._info()
        return self._obs(), 0.0, info["is_success"], self.t >= self.limit, info

    def render(self):
        return draw(self.pos, self.side)


if "lewm_test/Point-v0" not in gym.registry:
    gym.register(id="lewm_test/Point-v0", entry_point=PointEnv, max_episode_steps=100)

ADAPTER = {"reset_option": "set_state", "goal_option": "goal"}  # pixels: render, state: obs


def point(resolution: int = 16, **kw) -> GymAdapter:
    make = kw.pop("make", {})
    return make_env(ENV, resolution=resolution, make=make, adapter={**ADAPTER, **kw})


def test_frames_are_resized_to_the_resolution():
    env = point(resolution=16)
    env.reset(seed=0, options={"state": [6.0, 10.0]})
    frame = env.render()
    assert frame.shape == (16, 16, 3) and frame.dtype == np.uint8
    y, x = np.unravel_index(frame[..., 0].argmax(), frame.shape[:2])
    assert abs(x - 6) <= 1 and abs(y - 10) <= 1  # the square, at half scale
    assert frame.sum() > 0 and frame.max() == 255  # antialiased, not lost
    same = point(resolution=SIDE)  # the env's own size: its own frame, untouched
    same.reset(seed=0, options={"state": [6.0, 10.0]})
    np.testing.assert_array_equal(same.render(), draw([6.0, 10.0]))
    # pixels from a key of a Dict observation (make kwargs reach the env), also resized
    dict_env = point(16, make={"obs_type": "dict"}, pixels="obs:pixels", state=["obs:pos"])
    obs, _ = dict_env.reset(seed=0, options={"state": [6.0, 10.0]})
    assert dict_env.unwrapped.obs_type == "dict"
    np.testing.assert_array_equal(dict_env.render(), frame)
    np.testing.assert_array_equal(dict_env.render(), resize_frame(obs["pixels"], 16))
    with pytest.raises(ValueError, match="must be a uint8 .H, W, 3. image"):
        resize_frame(np.zeros((8, 8), np.float32), 4)


def test_reset_to_a_state_round_trip():
    env = point()
    for s in ([3.0, 4.5], [14.0, 0.5]):
        env.reset(seed=1, options={"state": s})
        np.testing.assert_allclose(env.state, s)
    np.testing.assert_array_equal(env.reset(seed=5)[0], env.reset(seed=5)[0])  # a plain reset
    # an env whose reset moves the state it is given: read back and corrected
    quirky = point(make={"offset": 0.5})
    quirky.reset(seed=0, options={"state": [3.0, 4.0]})
    np.testing.assert_allclose(quirky.state, [3.5, 4.5])
    assert quirky.reset_error is None  # not measured without a correction
    fixed = point(make={"offset": 0.5}, reset_correction=1)
    fixed.reset(seed=0, options={"state": [3.0, 4.0]})
    np.testing.assert_allclose(fixed.state, [3.0, 4.0])
    assert fixed.reset_error <= 1e-9
    # reset through a method of env.unwrapped instead of a reset option
    by_method = make_env(
        ENV,
        resolution=16,
        make={"offset": 0.5},
        adapter={"reset_method": "place", "reset_correction": 2},
    )
    by_method.reset(seed=0, options={"state": [7.0, 2.0]})
    np.testing.assert_allclose(by_method.state, [7.0, 2.0])
    assert by_method.reset_error <= 1e-9


def test_goal_images_are_rendered_by_a_second_instance():
    env = point()
    env.reset(seed=0, options={"state": [2.0, 3.0], "goal_state": [9.0, 9.0]})
    assert env.unwrapped.goal.tolist() == [9.0, 9.0]  # goal_option passed the goal on
    before = env.render()
    goal = env.render_state([9.0, 9.0])
    env.reset(seed=0, options={"state": [9.0, 9.0]})
    np.testing.assert_array_equal(goal, env.render())  # the frame of that state
    env.reset(seed=0, options={"state": [2.0, 3.0]})
    np.testing.assert_array_equal(env.render(), before)
    env.render_state([14.0, 14.0])
    np.testing.assert_allclose(env.state, [2.0, 3.0])  # rendering a goal left this env alone
    assert point(goal_image="dataset").render_state is None
    assert make_env(ENV, resolution=16).render_state is None  # no reset-to-state: no goal render


def test_success_and_truncation_are_passed_through():
    env = point(make={"limit": 3})
    env.reset(seed=0, options={"state": [11.0, 11.5]})
    _, _, term, trunc, info = env.step(np.array([6.0, 5.0]))  # -> (12, 12): the goal
    assert info["success"] and info["is_success"] and term and not trunc
    env.reset(seed=0, options={"state": [1.0, 1.0]})
    flags = [env.step(np.array([4.0, 4.0]))[2:4] for _ in range(3)]  # stays put
    assert flags == [(False, False), (False, False), (False, True)]  # truncated, not ended
    # success from a key of our own choosing, or from termination alone
    assert not point(success_keys=["nothing"]).reset(seed=0)[1]["success"]
    env = point(success="terminated")
    env.reset(seed=0, options={"state": [11.0, 11.5]})
    assert env.step(np.array([6.0, 5.0]))[4]["success"]
    # actions of another float type are given to the env as its Box's dtype
    env.reset(seed=0, options={"state": [1.0, 1.0]})
    env.step(np.array([8.0, 0.0], np.float64))
    assert PointEnv.received[-1].dtype == np.float32


def test_collect_writes_a_valid_dataset(tmp_path, capsys, monkeypatch):
    argv = ["collect", ENV, "--episodes", "3", "--out", str(tmp_path / "a.h5")]
    argv += ["--resolution", "16", "--seed", "3", "--max-steps", "20", "--no-progress"]
    argv += ["--gym-make", "limit=8", "--gym-adapter", "reset_option=set_state"]
    assert main(argv) == 0
    stats = json.loads(capsys.readouterr().out)
    assert stats["episodes"] == 3 and stats["max_length"] <= 9
    ds = EpisodeDataset(tmp_path / "a.h5")
    assert ds.attrs["env"] == ENV and ds.image_shape == (16, 16, 3) and ds.action_dim == 2
    assert json.loads(ds.attrs["gym_make"]) == {"limit": 8}
    assert json.loads(ds.attrs["gym_adapter"])["reset_option"] == "set_state"
    env = point()
    for i in range(ds.num_episodes):
        ep = ds.episode(i)
        act = ep["action"]
        assert np.isnan(act[-1]).all() and np.isfinite(act[:-1]).all()
        assert act[:-1].min() >= 0.0 and act[:-1].max() <= 8.0  # uniform in the Box
        # row t: frame t is the env at state t, and the action taken from it leads to t + 1
        for t in range(len(act) - 1):
            env.reset(seed=0, options={"state": ep["state"][t]})
            np.testing.assert_array_equal(env.render(), ep["pixels"][t])
            env.step(act[t])
            np.testing.assert_allclose(env.state, ep["state"][t + 1], atol=1e-5)
    # the same seed gives the same data; the file is not replaced without --overwrite
    argv_b = [*argv[:5], str(tmp_path / "b.h5"), *argv[6:]]
    assert main(argv_b) == 0
    b = EpisodeDataset(tmp_path / "b.h5")
    np.testing.assert_array_equal(b.column("action"), ds.column("action"))
    np.testing.assert_array_equal(b.column("pixels"), ds.column("pixels"))
    assert main(argv) == 2 and "--overwrite" in capsys.readouterr().err
    # a policy named module:callable; its actions are clipped into the Box
    (tmp_path / "lewm_gympolicy.py").write_text(
        "import numpy as np\n\n\ndef push(obs, space, rng):\n    return np.array([100.0, -5.0])\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    policy = "lewm_gympolicy:push"
    stats = collect_gym(tmp_path / "c.h5", 2, env=ENV, resolution=16, max_steps=5, policy=policy)
    assert stats["steps"] == 12  # 2 x (5 actions + the last frame): never at the goal
    c = EpisodeDataset(tmp_path / "c.h5")
    assert c.attrs["policy"] == policy
    np.testing.assert_array_equal(c.episode(0)["action"][:-1], np.tile([8.0, 0.0], (5, 1)))


@pytest.fixture(scope="module")
def point_data(tmp_path_factory):
    d = tmp_path_factory.mktemp("point")
    collect_gym(
        d / "p.h5",
        6,
        env=ENV,
        make={"limit": 40},
        adapter=ADAPTER,
        resolution=16,
        seed=0,
        max_steps=40,
        progress=False,
    )
    return d / "p.h5"


def _small(**kw) -> EvalConfig:
    solver = CEMConfig(num_samples=16, num_elites=4, iterations=2)
    base = dict(episodes=4, solver=solver, num_gifs=0, split="all", budget=30, goal_offset=5)
    return EvalConfig(**{**base, **kw})


def _tiny_model(tiny_config):
    from lewm.data.normalize import Normalizer
    from lewm.models import LeWM

    model = LeWM(tiny_config.model).eval()
    # normalised actions of std 200 around 4: the planner proposes actions far outside [0, 8]
    model.normalizer = Normalizer({"action": (np.full(2, 4.0), np.full(2, 200.0))})
    return model


def test_evaluate_clips_actions_into_the_box_end_to_end(point_data, tiny_config):
    model = _tiny_model(tiny_config)
    n = len(PointEnv.received)
    options = {"make": {"limit": 6}, "adapter": ADAPTER}
    res = evaluate(model, ENV, point_data, _small(context=2), env_options=options)
    received = np.stack(PointEnv.received[n:])  # PointEnv.step raised on any action outside
    assert res.clipped_steps > 0 and received.min() >= 0.0 and received.max() <= 8.0
    assert ((received == 0.0) | (received == 8.0)).any()  # clipped onto the bounds
    assert res.settings["goal_image"] == "env" and res.settings["env_options"] == options
    # the env truncates after 6 steps: recorded apart from termination
    for ok, term, trunc, steps in zip(
        res.successes, res.terminated, res.truncated, res.steps_to_success, strict=True
    ):
        assert term == ok and (trunc or ok) and (steps is None or steps <= 6)
    # the random policy draws inside the Box, not in [-1, 1]
    n = len(PointEnv.received)
    evaluate(None, ENV, point_data, _small(policy="random"), env_options=options)
    drawn = np.stack(PointEnv.received[n:])
    assert drawn.min() >= 0.0 and drawn.max() <= 8.0 and drawn.max() > 4.0


def test_evaluate_takes_goal_images_from_the_dataset_when_the_env_renders_none(
    point_data, tmp_path
):
    options = {"adapter": {**ADAPTER, "goal_image": "dataset"}}
    cfg = _small(policy="random", episodes=2, num_gifs=2)
    res = evaluate(None, ENV, point_data, cfg, out_dir=tmp_path, env_options=options)
    assert res.settings["goal_image"] == "dataset"
    ds = EpisodeDataset(point_data)
    (ep, s), *_ = res.tasks
    goal = ds.rows("pixels", np.asarray(int(ds.ep_offset[ep]) + s + 5))  # (16, 16, 3)
    import imageio.v3 as iio

    gif = iio.imread(tmp_path / "episode_00.gif", index=0)  # episode | goal, bordered, 3x
    pane = gif[2 * 3 : -2 * 3, (2 + 16 + 2) * 3 : -2 * 3][::3, ::3, 0]  # the goal pane, 1x
    assert pane.shape == (16, 16) and pane.argmax() == goal[..., 0].argmax()
    # an env that cannot be reset to a state cannot be evaluated: said before any planning
    with pytest.raises(ValueError, match="adapter.reset_option .*reset_to_state.*cannot be"):
        evaluate(None, ENV, point_data, cfg, env_options={"adapter": {}})


def test_lewm_eval_with_a_gym_env(point_data, tiny_config, tmp_path, capsys):
    model = _tiny_model(tiny_config)
    model.metadata = {"env": ENV, "dataset": str(point_data)}
    model.save_pretrained(tmp_path / "model")
    argv = ["eval", str(tmp_path / "model"), "--env", ENV, "--episodes", "2", "--budget", "10"]
    argv += ["--goal-offset", "5", "--split", "all", "--samples", "8", "--elites", "2"]
    argv += ["--iterations", "1", "--no-progress", "--gifs", "0"]
    n = len(PointEnv.received)
    # the adapter settings and make kwargs recorded in the dataset are used; --gym-make adds one
    assert main([*argv, "--gym-make", "limit=4"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert "/eval_gym-lewm_test-Point-v0_plan_cem_" in out["eval_json"]
    saved = json.loads(open(out["eval_json"]).read())
    assert saved["settings"]["env_options"]["make"] == {"limit": 4}
    assert saved["settings"]["env_options"]["adapter"]["reset_option"] == "set_state"
    received = np.stack(PointEnv.received[n:])
    assert len(received) <= 2 * 4 and received.min() >= 0.0 and received.max() <= 8.0
    # the model was trained on gym:lewm_test/Point-v0 data: other envs are refused, the same id
    # with its module named is the same env
    assert main([*argv, "--env", "tworoom"]) == 2
    assert "trained on 'gym:lewm_test/Point-v0' data, not 'tworoom'" in capsys.readouterr().err
    assert main([*argv, "--env", "gym:numpy:lewm_test/Point-v0", "--overwrite"]) == 0
    capsys.readouterr()
    # options of gym:ID environments are refused for a registered one
    assert main([*argv, "--env", "tworoom", "--any-env", "--gym-make", "limit=4"]) == 2
    assert "--gym-make: only for gym:ID environments" in capsys.readouterr().err


def test_the_namespace_module_is_imported(tmp_path, monkeypatch):
    """gym:ns/Name-v0 imports ns when it is a module (packages register their ids on import);
    gym:MODULE:ID imports MODULE."""
    (tmp_path / "lewm_gymconv.py").write_text(
        "import gymnasium as gym\n"
        "import numpy as np\n\n\n"
        "class Blank(gym.Env):\n"
        "    metadata = {'render_modes': ['rgb_array']}\n\n"
        "    def __init__(self, render_mode=None):\n"
        "        self.render_mode = render_mode\n"
        "        self.action_space = gym.spaces.Box(-1.0, 1.0, (1,), np.float32)\n"
        "        self.observation_space = gym.spaces.Box(-1.0, 1.0, (1,), np.float32)\n\n"
        "    def reset(self, *, seed=None, options=None):\n"
        "        return np.zeros(1, np.float32), {}\n\n"
        "    def render(self):\n"
        "        return np.full((8, 8, 3), 7, np.uint8)\n\n\n"
        "for name in ('lewm_gymconv/Blank-v0', 'Elsewhere-v0'):\n"
        "    if name not in gym.registry:\n"
        "        gym.register(id=name, entry_point=Blank)\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "lewm_gymconv", raising=False)
    with pytest.raises(ValueError, match="unknown gymnasium id 'Elsewhere-v0'.*gym:MODULE:"):
        make_env("gym:Elsewhere-v0", resolution=8)  # no namespace: nothing to import
    env = make_env("gym:lewm_gymconv/Blank-v0", resolution=8)
    assert "lewm_gymconv" in sys.modules
    env.reset(seed=0)
    assert env.render().shape == (8, 8, 3) and int(env.render()[0, 0, 0]) == 7
    assert make_env("gym:lewm_gymconv:Elsewhere-v0", resolution=8).config.module_explicit
    with pytest.raises(ImportError, match="cannot import 'no_such_module_lewm'"):
        make_env("gym:no_such_module_lewm:Elsewhere-v0", resolution=8)


@pytest.mark.parametrize(
    "name, adapter, make, error, match",
    [
        ("gym:lewm_test/Nowhere-v0", {}, {}, ValueError, r"unknown gymnasium id .*Point-v0"),
        ("gym:", {}, {}, ConfigError, "no gymnasium id"),
        ("gym:bad-mod:X-v0", {}, {}, ConfigError, "module that registers"),
        (ENV, {"pixels": "camera"}, {}, ConfigError, "adapter.pixels must be 'render', 'obs'"),
        (ENV, {"colour": 1}, {}, ConfigError, r"unknown adapter setting\(s\) \['colour'\]"),
        (ENV, {"state": []}, {}, ConfigError, "adapter.state must list one or more"),
        (ENV, {"state": ["info"]}, {}, ConfigError, r"'info' needs a key"),
        (ENV, {"reset_correction": "1"}, {}, ConfigError, "reset_correction: expected an integ"),
        (ENV, {"reset_correction": 1}, {}, ConfigError, "needs adapter.reset_option"),
        (ENV, {**ADAPTER, "reset_method": "place"}, {}, ConfigError, "both given"),
        (ENV, {"goal_image": "none"}, {}, ConfigError, "adapter.goal_image must be"),
        (ENV, {"success": "reward"}, {}, ConfigError, "adapter.success must be"),
        (ENV, {"pixels": "obs:pixels"}, {}, ConfigError, "reads a key of a Dict observation"),
        (ENV, {"state": ["obs:pos"]}, {}, ConfigError, "reads a key of a Dict observation"),
        (ENV, {"pixels": "obs:rgb"}, {"obs_type": "dict"}, ConfigError, "no key 'rgb'; its keys"),
        (ENV, {"pixels": "obs"}, {"obs_type": "dict"}, ConfigError, "name one as 'obs:KEY'"),
        (ENV, {}, {"colour": 3}, ValueError, r"refused the make arguments \['colour'\]"),
    ],
)
def test_bad_names_and_settings_are_clear_errors(name, adapter, make, error, match):
    with pytest.raises(error, match=match):
        make_env(name, resolution=16, make=make, adapter=adapter)


def test_more_clear_errors(tmp_path, capsys):
    env = point(state=["info:velocity"])
    env.reset(seed=0)
    with pytest.raises(ValueError, match="the info has no key 'velocity'; its keys: is_success"):
        env.state  # noqa: B018
    with pytest.raises(RuntimeError, match="call reset"):
        point().render()
    with pytest.raises(TypeError, match="put the env's own arguments in make="):
        make_env(ENV, resolution=16, limit=3)
    with pytest.raises(ValueError, match="a policy is named 'module:callable'"):
        collect_gym(tmp_path / "x.h5", 1, env=ENV, resolution=16, policy="numpy.ones")
    with pytest.raises(ValueError, match="resolution .* must be an integer in"):
        collect_gym(tmp_path / "x.h5", 1, env=ENV, resolution=4)
    base = ["collect", ENV, "--episodes", "1", "--out", str(tmp_path / "y.h5")]
    assert main([*base, "--noise", "0.5"]) == 2
    assert "--noise is an option of lewm's scripted collectors" in capsys.readouterr().err
    assert main([*base, "--gym-adapter", "pixels"]) == 2
    assert "--gym-adapter takes KEY=VALUE" in capsys.readouterr().err
    assert main(["collect", "tworoom", "--episodes", "1", "--out", "z.h5", "--policy", "a:b"]) == 2
    assert "--policy: only for gym:ID environments" in capsys.readouterr().err
    assert not (tmp_path / "y.h5").exists()
    # settings read from the command line: JSON values, comma-separated lists
    cfg = gym_config(ENV, {"limit": 3}, {"state": "obs,info:pos", "success_keys": "done"})
    assert cfg.state == ("obs", "info:pos") and cfg.success_keys == ("done",)
    assert cfg.name == ENV and gym_config("gym:numpy:lewm_test/Point-v0").module == "numpy"
