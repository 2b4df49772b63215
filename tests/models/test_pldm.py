"""PLDM beyond the contract (tests/models/test_model_contract.py runs that over it): the
inverse-dynamics head, what its weight does to the encoder, the config, and no collapse."""

from __future__ import annotations

import json

import pytest
import torch

from lewm.config import Config, preset
from lewm.losses.pldm import masked_mse
from lewm.models import PLDM, PLDMConfig, build_model, build_objective, load
from lewm.models.pldm import InverseDynamics, PLDMLossConfig
from lewm.training.trainer import train
from lewm.utils.config import ConfigError


def test_inverse_dynamics_head_recovers_actions_of_a_linear_system():
    """z_{t+1} = z_t + a_t W: the action is a linear function of the pair, which the head learns
    from the objective's own term."""
    g = torch.Generator().manual_seed(0)
    D, Ab = 8, 3
    W = torch.randn(Ab, D, generator=g)

    def batch(n: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        z = torch.randn(n, D, generator=g)
        a = torch.randn(n, Ab, generator=g)
        return z, z + a @ W, a

    torch.manual_seed(0)
    head = InverseDynamics(D, 64, Ab)
    opt = torch.optim.Adam(head.parameters(), lr=3e-3)
    for _ in range(400):
        z, z_next, a = batch(256)
        loss = masked_mse(head(z, z_next), a)
        opt.zero_grad()
        loss.backward()
        opt.step()
    z, z_next, a = batch(1000)
    with torch.no_grad():
        err = masked_mse(head(z, z_next), a).item()
    assert err < 0.05 * a.var().item()  # R^2 > 0.95 on fresh samples


@pytest.mark.parametrize("weight", [0.0, 0.5])
def test_inverse_dynamics_weight_decides_whether_the_encoder_learns_from_it(weight):
    cfg = preset("tiny", ["model.kind=pldm", f"model.loss.inverse_dynamics={weight}"]).model
    model = build_model(cfg)
    px = torch.randint(0, 256, (4, cfg.predictor.history + 1, 16, 16, 3), dtype=torch.uint8)
    out = model(px, torch.randn(4, cfg.predictor.history, model.action_block_dim))
    masked_mse(out["idm_pred"], out["action_blocks"]).backward()
    enc = sum(p.grad.abs().sum() for p in model.encoder.parameters() if p.grad is not None)
    head = sum(p.grad.abs().sum() for p in model.inverse_dynamics.parameters())
    assert head > 0
    assert (enc > 0) == (weight > 0)


def test_config_defaults_bad_values_and_the_preset_sizes():
    assert PLDMConfig().loss == PLDMLossConfig(18.0, 12.0, 0.2, 0.7, 0.0, 0.0, 1e-4)
    with pytest.raises(ConfigError, match=r"model\.loss\.covariance must be >= 0"):
        preset("tiny", ["model.kind=pldm", "model.loss.covariance=-1"])
    with pytest.raises(ConfigError, match=r"model\.idm_hidden"):
        preset("tiny", ["model.kind=pldm", "model.idm_hidden=0"])
    with pytest.raises(ConfigError, match="kind of a PLDMConfig must be 'pldm'"):
        PLDMConfig(kind="lewm")
    # a kind switch on the command line keeps the preset's sizes (lewm.config.preset)
    cfg = preset("tworoom-cpu", ["model.kind=pldm", "model.loss.time_smooth=0.5"])
    assert isinstance(cfg.model, PLDMConfig)
    assert (cfg.model.latent_dim, cfg.model.predictor.history, cfg.model.encoder.kind) == (
        64,
        1,
        "cnn",
    )
    assert cfg.model.loss.time_smooth == 0.5 and cfg.train.steps == 1500
    assert Config.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg
    # the PLDM objective refuses LeWM's regulariser switch instead of ignoring it
    vic = preset("tiny", ["model.kind=pldm", "train.regularizer=vicreg"])
    with pytest.raises(ConfigError, match="train.regularizer"):
        build_objective(vic.model, vic.train)


def _z_std(run) -> list[float]:
    lines = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    return [r["train/z_std"] for r in lines if "train/z_std" in r]


def test_pldm_does_not_collapse_on_the_toy_data_and_its_regulariser_is_why(toy_h5, tmp_path):
    """Measured (tiny preset, 40 steps): z std rises from ~0.4 to ~0.8 with PLDM's terms and falls
    to ~0.2 without the variance terms."""
    common = ["model.kind=pldm", "train.steps=40", "train.val_every=0", "train.log_every=10"]
    res = train(preset("tiny", common), toy_h5, tmp_path / "pldm", progress=False)
    std = _z_std(tmp_path / "pldm")
    assert std[-1] > 0.6 and std[-1] > std[0]
    assert "val/variance" in res.final and "val/inverse_dynamics" in res.final
    logged = json.loads((tmp_path / "pldm" / "metrics.jsonl").read_text().splitlines()[0])
    for key in ("pred_loss", "variance", "covariance", "time_smooth", "time_variance"):
        assert f"train/{key}" in logged
    assert "train/inverse_dynamics" in logged and "train/sigreg" not in logged
    assert isinstance(load(tmp_path / "pldm"), PLDM)
    off = ["model.loss.variance=0", "model.loss.covariance=0", "model.loss.time_variance=0"]
    train(preset("tiny", [*common, *off]), toy_h5, tmp_path / "off", progress=False)
    assert _z_std(tmp_path / "off")[-1] < 0.35
