import json

import gymnasium as gym
import numpy as np
import pytest
import torch
from toys import tiny_tworoom_run

from lewm.cli.main import main
from lewm.config import ConfigError
from lewm.data.hdf5 import DataError, EpisodeWriter
from lewm.models import LeWM
from lewm.planning import CEMConfig
from lewm.planning.evaluate import EvalConfig, evaluate, sample_tasks


@pytest.fixture(scope="module")
def tworoom_run(tmp_path_factory):
    return tiny_tworoom_run(tmp_path_factory.mktemp("tr"), 40, history=1)


def _small(**kw):
    solver = CEMConfig(num_samples=16, num_elites=4, iterations=2)
    base = dict(episodes=4, solver=solver, num_gifs=1, split="all")
    return EvalConfig(**{**base, **kw})


def test_eval_runs_writes_outputs_and_is_deterministic(tworoom_run, tmp_path, picture):
    model = LeWM.from_pretrained(tworoom_run / "run")
    a = evaluate(model, "tworoom", tworoom_run / "tr.h5", _small(), out_dir=tmp_path / "a")
    b = evaluate(model, "tworoom", tworoom_run / "tr.h5", _small(), out_dir=tmp_path / "b")
    assert a.successes == b.successes and a.tasks == b.tasks
    assert a.steps_to_success == b.steps_to_success
    assert a.plans > 0 and a.plan_seconds_mean > 0
    saved = json.loads((tmp_path / "a" / "eval.json").read_text())
    assert saved["success_rate"] == a.success_rate and len(saved["successes"]) == 4
    gif = picture(tmp_path / "a" / "episode_00.gif", min_colours=2)  # (frames, h, w, 3)
    # one frame per executed step plus the start; episode | goal side by side, 3x scaled
    assert gif.shape[0] == (a.steps_to_success[0] or 50) + 1
    assert gif.shape[1:3] == (3 * (16 + 4), 3 * (2 * 16 + 2 + 4))
    c = evaluate(model, "tworoom", tworoom_run / "tr.h5", _small(seed=7))
    assert c.tasks != a.tasks


def test_path_cost_reaches_the_planner_and_the_record(tworoom_run, tmp_path):
    from lewm.planning.evaluate import _build_controller

    model = LeWM.from_pretrained(tworoom_run / "run")
    lo, hi = np.full(2, -1.0), np.full(2, 1.0)
    ctrl = _build_controller(model, _small(), lo, hi, "cpu")
    assert ctrl.planner.objective.mode == "terminal"
    assert (
        _build_controller(model, _small(cost="path"), lo, hi, "cpu").planner.objective.mode
        == "path"
    )
    res = evaluate(model, "tworoom", tworoom_run / "tr.h5", _small(cost="path"), out_dir=tmp_path)
    assert len(res.successes) == 4
    assert json.loads((tmp_path / "eval.json").read_text())["settings"]["cost"] == "path"


def test_bounded_search_gives_the_planner_the_env_box_in_normalised_units(tworoom_run):
    from lewm.planning.evaluate import _build_controller, eval_folder_name

    model = LeWM.from_pretrained(tworoom_run / "run")
    lo, hi = np.array([-1.0, -0.5]), np.array([1.0, 0.25])
    assert _build_controller(model, _small(), lo, hi, "cpu").planner.action_box is None
    box = _build_controller(model, _small(bounded_search=True), lo, hi, "cpu").planner.action_box
    norm = model.action_normalizer()
    f = model.frameskip
    for got, raw in zip(box, (lo, hi), strict=True):
        assert got.shape == (f * 2,)
        want = norm.normalize("action", torch.tensor(raw, dtype=torch.float32)[None])[0]
        torch.testing.assert_close(got, want.repeat(f))  # one step's box per step of the block
    data = tworoom_run / "tr.h5"
    on = _small(bounded_search=True)
    assert eval_folder_name("tworoom", _small(), data) != eval_folder_name("tworoom", on, data)
    with pytest.raises(ConfigError, match="bounded_search must be true or false"):
        EvalConfig(bounded_search="yes")


def test_random_policy_and_budget_accounting(tworoom_run):
    res = evaluate(None, "tworoom", tworoom_run / "tr.h5", _small(policy="random", episodes=6))
    for s, n in zip(res.successes, res.steps_to_success, strict=True):
        assert (n is not None) == s and (n is None or 1 <= n <= 50)
    # the env's final distance to the goal is recorded per task; success means it is < 16
    assert len(res.final_errors) == 6
    for s, err in zip(res.successes, res.final_errors, strict=True):
        assert (err["distance"] < 16.0) == s


def test_replay_sends_the_datas_own_actions_and_reaches_every_goal(tworoom_run):
    from lewm.data.hdf5 import EpisodeDataset
    from lewm.envs import make_env
    from lewm.planning.evaluate import logged_actions

    data = EpisodeDataset(tworoom_run / "tr.h5")
    cfg = _small(policy="replay", episodes=6, goal_offset=10, budget=40)
    res = evaluate(None, "tworoom", tworoom_run / "tr.h5", cfg)
    # the goal is where the logged actions lead after goal_offset steps: reached by then
    assert all(res.successes) and all(1 <= n <= 10 for n in res.steps_to_success)
    logged = logged_actions(data, res.tasks, cfg.budget)  # (6, 40, A)
    states, actions = data.column("state"), data.column("action")
    for i, (ep, s) in enumerate(res.tasks):
        row, left = int(data.ep_offset[ep]) + s, int(data.ep_len[ep]) - 1 - s
        n = min(cfg.budget, left)
        np.testing.assert_array_equal(logged[i, :n], actions[row : row + n])
        assert np.isnan(logged[i, n:]).all()
        env = make_env("tworoom", resolution=16)  # the same actions replay the stored states
        env.reset(options={"state": states[row], "goal_state": states[row + 10]})
        for t in range(3):
            env.step(logged[i, t])
        np.testing.assert_allclose(env.state, states[row + 3], atol=1e-3)


def test_replay_stops_an_episode_whose_logged_actions_run_out(tworoom_run, monkeypatch):
    from lewm.planning import evaluate as ev

    real = ev.logged_actions

    def two_left(dataset, tasks, budget):  # as if every episode ended 2 steps after its start
        out = real(dataset, tasks, budget)
        out[:, 2:] = np.nan
        return out

    monkeypatch.setattr(ev, "logged_actions", two_left)
    cfg = _small(policy="replay", episodes=6, goal_offset=25, exclude_solved=True)
    res = evaluate(None, "tworoom", tworoom_run / "tr.h5", cfg)
    assert sum(res.truncated) >= 3  # most goals 25 steps away are not reached in 2 steps
    for ok, n, cut in zip(res.successes, res.steps_to_success, res.truncated, strict=True):
        assert cut != ok and (n is None or n <= 2)


def test_heldout_split_uses_the_models_validation_episodes(tworoom_run):
    from lewm.data.clips import split_episodes
    from lewm.data.hdf5 import EpisodeDataset

    model = LeWM.from_pretrained(tworoom_run / "run")
    res = evaluate(
        model,
        "tworoom",
        tworoom_run / "tr.h5",
        _small(split="heldout", episodes=2, policy="random"),
    )
    _, val = split_episodes(40, 0.1, 0)
    assert {ep for ep, _ in res.tasks} <= set(val.tolist())
    ds = EpisodeDataset(tworoom_run / "tr.h5")
    tasks = sample_tasks(ds, np.arange(40), 5, 25, seed=1)
    assert all(s + 25 <= ds.ep_len[e] - 1 for e, s in tasks)


def test_skip_draws_only_allowed_tasks_and_the_default_draw_is_unchanged(tworoom_run):
    from lewm.data.hdf5 import EpisodeDataset
    from lewm.planning.evaluate import solved_at_start

    ds = EpisodeDataset(tworoom_run / "tr.h5")
    eps = np.arange(40)
    plain = sample_tasks(ds, eps, 8, 25, seed=3)
    assert sample_tasks(ds, eps, 8, 25, seed=3) == plain  # the paper's draw, reproducible
    odd = sample_tasks(ds, eps, 8, 25, seed=3, skip=lambda t: t[:, 1] % 2 == 1)
    assert len(odd) == 8 and all(s % 2 == 0 for _, s in odd) and odd == sorted(odd)
    with pytest.raises(DataError, match="not already solved at the start"):
        sample_tasks(ds, eps, 8, 25, seed=3, skip=lambda t: np.ones(len(t), bool))
    # the env's own success test on the start and goal states of each task
    solved = solved_at_start("tworoom", ds, 25)
    from lewm.envs import get_spec

    st = ds.column("state")[:]
    rows = np.array([int(ds.ep_offset[e]) + s for e, s in plain])
    want = get_spec("tworoom").success(st[rows], st[rows + 25])
    np.testing.assert_array_equal(solved(np.array(plain)), want)
    assert solved_at_start("gym:CartPole-v1", ds, 25) is None


def test_exclude_solved_is_recorded_and_gets_its_own_folder(tworoom_run, tmp_path):
    from lewm.planning.evaluate import eval_folder_name

    cfg = _small(policy="random", episodes=6)
    on = _small(policy="random", episodes=6, exclude_solved=True)
    a = evaluate(None, "tworoom", tworoom_run / "tr.h5", cfg)
    b = evaluate(None, "tworoom", tworoom_run / "tr.h5", on)
    assert a.solved_at_start == b.solved_at_start is not None
    assert a.settings["exclude_solved"] is False and b.settings["exclude_solved"] is True
    data = tworoom_run / "tr.h5"
    assert eval_folder_name("tworoom", cfg, data) != eval_folder_name("tworoom", on, data)
    with pytest.raises(ConfigError, match="exclude_solved must be true or false"):
        EvalConfig(exclude_solved="yes")


def test_eval_bad_inputs(tworoom_run, tmp_path, capsys):
    with pytest.raises(ConfigError, match=r"eval.budget \(10\) is smaller than eval.goal_offset"):
        EvalConfig(budget=10, goal_offset=25)
    with pytest.raises(ConfigError, match="eval.cost must be one of.*'final'"):
        EvalConfig(cost="final")
    assert main(["eval", str(tworoom_run / "run"), "--env", "maze"]) == 2
    assert "unknown environment 'maze'" in capsys.readouterr().err
    # a dataset without a state column
    with EpisodeWriter(tmp_path / "nostate.h5") as w:
        act = np.zeros((30, 2), np.float32)
        act[-1] = np.nan
        w.add_episode(pixels=np.zeros((30, 16, 16, 3), np.uint8), action=act)
    model = LeWM.from_pretrained(tworoom_run / "run")
    with pytest.raises(DataError, match="no 'state' column"):
        evaluate(model, "tworoom", tmp_path / "nostate.h5", _small())
    # a checkpoint whose action dimension differs from the environment's
    model.config.action_dim = 3
    with pytest.raises(DataError, match="action_dim 3"):
        evaluate(model, "tworoom", tworoom_run / "tr.h5", _small())


def test_sharded_evaluation_merges_to_the_unsharded_result(tworoom_run, tmp_path):
    from lewm.planning.evaluate import merge_results

    cfg = _small(policy="random", episodes=7, num_gifs=3)
    whole = evaluate(None, "tworoom", tworoom_run / "tr.h5", cfg, out_dir=tmp_path / "whole")
    parts = [
        evaluate(None, "tworoom", tworoom_run / "tr.h5", cfg, out_dir=tmp_path / "sh", shard=(k, 3))
        for k in range(3)
    ]
    assert sorted(len(p.tasks) for p in parts) == [2, 2, 3]
    merged = merge_results(parts)
    # the random policy draws per task, so sharding does not change any episode
    assert merged.tasks == whole.tasks and merged.successes == whole.successes
    assert merged.steps_to_success == whole.steps_to_success
    assert sorted(p.name for p in (tmp_path / "sh").iterdir()) == [
        "episode_00.gif",
        "episode_01.gif",
        "episode_02.gif",
    ]
    with pytest.raises(ValueError, match="overlap or leave tasks out"):
        merge_results(parts[:2])
    model = LeWM.from_pretrained(tworoom_run / "run")
    planned = merge_results(
        [
            evaluate(model, "tworoom", tworoom_run / "tr.h5", _small(), shard=(k, 2))
            for k in range(2)
        ]
    )
    assert len(planned.successes) == 4 and planned.plans >= 4 and planned.plan_seconds_mean > 0


@pytest.mark.slow
def test_torchrun_distributed_eval(tworoom_run, tmp_path):
    import subprocess
    import sys

    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc-per-node",
        "2",
        "--master-addr",
        "127.0.0.1",
        "--master-port",
        "29517",
        "-m",
        "lewm.cli.main",
        "eval",
        str(tworoom_run / "run"),
        "--data",
        str(tworoom_run / "tr.h5"),
        "--split",
        "all",
        "--episodes",
        "4",
        "--samples",
        "16",
        "--elites",
        "4",
        "--iterations",
        "2",
        "--distributed",
        "--out",
        str(tmp_path / "ev"),
    ]
    subprocess.run(cmd, check=True, capture_output=True, timeout=120)
    saved = json.loads((tmp_path / "ev" / "eval.json").read_text())
    assert len(saved["successes"]) == 4 and saved["settings"]["processes"] == 2
    assert sorted(saved["task_index"]) == [0, 1, 2, 3]


# -- an environment with another action space (any Gymnasium env, not only lewm's) ---------------


class BoxEnv(gym.Env):
    """A point on a 16 x 16 grid moved by 0.5 * (action - 4), with actions in Box(0, 8): the
    space of neither lewm env. It truncates after 6 steps and refuses any action outside its
    space (as a real robot interface would)."""

    def __init__(self, resolution: int = 16) -> None:
        self.action_space = gym.spaces.Box(0.0, 8.0, shape=(2,), dtype=np.float32)
        self.resolution, self.pos, self.goal, self.t = resolution, np.zeros(2), np.zeros(2), 0
        self.received: list[np.ndarray] = []

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.pos = np.asarray(options["state"], np.float64)
        self.goal = np.asarray(options["goal_state"], np.float64)
        self.t = 0
        return self.pos.astype(np.float32), {}

    def step(self, action):
        a = np.asarray(action, np.float32)
        if not self.action_space.contains(a):
            raise AssertionError(f"action {a} outside {self.action_space}")
        self.received.append(a)
        self.pos = np.clip(self.pos + 0.5 * (a - 4.0), 0, 15)
        self.t += 1
        success = bool(np.linalg.norm(self.pos - self.goal) < 0.5)
        return self.pos.astype(np.float32), 0.0, success, self.t >= 6, {"success": success}

    def render_state(self, state):
        from toys import render

        return render(state)

    def render(self):
        return self.render_state(self.pos)


@pytest.fixture
def box_world(tmp_path, monkeypatch):
    """A dataset of BoxEnv episodes and evaluate() building BoxEnvs for env 'box'."""
    from toys import render

    rng = np.random.default_rng(0)
    with EpisodeWriter(tmp_path / "box.h5", attrs={"env": "box"}) as w:
        for _ in range(6):
            act = rng.uniform(0, 8, (40, 2)).astype(np.float32)
            pos = np.empty((40, 2))
            pos[0] = rng.uniform(0, 15, 2)
            for t in range(1, 40):
                pos[t] = np.clip(pos[t - 1] + 0.5 * (act[t - 1] - 4.0), 0, 15)
            act[-1] = np.nan
            w.add_episode(pixels=np.stack([render(p) for p in pos]), action=act, state=pos)
    envs: list[BoxEnv] = []

    def make_envs(env_name, n, resolution):
        envs.extend(BoxEnv(resolution) for _ in range(n))
        return envs[-n:]

    monkeypatch.setattr("lewm.planning.evaluate._make_envs", make_envs)
    return tmp_path / "box.h5", envs


def test_every_action_sent_lies_in_the_env_action_space(box_world, tiny_config):
    """The planner's raw actions (normalised std 200 around 4: mostly far outside [0, 8]) are
    clipped into the space; the random policy draws inside it, not in [-1, 1]."""
    from lewm.data.normalize import Normalizer

    data, envs = box_world
    model = LeWM(tiny_config.model).eval()
    model.normalizer = Normalizer({"action": (np.full(2, 4.0), np.full(2, 200.0))})
    res = evaluate(model, "box", data, _small(budget=30, goal_offset=5, context=2))
    assert res.clipped_steps > 0  # the planner did propose actions outside the space
    received = np.concatenate([e.received for e in envs])  # BoxEnv.step raised on any other
    assert received.min() >= 0.0 and received.max() <= 8.0
    assert ((received == 0.0) | (received == 8.0)).any()  # clipped onto the bounds
    n_plan = len(envs)
    rnd = evaluate(None, "box", data, _small(policy="random", budget=30, goal_offset=5))
    drawn = np.concatenate([e.received for e in envs[n_plan:]])
    assert drawn.min() >= 0.0 and drawn.max() <= 8.0 and drawn.max() > 4.0
    # BoxEnv truncates after 6 steps: recorded apart from termination, and the episode ends
    for r in (res, rnd):
        for ok, term, trunc, n in zip(
            r.successes, r.terminated, r.truncated, r.steps_to_success, strict=True
        ):
            assert term == ok and (trunc or ok)
            assert n is None or n <= 6
    assert all(len(e.received) <= 6 for e in envs)


def test_mpc_history_holds_the_clipped_actions():
    """What the controller feeds back as context is what the environment executed."""
    from toys import RecordingModel

    from lewm.planning import CEM, CEMConfig, MPCController, Planner

    model = RecordingModel(history=2, block_dim=2)  # frameskip 1, A = 2
    solver = CEM(CEMConfig(num_samples=8, num_elites=2, iterations=1))
    planner = Planner(model, solver, horizon=2, receding=1)
    ctrl = MPCController(
        planner,
        frameskip=1,
        action_dim=2,
        denormalize=lambda a: 100.0 * a,  # raw = 100 x normalised: far outside [-1, 1]
        normalize=lambda a: a / 100.0,
        action_low=[-1.0, -1.0],
        action_high=[1.0, 1.0],
        seed=0,
    )
    ctrl.reset(np.zeros((1, 4, 4, 3), np.uint8))
    frame = [[np.zeros((4, 4, 3), np.uint8)]]
    executed = [ctrl.act(frame, np.ones(1, bool))[0] for _ in range(3)]
    assert all(np.abs(a).max() <= 1.0 for a in executed) and ctrl.clipped_steps >= 1
    # the second and third plans saw the executed (clipped) steps, normalised: raw / 100
    calls_per_plan = 2  # one rollout per CEM iteration + the final scoring of the plan
    for k in (1, 2):
        _, hist = model.calls[calls_per_plan * k]
        np.testing.assert_allclose(hist[0, -1].numpy(), executed[k - 1] / 100.0, rtol=1e-6)
    with pytest.raises(ValueError, match="needs normalize"):
        MPCController(planner, 1, 2, denormalize=lambda a: a, action_low=[0, 0], seed=0)


def test_a_model_trained_on_other_actions_is_refused(box_world, tiny_config):
    """The span of the training actions (recorded by the trainer) must fit the env's space."""
    from lewm.data.normalize import Normalizer

    data, _ = box_world
    model = LeWM(tiny_config.model).eval()
    model.normalizer = Normalizer({"action": (np.zeros(2), np.ones(2))})
    model.metadata = {"action_range": [[-1.0, -1.0], [1.0, 1.0]]}  # a [-1, 1] env's actions
    with pytest.raises(DataError, match=r"trained on actions in \[\[-1.0, -1.0\].*'box'"):
        evaluate(model, "box", data, _small(budget=30, goal_offset=5))
    model.metadata = {"action_range": [[0.5, 0.0], [8.0, 7.5]]}  # inside Box(0, 8): accepted
    assert len(evaluate(model, "box", data, _small(budget=30, goal_offset=5)).successes) == 4


def test_eval_folders_follow_the_settings_and_are_never_overwritten(tworoom_run, capsys):
    run = str(tworoom_run / "run")
    small = ["--split", "all", "--episodes", "2", "--samples", "8", "--elites", "2"]
    small += ["--iterations", "1", "--no-progress"]

    def eval_json(argv):
        capsys.readouterr()
        assert main(["eval", run, *small, *argv]) == 0
        return json.loads(capsys.readouterr().out)["eval_json"]

    cem = eval_json([])
    assert "/eval_tworoom_plan_cem_" in cem
    icem = eval_json(["--solver", "icem", "eval.solver.keep_elites=1"])
    rnd = eval_json(["--policy", "random"])
    replay = eval_json(["--policy", "replay"])
    assert "/eval_tworoom_random_" in rnd and "/eval_tworoom_replay_" in replay
    assert len({cem, icem, rnd, replay}) == 4
    other = eval_json(["--seed", "7"])  # any setting changes the folder
    assert other != cem
    before = (tworoom_run / "run" / cem.split("/run/")[1]).read_bytes()
    assert main(["eval", run, *small]) == 2  # the same settings again: refused
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "already holds an evaluation" in err and "--overwrite" in err
    folder = (tworoom_run / "run" / cem.split("/run/")[1]).parent
    assert (folder / "eval.json").read_bytes() == before
    (folder / "notes.txt").write_text("mine")
    assert eval_json(["--overwrite"]) == cem
    assert (folder / "notes.txt").read_text() == "mine"  # only what evaluation wrote is replaced


def test_eval_on_an_env_the_model_was_not_trained_on(tworoom_run, capsys):
    argv = ["eval", str(tworoom_run / "run"), "--env", "pusht", "--episodes", "2"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "trained on 'tworoom' data, not 'pusht'" in err
    assert "--any-env" in err
