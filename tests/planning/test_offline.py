"""Evaluation without a simulator (lewm.planning.offline, ``lewm eval RUN --offline``): the
numbers are right on a toy world whose model is exact, they separate a model that knows the
actions from one that does not, and the command works on a file with no 'state' column."""

import dataclasses
import json

import numpy as np
import pytest
import torch
from toys import tiny_tworoom_run

from lewm.cli.main import main
from lewm.data.hdf5 import DataError, EpisodeDataset, EpisodeWriter
from lewm.data.normalize import Normalizer
from lewm.planning import CEMConfig
from lewm.planning.evaluate import EvalConfig, sample_tasks
from lewm.planning.offline import evaluate_offline

pytestmark = pytest.mark.usefixtures("one_thread")


# -- a toy world: a point whose position is written in the first pixel (0.1 units per level) ----
def _frame(pos: np.ndarray) -> np.ndarray:
    img = np.zeros((8, 8, 3), np.uint8)
    img[0, 0, :2] = np.rint(np.asarray(pos) * 10).astype(np.uint8)
    return img


class ToyModel(torch.nn.Module):
    """z = the position read from the first pixel; a block moves it by the sum of its raw
    steps (``knows_actions``) or not at all (a model blind to the actions)."""

    history = 1

    def __init__(self, normalizer: Normalizer, frameskip: int, knows_actions: bool = True):
        super().__init__()
        self.normalizer, self.frameskip, self.knows = normalizer, frameskip, knows_actions
        self.action_dim, self.action_block_dim = 2, 2 * frameskip
        self.metadata = {"action_range": [[-1.0, -1.0], [1.0, 1.0]], "image_shape": [8, 8, 3]}

    def action_normalizer(self) -> Normalizer:
        return self.normalizer

    def encode(self, pixels: torch.Tensor) -> torch.Tensor:
        return pixels[..., 0, 0, :2].float() / 10  # (B, T, 2)

    def rollout(self, z_context, actions, history_actions=None):
        B, S, H, _ = actions.shape
        raw = self.normalizer.denormalize("action", actions.reshape(B, S, H, self.frameskip, 2))
        moves = raw.sum(3).cumsum(2) * float(self.knows)  # (B, S, H, 2)
        return z_context[:, -1][:, None, None] + moves


@pytest.fixture(scope="module")
def toy_world(tmp_path_factory):
    """12 episodes of 40 steps, uniform random actions in [-1, 1]^2, no 'state' column."""
    path = tmp_path_factory.mktemp("toy") / "toy.h5"
    rng = np.random.default_rng(0)
    with EpisodeWriter(path) as w:
        for _ in range(12):
            act = rng.uniform(-1, 1, size=(40, 2)).astype(np.float32)
            pos = 12.0 + np.concatenate([np.zeros((1, 2)), np.cumsum(act[:-1], 0)])  # (40, 2)
            act[-1] = np.nan  # the last row has no action, as lewm collect writes it
            w.add_episode(pixels=np.stack([_frame(p) for p in pos]), action=act)
    data = EpisodeDataset(path)
    norm = Normalizer.fit({"action": data.column("action")})
    return path, norm


def _cfg(**kw) -> EvalConfig:
    base = dict(episodes=24, goal_offset=6, budget=6, horizon=3, receding=3, split="all")
    solver = CEMConfig(num_samples=200, num_elites=20, iterations=8)
    return EvalConfig(**{**base, "solver": solver, **kw})


def test_an_exact_model_predicts_the_logged_future_and_recovers_the_net_action(toy_world):
    path, norm = toy_world
    res = evaluate_offline(ToyModel(norm, frameskip=2), path, _cfg(), progress=False)
    assert res.blocks == 3 and res.context == 1 and len(res.tasks) == 24
    # the rows line up: an exact model along the logged actions lands on the logged frames
    assert max(res.rollout_error) < 0.02  # frames hold positions to 0.1: rounding
    assert min(res.copy_last_error) > 0.5 and res.copy_last_error[-1] > res.copy_last_error[0]
    assert res.start_goal_distance == pytest.approx(res.copy_last_error[-1])
    # the net command is determined by start and goal; single steps are not
    assert res.net_action_r2 > 0.9
    assert res.net_action_error["planned"] < 0.1 * res.net_action_error["other_task"]
    assert res.cost_logged < 0.02 and res.cost_planned < 0.05
    assert set(res.action_error) == {"planned", "mean_action", "other_task", "random"}
    assert all(len(v) == 3 for v in res.action_error.values())


def test_a_model_blind_to_actions_recovers_nothing(toy_world):
    path, norm = toy_world
    res = evaluate_offline(ToyModel(norm, 2, knows_actions=False), path, _cfg(), progress=False)
    assert res.net_action_r2 < 0.3  # no better than the mean action
    # it predicts "nothing moves": its open-loop error is the copy-last baseline
    np.testing.assert_allclose(res.rollout_error, res.copy_last_error, rtol=1e-5)


def test_the_tasks_are_the_online_protocols_and_context_frames_come_before_them(toy_world):
    path, norm = toy_world
    data = EpisodeDataset(path)
    cfg = _cfg()
    res = evaluate_offline(ToyModel(norm, 2), path, cfg, progress=False)
    online = sample_tasks(data, np.arange(12), cfg.episodes, cfg.goal_offset, cfg.seed)
    assert res.tasks == online
    model = ToyModel(norm, 2)
    model.history = 3
    res3 = evaluate_offline(model, path, dataclasses.replace(cfg, context=3), progress=False)
    assert res3.context == 3 and min(s for _, s in res3.tasks) >= 2 * 2
    assert max(res3.rollout_error) < 0.02


def test_inconsistent_settings_are_one_clear_error(toy_world, tmp_path):
    path, norm = toy_world
    with pytest.raises(DataError, match=r"--horizon 3 or --goal-offset 10"):
        evaluate_offline(ToyModel(norm, 2), path, _cfg(horizon=5, receding=5), progress=False)
    with pytest.raises(DataError, match="not a multiple of the model's frameskip 2"):
        evaluate_offline(ToyModel(norm, 2), path, _cfg(goal_offset=7, budget=7), progress=False)
    wide = ToyModel(norm, 2)
    wide.action_dim = 3
    with pytest.raises(DataError, match="actions of 2 values, the model takes 3"):
        evaluate_offline(wide, path, _cfg(), progress=False)
    with pytest.raises(DataError, match="only 444 valid start steps|valid start steps"):
        evaluate_offline(ToyModel(norm, 2), path, _cfg(episodes=10**5), progress=False)


def test_an_earlier_evaluation_is_kept_unless_overwrite(toy_world, tmp_path):
    path, norm = toy_world
    out = tmp_path / "off"
    evaluate_offline(ToyModel(norm, 2), path, _cfg(), out_dir=out, progress=False)
    before = (out / "offline.json").read_bytes()
    assert (out / "offline.png").stat().st_size > 1000
    with pytest.raises(FileExistsError, match="already holds an offline evaluation"):
        evaluate_offline(ToyModel(norm, 2), path, _cfg(seed=1), out_dir=out, progress=False)
    assert (out / "offline.json").read_bytes() == before
    evaluate_offline(ToyModel(norm, 2), path, _cfg(seed=1), out_dir=out, overwrite=True)
    assert json.loads((out / "offline.json").read_text())["settings"]["seed"] == 1


# -- the command, on a trained LeWM ---------------------------------------------------------------
@pytest.fixture(scope="module")
def tworoom_run(tmp_path_factory):
    return tiny_tworoom_run(tmp_path_factory.mktemp("off"), 30, history=2)


def _stateless_copy(src, dst):
    """The episodes of ``src`` with only pixels and actions: a robot's logs, no simulator state."""
    data = EpisodeDataset(src)
    with EpisodeWriter(dst) as w:
        for e in range(data.num_episodes):
            rows = np.arange(data.ep_offset[e], data.ep_offset[e] + data.ep_len[e])
            w.add_episode(pixels=data.rows("pixels", rows), action=data.rows("action", rows))
    assert not EpisodeDataset(dst).has("state")


def test_lewm_eval_offline_on_logs_without_state(tworoom_run, tmp_path, capsys):
    logs = tmp_path / "logs.h5"
    _stateless_copy(tworoom_run / "tr.h5", logs)
    fast = ["--samples", "30", "--iterations", "2", "--episodes", "8", "--no-progress"]
    out = tmp_path / "o"
    args = ["eval", str(tworoom_run / "run"), "--offline", "--data", str(logs), *fast]
    assert main([*args, "--context", "2", "--goal-offset", "10", "--out", str(out)]) == 0
    printed = json.loads(capsys.readouterr().out)
    saved = json.loads((out / "offline.json").read_text())
    assert printed["tasks"] == 8 and printed["blocks"] == saved["blocks"] == 2  # 10 / frameskip 5
    assert saved["context"] == 2 and saved["settings"]["horizon"] == 2
    assert np.isfinite(saved["rollout_error"]).all() and saved["plan_seconds_mean"] > 0
    # the default folder: beside the model, one per setting
    assert main(args) == 0
    capsys.readouterr()
    assert len(list((tworoom_run / "run").glob("offline_cem_*/offline.json"))) == 1


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--env", "tworoom"], "--offline runs no environment, so --env would be ignored"),
        (["--budget", "60", "--gifs", "2"], "--budget, --gifs would be ignored: drop them"),
        (["eval.receding=2"], "eval.receding=2 would be ignored"),
        (["--horizon", "4"], "--horizon 5 or --goal-offset 20"),
    ],
)
def test_lewm_eval_offline_refuses_what_it_would_ignore(
    tworoom_run, tmp_path, capsys, extra, message
):
    out = tmp_path / "o"
    code = main(["eval", str(tworoom_run / "run"), "--offline", "--out", str(out), *extra])
    assert code != 0
    assert message in capsys.readouterr().err
    assert not out.exists()
