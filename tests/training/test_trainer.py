import json
import math
import shutil

import pytest
import torch
from safetensors.torch import load_file

from lewm.config import apply_overrides
from lewm.data.hdf5 import DataError
from lewm.data.synthetic import make_toy_dataset
from lewm.models import LeWM
from lewm.training.trainer import Trainer, lr_lambda, schedule_of, train


def _weights(run_dir):
    return load_file(str(run_dir / "model" / "model.safetensors"))


def test_training_writes_metrics_checkpoints_and_model(tmp_path, toy_h5, tiny_config):
    res = train(tiny_config, toy_h5, tmp_path / "run", progress=False)
    assert res.steps == 20
    lines = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    train_lines = [x for x in lines if "train/pred_loss" in x]
    val_lines = [x for x in lines if "val/pred_loss" in x]
    assert [x["step"] for x in train_lines] == [5, 10, 15, 20]
    assert val_lines and all("val/sigreg" in x for x in val_lines)
    for key in ("train/sigreg", "train/lr", "train/samples_per_s", "train/z_std"):
        assert key in train_lines[-1]
    model = LeWM.from_pretrained(tmp_path / "run")
    assert model.config.action_dim == 2
    assert "action" in model.normalizer and "proprio" in model.normalizer
    ckpts = sorted(p.name for p in (tmp_path / "run" / "checkpoints").iterdir())
    assert ckpts == ["step_0000010", "step_0000020"]


def test_resume_equals_uninterrupted(tmp_path, toy_h5, tiny_config):
    cfg = apply_overrides(
        tiny_config, ["train.steps=12", "train.ckpt_every=4", "train.val_every=0"]
    )
    train(cfg, toy_h5, tmp_path / "full", progress=False)
    train(cfg, toy_h5, tmp_path / "cut", progress=False, stop_after=5)  # checkpoint at 4, dies at 5
    res = train(cfg, toy_h5, tmp_path / "cut", progress=False, resume=True)
    assert res.steps == 12
    a, b = _weights(tmp_path / "full"), _weights(tmp_path / "cut")
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    steps = [
        json.loads(x)["step"] for x in (tmp_path / "cut" / "metrics.jsonl").read_text().splitlines()
    ]
    assert steps == sorted(steps)  # metrics logged after the checkpoint were dropped


def test_the_first_log_after_a_resume_averages_only_the_steps_it_holds(
    tmp_path, toy_h5, tiny_config
):
    """A resume from a checkpoint off the logging grid (step 4, logs every 5) opens a window of
    one step: its record is that step's values, not their sum divided by log_every (session 21
    found a PLDM run whose step-325 record after a resume at 321 was 4/25 of every value)."""
    cfg = apply_overrides(
        tiny_config,
        ["train.steps=12", "train.ckpt_every=4", "train.val_every=0", "train.log_every=5"],
    )
    train(cfg, toy_h5, tmp_path / "full", progress=False)
    train(cfg, toy_h5, tmp_path / "cut", progress=False, stop_after=5)  # checkpoints at 4 and 5
    # a run killed at step 5 before its checkpoint: the resume starts from step 4
    shutil.rmtree(tmp_path / "cut" / "checkpoints" / "step_0000005")
    train(cfg, toy_h5, tmp_path / "cut", progress=False, resume=True)

    def records(run):
        lines = (tmp_path / run / "metrics.jsonl").read_text().splitlines()
        return {r["step"]: r for r in map(json.loads, lines) if "train/lr" in r}

    full, cut = records("full"), records("cut")
    assert sorted(full) == sorted(cut) == [5, 10, 12]
    # step 5 is the only step of the cut run's first window after the resume: its rate is the
    # schedule's at step 5 (factor of the 0-based step 4), its loss that one step's
    factor = schedule_of(cfg.train)(4)
    assert cut[5]["train/lr"] == pytest.approx(cfg.train.lr * factor, rel=1e-6)
    # the full run's step-5 record averages steps 1..5 of a falling rate
    assert cut[5]["train/lr"] < full[5]["train/lr"]
    assert cut[5]["train/loss"] == pytest.approx(full[5]["train/loss"], rel=0.5)  # same scale
    # after it the windows are whole and the runs identical
    for step in (10, 12):
        for key in ("train/loss", "train/lr", "train/grad_norm"):
            assert cut[step][key] == pytest.approx(full[step][key], rel=1e-5), (step, key)


def test_refuses_to_overwrite_run_dir(tmp_path, toy_h5, tiny_config):
    run = tmp_path / "run"
    run.mkdir()
    (run / "precious.txt").write_text("keep me")
    with pytest.raises(FileExistsError, match="--resume"):
        Trainer(tiny_config, toy_h5, run, progress=False)
    assert (run / "precious.txt").read_text() == "keep me"
    with pytest.raises(FileNotFoundError, match="resume"):
        Trainer(tiny_config, toy_h5, tmp_path / "fresh", resume=True, progress=False)


def test_resume_with_other_action_dim_is_refused(tmp_path, toy_h5, tiny_config):
    cfg = apply_overrides(tiny_config, ["train.steps=4", "train.ckpt_every=2"])
    train(cfg, toy_h5, tmp_path / "run", progress=False, stop_after=2)
    other = tmp_path / "a3.h5"
    import numpy as np

    from lewm.data.hdf5 import EpisodeDataset, EpisodeWriter

    src = EpisodeDataset(toy_h5)
    with EpisodeWriter(other) as w:
        for i in range(src.num_episodes):
            ep = src.episode(i)
            w.add_episode(
                pixels=ep["pixels"], action=np.concatenate([ep["action"], ep["action"][:, :1]], 1)
            )
    with pytest.raises(DataError, match="cannot resume on another dataset.*--allow-other-data"):
        Trainer(cfg, other, tmp_path / "run", resume=True, progress=False)
    with pytest.raises(DataError, match="action_dim 2"):  # even when the user says so
        Trainer(cfg, other, tmp_path / "run", resume=True, progress=False, allow_other_data=True)


def test_dataset_too_small_for_batch(tmp_path, tiny_config):
    path = make_toy_dataset(tmp_path / "small.h5", episodes=2, length=16)
    cfg = apply_overrides(tiny_config, ["train.batch_size=64"])
    with pytest.raises(DataError, match="batch size"):
        Trainer(cfg, path, tmp_path / "run", progress=False)


def test_lr_schedule_warmup_then_cosine():
    f = lr_lambda(1000, 0.01)
    assert f(0) == pytest.approx(0.1)
    assert f(9) == pytest.approx(1.0)
    assert f(505) == pytest.approx(0.5, abs=0.01)
    assert f(999) < 0.001


def test_lr_schedule_warmup_steps_and_a_longer_schedule():
    # the authors' regime: warm-up over 1 % of a 100-epoch schedule, stop after 10 epochs
    f = lr_lambda(1000, 0.01, schedule_steps=10_000)
    assert f(0) == pytest.approx(0.01) and f(99) == pytest.approx(1.0)
    assert f(999) == pytest.approx(0.5 * (1 + math.cos(math.pi * 899 / 9900)))
    assert f(999) > 0.97
    g = lr_lambda(1000, 0.01, warmup_steps=400)  # warm-up set on its own
    assert g(199) == pytest.approx(0.5) and g(399) == pytest.approx(1.0)
    assert g(999) < 0.001


def test_resume_of_a_run_written_before_world_models_were_plugins(tmp_path, toy_h5, tiny_config):
    """run.json without "eval" or "model.kind" and a training state whose objective generator is
    stored as "sigreg_rng" (the layout before the registries) still resume exactly."""
    cfg = apply_overrides(
        tiny_config, ["train.steps=12", "train.ckpt_every=4", "train.val_every=0"]
    )
    train(cfg, toy_h5, tmp_path / "full", progress=False)
    train(cfg, toy_h5, tmp_path / "old", progress=False, stop_after=5)
    run_json = tmp_path / "old" / "run.json"
    saved = json.loads(run_json.read_text())
    del saved["config"]["eval"], saved["config"]["model"]["kind"]
    run_json.write_text(json.dumps(saved))
    for state_file in (tmp_path / "old" / "checkpoints").glob("*/training_state.pt"):
        state = torch.load(state_file, weights_only=True)
        state["sigreg_rng"] = state.pop("objective_rng")
        torch.save(state, state_file)
    train(cfg, toy_h5, tmp_path / "old", progress=False, resume=True)
    a, b = _weights(tmp_path / "full"), _weights(tmp_path / "old")
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_open_loop_option_trains_logs_and_is_checked(tmp_path, toy_h5, tiny_config):
    from lewm.utils.config import ConfigError

    cfg = apply_overrides(tiny_config, ["train.open_loop_weight=0.5", "train.steps=10"])
    train(cfg, toy_h5, tmp_path / "run", progress=False)
    lines = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    last = [x for x in lines if "train/open_loop_loss" in x][-1]
    assert math.isfinite(last["train/open_loop_loss"]) and last["train/open_loop_loss"] > 0
    assert (
        json.loads((tmp_path / "run" / "run.json").read_text())["config"]["train"][
            "open_loop_weight"
        ]
        == 0.5
    )
    h1 = apply_overrides(cfg, ["model.predictor.history=1"])
    with pytest.raises(ConfigError, match="needs model.predictor.history >= 2"):
        train(h1, toy_h5, tmp_path / "h1", progress=False)
    with pytest.raises(ConfigError, match="train.open_loop_weight must be >= 0"):
        apply_overrides(tiny_config, ["train.open_loop_weight=-1"])
