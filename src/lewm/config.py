"""The config tree of a run and its named presets.

    Config
      model   a registered world model's config, chosen by ``model.kind`` ("lewm": LeWMConfig)
      train   TrainConfig (lewm.training.config)
      eval    EvalConfig (lewm.planning.config); its solver chosen by ``eval.solver.kind``
      data    DataConfig (lewm.data.config): the camera and columns read from a LeRobot folder

Every command takes the same ``key.sub=value`` overrides (``train.lr=3e-4``,
``eval.solver.kind=icem``); errors are one :class:`ConfigError` naming the key.

Presets are data: a base preset plus a list of overrides, never a code path. ``lewm presets``
lists them and ``lewm config --preset NAME`` prints the resolved tree.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from lewm.data.config import DataConfig
from lewm.models import EncoderConfig, LeWMConfig, PredictorConfig, model_config
from lewm.models.encoders import IMAGENET_MEAN, IMAGENET_STD
from lewm.planning.config import EvalConfig
from lewm.training.config import TrainConfig
from lewm.utils.config import ConfigError, choice, from_dict, parse_override, to_dict
from lewm.utils.config import apply_overrides as _apply_overrides

log = logging.getLogger(__name__)

ModelConfig = LeWMConfig  # the name of LeWM's config before world models were plug-ins


@dataclass
class Config:
    model: Any = choice(model_config, LeWMConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    data: DataConfig = field(default_factory=DataConfig)

    def to_dict(self) -> dict[str, Any]:
        return to_dict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Config:
        """From a nested mapping; sections it lacks (older run.json files) take defaults."""
        return from_dict(cls, d)


def apply_overrides(cfg: Config, overrides: list[str]) -> Config:
    """A copy of ``cfg`` with ``key.sub=value`` overrides applied and re-validated."""
    return _apply_overrides(cfg, list(overrides))


# -- presets ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Preset:
    base: str | None  # the preset these overrides apply to (None: the defaults, i.e. "paper")
    overrides: tuple[str, ...]
    description: str


_CPU_MODEL = (
    # Chosen by measurement on 2 cores (docs/results.md; benchmarks/speed/): a CNN at 64 px trains
    # at a few hundred clips/s, and a 64-d latent with a 2-layer predictor keeps a 300 x 30 CEM
    # plan (H = 5) well under a second.
    "model.latent_dim=64",
    "model.projector_hidden=256",
    "model.action_hidden=128",
    "model.encoder.kind=cnn",
    "model.encoder.image_size=64",
    "model.encoder.width=256",
    "model.encoder.channels=32,64,128,128",
    "model.predictor.depth=2",
    "model.predictor.heads=4",
    "model.predictor.head_dim=32",
    "model.predictor.mlp_dim=256",
)

PRESETS: dict[str, Preset] = {
    "paper": Preset(
        None,
        (),
        "the paper's LeWM: ViT-tiny/14 at 224 px, 6-layer predictor (18,034,478 parameters)",
    ),
    "cpu": Preset(
        "paper",
        (*_CPU_MODEL, "train.steps=3000", "train.lr=1e-3", "train.sigreg_num_proj=256"),
        "small CNN at 64 px, 2-layer narrow predictor: trains and plans fast on 2 CPU cores",
    ),
    "tiny": Preset(
        "paper",
        (
            "model.latent_dim=16",
            "model.projector_hidden=32",
            "model.action_smooth_dim=4",
            "model.action_hidden=32",
            "model.encoder.kind=cnn",
            "model.encoder.image_size=16",
            "model.encoder.width=32",
            "model.encoder.channels=8,16",
            "model.predictor.depth=1",
            "model.predictor.heads=2",
            "model.predictor.head_dim=8",
            "model.predictor.mlp_dim=32",
            "train.steps=20",
            "train.batch_size=8",
            "train.lr=1e-3",
            "train.sigreg_num_proj=64",
            "train.val_every=10",
            "train.ckpt_every=10",
            "train.log_every=5",
            "train.precision=fp32",
        ),
        "a toy size for unit tests",
    ),
    "tworoom-cpu": Preset(
        "cpu",
        (
            "model.predictor.history=1",  # the paper's Two-Room history
            "train.steps=1500",
            "train.batch_size=64",
            "train.val_every=250",
            "train.ckpt_every=500",
        ),
        "`lewm demo`'s Two-Room recipe: 96-98 % at the paper's protocol in ~10 min on 2 cores",
    ),
    "tworoom-quick": Preset(
        "cpu",
        (
            "model.predictor.history=1",
            "train.steps=150",
            "train.batch_size=64",
            "train.val_every=50",
            "train.ckpt_every=150",
            "train.log_every=10",
            "eval.episodes=10",
            "eval.solver.num_samples=100",
            "eval.solver.iterations=10",
        ),
        "`lewm demo --quick`: a smoke run of the Two-Room recipe in about 2 minutes",
    ),
    "pusht-cpu": Preset(
        "cpu",
        (
            "train.steps=13000",
            "train.batch_size=64",
            "train.val_every=1000",
            "train.ckpt_every=1000",
            "model.predictor.depth=4",
            "model.predictor.heads=8",
            "model.predictor.head_dim=64",
            "model.predictor.mlp_dim=1024",
            "model.predictor.dropout=0",
        ),
        "best Push-T recipe on 2 CPU cores so far (1.15 M-parameter predictor, ~51 min; 22-24 %)",
    ),
    "reacher-cpu": Preset(
        "cpu",
        (
            # 3,000 steps plan as well as 8,000 with this planner (80.7 vs 79.3 % over 3 seeds,
            # docs/results.md "Session 13") at 3/8 of the training time
            "train.steps=3000",
            "train.val_every=500",
            "train.ckpt_every=500",
            # our planner, not the paper's (CEM, one frame, terminal cost: 45-53 % over 3 seeds):
            # iCEM at the same 300 x 30 budget, the model's 3 frames, the path cost
            "eval.solver.kind=icem",
            "eval.context=3",
            "eval.cost=path",
        ),
        "Reacher on 2 CPU cores: the cpu model, 3,000 steps (~13 min with bf16 on an AVX-512 "
        "host, 50-62 min in fp32 on an AVX2-only one); plans with iCEM, 3 frames and the path "
        "cost (81 % over 6 seeds; the paper's planner 45-53 %)",
    ),
    "cube-cpu": Preset(
        "cpu",
        (
            # 4,000 steps fit the 90-min budget from nothing on an AVX2-only host (54-62 % with
            # the policy, 5 seeds); train.steps=8000 gave 64 / 70 % for ~28 min more there
            "train.steps=4000",
            "train.batch_size=64",
            "train.val_every=1000",
            "train.ckpt_every=1000",
            "eval.exclude_solved=true",  # the oracle's data hold many tasks solved at the start
        ),
        "Cube (OGBench, one cube) on 2 CPU cores: the cpu model, history 3, 4,000 steps (~46 "
        "min in fp32 on an AVX2-only host); plan with `lewm policy` + `--solver policy`",
    ),
}


# Ablations of LeWM (issue 20), as data: overrides on top of any preset, e.g.
#   lewm train --preset tworoom-cpu train.regularizer=vicreg ...
# The paper's values: lambda 0.09 and 1024 projections (Fig. 15-16), history 3 (1 on Two-Room),
# a 6-layer predictor; docs/results.md lists the commands and what a short run measured.
ABLATIONS: dict[str, tuple[str, ...]] = {
    "lambda-0": ("train.sigreg_weight=0",),  # no regulariser at all: the collapse baseline
    "lambda-0.01": ("train.sigreg_weight=0.01",),
    "lambda-0.09": ("train.sigreg_weight=0.09",),  # the paper's released value
    "lambda-1": ("train.sigreg_weight=1",),
    "proj-16": ("train.sigreg_num_proj=16",),
    "proj-64": ("train.sigreg_num_proj=64",),
    "proj-1024": ("train.sigreg_num_proj=1024",),  # the paper's value
    "vicreg": ("train.regularizer=vicreg",),  # PLDM's variance + covariance in place of SIGReg
    "depth-1": ("model.predictor.depth=1",),
    "depth-4": ("model.predictor.depth=4",),
    "history-1": ("model.predictor.history=1",),
    "history-3": ("model.predictor.history=3",),
}


def preset(name: str, overrides: list[str] | tuple[str, ...] = ()) -> Config:
    """A fresh copy of a named preset, with ``overrides`` (the command line's) on top.

    The preset's overrides and these are applied to the defaults as one list, where a ``kind``
    switch applies first: ``preset("tworoom-cpu", ["model.kind=pldm"])`` is a PLDM model with
    the preset's sizes (its ``model.*`` keys apply to the new kind), not PLDM's paper-sized
    defaults. Preset keys under a switched section that the new kind does not have (a CEM
    setting when ``eval.solver.kind=adam`` is asked for) are left out, and logged.
    """
    own = preset_overrides(name)
    kinds = [o for o in overrides if parse_override(o)[0][-1] == "kind"]
    if kinds:
        switched = to_dict(apply_overrides(Config(), kinds))  # the defaults of the new kinds
        sections = [".".join(parse_override(o)[0][:-1]) + "." for o in kinds]
        kept = []
        for item in own:
            parts = parse_override(item)[0]
            key = ".".join(parts)
            if any(key.startswith(s) for s in sections) and not _has_leaf(switched, parts):
                log.info("preset %s: %s does not apply to %s", name, key, ", ".join(kinds))
                continue
            kept.append(item)
        own = kept
    return apply_overrides(Config(), [*own, *overrides])


def _has_leaf(tree: dict[str, Any], parts: list[str]) -> bool:
    for p in parts:
        if not isinstance(tree, dict) or p not in tree:
            return False
        tree = tree[p]
    return not isinstance(tree, dict)


def preset_overrides(name: str) -> list[str]:
    """Every override from the defaults to preset ``name``, base presets first."""
    if name not in PRESETS:
        raise ConfigError(f"unknown preset {name!r}; available: {', '.join(PRESETS)}")
    p = PRESETS[name]
    return ([] if p.base is None else preset_overrides(p.base)) + list(p.overrides)


__all__ = [
    "ABLATIONS",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "PRESETS",
    "Config",
    "ConfigError",
    "EncoderConfig",
    "EvalConfig",
    "ModelConfig",
    "PredictorConfig",
    "Preset",
    "TrainConfig",
    "apply_overrides",
    "from_dict",
    "preset",
    "preset_overrides",
]
