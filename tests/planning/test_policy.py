"""The amortised planner: a goal-conditioned policy on frozen latents (lewm.planning.policy),
its solver (``policy``), the warm start of CEM from it, and ``lewm policy`` / ``lewm eval``."""

import hashlib
import json
import shutil

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file
from toys import tiny_tworoom_run

from lewm.cli.main import main
from lewm.data.hdf5 import EpisodeDataset
from lewm.models import load
from lewm.planning import CEMConfig, Planner, make_solver
from lewm.planning.evaluate import EvalConfig, evaluate
from lewm.planning.policy import (
    GoalPolicy,
    PolicyConfig,
    PolicyError,
    PolicyTrainConfig,
    load_policy,
    policy_for,
    save_policy,
    train_policy,
)

pytestmark = pytest.mark.usefixtures("one_thread")

FAST = ["--steps", "40", "--hidden", "32", "--no-progress"]


@pytest.fixture(scope="module")
def tworoom_run(tmp_path_factory):
    """A tiny Two-Room model (history 1, frameskip 5) trained 10 steps, and its data."""
    return tiny_tworoom_run(tmp_path_factory.mktemp("pol"), 40, history=1)


def _small_cfg(**kw) -> PolicyTrainConfig:
    base = dict(steps=120, batch_size=64, hidden=32, depth=2, val_pairs=256)
    return PolicyTrainConfig(**{**base, **kw})


def _record(config: PolicyConfig, sha: str = "0" * 64) -> dict:
    return {
        "format": "lewm-policy",
        "version": 1,
        "policy": vars(config),
        "model": {"sha256": sha, "checkpoint": "somewhere"},
    }


def _digests(folder):
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def test_training_reduces_the_loss_and_records_what_it_did(tworoom_run):
    ckpt = tworoom_run / "run" / "model"
    model = load(ckpt)
    data = EpisodeDataset(tworoom_run / "tr.h5", in_memory=False)
    policy, record = train_policy(model, data, ckpt, _small_cfg())
    L = record["losses"]
    assert L["train_mse"] < L["first_train_mse"]  # a 10-step model: little to read
    assert all(np.isfinite(v) for v in L.values())
    assert record["data"]["split"] == "model"  # the world model's own held-out episodes
    assert record["model"]["frameskip"] == model.frameskip == 5
    assert record["training"]["goal_offset_range"] == [5, 50]
    assert policy.config.horizon == 5 and policy.config.action_block_dim == 10
    # deterministic for a seed
    again, _ = train_policy(model, data, ckpt, _small_cfg())
    z = torch.randn(3, model.latent_dim)
    assert torch.equal(policy(z, z.flip(0)), again(z, z.flip(0)))


def _line_episodes(n_eps: int, length: int, seed: int):
    """Latents of a point moving in a straight line per episode (unit direction a, 2 raw steps
    per block), padded with noise dimensions; the action is the direction."""
    from lewm.planning.policy import LatentEpisodes

    g = torch.Generator().manual_seed(seed)
    zs, acts, rem = [], [], []
    for _ in range(n_eps):
        a = torch.nn.functional.normalize(torch.randn(1, 2, generator=g), dim=-1)  # (1, 2)
        pos = torch.randn(1, 2, generator=g) + torch.arange(length)[:, None] * a  # (L, 2)
        zs.append(torch.cat([pos, 0.1 * torch.randn(length, 4, generator=g)], dim=1))
        acts.append(a.expand(length, 2))
        rem.append(np.arange(length - 1, -1, -1))
    return LatentEpisodes(
        z=torch.cat(zs), action=torch.cat(acts), remaining=np.concatenate(rem), episodes=None
    )


def test_fit_learns_a_goal_conditioned_map():
    from lewm.planning.policy import fit_policy

    train, val = _line_episodes(64, 30, 0), _line_episodes(16, 30, 1)
    cfg = _small_cfg(steps=300, horizon=3, hidden=64)
    policy, L = fit_policy(train, val, action_block_dim=4, frameskip=2, cfg=cfg)
    assert L["val_mse"] < 0.1 * L["val_zero_plan_mse"], L
    assert L["val_mse_at_horizon"] < 0.1 * L["val_zero_plan_mse_at_horizon"], L
    assert not policy.training


def test_pairs_mask_the_steps_at_and_after_the_goal():
    from lewm.planning.policy import LatentEpisodes, PairSampler

    # two episodes of 12 and 30 rows; latents = row ids, actions = row ids
    rem = np.concatenate([np.arange(11, -1, -1), np.arange(29, -1, -1)])
    z = torch.arange(42, dtype=torch.float32)[:, None]
    lat = LatentEpisodes(z=z, action=z.clone(), remaining=rem, episodes=np.arange(2))
    s = PairSampler(lat, lo=2, hi=100, horizon=3, frameskip=4)  # 12 steps per plan
    assert s.hi == 29  # clipped to the longest span
    b = s.sample(500, np.random.default_rng(0))
    start, goal = b["z"][:, 0].long(), b["z_goal"][:, 0].long()
    k = goal - start
    assert (k >= 2).all() and (k <= 29).all()
    # the goal is in the start's episode
    assert ((start < 12) == (goal < 12)).all()
    steps = b["target"].reshape(500, 12)  # A = 1: (n, H*f)
    mask = b["mask"].reshape(500, 12)
    for i in range(500):
        n = min(12, int(k[i]))
        assert mask[i, :n].all() and not mask[i, n:].any()
        assert torch.equal(steps[i, :n], start[i] + torch.arange(n, dtype=torch.float32))


def test_save_load_round_trip_and_overwrite_rules(tmp_path):
    torch.manual_seed(1)
    cfg = PolicyConfig(latent_dim=8, action_block_dim=4, horizon=3, hidden=16, depth=2)
    pol = GoalPolicy(cfg)
    pol.z_mean.normal_()
    pol.z_std.uniform_(0.5, 2)
    save_policy(pol, _record(cfg), tmp_path / "p")
    again, record = load_policy(tmp_path / "p")
    z, g = torch.randn(5, 8), torch.randn(5, 8)
    assert torch.equal(pol.eval()(z, g), again(z, g)) and record["policy"] == vars(cfg)
    with pytest.raises(FileExistsError, match="--overwrite"):
        save_policy(pol, _record(cfg), tmp_path / "p")
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("mine")
    with pytest.raises(FileExistsError, match="only a policy folder"):
        save_policy(pol, _record(cfg), tmp_path / "other", overwrite=True)
    save_policy(pol, _record(cfg), tmp_path / "p", overwrite=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["other", "p"]  # no temporaries


def test_broken_policy_folders_are_one_clear_error(tmp_path):
    cfg = PolicyConfig(latent_dim=8, action_block_dim=4)
    with pytest.raises(PolicyError, match="no policy at"):
        load_policy(tmp_path / "none")
    save_policy(GoalPolicy(cfg), _record(cfg), tmp_path / "p")
    w = tmp_path / "p" / "policy.safetensors"
    state = load_file(str(w))
    state["head.bias"] = torch.full_like(state["head.bias"], float("nan"))
    save_file(state, str(w))
    with pytest.raises(PolicyError, match="NaN"):
        load_policy(tmp_path / "p")
    save_file({"x": torch.zeros(2)}, str(w))
    with pytest.raises(PolicyError, match="does not match the architecture"):
        load_policy(tmp_path / "p")
    (tmp_path / "p" / "policy.json").write_text(json.dumps({"format": "lewm-policy"}))
    with pytest.raises(PolicyError, match="version"):
        load_policy(tmp_path / "p")


def test_a_policy_of_another_model_is_refused(tworoom_run, tmp_path):
    ckpt = tworoom_run / "run" / "model"
    model = load(ckpt)
    other = tmp_path / "other"
    shutil.copytree(ckpt, other, ignore=shutil.ignore_patterns("policy", "decoder"))
    with pytest.raises(PolicyError, match=r"no trained policy .*`lewm policy RUN` first"):
        policy_for(other, model)
    cfg = PolicyConfig(latent_dim=model.latent_dim, action_block_dim=model.action_block_dim)
    save_policy(GoalPolicy(cfg), _record(cfg, sha="ab" * 32), other / "policy")
    with pytest.raises(PolicyError, match="trained for another world model"):
        policy_for(other, model)
    # the right fingerprint but another model's sizes
    from lewm.models.checkpoint import weights_sha256

    bad = PolicyConfig(latent_dim=model.latent_dim + 1, action_block_dim=model.action_block_dim)
    rec = _record(bad, sha=weights_sha256(other))
    save_policy(GoalPolicy(bad), rec, other / "policy", overwrite=True)
    with pytest.raises(PolicyError, match="belongs to another model"):
        policy_for(other, model)


def _planner_inputs(model, B=3, seed=0):
    s = model.image_size
    g = np.random.default_rng(seed)
    obs = torch.from_numpy(g.integers(0, 256, (B, 1, s, s, 3), dtype=np.uint8))
    goal = torch.from_numpy(g.integers(0, 256, (B, s, s, 3), dtype=np.uint8))
    return obs, goal


class _Recording:
    """The world model, recording every candidate batch it rolls out."""

    def __init__(self, model):
        self.model, self.seen = model, []
        self.history, self.action_block_dim = model.history, model.action_block_dim

    def encode(self, px):
        return self.model.encode(px)

    def rollout(self, z, actions, hist=None):
        self.seen.append(actions.clone())
        return self.model.rollout(z, actions, hist)


def test_policy_solver_plans_the_policy_output_deterministically(tworoom_run):
    model = load(tworoom_run / "run")
    torch.manual_seed(3)
    pol = GoalPolicy(PolicyConfig(model.latent_dim, model.action_block_dim, horizon=5)).eval()
    obs, goal = _planner_inputs(model)
    planner = Planner(model, make_solver("policy"), horizon=5, proposal=pol)
    a, b = planner.plan(obs, goal), planner.plan(obs, goal)
    assert a.actions.shape == (3, 5, model.action_block_dim) and a.cost.shape == (3,)
    assert torch.equal(a.actions, b.actions) and torch.equal(a.cost, b.cost)
    with torch.no_grad():
        z = model.encode(obs)[:, -1]
        expected = pol(z, model.encode(goal[:, None])[:, 0])
    torch.testing.assert_close(a.actions, expected)
    assert a.iterations_run == 0
    # a horizon beyond the policy's is padded with zeros, a shorter one cut
    long = Planner(model, make_solver("policy"), horizon=7, receding=5, proposal=pol)
    res = long.plan(obs, goal)
    assert torch.equal(res.actions[:, :5], a.actions) and not res.actions[:, 5:].any()
    assert Planner(model, make_solver("policy"), horizon=2, receding=1, proposal=pol).plan(
        obs, goal
    ).actions.shape == (3, 2, model.action_block_dim)
    # without a proposal the solver is refused, with the command to run
    with pytest.raises(ValueError, match="lewm policy RUN"):
        Planner(model, make_solver("policy"), horizon=5)
    with pytest.raises(ValueError, match="init_mean"):
        make_solver("policy").solve(lambda a: a.sum((-1, -2)), 2, 5, 4)


def test_warm_started_cem_starts_at_the_policy_plan(tworoom_run):
    model = load(tworoom_run / "run")
    torch.manual_seed(4)
    pol = GoalPolicy(PolicyConfig(model.latent_dim, model.action_block_dim, horizon=5)).eval()
    obs, goal = _planner_inputs(model)
    rec = _Recording(model)
    cem = make_solver("cem", num_samples=16, num_elites=4, iterations=2, init_std=0.3)
    res = Planner(rec, cem, horizon=5, proposal=pol, device="cpu").plan(obs, goal)
    proposed = Planner(model, make_solver("policy"), horizon=5, proposal=pol).plan(obs, goal)
    first = rec.seen[0]  # (B, S, H, Ab): the first iteration's candidates
    assert first.shape == (3, 16, 5, model.action_block_dim)
    torch.testing.assert_close(first[:, 0], proposed.actions)  # candidate 0 = the mean
    spread = (first[:, 1:] - first[:, :1]).std()
    assert 0.2 < spread < 0.4  # init_std 0.3 around it
    # CEM returns a plan no worse than the proposal's own cost (candidate 0 was scored)
    assert res.actions.shape == proposed.actions.shape


def test_lewm_policy_then_eval_three_ways(tworoom_run, tmp_path, capsys):
    run = tworoom_run / "run"
    before = _digests(run / "model")
    assert main(["policy", str(run), *FAST]) == 0
    printed = json.loads(capsys.readouterr().out)
    after = _digests(run / "model")
    assert {k: v for k, v in after.items() if not k.startswith("policy/")} == before
    assert {k for k in after if k.startswith("policy/")} == {
        "policy/policy.json",
        "policy/policy.safetensors",
    }
    record = json.loads((run / "model" / "policy" / "policy.json").read_text())
    assert printed["val_mse"] == record["losses"]["val_mse"]
    assert record["training"]["steps"] == 40 and record["policy"]["hidden"] == 32
    # no replacement without --overwrite
    assert main(["policy", str(run), *FAST, "--seed", "3"]) == 2
    assert "--overwrite" in capsys.readouterr().err

    data = str(tworoom_run / "tr.h5")
    base = ["eval", str(run), "--data", data, "--episodes", "4", "--gifs", "0", "--no-progress"]
    base += ["--split", "all"]
    results = {}
    for name, extra in {
        "policy": ["--solver", "policy"],
        "warm": ["--proposal", "policy", "--samples", "8", "--elites", "2", "--iterations", "1"],
    }.items():
        assert main([*base, *extra, "--out", str(tmp_path / name)]) == 0, name
        results[name] = json.loads(capsys.readouterr().out)
        saved = json.loads((tmp_path / name / "eval.json").read_text())
        assert saved["plans"] > 0 and saved["plan_seconds_mean"] > 0
    saved = json.loads((tmp_path / "warm" / "eval.json").read_text())
    assert saved["settings"]["proposal"] == "policy"
    # the policy alone is deterministic: the same result twice
    assert main([*base, "--solver", "policy", "--out", str(tmp_path / "again")]) == 0
    capsys.readouterr()
    a = json.loads((tmp_path / "policy" / "eval.json").read_text())
    b = json.loads((tmp_path / "again" / "eval.json").read_text())
    assert a["successes"] == b["successes"] and a["final_errors"] == b["final_errors"]
    # default folder names tell the three ways apart
    from lewm.planning.evaluate import eval_folder_name

    names = {
        eval_folder_name("tworoom", EvalConfig(), data),
        eval_folder_name("tworoom", EvalConfig(proposal="policy"), data),
        eval_folder_name("tworoom", EvalConfig(solver=make_solver("policy").config), data),
    }
    assert len(names) == 3 and any("plan_cem-from-policy" in n for n in names)
    # --samples means nothing to the policy solver
    assert main([*base, "--solver", "policy", "--samples", "8"]) == 2
    assert "not a setting of solver 'policy'" in capsys.readouterr().err


def test_eval_without_a_policy_says_to_train_one(tworoom_run, tmp_path, capsys):
    other = tmp_path / "model"
    shutil.copytree(tworoom_run / "run" / "model", other, ignore=shutil.ignore_patterns("policy"))
    data = str(tworoom_run / "tr.h5")
    for extra in (["--solver", "policy"], ["--proposal", "policy"]):
        argv = ["eval", str(other), "--data", data, "--episodes", "2", *extra]
        assert main([*argv, "--out", str(tmp_path / "e")]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "run `lewm policy RUN` first" in err
        assert not (tmp_path / "e").exists()
    # the API says the same
    model = load(other)
    cfg = EvalConfig(episodes=2, split="all", solver=make_solver("policy").config)
    with pytest.raises(PolicyError, match="lewm policy RUN"):
        evaluate(model, "tworoom", data, cfg)
    # the random policy and plain CEM need none
    plain = EvalConfig(episodes=2, split="all", solver=CEMConfig(num_samples=4, num_elites=2))
    assert not plain.uses_policy()
    assert not EvalConfig(policy="random", proposal="policy").uses_policy()


def test_lewm_policy_user_errors_are_one_line_and_touch_nothing(tworoom_run, tmp_path, capsys):
    from lewm.data.hdf5 import EpisodeWriter

    run = tworoom_run / "run"
    before = _digests(run)
    pusht = tmp_path / "pusht.h5"
    g = np.random.default_rng(0)
    with EpisodeWriter(pusht, attrs={"env": "pusht"}) as w:
        for _ in range(2):
            act = g.uniform(-1, 1, (20, 2)).astype(np.float32)
            w.add_episode(pixels=g.integers(0, 255, (20, 16, 16, 3), dtype=np.uint8), action=act)
    cases = [
        (["--data", str(pusht)], "holds 'pusht' episodes"),
        (["--goal-min", "30", "--goal-max", "10"], "goal_min (30) exceeds goal_max (10)"),
        (["--lr", "nan"], "--lr"),
        (["--steps", "0"], "--steps"),
        (["--out", str(run), "--overwrite"], "replaces only a policy folder"),
    ]
    for extra, message in cases:
        argv = ["policy", str(run), *FAST, "--out", str(tmp_path / "p"), *extra]
        assert main(argv) == 2, extra
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and message in err, (extra, err)
    assert _digests(run) == before and not (tmp_path / "p").exists()
