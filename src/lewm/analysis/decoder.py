"""A latent decoder: what a frozen world model's latent kept, drawn as frames.

A small convolutional network learns, with the world model frozen (eval mode, no gradient), to
map one latent z (D,) back to its frame (h, w, 3) at the data's resolution. Decoding the
encoding of a real frame shows what the encoder kept; decoding an open-loop prediction shows
what the model imagines. It is a probe of the latent, never a training signal: nothing flows
back into the world model, whose checkpoint is only read.

    CKPT/decoder/{decoder.json, decoder.safetensors}      (CKPT: RUN/model for a run folder)

``decoder.json`` records the architecture, the sha256 of the ``model.safetensors`` it was
trained against (a decoder is refused for any other model), the data file, its episode split,
the training settings and the final losses. The folder is written atomically (a temporary
folder, synced, renamed into place) and replaces only another decoder folder.
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from lewm.analysis.geometry import rollout_windows
from lewm.analysis.probe import embed_frames
from lewm.data.hdf5 import DataError
from lewm.models import CheckpointError, model_device
from lewm.models.checkpoint import weights_sha256
from lewm.models.heads import (
    HeadFormat,
    check_head_for,
    check_head_out,
    head_episodes,
    is_head_dir,
    load_head,
    save_head,
)
from lewm.utils.config import check, check_seed
from lewm.utils.io import (
    atomic_path,
)
from lewm.utils.progress import progress_bar

DECODER_FORMAT, DECODER_VERSION = "lewm-decoder", 1
DECODER_DIR = "decoder"  # inside the checkpoint folder it belongs to
CONFIG_NAME, WEIGHTS_NAME = "decoder.json", "decoder.safetensors"


class DecoderError(CheckpointError):
    """A decoder folder is missing, broken, or belongs to another model or data."""


DECODER = HeadFormat(
    what="decoder",
    format=DECODER_FORMAT,
    version=DECODER_VERSION,
    config_name=CONFIG_NAME,
    weights_name=WEIGHTS_NAME,
    folder=DECODER_DIR,
    train_command="lewm decoder RUN --data FILE",
    error=DecoderError,
)


# -- the network ----------------------------------------------------------------------------------


@dataclass
class DecoderConfig:
    latent_dim: int  # D of the world model
    height: int  # h, w: the frames it draws (the data's resolution)
    width: int
    channels: int = 16  # channels at the output resolution, doubled per halving of the size
    max_channels: int = 128  # ... up to this many

    def __post_init__(self) -> None:
        for f in fields(self):
            v = getattr(self, f.name)
            check(
                isinstance(v, int) and not isinstance(v, bool) and 1 <= v <= 1 << 14,
                f"decoder {f.name} must be an integer in [1, 16384], got {v!r}",
            )
        check(self.height >= 4 and self.width >= 4, "decoder frames must be >= 4 pixels a side")

    def stages(self) -> tuple[tuple[int, int], list[int]]:
        """The start grid (h0, w0) and the channels at each size, from the start grid to the
        output: the frame side is halved (rounding up) while it stays >= 4."""
        k = max(0, int(math.floor(math.log2(min(self.height, self.width) / 4))))
        grid = (math.ceil(self.height / 2**k), math.ceil(self.width / 2**k))
        chans = [min(self.max_channels, self.channels * 2 ** (k - j)) for j in range(k + 1)]
        return grid, chans


class LatentDecoder(nn.Module):
    """z (N, D) -> frames (N, 3, h, w) in [0, 1]: the latent standardised with its training
    statistics, a linear map onto a small grid, then per doubling of the size a 4x4 transposed
    convolution of stride 2, GroupNorm and SiLU, and a 3x3 convolution to RGB (cropped to (h, w)
    when the grid overshoots)."""

    def __init__(self, config: DecoderConfig) -> None:
        super().__init__()
        self.config = config
        (h0, w0), chans = config.stages()
        self.grid = (chans[0], h0, w0)
        self.fc = nn.Linear(config.latent_dim, chans[0] * h0 * w0)
        self.stem = nn.Sequential(nn.GroupNorm(_groups(chans[0]), chans[0]), nn.SiLU())
        self.ups = nn.ModuleList(
            nn.Sequential(
                nn.ConvTranspose2d(c_in, c_out, 4, stride=2, padding=1),  # doubles h, w
                nn.GroupNorm(_groups(c_out), c_out),
                nn.SiLU(),
            )
            for c_in, c_out in zip(chans[:-1], chans[1:], strict=True)
        )
        self.head = nn.Conv2d(chans[-1], 3, 3, padding=1)
        # latents are standardised with their training statistics (set by train_decoder, saved)
        self.register_buffer("z_mean", torch.zeros(config.latent_dim))
        self.register_buffer("z_std", torch.ones(config.latent_dim))

    def forward(self, z: Tensor) -> Tensor:
        z = (z - self.z_mean) / self.z_std  # (N, D)
        x = self.stem(self.fc(z).view(len(z), *self.grid))  # (N, C0, h0, w0)
        for up in self.ups:
            x = up(x)  # (N, Cj, 2 hj, 2 wj)
        x = self.head(x)[..., : self.config.height, : self.config.width]  # (N, 3, h, w)
        return torch.sigmoid(x)

    @torch.inference_mode()
    def frames(self, z: Tensor, batch_size: int = 256) -> np.ndarray:
        """latents (..., D) -> uint8 frames (..., h, w, 3), in batches."""
        flat = z.reshape(-1, z.shape[-1]).float().to(next(self.parameters()).device)
        out = [self(flat[i : i + batch_size]).cpu() for i in range(0, len(flat), batch_size)]
        x = torch.cat(out) if out else torch.zeros(0, 3, self.config.height, self.config.width)
        px = (x.permute(0, 2, 3, 1) * 255).round().clamp(0, 255).to(torch.uint8)  # (N, h, w, 3)
        return px.reshape(*z.shape[:-1], *px.shape[1:]).numpy()


def _groups(c: int) -> int:
    return 8 if c % 8 == 0 else 1


# -- what a decoder belongs to --------------------------------------------------------------------


def model_fingerprint(ckpt: str | os.PathLike) -> str:
    """sha256 of the checkpoint's ``model.safetensors``: the world model a decoder was trained
    against (a copied run folder keeps it; retraining changes it)."""
    return weights_sha256(ckpt)


def default_decoder_dir(ckpt: str | os.PathLike) -> Path:
    """Where ``lewm decoder`` saves the decoder of a checkpoint folder, and ``lewm viz`` looks."""
    return Path(ckpt) / DECODER_DIR


def decoder_episodes(
    model: Any, data: Any, seed: int, val_fraction: float = 0.1
) -> tuple[np.ndarray, np.ndarray, str]:
    """(train, val) episode ids of ``data`` for the decoder, and which split they are: the
    world model's own ("model": its validation episodes stay unseen by the decoder too) when
    ``data`` is the model's training file with a recorded split, else a split of the file's
    episodes drawn with ``seed`` ("own")."""
    return head_episodes(model, data, seed, val_fraction, "decoder")


def check_data(model: Any, data: Any) -> None:
    """Refuse frames the model was not trained on: another resolution or action size (one
    clear error each; the environment is checked by the command, see ``lewm.cli.common``)."""
    md = getattr(model, "metadata", None) or {}
    trained = md.get("image_shape")
    shape = [int(x) for x in data.image_shape]
    if trained is not None and list(trained) != shape:
        raise DataError(
            f"{data.path} has {shape[0]}x{shape[1]} frames, the model was trained on "
            f"{trained[0]}x{trained[1]} frames: give data at the model's resolution"
        )
    if int(data.action_dim) != int(model.action_dim):
        raise DataError(
            f"{data.path} has actions of {data.action_dim} values, the model takes "
            f"{model.action_dim}: the file comes from another environment - give the model's data"
        )


# -- training -------------------------------------------------------------------------------------


@dataclass
class DecoderTrainConfig:
    steps: int = 1000  # optimiser steps
    batch_size: int = 32  # frames per step
    lr: float = 1e-3  # AdamW, cosine decay to 0 after a 5 % warm-up
    l1_weight: float = 0.0  # loss = MSE + l1_weight * L1 (pixels in [0, 1])
    frames: int = 4096  # training frames drawn from the training episodes (encoded once)
    val_frames: int = 512  # frames drawn from the held-out episodes for the final score
    channels: int = 16  # DecoderConfig.channels
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("steps", "batch_size", "frames", "val_frames", "channels"):
            v = getattr(self, name)
            check(v >= 1, f"decoder {name} must be >= 1, got {v}")
        check(
            math.isfinite(self.lr) and 0 < self.lr <= 1, f"decoder lr must be in (0, 1]: {self.lr}"
        )
        check(
            math.isfinite(self.l1_weight) and self.l1_weight >= 0,
            f"decoder l1_weight must be >= 0, got {self.l1_weight}",
        )
        check_seed(self.seed, "decoder seed (--seed)")


def sample_rows(data: Any, episodes: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` distinct rows (sorted) drawn from the given episodes (all of them if fewer)."""
    rows = np.concatenate(
        [int(data.ep_offset[e]) + np.arange(int(data.ep_len[e])) for e in episodes]
    )
    return np.sort(rng.choice(rows, min(n, len(rows)), replace=False))


def _to_float(px: np.ndarray | Tensor, device: torch.device) -> Tensor:
    """uint8 (N, h, w, 3) -> float (N, 3, h, w) in [0, 1]."""
    return torch.as_tensor(px).to(device).permute(0, 3, 1, 2).float().div_(255.0)


@torch.no_grad()
def _mse(decoder: LatentDecoder, z: Tensor, px: np.ndarray, batch: int = 256) -> float:
    """Mean per-pixel squared error of the decoded z against the frames px."""
    dev = next(decoder.parameters()).device
    total = 0.0
    for i in range(0, len(z), batch):
        x = _to_float(px[i : i + batch], dev)
        total += float(F.mse_loss(decoder(z[i : i + batch].to(dev)), x, reduction="sum"))
    return total / (len(z) * px[0].size)


def fit_decoder(
    z_tr: Tensor,
    tr_px: np.ndarray,
    z_va: Tensor,
    va_px: np.ndarray,
    cfg: DecoderTrainConfig,
    device: torch.device | str = "cpu",
    progress: bool | None = False,
) -> tuple[LatentDecoder, dict[str, float]]:
    """Fit a decoder from vectors z_tr (N, D) to uint8 frames tr_px (N, h, w, 3); returns it (in
    eval mode) and its per-pixel MSE (frames in [0, 1]) on a part of the training frames, on
    (z_va, va_px), and of the mean training frame on va_px (what ignoring z would score). Any
    vectors work (latents, or true states as a control of what the decoder can draw)."""
    dev = torch.device(device)
    h, w = tr_px.shape[1:3]
    torch.manual_seed(cfg.seed)
    dcfg = DecoderConfig(latent_dim=z_tr.shape[1], height=h, width=w, channels=cfg.channels)
    decoder = LatentDecoder(dcfg).to(dev)
    decoder.z_mean.copy_(z_tr.mean(0))
    decoder.z_std.copy_(z_tr.std(0).clamp_min(1e-6 * float(z_tr.std(0).max()) + 1e-12))
    opt = torch.optim.AdamW(decoder.parameters(), lr=cfg.lr, weight_decay=1e-4)
    warm = max(1, cfg.steps // 20)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt,
        lambda s: (
            min(1.0, (s + 1) / warm) * 0.5 * (1 + math.cos(math.pi * min(1.0, s / cfg.steps)))
        ),
    )
    gen = torch.Generator().manual_seed(cfg.seed)
    tr_px_t = torch.as_tensor(tr_px)
    bar = progress_bar(cfg.steps, "decoder", progress, unit="step")
    decoder.train()
    for step in range(cfg.steps):
        idx = torch.randint(len(z_tr), (min(cfg.batch_size, len(z_tr)),), generator=gen)
        target = _to_float(tr_px_t[idx], dev)  # (B, 3, h, w)
        out = decoder(z_tr[idx].to(dev))  # (B, 3, h, w)
        loss = F.mse_loss(out, target)
        if cfg.l1_weight:
            loss = loss + cfg.l1_weight * F.l1_loss(out, target)
        if not torch.isfinite(loss):
            raise FloatingPointError(
                f"decoder training diverged at step {step} (loss {float(loss)}); nothing was "
                "written - lower --lr"
            )
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        bar.update(1)
        if step % 50 == 0:
            bar.set_postfix(loss=f"{loss.item():.4f}")
    bar.close()
    decoder.eval()
    mean_frame = tr_px.reshape(len(tr_px), -1).mean(0, dtype=np.float64) / 255.0
    va_flat = va_px.reshape(len(va_px), -1).astype(np.float64) / 255.0
    n_score = min(len(z_tr), cfg.val_frames)
    losses = {
        "train_mse": _mse(decoder, z_tr[:n_score], tr_px[:n_score]),
        "val_mse": _mse(decoder, z_va, va_px),
        "val_mean_frame_mse": float(((va_flat - mean_frame) ** 2).mean()),
    }
    return decoder, losses


def train_decoder(
    model: Any,
    data: Any,
    ckpt: str | os.PathLike,
    cfg: DecoderTrainConfig | None = None,
    progress: bool | None = False,
) -> tuple[LatentDecoder, dict[str, Any]]:
    """Train a decoder from the frozen ``model``'s latents to the frames of ``data``; returns it
    and its record (what ``decoder.json`` holds). ``ckpt``: the model's checkpoint folder (its
    weights file fingerprints the model)."""
    cfg = cfg or DecoderTrainConfig()
    t0 = time.perf_counter()
    fingerprint = model_fingerprint(ckpt)
    model.eval()
    dev = model_device(model)
    rng = np.random.default_rng(cfg.seed)
    train_eps, val_eps, split = decoder_episodes(model, data, cfg.seed)
    tr_rows = sample_rows(data, train_eps, cfg.frames, rng)
    va_rows = sample_rows(data, val_eps, cfg.val_frames, rng)
    tr_px = np.asarray(data.rows("pixels", tr_rows))  # (N, h, w, 3) uint8
    va_px = np.asarray(data.rows("pixels", va_rows))  # (M, h, w, 3)
    z_tr = torch.as_tensor(embed_frames(model, tr_px, progress=progress))  # (N, D), no grad
    z_va = torch.as_tensor(embed_frames(model, va_px, progress=progress))  # (M, D)
    if not (torch.isfinite(z_tr).all() and torch.isfinite(z_va).all()):
        raise FloatingPointError(
            "the world model's latents hold NaN or infinite values; its weights or the frames "
            f"of {data.path} are broken - use another checkpoint"
        )
    decoder, losses = fit_decoder(z_tr, tr_px, z_va, va_px, cfg, dev, progress)
    dcfg, (h, w) = decoder.config, tr_px.shape[1:3]
    record = {
        "format": DECODER_FORMAT,
        "version": DECODER_VERSION,
        "decoder": asdict(dcfg),
        "model": {
            "sha256": fingerprint,
            "checkpoint": str(Path(ckpt).resolve()),
            "kind": getattr(model.config, "kind", None),
            "latent_dim": int(z_tr.shape[1]),
            "step": (model.metadata or {}).get("step"),
        },
        "data": {
            "path": str(Path(data.path).resolve()),
            "env": data.attrs.get("env"),
            "image_shape": [int(h), int(w), 3],
            "split": split,
            "train_episodes": len(train_eps),
            "val_episodes": len(val_eps),
            "train_frames": len(tr_rows),
            "val_frames": len(va_rows),
        },
        "training": {
            **{k: getattr(cfg, k) for k in ("steps", "batch_size", "lr", "l1_weight", "seed")},
            "seconds": round(time.perf_counter() - t0, 1),
        },
        "losses": losses,  # per-pixel MSE, frames in [0, 1]
    }
    if not all(math.isfinite(v) for v in losses.values()):
        raise FloatingPointError("decoder training ended with NaN losses; nothing was written")
    return decoder, record


# -- saving and loading ---------------------------------------------------------------------------


def is_decoder_dir(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a folder ``lewm decoder`` wrote (its decoder.json says so)."""
    return is_head_dir(DECODER, path)


def check_decoder_out(path: str | os.PathLike, overwrite: bool) -> Path:
    """Before training: ``path`` is free, or (with ``overwrite``) a decoder folder or an empty
    one - never anything else (a run or checkpoint folder, a file)."""
    return check_head_out(DECODER, path, overwrite)


def save_decoder(
    decoder: LatentDecoder, record: dict[str, Any], path: str | os.PathLike, overwrite: bool = False
) -> Path:
    """Write ``decoder.safetensors`` + ``decoder.json`` into folder ``path``, atomically: a
    temporary folder beside it, every file synced, renamed into place. An existing folder is
    replaced only with ``overwrite`` and only if it is a decoder folder."""
    return save_head(DECODER, decoder, record, path, overwrite)


def _build_from_record(record: dict[str, Any]) -> LatentDecoder:
    for section, key, kind in (
        ("data", "path", str),
        ("training", "seed", int),
        ("losses", "val_mse", float),
    ):
        if not isinstance(record[section][key], kind):
            raise TypeError(f"{section}.{key} must be a {kind.__name__}")
    return LatentDecoder(DecoderConfig(**record["decoder"]))


def load_decoder(path: str | os.PathLike) -> tuple[LatentDecoder, dict[str, Any]]:
    """The decoder saved in folder ``path`` and its record, in eval mode on the CPU. Every
    problem (missing, not JSON, another format, tensors that do not fit the recorded
    architecture, NaN weights) is one :class:`DecoderError` naming the file."""
    decoder, record = load_head(DECODER, path, _build_from_record)
    return decoder, record  # type: ignore[return-value]


def check_decoder_for(record: dict[str, Any], ckpt: str | os.PathLike, where: Path) -> None:
    """Refuse a decoder trained against another world model than the checkpoint ``ckpt``."""
    check_head_for(DECODER, record, ckpt, where)


# -- what the model imagines ----------------------------------------------------------------------


def _mse_frames(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Per-frame mean squared error of uint8 frames (..., h, w, 3), pixels scaled to [0, 1]."""
    d = a.astype(np.float32) / 255.0 - b.astype(np.float32) / 255.0
    return np.square(d).mean(axis=(-3, -2, -1))


@torch.inference_mode()
def imagine(
    model: Any,
    decoder: LatentDecoder,
    data: Any,
    record: dict[str, Any],
    horizon: int = 10,
    episodes: int = 64,
    seed: int = 0,
) -> dict[str, Any]:
    """Decode an open-loop rollout: windows of ``history + horizon`` real frames (from the
    decoder's held-out episodes when ``data`` is its training file), the rollout from the first
    ``history`` with the real actions, and per step the per-pixel MSE (frames in [0, 1]) of

    - ``rollout_mse``: the decoded prediction against the real frame;
    - ``copy_last_mse``: the last context frame against the real frame (the baseline);
    - ``decoded_encoding_mse``: the decoded encoding of the real frame against it (the floor
      the decoder itself sets);
    - ``rollout_vs_decoded_encoding_mse`` and ``copy_last_vs_decoded_encoding_mse``: the same
      comparison inside the decoder's picture (decoded prediction, decoded last context frame
      against the decoded encoding), free of the decoder's blur.

    Keys starting with ``_`` hold the frames for :func:`write_imagined`."""
    check_decoder_data(decoder, model, data)
    same = Path(record["data"]["path"]).resolve() == Path(data.path).resolve()
    among, split = None, "all"
    if same:
        among = decoder_episodes(model, data, int(record["training"]["seed"]))[1]
        split = "heldout"
    C = model.history
    px, z, pred = rollout_windows(model, data, horizon, episodes, seed, among)
    px = px.numpy()  # (E, C+H, h, w, 3)
    dec_z = decoder.frames(z)  # (E, C+H, h, w, 3)
    dec_pred = decoder.frames(pred)  # (E, H, h, w, 3)
    real = px[:, C:]  # (E, H, h, w, 3)
    err = _mse_frames(dec_pred, real)  # (E, H)

    def mean(x: np.ndarray) -> list[float]:
        return [round(float(v), 6) for v in x.mean(0)]

    return {
        "context": C,
        "horizon": horizon,
        "episodes": len(px),
        "episodes_from": split,
        "metric": "per-pixel MSE, frames scaled to [0, 1]",
        "decoder_val_mse": record["losses"]["val_mse"],
        "rollout_mse": mean(err),
        "rollout_mse_std": [round(float(v), 6) for v in err.std(0)],
        "copy_last_mse": mean(_mse_frames(px[:, C - 1 : C], real)),
        "decoded_encoding_mse": mean(_mse_frames(dec_z[:, C:], real)),
        "rollout_vs_decoded_encoding_mse": mean(_mse_frames(dec_pred, dec_z[:, C:])),
        "copy_last_vs_decoded_encoding_mse": mean(_mse_frames(dec_z[:, C - 1 : C], dec_z[:, C:])),
        "_real": px,
        "_decoded": dec_z,
        "_imagined": dec_pred,
    }


def check_decoder_data(decoder: LatentDecoder, model: Any, data: Any) -> None:
    """Refuse a decoder whose frames or latents do not fit ``data`` or ``model``."""
    h, w = decoder.config.height, decoder.config.width
    shape = [int(x) for x in data.image_shape]
    if shape[:2] != [h, w]:
        raise DataError(
            f"the decoder draws {h}x{w} frames, {data.path} has {shape[0]}x{shape[1]}: give the "
            "data it was trained on, or train a decoder for this file (`lewm decoder RUN --data "
            f"{data.path} --out DIR`)"
        )
    if decoder.config.latent_dim != model.latent_dim:
        raise DecoderError(
            f"the decoder reads {decoder.config.latent_dim}-dim latents, the model writes "
            f"{model.latent_dim}: it belongs to another model"
        )


def _labels(C: int, H: int) -> list[str]:
    ctx = ["ctx"] if C == 1 else [f"ctx{t - C + 1}" for t in range(C)]
    return [*ctx, *(f"+{t}" for t in range(1, H + 1))]


def write_imagined(out_dir: str | os.PathLike, result: dict[str, Any], show: int = 3) -> dict:
    """``imagined.png``: per shown window three rows over the context and the horizon (real
    frames; decoded encodings; decoded open-loop predictions), columns labelled with the step;
    ``imagined.gif``: one frame per step (context, then +1 ... +H), each window as
    real | decoded | imagined side by side."""
    import imageio.v3 as iio
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from PIL import Image, ImageDraw

    out = Path(out_dir)
    real, dec, imag = result["_real"], result["_decoded"], result["_imagined"]
    C, H = result["context"], result["horizon"]
    n = min(show, len(real))
    h, w = real.shape[2:4]
    gap, sep = 2, 8
    blank = np.full((h, w, 3), 128, np.uint8)
    rows_px = []
    for i in range(n):
        pred_row = [blank] * C + list(imag[i])
        for row in (list(real[i]), list(dec[i]), pred_row):
            cells = []
            for f in row:
                cells += [f, np.full((h, gap, 3), 255, np.uint8)]
            rows_px.append(np.concatenate(cells[:-1], axis=1))
            rows_px.append(np.full((gap, rows_px[-1].shape[1], 3), 255, np.uint8))
        rows_px[-1] = np.full((sep, rows_px[-2].shape[1], 3), 255, np.uint8)
    canvas = np.concatenate(rows_px[:-1], axis=0)  # (rows, cols, 3)
    scale, dpi = max(1.0, 72 / h), 100
    fig_w, fig_h = canvas.shape[1] * scale / dpi + 1.3, canvas.shape[0] * scale / dpi + 0.7
    fig = plt.figure(figsize=(fig_w, fig_h), dpi=dpi)
    ax = fig.add_axes((1.1 / fig_w, 0.1 / fig_h, 1 - 1.2 / fig_w, 1 - 0.6 / fig_h))
    ax.imshow(canvas, interpolation="nearest")
    ax.set_xticks([j * (w + gap) + w / 2 for j in range(C + H)], _labels(C, H), fontsize=8)
    ax.xaxis.tick_top()
    ys, names = [], []
    for i in range(n):
        top = i * (3 * (h + gap) - gap + sep)
        for r, name in enumerate(("real", "decoded", "imagined")):
            ys.append(top + r * (h + gap) + h / 2)
            names.append(name)
    ax.set_yticks(ys, names, fontsize=8)
    ax.tick_params(length=0)
    for s in ax.spines.values():
        s.set_visible(False)
    png = out / "imagined.png"
    with atomic_path(png) as tmp:
        fig.savefig(tmp, dpi=dpi, format="png")
    plt.close(fig)

    # the GIF: one frame per step, a header with the step
    k = max(1, int(round(96 / h)))
    band = 14
    frames = []
    for t, label in enumerate(_labels(C, H)):
        panes = []
        for i in range(n):
            third = imag[i, t - C] if t >= C else blank
            cells = [real[i, t], np.full((h, gap, 3), 255, np.uint8), dec[i, t]]
            cells += [np.full((h, gap, 3), 255, np.uint8), third]
            panes += [np.concatenate(cells, axis=1), np.full((gap, 3 * w + 2 * gap, 3), 255)]
        body = np.concatenate(panes[:-1], axis=0).astype(np.uint8)
        body = np.kron(body, np.ones((k, k, 1), np.uint8))  # nearest upscaling
        img = Image.new("RGB", (body.shape[1], body.shape[0] + band), (255, 255, 255))
        img.paste(Image.fromarray(body), (0, band))
        ImageDraw.Draw(img).text((2, 1), f"{label}  real | decoded | imagined", fill=(0, 0, 0))
        frames.append(np.asarray(img))
    gif = out / "imagined.gif"
    with atomic_path(gif) as tmp:
        iio.imwrite(tmp, np.stack(frames), extension=".gif", duration=400, loop=0)
    return {"imagined_png": png, "imagined_gif": gif}


__all__ = [
    "DecoderConfig",
    "DecoderError",
    "DecoderTrainConfig",
    "LatentDecoder",
    "check_data",
    "check_decoder_data",
    "check_decoder_for",
    "check_decoder_out",
    "decoder_episodes",
    "default_decoder_dir",
    "fit_decoder",
    "imagine",
    "load_decoder",
    "model_fingerprint",
    "sample_rows",
    "save_decoder",
    "train_decoder",
    "write_imagined",
]
