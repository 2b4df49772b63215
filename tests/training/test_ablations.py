"""LeWM's ablations are config (lewm.config.ABLATIONS): each one trains, and the regulariser
switch (train.regularizer=sigreg|vicreg) changes the objective and what is logged."""

from __future__ import annotations

import json

import pytest

from lewm.config import ABLATIONS, preset
from lewm.losses import LeWMObjective
from lewm.models import build_objective
from lewm.training.trainer import train
from lewm.utils.config import ConfigError


@pytest.mark.parametrize("name", sorted(ABLATIONS))
def test_every_ablation_trains_two_steps(name, toy_h5, tmp_path):
    cfg = preset(
        "tiny", ["train.steps=2", "train.val_every=0", "train.log_every=1", *ABLATIONS[name]]
    )
    res = train(cfg, toy_h5, tmp_path / name, progress=False)
    assert res.steps == 2
    run = json.loads((tmp_path / name / "run.json").read_text())["config"]
    for item in ABLATIONS[name]:  # the run records the ablation's value
        key, value = item.split("=")
        node = run
        for part in key.split("."):
            node = node[part]
        assert str(node) == value or float(node) == float(value)


def _logged(run) -> dict:
    return json.loads((run / "metrics.jsonl").read_text().splitlines()[0])


def test_regularizer_switch_replaces_sigreg_by_vicreg(toy_h5, tmp_path):
    common = ["train.steps=2", "train.val_every=0", "train.log_every=1"]
    train(preset("tiny", common), toy_h5, tmp_path / "sigreg", progress=False)
    sig = _logged(tmp_path / "sigreg")
    assert "train/sigreg" in sig and "train/variance" not in sig
    vic_cfg = preset("tiny", [*common, "train.regularizer=vicreg", "train.vicreg_cov_weight=3"])
    objective = build_objective(vic_cfg.model, vic_cfg.train)
    assert isinstance(objective, LeWMObjective) and objective.sigreg is None
    assert objective.vicreg.covariance_weight == 3.0
    train(vic_cfg, toy_h5, tmp_path / "vicreg", progress=False)
    vic = _logged(tmp_path / "vicreg")
    assert {"train/variance", "train/covariance", "train/vicreg"} <= set(vic)
    assert "train/sigreg" not in vic
    with pytest.raises(ConfigError, match=r"train\.regularizer must be 'sigreg' or 'vicreg'"):
        preset("tiny", ["train.regularizer=sigmoid"])
    with pytest.raises(ConfigError, match=r"train\.vicreg_var_weight must be >= 0"):
        preset("tiny", ["train.vicreg_var_weight=-1"])
