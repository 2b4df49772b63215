"""Pretrained image encoders read from a local Hugging Face-style folder, without ``transformers``.

A folder as ``save_pretrained`` writes it (or as a model repository is downloaded):
``config.json`` (``model_type`` ``"dinov2"`` or ``"vit"``) and ``model.safetensors``; an optional
``preprocessor_config.json`` gives the input normalisation (``image_mean``/``image_std``).
:func:`load_hf_vit` builds the network from the config, in lewm's own code, and loads the
weights under the names Hugging Face uses (a ``dinov2.``/``vit.`` prefix, as in a classification
checkpoint, is accepted; a classifier head or a ViT pooler is left out). DINOv2 weights cannot be
downloaded on a machine without the hub; copy the folder of e.g. ``facebook/dinov2-small`` there.

Architectures (pre-norm transformer, the [CLS] token first, a final LayerNorm):

- ``dinov2``: ``x + ls1 * attn(norm1(x))``, ``x + ls2 * mlp(norm2(x))`` (LayerScale), position
  embeddings interpolated bicubically to the input's patch grid;
- ``vit``: ``x + attn(layernorm_before(x))``, ``x + mlp(layernorm_after(x))``; the input must be
  the config's ``image_size`` unless ``interpolate`` is set.

``tests/models/test_pretrained.py`` checks the outputs against ones ``transformers`` computed for
small saved models (``tests/fixtures/hf_vit/``, written by ``tests/fixtures/make_hf_vit.py``).
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from lewm.models.checkpoint import CheckpointError
from lewm.models.encoders import EncoderConfig, _Attention, _Dense, _Embeddings

MODEL_TYPES = ("dinov2", "vit")
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
_ACTIVATIONS = {
    "gelu": lambda x: F.gelu(x),
    "gelu_new": lambda x: F.gelu(x, approximate="tanh"),
    "gelu_pytorch_tanh": lambda x: F.gelu(x, approximate="tanh"),
    "relu": F.relu,
}
_PREFIXES = ("dinov2.", "vit.", "model.", "backbone.")
_IGNORED = ("pooler.", "classifier.", "embeddings.mask_token")


@dataclass(frozen=True)
class HFViTConfig:
    """The architecture of a Hugging Face ViT or DINOv2 encoder (the fields lewm reads)."""

    model_type: str
    hidden_size: int
    num_hidden_layers: int
    num_attention_heads: int
    intermediate_size: int
    patch_size: int
    image_size: int
    layer_norm_eps: float
    hidden_act: str = "gelu"
    qkv_bias: bool = True
    num_channels: int = 3
    image_mean: tuple[float, float, float] = IMAGENET_MEAN
    image_std: tuple[float, float, float] = IMAGENET_STD

    @classmethod
    def from_dict(cls, d: dict[str, Any], where: str = "config.json") -> HFViTConfig:
        """From a ``config.json`` dict (plus ``image_mean``/``image_std`` if given); one
        :class:`CheckpointError` naming the field for anything lewm cannot build."""

        def need(key: str, kind: type, default: Any = None) -> Any:
            value = d.get(key, default)
            if value is None or isinstance(value, bool) and kind is not bool:
                raise CheckpointError(f"{where}: '{key}' is missing; it must be a {kind.__name__}")
            if kind is int and not (isinstance(value, int) and value >= 1):
                raise CheckpointError(f"{where}: '{key}' must be a positive integer, got {value!r}")
            if kind is float and not (isinstance(value, int | float) and math.isfinite(value)):
                raise CheckpointError(f"{where}: '{key}' must be a number, got {value!r}")
            return value

        mt = d.get("model_type")
        if mt not in MODEL_TYPES:
            raise CheckpointError(
                f"{where}: model_type {mt!r} is not supported; lewm reads {MODEL_TYPES} "
                "(e.g. facebook/dinov2-small, google/vit-base-patch16-224)"
            )
        if d.get("use_swiglu_ffn"):
            raise CheckpointError(f"{where}: use_swiglu_ffn (DINOv2 giant) is not supported")
        if d.get("num_register_tokens"):
            raise CheckpointError(
                f"{where}: register tokens (DINOv2 with registers) are not supported"
            )
        hidden = need("hidden_size", int)
        if mt == "dinov2":
            inter = int(hidden * float(need("mlp_ratio", float, 4)))  # as transformers does
        else:
            inter = need("intermediate_size", int)
        heads = need("num_attention_heads", int)
        if hidden % heads:
            raise CheckpointError(
                f"{where}: hidden_size {hidden} is not divisible by num_attention_heads {heads}"
            )
        act = d.get("hidden_act", "gelu")
        if act not in _ACTIVATIONS:
            raise CheckpointError(
                f"{where}: hidden_act {act!r} is not supported; one of {sorted(_ACTIVATIONS)}"
            )
        if d.get("num_channels", 3) != 3:
            raise CheckpointError(f"{where}: num_channels must be 3 (RGB), got {d['num_channels']}")
        mean, std = (
            tuple(d.get("image_mean", IMAGENET_MEAN)),
            tuple(d.get("image_std", IMAGENET_STD)),
        )
        if len(mean) != 3 or len(std) != 3 or not all(s > 0 for s in std):
            raise CheckpointError(f"{where}: image_mean/image_std must be 3 numbers (std > 0)")
        return cls(
            model_type=mt,
            hidden_size=hidden,
            num_hidden_layers=need("num_hidden_layers", int),
            num_attention_heads=heads,
            intermediate_size=inter,
            patch_size=need("patch_size", int),
            image_size=need("image_size", int),
            layer_norm_eps=float(need("layer_norm_eps", float, 1e-6 if mt == "dinov2" else 1e-12)),
            hidden_act=act,
            qkv_bias=bool(d.get("qkv_bias", True)),
            image_mean=tuple(float(x) for x in mean),
            image_std=tuple(float(x) for x in std),
        )

    def to_dict(self) -> dict[str, Any]:
        d = dict(self.__dict__)
        d["image_mean"], d["image_std"] = list(self.image_mean), list(self.image_std)
        return d

    @property
    def grid(self) -> int:
        return self.image_size // self.patch_size


class _LayerScale(nn.Module):
    def __init__(self, width: int) -> None:
        super().__init__()
        self.lambda1 = nn.Parameter(torch.ones(width))

    def forward(self, x: Tensor) -> Tensor:
        return x * self.lambda1


class _MLP(nn.Module):
    def __init__(self, cfg: HFViTConfig) -> None:
        super().__init__()
        self.fc1 = nn.Linear(cfg.hidden_size, cfg.intermediate_size)
        self.fc2 = nn.Linear(cfg.intermediate_size, cfg.hidden_size)
        self.act = _ACTIVATIONS[cfg.hidden_act]

    def forward(self, x: Tensor) -> Tensor:
        return self.fc2(self.act(self.fc1(x)))


class _DinoLayer(nn.Module):
    def __init__(self, cfg: HFViTConfig) -> None:
        super().__init__()
        W, eps = cfg.hidden_size, cfg.layer_norm_eps
        self.norm1 = nn.LayerNorm(W, eps=eps)
        self.attention = _Attention(W, cfg.num_attention_heads, cfg.qkv_bias)
        self.layer_scale1 = _LayerScale(W)
        self.norm2 = nn.LayerNorm(W, eps=eps)
        self.mlp = _MLP(cfg)
        self.layer_scale2 = _LayerScale(W)

    def forward(self, x: Tensor) -> Tensor:
        x = x + self.layer_scale1(self.attention(self.norm1(x)))
        return x + self.layer_scale2(self.mlp(self.norm2(x)))


class _ViTLayer(nn.Module):
    def __init__(self, cfg: HFViTConfig) -> None:
        super().__init__()
        W, eps = cfg.hidden_size, cfg.layer_norm_eps
        self.layernorm_before = nn.LayerNorm(W, eps=eps)
        self.attention = _Attention(W, cfg.num_attention_heads, cfg.qkv_bias)
        self.layernorm_after = nn.LayerNorm(W, eps=eps)
        self.intermediate = _Dense(W, cfg.intermediate_size)
        self.output = _Dense(cfg.intermediate_size, W)
        self.act = _ACTIVATIONS[cfg.hidden_act]

    def forward(self, x: Tensor) -> Tensor:
        x = x + self.attention(self.layernorm_before(x))
        return x + self.output(self.act(self.intermediate(self.layernorm_after(x))))


class _Encoder(nn.Module):
    def __init__(self, cfg: HFViTConfig) -> None:
        super().__init__()
        layer = _DinoLayer if cfg.model_type == "dinov2" else _ViTLayer
        self.layer = nn.ModuleList(layer(cfg) for _ in range(cfg.num_hidden_layers))

    def forward(self, x: Tensor) -> Tensor:
        for layer in self.layer:
            x = layer(x)
        return x


class HFViT(nn.Module):
    """A Hugging Face ViT / DINOv2 encoder in lewm's code: normalised images (N, 3, H, W) ->
    tokens (N, 1 + P, W) after the final LayerNorm (HF ``last_hidden_state``): [CLS] first,
    then the P patches row by row."""

    def __init__(self, cfg: HFViTConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.embeddings = _Embeddings(  # lewm's ViT embeddings: the same names and positions
            EncoderConfig(
                kind="vit",
                image_size=cfg.image_size,
                width=cfg.hidden_size,
                patch_size=cfg.patch_size,
                heads=cfg.num_attention_heads,
            )
        )
        self.encoder = _Encoder(cfg)
        self.layernorm = nn.LayerNorm(cfg.hidden_size, eps=cfg.layer_norm_eps)
        self.out_dim = cfg.hidden_size
        # DINOv2 interpolates position embeddings to any input; HF's ViT only when asked
        self.interpolate = cfg.model_type == "dinov2"

    def forward(self, x: Tensor) -> Tensor:
        if x.ndim != 4 or x.shape[1] != 3:
            raise ValueError(f"images must be (N, 3, H, W), got {tuple(x.shape)}")
        p, g = self.cfg.patch_size, self.cfg.grid
        if x.shape[-2] < p or x.shape[-1] < p:
            raise ValueError(f"images of {tuple(x.shape[-2:])} are smaller than one {p}-px patch")
        grid = (x.shape[-2] // p, x.shape[-1] // p)
        if grid != (g, g) and not self.interpolate:
            s = self.cfg.image_size
            raise ValueError(
                f"this {self.cfg.model_type} encoder takes {s}x{s} images ({g}x{g} patches), got "
                f"a {grid[0]}x{grid[1]} patch grid; resize the input (image_size) or allow "
                "interpolation"
            )
        return self.layernorm(self.encoder(self.embeddings(x)))


def read_hf_config(folder: str | os.PathLike) -> HFViTConfig:
    """The architecture and input normalisation of the HF folder ``folder``."""
    folder = Path(folder)
    if not folder.is_dir():
        raise CheckpointError(
            f"pretrained encoder folder {folder} does not exist (or is not a folder): give a "
            "local copy of a Hugging Face model (config.json + model.safetensors)"
        )
    cfg_file = folder / "config.json"
    try:
        d = json.loads(cfg_file.read_text())
    except FileNotFoundError:
        raise CheckpointError(
            f"{folder} has no config.json: not a Hugging Face model folder"
        ) from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise CheckpointError(f"{cfg_file} is not readable JSON ({e})") from None
    if not isinstance(d, dict):
        raise CheckpointError(f"{cfg_file} must hold a JSON object")
    pre = folder / "preprocessor_config.json"
    if pre.exists():
        try:
            p = json.loads(pre.read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
            raise CheckpointError(f"{pre} is not readable JSON ({e})") from None
        for key in ("image_mean", "image_std"):
            if isinstance(p, dict) and key in p:
                d = {**d, key: p[key]}
    return HFViTConfig.from_dict(d, str(cfg_file))


def hf_state_dict(folder: str | os.PathLike, model: HFViT) -> dict[str, Tensor]:
    """The weights of ``folder/model.safetensors`` under ``model``'s names, checked: every
    tensor present with its shape, finite. One :class:`CheckpointError` otherwise."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    folder = Path(folder)
    file = folder / "model.safetensors"
    if not file.exists():
        other = [p.name for p in folder.glob("*.bin")] + [p.name for p in folder.glob("*.pth")]
        hint = (
            f" ({', '.join(other)} is a pickle, which lewm does not load: convert it once with "
            "transformers' save_pretrained(..., safe_serialization=True))"
            if other
            else ""
        )
        raise CheckpointError(f"{folder} has no model.safetensors{hint}")
    try:
        raw = load_file(str(file))
    except (SafetensorError, OSError, ValueError) as e:
        raise CheckpointError(f"{file} is not a readable safetensors file ({e})") from None
    weights = {}
    for name, t in raw.items():
        for prefix in _PREFIXES:
            if name.startswith(prefix):
                name = name[len(prefix) :]
                break
        if not name.startswith(_IGNORED):
            weights[name] = t
    own = model.state_dict()
    missing = sorted(set(own) - set(weights))
    extra = sorted(set(weights) - set(own))
    if missing or extra:
        raise CheckpointError(
            f"{file} does not match its config.json ({model.cfg.model_type}): missing "
            f"{missing[:4]}{'...' if len(missing) > 4 else ''}, unexpected "
            f"{extra[:4]}{'...' if len(extra) > 4 else ''}"
        )
    for name, t in weights.items():
        if tuple(t.shape) != tuple(own[name].shape):
            raise CheckpointError(
                f"{file}: {name} has shape {tuple(t.shape)}, config.json implies "
                f"{tuple(own[name].shape)}"
            )
        if t.is_floating_point() and not torch.isfinite(t).all():
            raise CheckpointError(f"{file}: {name} holds NaN or inf")
    return {k: v.to(own[k].dtype) for k, v in weights.items()}


def load_hf_vit(folder: str | os.PathLike) -> HFViT:
    """A pretrained ViT / DINOv2 encoder from a local Hugging Face folder, in eval mode."""
    model = HFViT(read_hf_config(folder))
    model.load_state_dict(hf_state_dict(folder, model))
    return model.eval()


__all__ = ["HFViT", "HFViTConfig", "MODEL_TYPES", "hf_state_dict", "load_hf_vit", "read_hf_config"]
