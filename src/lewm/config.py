"""Typed configuration: dataclasses with validated defaults, presets as data, dotted overrides.

Presets (``PRESETS``) differ only in values, never in code paths:
    paper  ViT-tiny/14 at 224 px, 6-layer predictor (the paper's ~18 M-parameter LeWM)
    cpu    small CNN at 64 px, 3-layer narrow predictor: trains and plans fast on 2 CPU cores
    tiny   a toy size for unit tests
"""

from __future__ import annotations

import copy
import json
import types
import typing
from dataclasses import asdict, dataclass, field, fields, is_dataclass
from typing import Any

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class ConfigError(ValueError):
    """A configuration value is invalid."""


def _check(cond: bool, msg: str) -> None:
    if not cond:
        raise ConfigError(msg)


@dataclass
class EncoderConfig:
    kind: str = "vit"  # "vit" (HF-compatible ViT, CLS token) or "cnn" (strided conv stack)
    image_size: int = 224  # pixels are resized to this square size before the encoder
    width: int = 192  # ViT hidden size / CNN output feature size
    # ViT only
    patch_size: int = 14
    depth: int = 12
    heads: int = 3
    mlp_dim: int = 768
    # CNN only: channels of the stride-2 conv stages
    channels: tuple[int, ...] = (32, 64, 128, 256)
    # input normalisation (applied after scaling pixels to [0, 1])
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD

    def __post_init__(self) -> None:
        self.channels = tuple(self.channels)
        self.mean = tuple(self.mean)
        self.std = tuple(self.std)
        _check(
            self.kind in ("vit", "cnn"), f"encoder.kind must be 'vit' or 'cnn', got {self.kind!r}"
        )
        _check(self.image_size >= 8, f"encoder.image_size must be >= 8, got {self.image_size}")
        _check(self.width >= 1, f"encoder.width must be positive, got {self.width}")
        if self.kind == "vit":
            _check(
                self.image_size % self.patch_size == 0,
                f"encoder.image_size ({self.image_size}) must be a multiple of "
                f"encoder.patch_size ({self.patch_size})",
            )
            _check(
                self.width % self.heads == 0,
                f"encoder.width ({self.width}) must be divisible by encoder.heads ({self.heads})",
            )
            _check(self.depth >= 1, f"encoder.depth must be >= 1, got {self.depth}")
        else:
            _check(len(self.channels) >= 1, "encoder.channels must list at least one stage")
            _check(
                self.image_size >> len(self.channels) >= 1,
                f"encoder.image_size {self.image_size} too small for {len(self.channels)} "
                "stride-2 stages",
            )
        _check(len(self.mean) == 3 and len(self.std) == 3, "encoder.mean/std need 3 values")
        _check(all(s > 0 for s in self.std), f"encoder.std must be positive, got {self.std}")


@dataclass
class PredictorConfig:
    history: int = 3  # N: latents of context the predictor attends to (window size)
    depth: int = 6
    heads: int = 16
    head_dim: int = 64
    mlp_dim: int = 2048
    dropout: float = 0.1

    def __post_init__(self) -> None:
        _check(self.history >= 1, f"predictor.history must be >= 1, got {self.history}")
        _check(self.depth >= 1, f"predictor.depth must be >= 1, got {self.depth}")
        _check(self.heads >= 1 and self.head_dim >= 1, "predictor.heads/head_dim must be >= 1")
        _check(
            0.0 <= self.dropout < 1.0, f"predictor.dropout must be in [0, 1), got {self.dropout}"
        )


@dataclass
class ModelConfig:
    latent_dim: int = 192  # D: one latent vector per frame
    projector_hidden: int = 2048  # hidden width of both BN-MLP projectors
    action_dim: int = 2  # A: raw action dimension (set from the data)
    frameskip: int = 5  # raw actions per action block (and frame stride of clips)
    action_smooth_dim: int = 10  # width of the first (per-block linear) action layer
    action_hidden: int = 768  # hidden width of the action MLP
    encoder: EncoderConfig = field(default_factory=EncoderConfig)
    predictor: PredictorConfig = field(default_factory=PredictorConfig)

    def __post_init__(self) -> None:
        if isinstance(self.encoder, dict):
            self.encoder = EncoderConfig(**self.encoder)
        if isinstance(self.predictor, dict):
            self.predictor = PredictorConfig(**self.predictor)
        _check(self.latent_dim >= 1, f"model.latent_dim must be >= 1, got {self.latent_dim}")
        _check(self.action_dim >= 1, f"model.action_dim must be >= 1, got {self.action_dim}")
        _check(self.frameskip >= 1, f"model.frameskip must be >= 1, got {self.frameskip}")

    @property
    def action_block_dim(self) -> int:
        return self.frameskip * self.action_dim


@dataclass
class TrainConfig:
    steps: int = 10_000  # optimizer steps
    batch_size: int = 128  # clips per step
    lr: float = 5e-5
    weight_decay: float = 1e-3
    warmup_frac: float = 0.01  # linear warm-up over this fraction of steps, then cosine to 0
    grad_clip: float = 1.0
    sigreg_weight: float = 0.09  # lambda
    sigreg_num_proj: int = 1024
    sigreg_knots: int = 17
    val_fraction: float = 0.1  # fraction of *episodes* held out
    val_every: int = 500  # steps between validations (0: only at the end)
    val_batches: int = 4
    ckpt_every: int = 1000  # steps between checkpoints (0: only at the end)
    keep_checkpoints: int = 2
    log_every: int = 25
    seed: int = 0
    precision: str = "auto"  # "auto" (bf16 on CUDA and on CPUs with native bf16), "bf16", "fp32"
    device: str = "auto"  # "auto", "cpu", "cuda", "cuda:1", ...
    num_threads: int = 0  # torch CPU threads (0: leave torch's default)
    # Under torchrun (--distributed) only: normalise BatchNorm layers with global-batch statistics
    # so K processes compute exactly the single-process function (see lewm.training.distributed)
    sync_batchnorm: bool = True

    def __post_init__(self) -> None:
        _check(self.steps >= 1, f"train.steps must be >= 1, got {self.steps}")
        _check(self.batch_size >= 2, f"train.batch_size must be >= 2, got {self.batch_size}")
        _check(self.lr > 0, f"train.lr must be > 0, got {self.lr}")
        _check(self.weight_decay >= 0, f"train.weight_decay must be >= 0, got {self.weight_decay}")
        _check(
            0 <= self.warmup_frac < 1,
            f"train.warmup_frac must be in [0, 1), got {self.warmup_frac}",
        )
        _check(self.grad_clip > 0, f"train.grad_clip must be > 0, got {self.grad_clip}")
        _check(
            self.sigreg_weight >= 0, f"train.sigreg_weight must be >= 0, got {self.sigreg_weight}"
        )
        _check(self.sigreg_num_proj >= 1, "train.sigreg_num_proj must be >= 1")
        _check(self.sigreg_knots >= 2, f"train.sigreg_knots must be >= 2, got {self.sigreg_knots}")
        _check(
            0 <= self.val_fraction < 1,
            f"train.val_fraction must be in [0, 1), got {self.val_fraction}",
        )
        _check(
            self.precision in ("auto", "bf16", "fp32"),
            f"train.precision must be 'auto', 'bf16' or 'fp32', got {self.precision!r}",
        )
        for name in ("val_every", "ckpt_every", "val_batches", "num_threads"):
            _check(getattr(self, name) >= 0, f"train.{name} must be >= 0")
        _check(self.keep_checkpoints >= 1, "train.keep_checkpoints must be >= 1")
        _check(self.log_every >= 1, "train.log_every must be >= 1")
        _check(
            isinstance(self.sync_batchnorm, bool),
            f"train.sync_batchnorm must be true or false, got {self.sync_batchnorm!r}",
        )


@dataclass
class Config:
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    def __post_init__(self) -> None:
        if isinstance(self.model, dict):
            self.model = ModelConfig(**self.model)
        if isinstance(self.train, dict):
            self.train = TrainConfig(**self.train)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Config:
        return from_dict(cls, d)


# -- presets --------------------------------------------------------------------------------


def _paper() -> Config:
    return Config()


def _cpu() -> Config:
    # Chosen by measurement on 2 cores (docs/results.md; benchmarks/train_speed.py and
    # benchmarks/plan_speed.py): a CNN at 64 px trains at a few hundred clips/s, and a 64-d latent
    # with a 2-layer predictor keeps a 300 x 30 CEM plan (H = 5) well under a second.
    return Config(
        model=ModelConfig(
            latent_dim=64,
            projector_hidden=256,
            action_hidden=128,
            encoder=EncoderConfig(
                kind="cnn", image_size=64, width=256, channels=(32, 64, 128, 128)
            ),
            predictor=PredictorConfig(history=3, depth=2, heads=4, head_dim=32, mlp_dim=256),
        ),
        train=TrainConfig(
            steps=3000,
            batch_size=128,
            lr=1e-3,
            sigreg_num_proj=256,
            val_every=500,
            ckpt_every=1000,
            precision="auto",
        ),
    )


def _tiny() -> Config:
    return Config(
        model=ModelConfig(
            latent_dim=16,
            projector_hidden=32,
            action_smooth_dim=4,
            action_hidden=32,
            encoder=EncoderConfig(kind="cnn", image_size=16, width=32, channels=(8, 16)),
            predictor=PredictorConfig(history=3, depth=1, heads=2, head_dim=8, mlp_dim=32),
        ),
        train=TrainConfig(
            steps=20,
            batch_size=8,
            lr=1e-3,
            sigreg_num_proj=64,
            val_every=10,
            ckpt_every=10,
            log_every=5,
            precision="fp32",
        ),
    )


PRESETS = {"paper": _paper, "cpu": _cpu, "tiny": _tiny}


def preset(name: str) -> Config:
    """A fresh copy of a named preset."""
    if name not in PRESETS:
        raise ConfigError(f"unknown preset {name!r}; available: {', '.join(PRESETS)}")
    return PRESETS[name]()


# -- dict conversion and overrides -----------------------------------------------------------


def from_dict(cls: type, d: dict[str, Any]) -> Any:
    """Build dataclass ``cls`` from a nested dict, rejecting unknown keys."""
    if not isinstance(d, dict):
        raise ConfigError(f"expected a mapping for {cls.__name__}, got {type(d).__name__}")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in fields(cls)}
    unknown = set(d) - names
    if unknown:
        raise ConfigError(
            f"unknown {cls.__name__} key(s) {sorted(unknown)}; valid: {sorted(names)}"
        )
    kwargs = {}
    for k, v in d.items():
        t = hints[k]
        kwargs[k] = from_dict(t, v) if is_dataclass(t) else v
    return cls(**kwargs)


def _coerce(value: str, typ: Any, key: str) -> Any:
    origin = typing.get_origin(typ)
    if typ is bool:
        if value.lower() in ("1", "true", "yes", "on"):
            return True
        if value.lower() in ("0", "false", "no", "off"):
            return False
        raise ConfigError(f"{key}: expected a boolean, got {value!r}")
    if typ in (int, float, str):
        try:
            return typ(value)
        except ValueError:
            raise ConfigError(f"{key}: expected {typ.__name__}, got {value!r}") from None
    if origin is tuple:
        try:
            parsed = json.loads(value if value.startswith("[") else f"[{value}]")
        except json.JSONDecodeError:
            raise ConfigError(f"{key}: expected a list like 32,64,128, got {value!r}") from None
        return tuple(parsed)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(typ) if a is not type(None)]
        if value.lower() in ("none", "null"):
            return None
        return _coerce(value, args[0], key)
    raise ConfigError(f"{key}: cannot parse a value of type {typ}")


def apply_overrides(cfg: Config, overrides: list[str]) -> Config:
    """Return a copy of ``cfg`` with ``key.sub=value`` overrides applied and re-validated."""
    d = copy.deepcopy(cfg.to_dict())
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"override {item!r} must look like key.sub=value")
        key, value = item.split("=", 1)
        parts = key.strip().split(".")
        node, cls = d, Config
        for p in parts[:-1]:
            hints = typing.get_type_hints(cls)
            if p not in node or not isinstance(node[p], dict):
                raise ConfigError(f"unknown config key {key!r}")
            node, cls = node[p], hints[p]
        leaf = parts[-1]
        hints = typing.get_type_hints(cls)
        if leaf not in node or isinstance(node[leaf], dict):
            valid = sorted(k for k, v in node.items() if not isinstance(v, dict))
            raise ConfigError(f"unknown config key {key!r}; valid keys here: {valid}")
        node[leaf] = _coerce(value.strip(), hints[leaf], key)
    return Config.from_dict(d)


def model_config_from_dict(d: dict[str, Any]) -> ModelConfig:
    return from_dict(ModelConfig, d)


__all__ = [
    "Config",
    "ConfigError",
    "EncoderConfig",
    "ModelConfig",
    "PredictorConfig",
    "TrainConfig",
    "PRESETS",
    "preset",
    "apply_overrides",
    "from_dict",
    "model_config_from_dict",
]
