"""Reacher (dm_control via MuJoCo): reset-to-state, the qpos_match success test, goal images,
the data policies, deterministic parallel collection and the errors when MuJoCo, dm_control or
an OpenGL backend is missing. CI installs everything, so there these tests never skip."""

import importlib.util
import os
import sys

import h5py
import numpy as np
import pytest

from lewm.data.hdf5 import EpisodeDataset
from lewm.envs import get_spec, make_env
from lewm.envs.reacher import backend

HAVE_MUJOCO = all(importlib.util.find_spec(m) is not None for m in ("mujoco", "dm_control"))
# importorskip would import mujoco, which fixes its OpenGL backend before lewm can choose one
needs_mujoco = pytest.mark.skipif(
    not HAVE_MUJOCO and not os.environ.get("CI"),
    reason="needs pip install 'lewm[mujoco]'",
)
RES = 24


@needs_mujoco
def test_reset_to_state_roundtrip_then_the_same_future():
    from lewm.envs.reacher import physics

    env = make_env("reacher", resolution=RES)
    s = np.array([2.9, -1.3, 1.5, -4.0])  # a moving arm
    g = np.array([-0.4, 0.7, 0.0, 0.0])
    obs, info = env.reset(options={"state": s, "goal_state": g})
    np.testing.assert_array_equal(env.state, s)
    np.testing.assert_array_equal(obs, s.astype(np.float32))
    np.testing.assert_array_equal(env.goal_state, g)
    # the shoulder is 3.3 rad off one way, 2 pi - 3.3 the other; the wrist 2.0
    assert not info["success"] and info["joint_error"] == pytest.approx(2 * np.pi - 3.3)
    actions = np.random.default_rng(0).uniform(-1, 1, (10, 2))
    for a in actions:
        env.step(a)
    future = env.state
    # no hidden history: reset to the same state again, same actions, same states
    env.reset(options={"state": s, "goal_state": g})
    for a in actions:
        env.step(a)
    np.testing.assert_array_equal(env.state, future)
    np.testing.assert_array_equal(physics.simulate(s, actions)[-1], future)
    assert not np.allclose(future, s)  # the actions moved the arm


@needs_mujoco
@pytest.mark.parametrize(
    "state, message",
    [
        ([0.0, 0.0, 0.0], "4 finite numbers"),
        ([0.0, np.nan, 0.0, 0.0], "4 finite numbers"),
        ([0.0, 3.5, 0.0, 0.0], "wrist angle"),
    ],
)
def test_reset_refuses_bad_states(state, message):
    env = make_env("reacher", resolution=RES)
    with pytest.raises(ValueError, match=message):
        env.reset(options={"state": state})
    with pytest.raises(ValueError, match="goal_state"):
        env.reset(options={"goal_state": state})
    with pytest.raises(ValueError, match="unknown reset option"):
        env.reset(options={"target": [0.0, 0.0]})
    with pytest.raises(ValueError, match="motor commands"):
        env.step([0.0, 0.0, 0.0])


def test_success_thresholds_wrap_the_shoulder_only():
    from lewm.envs.reacher import SUCCESS_TOL, success

    goal = np.array([0.3, -1.0, 0.0, 0.0])
    assert SUCCESS_TOL == 0.05
    for joint in (0, 1):
        for offset, ok in ((0.049, True), (-0.049, True), (0.051, False), (-0.051, False)):
            s = goal.copy()
            s[joint] += offset
            assert bool(success(s, goal)) is ok, (joint, offset)
    fast = goal + np.array([0.0, 0.0, 9.0, -9.0])  # velocities do not count
    assert success(fast, goal)
    turned = goal + np.array([2 * np.pi + 0.01, 0.0, 0.0, 0.0])  # the same pose
    assert success(turned, goal)
    assert success(np.array([np.pi - 0.01, 0.0]), np.array([-np.pi + 0.01, 0.0]))
    # vectorised over leading axes, goals of any length >= 2
    states = np.stack([goal, goal + [0.1, 0, 0, 0], turned])[None]  # (1, 3, 4)
    np.testing.assert_array_equal(success(states, goal[:2]), [[True, False, True]])
    with pytest.raises(ValueError, match="at least 2 values"):
        success(goal, goal[:1])


@needs_mujoco
def test_goal_image_is_the_goal_state_rendered_and_only_qpos_shows():
    from lewm.envs.reacher import render_batch

    env = make_env("reacher", resolution=RES)
    s, g = np.array([0.5, 1.0, 2.0, -1.0]), np.array([-2.0, -1.2, 0.0, 0.0])
    env.reset(options={"state": s, "goal_state": g})
    goal_img = env.render_state(env.goal_state)
    np.testing.assert_array_equal(goal_img, render_batch(g[None], RES)[0])
    np.testing.assert_array_equal(goal_img, get_spec("reacher").render(g[None, :2], RES)[0])
    assert not np.array_equal(goal_img, env.render())
    env.reset(options={"state": g, "goal_state": s})  # at the goal pose, the env draws it
    np.testing.assert_array_equal(env.render(), goal_img)
    moving = g + np.array([0.0, 0.0, 3.0, -3.0])
    np.testing.assert_array_equal(render_batch(moving[None], RES)[0], goal_img)
    # colour changes the arm only, and the shared renderer forgets it afterwards
    blue = render_batch(g[None], RES, arm_colour=(0, 0, 255))[0]
    changed = (blue != goal_img).any(axis=-1)
    assert 0 < changed.mean() < 0.2
    np.testing.assert_array_equal(render_batch(g[None], RES)[0], goal_img)
    # any resolution, and dm_control's own look is another picture of the same pose
    assert render_batch(g[None], 100).shape == (1, 100, 100, 3)
    assert not np.array_equal(render_batch(g[None], RES, dmc_look=True)[0], goal_img)


@needs_mujoco
def test_fingertip_quantity_is_mujocos_fingertip():
    from lewm.envs.reacher import fingertip, physics, sample_state

    states = sample_state(np.random.default_rng(1), 5)
    model = physics.reacher_model()
    import mujoco

    finger = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_BODY, "finger")
    for s, tip in zip(states, fingertip(states), strict=True):
        data = physics.new_data(s)
        np.testing.assert_allclose(data.xpos[finger][:2], tip, atol=1e-9)
    q = get_spec("reacher").quantities
    np.testing.assert_allclose(q["joints"](states)[:, :2], np.sin(states[:, :2]))
    np.testing.assert_array_equal(q["velocity"](states), states[:, 2:4])


@needs_mujoco
def test_pd_policy_reaches_its_goals_and_random_does_not_aim():
    from lewm.envs.reacher import PDPolicy, physics, sample_state, success
    from lewm.envs.reacher.collect import motion_stats
    from lewm.envs.reacher.policy import make_policy

    rng = np.random.default_rng(0)
    reached = 0
    for _ in range(6):
        data = physics.new_data(sample_state(rng))
        policy = PDPolicy(rng, noise_std=0.0)
        goal = policy.goal
        for _ in range(55):
            s = physics.get_state(data)
            if success(s, goal):
                reached += 1
                break
            physics.step(data, policy.act(s))
    assert reached >= 5
    with pytest.raises(ValueError, match="policy_kind"):
        make_policy("expert", rng)
    actions = np.stack([make_policy("random", rng).act(np.zeros(4)) for _ in range(500)])
    assert np.abs(actions).max() <= 1 and abs(actions.mean()) < 0.1
    ep = physics.simulate(sample_state(rng), actions[:60])
    assert motion_stats([ep], 25)["trivial_fraction"] < 0.5


@needs_mujoco
def test_collection_is_identical_whatever_the_worker_count(tmp_path):
    spec = get_spec("reacher")
    kw = {"resolution": 16, "max_steps": 30, "progress": False, "policy_kind": "pd"}
    s1 = spec.collect(tmp_path / "a.h5", 3, seed=5, workers=1, **kw)
    s2 = spec.collect(tmp_path / "b.h5", 3, seed=5, workers=2, **kw)
    assert s1["workers"] == 1 and s2["workers"] == 2
    with h5py.File(tmp_path / "a.h5") as a, h5py.File(tmp_path / "b.h5") as b:
        assert set(a) == set(b) and dict(a.attrs) == dict(b.attrs)
        for col in a:
            assert a[col][:].tobytes() == b[col][:].tobytes(), col
    ds = EpisodeDataset(tmp_path / "a.h5")
    assert set(ds.columns) == {"pixels", "action", "state", "proprio"}
    assert ds.attrs["policy"] == "pd" and ds.attrs["env"] == "reacher"
    assert ds.num_episodes == 3 and ds.num_steps == 3 * 31
    ep = ds.episode(1)
    np.testing.assert_array_equal(ep["proprio"], ep["state"])
    spec.collect(tmp_path / "c.h5", 3, seed=5, **{**kw, "policy_kind": "random"})
    c = EpisodeDataset(tmp_path / "c.h5")
    assert not np.array_equal(c.episode(1)["action"][:-1], ep["action"][:-1])


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"policy_kind": "sac"}, "policy_kind"),
        ({"workers": 0}, "workers"),
        ({"noise_std": -1.0}, "noise_std"),
        ({"max_steps": 0}, "max_steps"),
    ],
)
def test_collection_rejects_bad_arguments(tmp_path, kwargs, match):
    with pytest.raises(ValueError, match=match):
        get_spec("reacher").collect(tmp_path / "x.h5", 2, progress=False, **kwargs)
    assert not (tmp_path / "x.h5").exists()


@pytest.fixture
def fresh_backend(monkeypatch):
    """select_gl_backend as in a process that has imported neither mujoco nor chosen MUJOCO_GL
    (the real choice, environment and modules are restored afterwards)."""
    monkeypatch.setattr(backend, "_chosen", None)
    monkeypatch.delenv("MUJOCO_GL", raising=False)
    monkeypatch.delenv("PYOPENGL_PLATFORM", raising=False)
    monkeypatch.delitem(sys.modules, "mujoco", raising=False)


def test_backend_falls_back_to_osmesa_then_says_what_to_install(fresh_backend, monkeypatch):
    tried = []

    def only_osmesa(name):
        tried.append(name)
        return name == "osmesa", "EGL: no display"

    monkeypatch.setattr(backend, "_backend_works", only_osmesa)
    assert backend.select_gl_backend() == "osmesa" and tried == ["egl", "osmesa"]
    assert os.environ["MUJOCO_GL"] == os.environ["PYOPENGL_PLATFORM"] == "osmesa"
    assert backend.select_gl_backend() == "osmesa" and len(tried) == 2  # chosen once

    monkeypatch.setattr(backend, "_chosen", None)
    monkeypatch.delenv("MUJOCO_GL")
    monkeypatch.setattr(backend, "_backend_works", lambda name: (False, f"{name} broken"))
    with pytest.raises(backend.RenderBackendError) as e:
        backend.select_gl_backend()
    msg = str(e.value)
    assert "libosmesa6" in msg and "libegl" in msg and "egl broken" in msg
    assert "MUJOCO_GL" not in os.environ


def test_a_users_mujoco_gl_is_respected(fresh_backend, monkeypatch):
    monkeypatch.setenv("MUJOCO_GL", "osmesa")
    monkeypatch.setattr(backend, "_backend_works", lambda name: pytest.fail("tried " + name))
    assert backend.select_gl_backend() == "osmesa"


@needs_mujoco
def test_one_backend_really_works_here():
    # on CI this checks that .ci/run installed the system libraries
    results = {name: backend._backend_works(name) for name in backend.BACKENDS}
    assert any(ok for ok, _ in results.values()), results


def test_missing_packages_name_the_extra(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda n, *a: None if n == "dm_control" else real(n, *a)
    )
    with pytest.raises(ImportError, match=r"pip install 'lewm\[mujoco\]'") as e:
        backend.import_dm_control_reacher()
    assert "dm_control missing" in str(e.value)
    assert get_spec("reacher").install_hint == "pip install 'lewm[mujoco]'"


def test_importing_the_env_package_loads_no_mujoco():
    import subprocess

    code = (
        "import sys, lewm.envs, lewm.envs.reacher; "
        "print(sorted(m for m in ('mujoco', 'dm_control') if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "[]"


@needs_mujoco
def test_cli_collect_options_reach_the_reacher_collector_only(tmp_path, capsys):
    from lewm.cli.main import main

    args = ["collect", "reacher", "--episodes", "2", "--max-steps", "6", "--no-progress"]
    args += ["--resolution", "16"]
    assert main([*args, "--out", str(tmp_path / "r.h5")]) == 0
    assert main([*args, "--out", str(tmp_path / "p.h5"), "--policy-kind", "pd"]) == 0
    two = ["--policy-kind", "pd", "--workers", "2"]
    assert main([*args, "--out", str(tmp_path / "w.h5"), *two]) == 0
    r, p, w = (h5py.File(tmp_path / f"{n}.h5") for n in "rpw")
    assert (r.attrs["policy"], p.attrs["policy"], r.attrs["max_steps"]) == ("random", "pd", 6)
    assert p["action"][:].tobytes() == w["action"][:].tobytes()
    capsys.readouterr()
    assert main([*args, "--out", str(tmp_path / "bad.h5"), "--targets", "goal"]) == 2
    err = capsys.readouterr().err
    assert "--targets (targets) is not an option of the reacher collector" in err
    assert "it takes: policy_kind, noise_std" in err
    tw = ["collect", "tworoom", "--episodes", "2", "--out", str(tmp_path / "tw.h5")]
    assert main([*tw, "--policy-kind", "pd"]) == 2
    assert "--policy-kind (policy_kind) is not an option of the tworoom collector" in (
        capsys.readouterr().err
    )
    gym = ["collect", "gym:CartPole-v1", "--episodes", "2", "--out", str(tmp_path / "g.h5")]
    assert main([*gym, "--workers", "2"]) == 2
    assert "--workers is an option of lewm's scripted collectors" in capsys.readouterr().err
    assert main([*args, "--out", str(tmp_path / "bad.h5"), "--policy", "m:f"]) == 2
    assert "--policy" in capsys.readouterr().err
    assert not any((tmp_path / n).exists() for n in ("bad.h5", "tw.h5", "g.h5"))


@needs_mujoco
def test_collect_train_eval_end_to_end(tmp_path, capsys):
    import json

    from lewm.cli.main import main

    data, run = str(tmp_path / "r.h5"), str(tmp_path / "run")
    collect = ["collect", "reacher", "--episodes", "6", "--max-steps", "30", "--out", data]
    assert main([*collect, "--resolution", "32", "--no-progress"]) == 0
    train = ["train", "--data", data, "--out", run, "--preset", "tiny", "--no-progress"]
    assert main([*train, "train.steps=3"]) == 0
    capsys.readouterr()
    solver = ["--samples", "8", "--elites", "2", "--iterations", "1", "--gifs", "0"]
    assert main(["eval", run, "--env", "reacher", "--episodes", "2", *solver, "--no-progress"]) == 0
    res = json.loads(capsys.readouterr().out)
    assert res["episodes"] == 2 and 0.0 <= res["success_rate"] <= 1.0


@pytest.mark.slow
@needs_mujoco
def test_paper_preset_collects_trains_and_plans_one_reacher_episode(tmp_path):
    """Issue 18, acceptance 4: the paper preset (ViT-tiny at 224 px, 18,034,478 parameters)
    builds, trains a few steps and plans one Reacher episode, through the CPU preset's code."""
    import json

    from lewm.config import apply_overrides, preset
    from lewm.envs.reacher import collect_reacher
    from lewm.models import LeWM
    from lewm.planning import CEMConfig
    from lewm.planning.evaluate import EvalConfig, evaluate
    from lewm.training.trainer import train

    data = tmp_path / "reacher224.h5"
    collect_reacher(data, 3, resolution=224, max_steps=40, progress=False)
    assert EpisodeDataset(data).image_shape == (224, 224, 3)
    cfg = apply_overrides(
        preset("paper"),
        ["train.steps=2", "train.batch_size=2", "train.val_every=0", "train.val_fraction=0.34"],
    )
    res = train(cfg, data, tmp_path / "run", progress=False)
    assert res.steps == 2
    model = LeWM.from_pretrained(res.model_dir)
    assert sum(p.numel() for p in model.parameters()) == 18_034_478
    ecfg = EvalConfig(
        episodes=1, goal_offset=10, budget=10, horizon=2, receding=2, split="all", num_gifs=1,
        solver=CEMConfig(num_samples=6, num_elites=2, iterations=2),
    )  # fmt: skip
    out = evaluate(model, "reacher", data, ecfg, out_dir=tmp_path / "eval")
    assert len(out.successes) == 1 and out.plans >= 1
    rec = json.loads((tmp_path / "eval" / "eval.json").read_text())
    assert len(rec["successes"]) == 1 and rec["settings"]["solver"]["num_samples"] == 6
