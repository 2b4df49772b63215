"""A frozen-encoder world model in the style of DINO-WM (Zhou et al., 2024): a pretrained image
encoder that is never trained, and an action-conditioned predictor over its features.

The encoder (``model.source``) is one of

- ``hf:FOLDER``: a local Hugging Face DINOv2 / ViT folder (:mod:`lewm.models.pretrained`), e.g. a
  copy of ``facebook/dinov2-small`` (DINO-WM's encoder; it cannot be downloaded here);
- ``lewm:CHECKPOINT``: another lewm model's encoder and projector (its latent ``encode``), e.g. a
  trained LeWM, to ask how much of its planning success comes from the encoder;
- ``random``: ``model.encoder`` with its random initial weights (seeded by ``train.seed``), the
  floor any pretrained encoder should beat.

Features (``model.features``): ``cls`` (the [CLS] token, or a CNN's / a lewm model's vector),
``mean`` (the mean patch token) or ``patches`` (the patch tokens, average-pooled by
``model.patch_pool`` and concatenated per frame). ``model.latent_dim`` is set from the features.

The predictor (``model.predictor_tokens``): ``frame`` (default) is LeWM's — action encoder,
AdaLN predictor with one token per frame, predictor head; ``patch`` is DINO-WM's layout
(:class:`PatchPredictor`, ``features=patches`` only): one token per patch of every frame in the
window, the frame's action embedding concatenated to each of its patches, attention that is
causal across frames and full within a frame, and each output token predicting the same patch of
the next frame (no head). Either way the latent of a frame is its features flattened, so
planning costs, probes and the rest of lewm see one vector per frame. The loss is the
next-feature MSE alone (a frozen encoder cannot collapse, so no
SIGReg: ``train.sigreg_weight`` is not used). The encoder's weights are saved in the checkpoint
and its architecture in ``model.source_config``, so a saved model loads without the source.
Registered as world-model kind ``"dinowm"`` (``lewm/models/__init__.py``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from lewm.losses import LeWMObjective
from lewm.models.base import WorldModelBase
from lewm.models.checkpoint import CheckpointError
from lewm.models.encoders import EncoderConfig, build_encoder
from lewm.models.lewm import LeWM, LeWMConfig
from lewm.models.predictor import _MLP, ActionEncoder, Predictor, PredictorConfig, Projector
from lewm.utils.config import ConfigError, check, to_dict

FEATURES = ("cls", "mean", "patches")
FEATURE_NORMS = ("none", "layer")
PREDICTOR_TOKENS = ("frame", "patch")
SOURCES = ("random", "hf:FOLDER", "lewm:CHECKPOINT")


@dataclass
class DinoWMConfig(LeWMConfig):
    """LeWM's predictor settings plus where the frozen encoder comes from and which of its
    features the predictor sees."""

    kind: str = "dinowm"
    source: str = "random"  # "random", "hf:FOLDER" or "lewm:CHECKPOINT"
    features: str = "cls"  # "cls", "mean" or "patches" (hf sources only for the last two)
    patch_pool: int = 1  # patches: average-pool the patch grid by this factor
    input_size: int = 0  # hf: frames are resized to this square size (0: the source's own)
    # "none" (the features as the encoder gives them, as DINO-WM) or "layer" (each frame's
    # features standardised over their dimensions, no learned scale: puts an encoder whose
    # features are tiny, e.g. a random one, on the predictor's scale)
    feature_norm: str = "none"
    # "frame" (LeWM's predictor: one token per frame) or "patch" (DINO-WM's: one token per patch,
    # frame-causal attention; needs features=patches)
    predictor_tokens: str = "frame"
    # written when the model is built: the source's architecture (and, for hf, its input
    # normalisation), so that a saved model is rebuilt without the source folder
    source_config: dict | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        kind, sep, where = self.source.partition(":")
        check(
            (kind == "random" and not sep) or (kind in ("hf", "lewm") and bool(where)),
            f"model.source must be one of {SOURCES}, got {self.source!r}",
        )
        check(
            self.features in FEATURES,
            f"model.features must be one of {FEATURES}, got {self.features!r}",
        )
        check(
            self.features == "cls" or kind == "hf",
            f"model.features={self.features} needs patch tokens: only an hf:FOLDER source has "
            "them (use model.features=cls)",
        )
        check(
            self.feature_norm in FEATURE_NORMS,
            f"model.feature_norm must be one of {FEATURE_NORMS}, got {self.feature_norm!r}",
        )
        check(
            self.predictor_tokens in PREDICTOR_TOKENS,
            f"model.predictor_tokens must be one of {PREDICTOR_TOKENS}, got "
            f"{self.predictor_tokens!r}",
        )
        check(
            self.predictor_tokens == "frame" or self.features == "patches",
            "model.predictor_tokens=patch needs model.features=patches (one token per patch)",
        )
        check(self.patch_pool >= 1, f"model.patch_pool must be >= 1, got {self.patch_pool}")
        check(
            self.input_size == 0 or self.input_size >= 8,
            f"model.input_size must be 0 (the source's) or >= 8, got {self.input_size}",
        )
        check(
            self.source_config is None or isinstance(self.source_config, dict),
            f"model.source_config must be an object or null, got {self.source_config!r}",
        )


class FrozenEncoder(nn.Module):
    """uint8 frames (N, h, w, 3) -> features (N, F) of a frozen encoder; never trained (no
    gradients, always in eval mode)."""

    def __init__(self, cfg: DinoWMConfig) -> None:
        super().__init__()
        kind, _, where = cfg.source.partition(":")
        where = str(Path(where).expanduser()) if where else where
        self.kind, self.features, self.pool = kind, cfg.features, cfg.patch_pool
        self.norm = cfg.feature_norm
        self.patch_width, self.num_patches = 0, 1  # features=patches: W per patch, P patches
        # building from the source reads its weights and records its architecture in the
        # config; loading a saved model (source_config recorded) needs neither, and neither does
        # a build on the meta device (lewm sizes a model there first: shapes only)
        on_meta = torch.empty(()).device.type == "meta"
        fresh = cfg.source_config is None
        load_weights = fresh and not on_meta
        if kind == "random":
            self.net = build_encoder(cfg.encoder)
            mean, std, size = cfg.encoder.mean, cfg.encoder.std, cfg.encoder.image_size
            self.out_dim = int(self.net.out_dim)
            recorded = {"encoder": "model.encoder"}
        elif kind == "hf":
            from lewm.models.pretrained import HFViT, HFViTConfig, hf_state_dict, read_hf_config

            hcfg = read_hf_config(where) if fresh else HFViTConfig(**_hf_fields(cfg.source_config))
            self.net = HFViT(hcfg)
            if load_weights:
                self.net.load_state_dict(hf_state_dict(where, self.net))
            self.net.interpolate = True  # any input size: the positions are interpolated
            mean, std = hcfg.image_mean, hcfg.image_std
            size = cfg.input_size or hcfg.image_size
            check(
                size % hcfg.patch_size == 0,
                f"model.input_size {size} must be a multiple of the source's patch size "
                f"{hcfg.patch_size}",
            )
            grid = size // hcfg.patch_size
            check(
                self.features != "patches" or grid % self.pool == 0,
                f"model.patch_pool {self.pool} must divide the {grid}x{grid} patch grid",
            )
            W = hcfg.hidden_size
            self.out_dim = W * (grid // self.pool) ** 2 if self.features == "patches" else W
            if self.features == "patches":
                self.patch_width, self.num_patches = W, (grid // self.pool) ** 2
            recorded = hcfg.to_dict()
        else:  # lewm
            self.net = _lewm_encoder(where, cfg.source_config, load_weights)
            self.out_dim = int(self.net.latent_dim)
            size = int(self.net.image_size)
            mean, std = (0.0, 0.0, 0.0), (1.0, 1.0, 1.0)  # the source model preprocesses itself
            recorded = {"model": to_dict(self.net.config)}
        if not on_meta and fresh:
            cfg.source_config = recorded
        self.size = int(size)
        self.register_buffer("mean", torch.tensor(mean).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std).view(1, 3, 1, 1), persistent=False)
        self.requires_grad_(False)
        self.train(False)

    def train(self, mode: bool = True) -> FrozenEncoder:
        return super().train(False)  # frozen: BatchNorm statistics and dropout never change

    def _images(self, pixels: Tensor) -> Tensor:
        x = pixels.permute(0, 3, 1, 2).float().div_(255.0)  # (N, 3, h, w)
        if x.shape[-2:] != (self.size, self.size):
            x = F.interpolate(x, (self.size, self.size), mode="bilinear", antialias=True)
        return (x - self.mean) / self.std

    def forward(self, pixels: Tensor) -> Tensor:
        if pixels.dtype != torch.uint8 or pixels.ndim != 4 or pixels.shape[-1] != 3:
            raise ValueError(
                f"pixels must be uint8 (N, h, w, 3), got {pixels.dtype} {tuple(pixels.shape)}"
            )
        f = self._features(pixels)  # (N, F)
        return F.layer_norm(f, f.shape[-1:]) if self.norm == "layer" else f

    def _features(self, pixels: Tensor) -> Tensor:
        with torch.no_grad():
            if self.kind == "lewm":
                return self.net.encode(pixels[:, None])[:, 0].float()  # (N, D_source)
            x = self._images(pixels)
            if self.kind == "random":
                return self.net(x)  # (N, W)
            tokens = self.net(x)  # (N, 1+P, W)
            if self.features == "cls":
                return tokens[:, 0]
            patches = tokens[:, 1:]
            if self.features == "mean":
                return patches.mean(1)
            N, P, W = patches.shape
            g = int(round(P**0.5))
            grid = patches.transpose(1, 2).reshape(N, W, g, g)
            if self.pool > 1:
                grid = F.avg_pool2d(grid, self.pool)
            return grid.flatten(2).transpose(1, 2).reshape(N, -1)  # (N, P' W), patch-major


def _hf_fields(d: dict[str, Any]) -> dict[str, Any]:
    out = dict(d)
    out["image_mean"], out["image_std"] = tuple(d["image_mean"]), tuple(d["image_std"])
    return out


def _lewm_encoder(where: str, recorded: dict | None, load_weights: bool) -> nn.Module:
    """The encoder + projector of a lewm model: the checkpoint ``where``'s (its config, and its
    weights if ``load_weights``), or rebuilt from ``recorded`` (its config, when loading a
    saved dinowm model, whose checkpoint holds the weights)."""
    from lewm.models.checkpoint import load, read_config, resolve_checkpoint
    from lewm.models.registry import model_config, model_spec

    if recorded is None:
        if not Path(where).exists():
            raise CheckpointError(
                f"model.source=lewm:{where}: no such checkpoint (give a lewm run or checkpoint "
                "folder)"
            )
        if load_weights:
            model = load(where)
        else:
            config = read_config(resolve_checkpoint(where))[0]
            model = model_spec(config.kind).model(config)
    else:
        cfg = dict(recorded["model"])
        config = model_config(cfg.get("kind", "lewm"))(**cfg)
        model = model_spec(config.kind).model(config)
    if not isinstance(model, LeWM):
        raise ConfigError(f"model.source=lewm:{where} must be a LeWM-family model")
    for name in [n for n, _ in model.named_children() if n not in ("encoder", "projector")]:
        delattr(model, name)  # only encode() is used: the predictor is not kept
    model.normalizer = None
    return model


class DinoWM(LeWM):
    """LeWM's predictor over a frozen encoder's features (module docstring)."""

    config: DinoWMConfig

    def __init__(self, config: DinoWMConfig) -> None:
        WorldModelBase.__init__(self, config)
        self.encoder = FrozenEncoder(config)
        D = int(self.encoder.out_dim)
        config.latent_dim = D  # set from the features
        self.projector = nn.Identity()
        if config.predictor_tokens == "patch":
            W, P = self.encoder.patch_width, self.encoder.num_patches
            self.action_encoder = ActionEncoder(
                config.action_block_dim, config.action_smooth_dim, config.action_hidden, W
            )  # one W-wide embedding per block, concatenated to each patch of its frame
            self.predictor = PatchPredictor(W, P, W, config.predictor)
            self.pred_projector = nn.Identity()
        else:
            self.action_encoder = ActionEncoder(
                config.action_block_dim, config.action_smooth_dim, config.action_hidden, D
            )
            self.predictor = Predictor(D, config.predictor)
            self.pred_projector = Projector(D, config.projector_hidden, D)

    @property
    def image_size(self) -> int:
        return self.encoder.size

    def encoder_features(self, pixels: Tensor) -> Tensor:
        """pixels (N, h, w, 3) uint8 -> the frozen encoder's features (N, F) (the latent)."""
        return self.encoder(pixels)

    def rollout(self, z_context, actions, history_actions=None, *, fast=True):  # noqa: ANN001
        """LeWM's rollout; the patch predictor has no key/value cache, so it re-runs its window
        at every step (:meth:`LeWM.rollout_reference`)."""
        if isinstance(self.predictor, PatchPredictor):
            return self.rollout_reference(z_context, actions, history_actions)
        return super().rollout(z_context, actions, history_actions, fast=fast)


class _PatchBlock(nn.Module):
    """Pre-norm self-attention (a boolean mask: True where a query may look) and MLP."""

    def __init__(self, dim: int, cfg: PredictorConfig) -> None:
        super().__init__()
        self.heads, self.head_dim, self.dropout = cfg.heads, cfg.head_dim, cfg.dropout
        inner = cfg.heads * cfg.head_dim
        self.norm = nn.LayerNorm(dim)
        self.to_qkv = nn.Linear(dim, 3 * inner, bias=False)
        self.to_out = nn.Linear(inner, dim)
        self.mlp = _MLP(dim, cfg)

    def forward(self, x: Tensor, mask: Tensor) -> Tensor:
        N, L, _ = x.shape
        drop = self.dropout if self.training else 0.0
        q, k, v = self.to_qkv(self.norm(x)).view(N, L, 3, self.heads, self.head_dim).unbind(2)
        out = F.scaled_dot_product_attention(
            q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2), attn_mask=mask, dropout_p=drop
        )  # (N, heads, L, hd)
        out = F.dropout(self.to_out(out.transpose(1, 2).reshape(N, L, -1)), drop, self.training)
        x = x + out
        return x + self.mlp(x)


class PatchPredictor(nn.Module):
    """DINO-WM's predictor layout over a window of at most ``history`` frames of P patch
    features each (our implementation; sizes from ``model.predictor``).

    Frame t's action embedding is concatenated to each of its P patches, projected to the
    transformer's width (heads x head_dim), and given a learned time and patch position. A patch
    of frame t attends to every patch of frames <= t. Output token (t, p) predicts patch p of
    frame t + 1 (a linear read-out to the feature width W).
    """

    def __init__(self, width: int, patches: int, action_dim: int, cfg: PredictorConfig) -> None:
        super().__init__()
        E = cfg.heads * cfg.head_dim
        self.history, self.patches, self.width = cfg.history, patches, width
        self.inp = nn.Linear(width + action_dim, E)
        self.time_pos = nn.Parameter(torch.randn(1, cfg.history, 1, E) * 0.02)
        self.patch_pos = nn.Parameter(torch.randn(1, 1, patches, E) * 0.02)
        self.blocks = nn.ModuleList(_PatchBlock(E, cfg) for _ in range(cfg.depth))
        self.norm = nn.LayerNorm(E)
        self.out = nn.Linear(E, width)

    def forward(self, z: Tensor, c: Tensor) -> Tensor:
        """z (N, T, P*W) flattened patch features, c (N, T, A) action embeddings, T <= history.
        Returns (N, T, P*W): token t predicts frame t + 1's patches."""
        N, T, _ = z.shape
        if T > self.history:
            raise ValueError(f"predictor window holds at most {self.history} frames, got {T}")
        P, W = self.patches, self.width
        x = torch.cat([z.view(N, T, P, W), c[:, :, None].expand(N, T, P, c.shape[-1])], -1)
        x = (self.inp(x) + self.time_pos[:, :T] + self.patch_pos).reshape(N, T * P, -1)
        frame = torch.arange(T, device=z.device).repeat_interleave(P)  # (T*P,)
        mask = frame[:, None] >= frame[None, :]  # query's frame >= key's frame
        for block in self.blocks:
            x = block(x, mask)
        return self.out(self.norm(x)).reshape(N, T, P * W)


def build_objective(config: DinoWMConfig, train: Any, distributed: bool = False) -> LeWMObjective:
    """Next-feature MSE (plus ``train.open_loop_weight`` x the open-loop MSE when set); SIGReg is
    logged on the frozen features as a diagnostic, with weight 0."""
    from lewm.losses import SIGReg

    sigreg = SIGReg(
        train.sigreg_num_proj, train.sigreg_knots, seed=train.seed, distributed=distributed
    )
    return LeWMObjective(0.0, sigreg, train.open_loop_weight)


def tiny_config() -> DinoWMConfig:
    """A toy-sized frozen-encoder model (a random 16-px CNN, 1-layer predictor)."""
    return DinoWMConfig(
        projector_hidden=32,
        action_smooth_dim=4,
        action_hidden=32,
        encoder=EncoderConfig(kind="cnn", image_size=16, width=16, channels=(8, 16)),
        predictor=PredictorConfig(history=3, depth=1, heads=2, head_dim=8, mlp_dim=32),
    )


__all__ = [
    "DinoWM",
    "DinoWMConfig",
    "FEATURES",
    "FrozenEncoder",
    "PREDICTOR_TOKENS",
    "PatchPredictor",
    "build_objective",
    "tiny_config",
]
