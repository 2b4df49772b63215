"""LeWorldModel: encoder + projector, action encoder, causal predictor + projector.

pixels (B, T, h, w, 3) uint8 --encode--> z (B, T, D) --predict/rollout--> next latents.
The planner only uses :meth:`LeWM.encode` and :meth:`LeWM.rollout` (see lewm.planning.protocol).
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file
from torch import Tensor, nn

from lewm.config import ModelConfig, model_config_from_dict
from lewm.data.normalize import Normalizer
from lewm.models.encoders import build_encoder
from lewm.models.predictor import ActionEncoder, Predictor, Projector

log = logging.getLogger(__name__)

CHECKPOINT_FORMAT = "lewm-checkpoint"
CHECKPOINT_VERSION = 1
CONFIG_FILE, WEIGHTS_FILE, NORMALIZER_FILE = "config.json", "model.safetensors", "normalizer.json"


class CheckpointError(ValueError):
    """A checkpoint folder is missing, incomplete or incompatible."""


class LeWM(nn.Module):
    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        D = config.latent_dim
        self.encoder = build_encoder(config.encoder)
        self.projector = Projector(self.encoder.out_dim, config.projector_hidden, D)
        self.action_encoder = ActionEncoder(config)
        self.predictor = Predictor(D, config.predictor)
        self.pred_projector = Projector(D, config.projector_hidden, D)
        enc = config.encoder
        self.register_buffer(
            "pixel_mean", torch.tensor(enc.mean).view(1, 3, 1, 1), persistent=False
        )
        self.register_buffer("pixel_std", torch.tensor(enc.std).view(1, 3, 1, 1), persistent=False)
        self.normalizer: Normalizer | None = None  # set by training / from_pretrained
        self.metadata: dict[str, Any] = {}

    def action_normalizer(self) -> Normalizer:
        """The action statistics saved with the model (planning and analysis work in z-scored
        action space); a clear error for a model that was not trained by ``lewm train``."""
        if self.normalizer is None or "action" not in self.normalizer:
            raise CheckpointError(
                "the checkpoint has no action normaliser (normalizer.json); it was not trained by "
                "`lewm train` - retrain it, or set model.normalizer = Normalizer.fit({'action': A})"
            )
        return self.normalizer

    # -- protocol attributes -------------------------------------------------------------------
    @property
    def history(self) -> int:
        return self.config.predictor.history

    @property
    def action_block_dim(self) -> int:
        return self.config.action_block_dim

    @property
    def latent_dim(self) -> int:
        return self.config.latent_dim

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

    def encode(self, pixels: Tensor) -> Tensor:
        """pixels (B, T, h, w, 3) uint8 -> latents (B, T, D)."""
        if pixels.ndim != 5:
            raise ValueError(f"encode expects (B, T, h, w, 3) pixels, got {tuple(pixels.shape)}")
        B, T = pixels.shape[:2]
        x = self.preprocess(pixels.reshape(B * T, *pixels.shape[2:]))  # (B*T, 3, s, s)
        feats = self.encoder(x)  # (B*T, W)
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

    def forward(self, pixels: Tensor, action_blocks: Tensor) -> dict[str, Tensor]:
        """Training forward on clips: pixels (B, N+1, h, w, 3), action_blocks (B, N, Ab).

        Returns z (B, N+1, D) and pred (B, N, D), where pred[:, t] predicts z[:, t+1].
        """
        N = action_blocks.shape[1]
        if pixels.shape[1] != N + 1:
            raise ValueError(
                f"a clip has one more frame than action blocks; got {pixels.shape[1]} frames "
                f"and {N} blocks"
            )
        z = self.encode(pixels)  # (B, N+1, D)
        pred = self.predict(z[:, :N], self.embed_actions(action_blocks))  # (B, N, D)
        return {"z": z, "pred": pred}

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
        :mod:`lewm.models.fast_rollout`.
        """
        self._check_rollout_args(z_context, actions, history_actions)
        B, C, D = z_context.shape
        _, S, H, Ab = actions.shape
        if not fast:
            return self.rollout_reference(z_context, actions, history_actions)
        if C > self.history:  # the window never sees older frames: drop them (same result)
            C = self.history
            z_context = z_context[:, -C:]
            history_actions = history_actions[:, history_actions.shape[1] - (C - 1) :]
        from lewm.models.fast_rollout import fast_rollout

        hist_emb = self.embed_actions(history_actions) if C > 1 else None  # (B, C-1, D)
        plan_emb = self.embed_actions(actions).reshape(B * S, H, D)  # (B*S, H, D)
        return fast_rollout(self, z_context, hist_emb, plan_emb, S, self.rollout_chunk)

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
        a_emb = self.embed_actions(actions).reshape(B * S, C - 1 + H, D)  # (B*S, C-1+H, D)
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
        B, C = z_context.shape[:2]
        if actions.shape[0] != B:
            raise ValueError(f"actions batch {actions.shape[0]} != context batch {B}")
        if C > 1 and (history_actions is None or history_actions.shape[:2] != (B, C - 1)):
            raise ValueError(f"{C} context frames need history_actions of shape (B, {C - 1}, Ab)")

    rollout_chunk: int | None = 4096  # rows per rollout chunk (None: all at once)

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

    # -- checkpoints -----------------------------------------------------------------------------
    def param_counts(self) -> dict[str, int]:
        parts = {
            "encoder": self.encoder,
            "projector": self.projector,
            "action_encoder": self.action_encoder,
            "predictor": self.predictor,
            "pred_projector": self.pred_projector,
        }
        counts = {k: sum(p.numel() for p in m.parameters()) for k, m in parts.items()}
        counts["total"] = sum(counts.values())
        return counts

    def save_pretrained(
        self,
        path: str | os.PathLike,
        *,
        overwrite: bool = False,
        extra_files: dict[str, bytes] | None = None,
    ) -> Path:
        """Write ``config.json`` + ``model.safetensors`` (+ ``normalizer.json``) atomically.

        The folder is assembled under a temporary name and renamed into place, so a crash never
        leaves a half-written checkpoint; an existing folder is replaced only with ``overwrite``.
        """
        path = Path(path)
        if path.exists() and not overwrite:
            raise FileExistsError(f"checkpoint {path} already exists (pass overwrite=True)")
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
        try:
            state = {k: v.detach().contiguous().cpu() for k, v in self.state_dict().items()}
            save_file(state, str(tmp / WEIGHTS_FILE), metadata={"format": CHECKPOINT_FORMAT})
            cfg = {
                "format": CHECKPOINT_FORMAT,
                "version": CHECKPOINT_VERSION,
                "model": _to_jsonable(self.config),
                "metadata": self.metadata,
            }
            (tmp / CONFIG_FILE).write_text(json.dumps(cfg, indent=2) + "\n")
            if self.normalizer is not None:
                (tmp / NORMALIZER_FILE).write_text(json.dumps(self.normalizer.to_dict(), indent=2))
            for name, data in (extra_files or {}).items():
                (tmp / name).write_bytes(data)
            if path.exists():
                old = path.with_name(f".{path.name}.old")
                shutil.rmtree(old, ignore_errors=True)
                os.replace(path, old)
                os.replace(tmp, path)
                shutil.rmtree(old, ignore_errors=True)
            else:
                os.replace(tmp, path)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        return path

    @classmethod
    def from_pretrained(
        cls, path: str | os.PathLike, map_location: str | torch.device = "cpu"
    ) -> LeWM:
        """Rebuild a model from a checkpoint folder (no pickles are read)."""
        path = resolve_checkpoint(path)
        try:
            cfg = json.loads((path / CONFIG_FILE).read_text())
        except json.JSONDecodeError as e:
            raise CheckpointError(f"{path / CONFIG_FILE} is not valid JSON ({e})") from e
        if cfg.get("format") != CHECKPOINT_FORMAT:
            raise CheckpointError(f"{path} is not a lewm checkpoint (config.json format field)")
        model = cls(model_config_from_dict(cfg["model"]))
        try:
            state = load_file(str(path / WEIGHTS_FILE), device=str(map_location))
        except Exception as e:  # safetensors raises its own error types on corrupt files
            raise CheckpointError(f"cannot read {path / WEIGHTS_FILE}: {e}") from e
        missing, unexpected = model.load_state_dict(state, strict=False)
        if missing or unexpected:
            raise CheckpointError(
                f"{path}: weights do not match the config (missing {missing[:5]}, "
                f"unexpected {unexpected[:5]})"
            )
        norm_file = path / NORMALIZER_FILE
        if norm_file.exists():
            model.normalizer = Normalizer.from_dict(json.loads(norm_file.read_text()))
        model.metadata = cfg.get("metadata", {})
        return model.to(map_location).eval()


def resolve_checkpoint(path: str | os.PathLike) -> Path:
    """Accept a checkpoint folder, or a run folder (its ``model/`` or newest checkpoint)."""
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"checkpoint {path} does not exist")
    if (path / CONFIG_FILE).exists() and (path / WEIGHTS_FILE).exists():
        return path
    if (path / "model" / WEIGHTS_FILE).exists():
        return path / "model"
    ckpts = sorted((path / "checkpoints").glob("step_*")) if (path / "checkpoints").is_dir() else []
    ckpts = [c for c in ckpts if (c / WEIGHTS_FILE).exists()]
    if ckpts:
        return ckpts[-1]
    missing = [f for f in (CONFIG_FILE, WEIGHTS_FILE) if not (path / f).exists()]
    raise CheckpointError(
        f"{path} is not a checkpoint folder (missing {missing}) nor a run folder with model/ "
        "or checkpoints/"
    )


def _to_jsonable(cfg: Any) -> Any:
    import dataclasses

    return dataclasses.asdict(cfg)
