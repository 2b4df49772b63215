"""LeWorldModel: encoder + projector, action encoder, causal predictor + projector.

pixels (B, T, h, w, 3) uint8 --encode--> z (B, T, D) --predict/rollout--> next latents.
Registered as world-model kind ``"lewm"`` (``lewm/models/__init__.py``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from lewm.losses import LeWMObjective, SIGReg, VICReg
from lewm.models.base import WorldModelBase
from lewm.models.checkpoint import CheckpointError, resolve_checkpoint
from lewm.models.encoders import EncoderConfig, build_encoder
from lewm.models.predictor import ActionEncoder, Predictor, PredictorConfig, Projector
from lewm.utils.config import check


@dataclass
class LeWMConfig:
    kind: str = "lewm"  # world-model registry name (recorded in config.json)
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
        own = type(self).kind  # the class's default: "lewm" here, a subclass's own kind there
        check(
            self.kind == own,
            f"model.kind of a {type(self).__name__} must be {own!r}, got {self.kind!r}",
        )
        for name in ("latent_dim", "projector_hidden", "action_dim", "frameskip"):
            value = getattr(self, name)
            check(value >= 1, f"model.{name} must be >= 1, got {value}")
        for name in ("action_smooth_dim", "action_hidden"):
            value = getattr(self, name)
            check(value >= 1, f"model.{name} must be >= 1, got {value}")

    @property
    def action_block_dim(self) -> int:
        return self.frameskip * self.action_dim


class LeWM(WorldModelBase):
    config: LeWMConfig

    def __init__(self, config: LeWMConfig) -> None:
        super().__init__(config)
        D = config.latent_dim
        self.encoder = build_encoder(config.encoder)
        self.projector = Projector(self.encoder.out_dim, config.projector_hidden, D)
        self.action_encoder = ActionEncoder(
            config.action_block_dim, config.action_smooth_dim, config.action_hidden, D
        )
        self.predictor = Predictor(D, config.predictor)
        self.pred_projector = Projector(D, config.projector_hidden, D)
        enc = config.encoder
        self.register_buffer(
            "pixel_mean", torch.tensor(enc.mean).view(1, 3, 1, 1), persistent=False
        )
        self.register_buffer("pixel_std", torch.tensor(enc.std).view(1, 3, 1, 1), persistent=False)

    # -- protocol attributes -------------------------------------------------------------------
    @property
    def history(self) -> int:
        return self.config.predictor.history

    @property
    def latent_dim(self) -> int:
        return self.config.latent_dim

    @property
    def image_size(self) -> int:
        return self.config.encoder.image_size

    # -- encoding --------------------------------------------------------------------------------
    def preprocess(self, pixels: Tensor) -> Tensor:
        """uint8 (N, h, w, 3) -> normalised float (N, 3, s, s) at the encoder's image size."""
        if pixels.dtype != torch.uint8:
            raise ValueError(f"pixels must be uint8 HWC images, got dtype {pixels.dtype}")
        if pixels.ndim != 4 or pixels.shape[-1] != 3:
            raise ValueError(f"pixels must have shape (N, h, w, 3), got {tuple(pixels.shape)}")
        x = pixels.permute(0, 3, 1, 2).float().div_(255.0)  # (N, 3, h, w)
        s = self.config.encoder.image_size
        if x.shape[-2:] != (s, s):
            x = F.interpolate(x, size=(s, s), mode="bilinear", antialias=True, align_corners=False)
        return (x - self.pixel_mean) / self.pixel_std

    def encoder_features(self, pixels: Tensor) -> Tensor:
        """pixels (N, h, w, 3) uint8 -> encoder features (N, W), before the projector."""
        return self.encoder(self.preprocess(pixels))

    def encode(self, pixels: Tensor) -> Tensor:
        """pixels (B, T, h, w, 3) uint8 -> latents (B, T, D)."""
        if pixels.ndim != 5:
            raise ValueError(f"encode expects (B, T, h, w, 3) pixels, got {tuple(pixels.shape)}")
        B, T = pixels.shape[:2]
        feats = self.encoder_features(pixels.reshape(B * T, *pixels.shape[2:]))  # (B*T, W)
        return self.projector(feats).reshape(B, T, -1)  # (B, T, D)

    def embed_actions(self, blocks: Tensor) -> Tensor:
        """Normalised action blocks (..., Ab) -> embeddings (..., D). NaN blocks count as zero."""
        if blocks.shape[-1] != self.action_block_dim:
            raise ValueError(
                f"action blocks have {blocks.shape[-1]} values, the model expects "
                f"{self.action_block_dim} (frameskip {self.config.frameskip} x action_dim "
                f"{self.config.action_dim})"
            )
        blocks = blocks.to(self.action_encoder.smooth.weight.dtype)
        return self.action_encoder(torch.nan_to_num(blocks, nan=0.0))

    # -- prediction ------------------------------------------------------------------------------
    def predict(self, z: Tensor, a_emb: Tensor, last_only: bool = False) -> Tensor:
        """Teacher-forced next-latent prediction over a causal window.

        z, a_emb (N, T, D) with T <= history; output token t predicts the latent after frame t.
        Returns (N, T, D), or (N, D) for the last token only.
        """
        h = self.predictor(z, a_emb)  # (N, T, D)
        if last_only:
            return self.pred_projector(h[:, -1])  # (N, D)
        return self.pred_projector(h)

    def forward(
        self, pixels: Tensor, action_blocks: Tensor, open_loop: bool = False
    ) -> dict[str, Tensor]:
        """Training forward on clips: pixels (B, N+1, h, w, 3), action_blocks (B, N, Ab).

        Returns z (B, N+1, D) and pred (B, N, D), where pred[:, t] predicts z[:, t+1]. With
        ``open_loop`` (and N >= 2) also pred_open (B, N-1, D): an autoregressive rollout from the
        first frame alone, whose step t predicts z[:, t+2] (its first step is pred[:, 0], left
        out); gradients flow through it (``train.open_loop_weight``, a departure from the paper).
        """
        N = action_blocks.shape[1]
        if pixels.shape[1] != N + 1:
            raise ValueError(
                f"a clip has one more frame than action blocks; got {pixels.shape[1]} frames "
                f"and {N} blocks"
            )
        z = self.encode(pixels)  # (B, N+1, D)
        a_emb = self.embed_actions(action_blocks)  # (B, N, D)
        pred = self.predict(z[:, :N], a_emb)  # (B, N, D)
        out = {"z": z, "pred": pred}
        if open_loop and N >= 2:
            # the planner's sliding-window rollout, from frame 0 and its (teacher-forced) prediction
            seq = torch.cat([z[:, :1], pred[:, :1]], dim=1)  # (B, 2, D)
            out["pred_open"] = self._rollout_rows(seq, a_emb, N - 1)  # (B, N-1, D)
        return out

    rollout_chunk: int | None = 4096  # rows per rollout chunk (None: all at once)

    def rollout(
        self,
        z_context: Tensor,
        actions: Tensor,
        history_actions: Tensor | None = None,
        *,
        fast: bool = True,
    ) -> Tensor:
        """Autoregressive prediction with a sliding window of ``history`` latents.

        z_context (B, C, D): latents of the last C observed frames.
        history_actions (B, C-1, Ab): normalised blocks executed between them (None if C == 1).
        actions (B, S, H, Ab): S candidate plans; actions[:, :, 0] leaves the last context frame.
        Returns (B, S, H, D): the predicted latent after each planned block.

        ``fast=True`` (default) computes the same numbers as the plain window loop
        (:meth:`rollout_reference`, ``fast=False``) with less work; see
        :meth:`lewm.models.predictor.Predictor.rollout`.
        """
        self._check_rollout_args(z_context, actions, history_actions)
        if not fast:
            return self.rollout_reference(z_context, actions, history_actions)
        B, C, D = z_context.shape
        _, S, H, _ = actions.shape
        if C > self.history:  # the window never sees older frames: drop them (same result)
            C = self.history
            z_context = z_context[:, -C:]
            history_actions = history_actions[:, history_actions.shape[1] - (C - 1) :]
        hist_emb = self.embed_actions(history_actions) if C > 1 else None  # (B, C-1, D)
        plan_emb = self.embed_actions(actions).reshape(B * S, H, D)  # (B*S, H, D)
        return self.predictor.rollout(
            z_context, hist_emb, plan_emb, S, head=self.pred_projector, chunk=self.rollout_chunk
        )

    def rollout_reference(
        self, z_context: Tensor, actions: Tensor, history_actions: Tensor | None = None
    ) -> Tensor:
        """The plain sliding-window loop: every step re-runs the predictor on its whole window."""
        self._check_rollout_args(z_context, actions, history_actions)
        B, C, D = z_context.shape
        _, S, H, Ab = actions.shape
        if C > 1:
            hist = history_actions[:, None].expand(B, S, C - 1, Ab)
            actions = torch.cat([hist, actions], dim=2)  # (B, S, C-1+H, Ab)
        a_emb = self.embed_actions(actions).reshape(B * S, C - 1 + H, -1)  # (B*S, C-1+H, D)
        seq = z_context[:, None].expand(B, S, C, D).reshape(B * S, C, D)  # (B*S, C, D)
        # rows are independent: chunks keep activations cache-sized (~30 % faster on CPU)
        chunk = self.rollout_chunk or B * S
        out = [
            self._rollout_rows(seq[i : i + chunk], a_emb[i : i + chunk], H)
            for i in range(0, B * S, chunk)
        ]
        return torch.cat(out).reshape(B, S, H, D)

    @staticmethod
    def _check_rollout_args(
        z_context: Tensor, actions: Tensor, history_actions: Tensor | None
    ) -> None:
        if z_context.ndim != 3 or actions.ndim != 4:
            raise ValueError(
                f"rollout expects z_context (B, C, D) and actions (B, S, H, Ab), got "
                f"{tuple(z_context.shape)} and {tuple(actions.shape)}"
            )
        B, C = z_context.shape[:2]
        if actions.shape[0] != B:
            raise ValueError(f"actions batch {actions.shape[0]} != context batch {B}")
        if C > 1 and (history_actions is None or history_actions.shape[:2] != (B, C - 1)):
            raise ValueError(f"{C} context frames need history_actions of shape (B, {C - 1}, Ab)")

    def _rollout_rows(self, seq: Tensor, a_emb: Tensor, H: int) -> Tensor:
        # seq (R, C, D) context latents; a_emb (R, C-1+H, D) -> predictions (R, H, D)
        preds = []
        for _ in range(H):
            n = seq.shape[1]
            lo = max(0, n - self.history)
            nxt = self.predict(seq[:, lo:], a_emb[:, lo:n], last_only=True)  # (R, D)
            preds.append(nxt)
            seq = torch.cat([seq, nxt[:, None]], dim=1)  # (R, n+1, D)
        return torch.stack(preds, dim=1)


def build_objective(config: LeWMConfig, train: Any, distributed: bool = False) -> LeWMObjective:
    """Next-embedding MSE + ``train.sigreg_weight`` x SIGReg (``train.sigreg_*`` settings), plus
    ``train.open_loop_weight`` x the open-loop rollout's MSE when that option is set. With
    ``train.regularizer=vicreg`` (an ablation) VICReg's variance and covariance terms
    (``train.vicreg_*_weight``) replace SIGReg."""
    if getattr(train, "regularizer", "sigreg") == "vicreg":
        vicreg = VICReg(train.vicreg_var_weight, train.vicreg_cov_weight, distributed=distributed)
        return LeWMObjective(train.sigreg_weight, None, train.open_loop_weight, vicreg=vicreg)
    sigreg = SIGReg(
        train.sigreg_num_proj, train.sigreg_knots, seed=train.seed, distributed=distributed
    )
    return LeWMObjective(train.sigreg_weight, sigreg, train.open_loop_weight)


def tiny_config() -> LeWMConfig:
    """A toy-sized LeWM (16-px CNN, 16-d latent, 1-layer predictor) for tests and smoke runs."""
    return LeWMConfig(
        latent_dim=16,
        projector_hidden=32,
        action_smooth_dim=4,
        action_hidden=32,
        encoder=EncoderConfig(kind="cnn", image_size=16, width=32, channels=(8, 16)),
        predictor=PredictorConfig(history=3, depth=1, heads=2, head_dim=8, mlp_dim=32),
    )


__all__ = [
    "CheckpointError",
    "LeWM",
    "LeWMConfig",
    "build_objective",
    "resolve_checkpoint",
    "tiny_config",
]
