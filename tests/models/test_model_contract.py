"""One contract over every registered world model: save/load round trip, encode/rollout shapes,
two training steps with a finite loss, one plan.

Besides the library's own kinds, the contract runs on a toy model defined in this file and
registered with one line (``register_model(ModelSpec("toy", ...))``): the proof that a world
model plugs into checkpoints, the trainer, the planner and the CLI loaders without touching them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from lewm.config import Config, apply_overrides, preset
from lewm.losses import TrainingObjective
from lewm.models import (
    MODELS,
    CheckpointError,
    LeWM,
    ModelSpec,
    WorldModel,
    WorldModelBase,
    build_model,
    load,
    register_model,
)
from lewm.planning import CEM, CEMConfig, Planner
from lewm.training.trainer import train
from lewm.utils.config import ConfigError

# -- a toy world model: one module and one registry line ------------------------------------------


@dataclass
class ToyConfig:
    kind: str = "toy"
    action_dim: int = 2
    frameskip: int = 2
    latent_dim: int = 8
    image_size: int = 8


class ToyWorldModel(WorldModelBase):
    """Linear encoder of a downsampled frame; linear one-step dynamics z' = f(z, block)."""

    history = 1

    def __init__(self, config: ToyConfig) -> None:
        super().__init__(config)
        s, D = config.image_size, config.latent_dim
        self.encoder = nn.Linear(3 * s * s, D)
        self.dynamics = nn.Linear(D + config.frameskip * config.action_dim, D)

    @property
    def latent_dim(self) -> int:
        return self.config.latent_dim

    @property
    def image_size(self) -> int:
        return self.config.image_size

    def encoder_features(self, pixels: Tensor) -> Tensor:
        x = pixels.permute(0, 3, 1, 2).float() / 255.0  # (N, 3, h, w)
        x = F.interpolate(x, size=(self.image_size,) * 2, mode="area")  # (N, 3, s, s)
        return x.flatten(1)  # (N, 3*s*s)

    def encode(self, pixels: Tensor) -> Tensor:
        B, T = pixels.shape[:2]
        feats = self.encoder_features(pixels.reshape(B * T, *pixels.shape[2:]))
        return self.encoder(feats).reshape(B, T, -1)  # (B, T, D)

    def forward(self, pixels: Tensor, action_blocks: Tensor) -> dict[str, Tensor]:
        z = self.encode(pixels)  # (B, N+1, D)
        N = action_blocks.shape[1]
        pred = self.dynamics(torch.cat([z[:, :N], action_blocks.to(z.dtype)], -1))  # (B, N, D)
        return {"z": z, "pred": pred}

    def rollout(self, z_context, actions, history_actions=None):
        B, S, H, _ = actions.shape
        z = z_context[:, -1:].expand(B, S, -1)  # (B, S, D)
        out = []
        for h in range(H):
            z = self.dynamics(torch.cat([z, actions[:, :, h]], -1))  # (B, S, D)
            out.append(z)
        return torch.stack(out, dim=2)  # (B, S, H, D)


class ToyObjective(TrainingObjective):
    def forward(self, z: Tensor, pred: Tensor) -> dict[str, Tensor]:
        pred_loss = (pred - z[:, 1:]).pow(2).mean()
        spread = F.relu(1.0 - z.std(dim=0)).mean()  # keeps the latent from collapsing
        return {"loss": pred_loss + spread, "pred_loss": pred_loss, "spread": spread}


TOY = ModelSpec("toy", ToyConfig, ToyWorldModel, lambda m, t, d: ToyObjective(), ToyConfig)

KINDS = sorted(MODELS) + ["toy"]


@pytest.fixture(params=KINDS)
def kind(request):
    added = request.param == "toy" and "toy" not in MODELS
    if added:
        register_model(TOY)  # the one registry line
    yield request.param
    if added:
        MODELS.pop("toy")


def _config(kind: str) -> Config:
    spec = MODELS[kind]
    model = spec.tiny() if spec.tiny else spec.config()
    cfg = apply_overrides(preset("tiny"), ["train.steps=2", "train.val_every=0"])
    return replace(cfg, model=model)


def _pixels(B: int, T: int, side: int, seed: int = 0) -> Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (B, T, side, side, 3), dtype=torch.uint8, generator=g)


# -- the contract ---------------------------------------------------------------------------------


def test_registry_knows_the_kind_and_the_config_tree_can_choose_it(kind):
    cfg = _config(kind)
    assert cfg.model.kind == kind
    # the tree records the kind and rebuilds the same config class from a plain dict
    again = Config.from_dict(json.loads(json.dumps(cfg.to_dict())))
    assert type(again.model) is type(cfg.model) and again.model == cfg.model
    switched = apply_overrides(preset("tiny"), [f"model.kind={kind}"])
    assert type(switched.model) is MODELS[kind].config


def test_encode_and_rollout_shapes(kind):
    model = build_model(_config(kind).model).eval()
    assert isinstance(model, WorldModel)
    D, Ab, s = model.latent_dim, model.action_block_dim, model.image_size
    assert Ab == model.frameskip * model.action_dim
    with torch.inference_mode():
        z = model.encode(_pixels(2, 3, s + 4))  # any resolution: the model resizes
        assert z.shape == (2, 3, D) and torch.isfinite(z).all()
        assert model.encoder_features(_pixels(2, 1, s)[:, 0]).ndim == 2
        for C in sorted({1, model.history}):
            hist = torch.randn(2, C - 1, Ab) if C > 1 else None
            r = model.rollout(z[:, :C], torch.randn(2, 5, 4, Ab), hist)
            assert r.shape == (2, 5, 4, D) and torch.isfinite(r).all()


def test_save_load_round_trip(kind, tmp_path):
    model = build_model(_config(kind).model)
    N, Ab = model.history, model.action_block_dim
    model(_pixels(4, N + 1, model.image_size), torch.randn(4, N, Ab))
    model.eval()  # BatchNorm statistics, if any, moved off their initial values
    model.metadata = {"note": kind}
    path = model.save_pretrained(tmp_path / "ckpt")
    assert json.loads((path / "config.json").read_text())["model"]["kind"] == kind
    loaded = load(path)
    assert type(loaded) is type(model) and loaded.config == model.config
    assert loaded.metadata == {"note": kind}
    px, acts = _pixels(2, 1, model.image_size), torch.randn(2, 3, 2, model.action_block_dim)
    with torch.no_grad():
        za, zb = model.encode(px), loaded.encode(px)
        assert torch.equal(za, zb)
        assert torch.equal(model.rollout(za, acts), loaded.rollout(zb, acts))
    assert type(model).from_pretrained(path).config == model.config


def test_two_training_steps_with_a_finite_loss(kind, toy_h5, tmp_path):
    res = train(_config(kind), toy_h5, tmp_path / "run", progress=False)
    assert res.steps == 2
    lines = (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()
    lines = [json.loads(x) for x in lines]
    losses = [r["train/loss"] for r in lines if "train/loss" in r]
    assert losses and all(np.isfinite(losses))
    model = load(tmp_path / "run")
    assert model.config.kind == kind and "action" in model.normalizer
    saved = json.loads((tmp_path / "run" / "run.json").read_text())
    assert saved["config"]["model"]["kind"] == kind


def test_one_plan(kind):
    model = build_model(_config(kind).model).eval()
    s = model.image_size
    solver = CEM(CEMConfig(num_samples=16, num_elites=4, iterations=2))
    planner = Planner(model, solver, horizon=3, receding=3)
    res = planner.plan(_pixels(2, 1, s), _pixels(2, 1, s, seed=1)[:, 0])
    assert res.actions.shape == (2, 3, model.action_block_dim)
    assert torch.isfinite(res.cost).all() and res.iterations_run == 2


# -- registry and checkpoint errors ---------------------------------------------------------------


def test_unknown_kind_is_a_config_error_naming_the_key():
    with pytest.raises(ConfigError, match=r"model\.kind 'nope'.*registered world models: .*lewm"):
        apply_overrides(preset("tiny"), ["model.kind=nope"])
    with pytest.raises(ConfigError, match="model.kind"):
        Config.from_dict({"model": {"kind": "nope"}})


def test_a_kind_registers_once():
    with pytest.raises(ValueError, match="already registered"):
        register_model(replace(MODELS["lewm"], description="another"))


def test_from_pretrained_of_another_class_says_what_the_folder_holds(tmp_path):
    register_model(TOY)
    try:
        path = ToyWorldModel(ToyConfig()).save_pretrained(tmp_path / "toy")
        with pytest.raises(CheckpointError, match="holds a 'toy' world model"):
            LeWM.from_pretrained(path)
        assert isinstance(load(path), ToyWorldModel)
    finally:
        MODELS.pop("toy")
    with pytest.raises(CheckpointError, match="unknown model.kind 'toy'"):
        load(path)  # a kind nobody registered in this process


def test_version_1_checkpoint_without_kind_still_loads(tmp_path, tiny_config):
    """Checkpoints written before world models were plug-ins (format version 1: no kind)."""
    model = LeWM(tiny_config.model).eval()
    path = model.save_pretrained(tmp_path / "v1")
    cfg = json.loads((path / "config.json").read_text())
    # the version-1 layout, spelled out: the same fields as today's LeWM config minus "kind"
    v1_model = {
        "latent_dim": 16,
        "projector_hidden": 32,
        "action_dim": 2,
        "frameskip": 5,
        "action_smooth_dim": 4,
        "action_hidden": 32,
        "encoder": {
            "kind": "cnn",
            "image_size": 16,
            "width": 32,
            "patch_size": 14,
            "depth": 12,
            "heads": 3,
            "mlp_dim": 768,
            "channels": [8, 16],
            "mean": [0.485, 0.456, 0.406],
            "std": [0.229, 0.224, 0.225],
        },
        "predictor": {
            "history": 3,
            "depth": 1,
            "heads": 2,
            "head_dim": 8,
            "mlp_dim": 32,
            "dropout": 0.1,
        },
    }
    v1 = {"format": "lewm-checkpoint", "version": 1, "model": v1_model, "metadata": {}}
    (path / "config.json").write_text(json.dumps(v1))
    loaded = load(path)
    assert isinstance(loaded, LeWM) and loaded.config == model.config
    px = _pixels(2, 2, 16)
    with torch.no_grad():
        assert torch.equal(loaded.encode(px), model.encode(px))
    (path / "config.json").write_text(json.dumps({**cfg, "version": 9}))
    with pytest.raises(CheckpointError, match="version 9"):
        load(path)
