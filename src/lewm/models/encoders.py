"""Image encoders: a compact pre-norm ViT (parameter names match Hugging Face ``ViTModel``) and a
small strided CNN for fast CPU work. Both map (N, 3, s, s) float images to (N, width) features.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from lewm.utils.config import check

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
CNN_NORMS = ("batch", "group", "layer", "none")


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
    # CNN only: channels of the stride-2 conv stages, and the normalisation after each conv:
    # "batch" (BatchNorm2d), "group" (GroupNorm, 8 groups), "layer" (GroupNorm with one group:
    # LayerNorm over channels and positions) or "none"
    channels: tuple[int, ...] = (32, 64, 128, 256)
    norm: str = "batch"
    # input normalisation (applied after scaling pixels to [0, 1])
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD

    def __post_init__(self) -> None:
        self.channels = tuple(self.channels)
        self.mean = tuple(self.mean)
        self.std = tuple(self.std)
        check(
            self.kind in ("vit", "cnn"),
            f"model.encoder.kind must be 'vit' or 'cnn', got {self.kind!r}",
        )
        check(self.image_size >= 8, f"model.encoder.image_size must be >= 8, got {self.image_size}")
        check(self.width >= 1, f"model.encoder.width must be positive, got {self.width}")
        if self.kind == "vit":
            check(
                self.patch_size >= 1 and self.image_size % self.patch_size == 0,
                f"model.encoder.image_size ({self.image_size}) must be a multiple of "
                f"model.encoder.patch_size ({self.patch_size})",
            )
            check(
                self.heads >= 1 and self.width % self.heads == 0,
                f"model.encoder.width ({self.width}) must be divisible by model.encoder.heads "
                f"({self.heads})",
            )
            check(self.depth >= 1, f"model.encoder.depth must be >= 1, got {self.depth}")
            check(self.mlp_dim >= 1, f"model.encoder.mlp_dim must be >= 1, got {self.mlp_dim}")
        else:
            check(
                self.norm in CNN_NORMS,
                f"model.encoder.norm must be one of {', '.join(CNN_NORMS)}, got {self.norm!r}",
            )
            check(
                self.norm != "group" or all(c % 8 == 0 for c in self.channels),
                f"model.encoder.norm=group needs channels divisible by 8, got {self.channels}",
            )
            check(
                len(self.channels) >= 1 and all(c >= 1 for c in self.channels),
                f"model.encoder.channels must list at least one positive stage, got "
                f"{self.channels}",
            )
            check(
                self.image_size >> len(self.channels) >= 1,
                f"model.encoder.image_size {self.image_size} too small for "
                f"{len(self.channels)} stride-2 stages",
            )
        check(len(self.mean) == 3, f"model.encoder.mean needs 3 values, got {self.mean}")
        check(len(self.std) == 3, f"model.encoder.std needs 3 values, got {self.std}")
        check(all(s > 0 for s in self.std), f"model.encoder.std must be positive, got {self.std}")


# Module names below mirror transformers' ViTModel (4.x) so that its state_dict keys map 1:1:
# embeddings.{cls_token, position_embeddings, patch_embeddings.projection},
# encoder.layer.{i}.{attention.attention.{query,key,value}, attention.output.dense,
# intermediate.dense, output.dense, layernorm_before, layernorm_after}, layernorm.

_LN_EPS = 1e-12  # HF ViT default


class _PatchEmbeddings(nn.Module):
    def __init__(self, cfg: EncoderConfig) -> None:
        super().__init__()
        self.projection = nn.Conv2d(3, cfg.width, cfg.patch_size, stride=cfg.patch_size)

    def forward(self, x: Tensor) -> Tensor:
        return self.projection(x).flatten(2).transpose(1, 2)  # (N, P, W)


class _Embeddings(nn.Module):
    def __init__(self, cfg: EncoderConfig) -> None:
        super().__init__()
        self.grid = cfg.image_size // cfg.patch_size
        self.patch_size = cfg.patch_size
        self.cls_token = nn.Parameter(torch.zeros(1, 1, cfg.width))
        self.position_embeddings = nn.Parameter(torch.zeros(1, self.grid**2 + 1, cfg.width))
        self.patch_embeddings = _PatchEmbeddings(cfg)

    def _positions(self, h: int, w: int) -> Tensor:
        """Positional embeddings for an (h, w) patch grid, bicubically interpolated if needed."""
        if h == self.grid and w == self.grid:
            return self.position_embeddings
        cls_pos, patch_pos = self.position_embeddings[:, :1], self.position_embeddings[:, 1:]
        W = patch_pos.shape[-1]
        grid = patch_pos.reshape(1, self.grid, self.grid, W).permute(0, 3, 1, 2)  # (1, W, g, g)
        grid = F.interpolate(grid, size=(h, w), mode="bicubic", align_corners=False)
        patch_pos = grid.permute(0, 2, 3, 1).reshape(1, h * w, W)  # (1, h*w, W)
        return torch.cat([cls_pos, patch_pos], dim=1)

    def forward(self, x: Tensor) -> Tensor:
        N, _, H, W_img = x.shape
        if H % self.patch_size or W_img % self.patch_size:
            raise ValueError(
                f"image size {H}x{W_img} is not a multiple of the patch size {self.patch_size}"
            )
        tokens = self.patch_embeddings(x)  # (N, P, W)
        cls = self.cls_token.expand(N, -1, -1)  # (N, 1, W)
        tokens = torch.cat([cls, tokens], dim=1)  # (N, 1+P, W)
        return tokens + self._positions(H // self.patch_size, W_img // self.patch_size)


class _SelfAttention(nn.Module):
    def __init__(self, width: int, heads: int, bias: bool = True) -> None:
        super().__init__()
        self.heads = heads
        self.query = nn.Linear(width, width, bias=bias)
        self.key = nn.Linear(width, width, bias=bias)
        self.value = nn.Linear(width, width, bias=bias)

    def forward(self, x: Tensor) -> Tensor:
        N, L, W = x.shape
        # (N, L, W) -> (N, heads, L, W/heads)
        q, k, v = (
            proj(x).view(N, L, self.heads, W // self.heads).transpose(1, 2)
            for proj in (self.query, self.key, self.value)
        )
        out = F.scaled_dot_product_attention(q, k, v)  # (N, heads, L, W/heads)
        return out.transpose(1, 2).reshape(N, L, W)


class _Dense(nn.Module):
    def __init__(self, d_in: int, d_out: int) -> None:
        super().__init__()
        self.dense = nn.Linear(d_in, d_out)

    def forward(self, x: Tensor) -> Tensor:
        return self.dense(x)


class _Attention(nn.Module):
    def __init__(self, width: int, heads: int, bias: bool = True) -> None:
        super().__init__()
        self.attention = _SelfAttention(width, heads, bias)
        self.output = _Dense(width, width)

    def forward(self, x: Tensor) -> Tensor:
        return self.output(self.attention(x))


class _Layer(nn.Module):
    """Pre-norm transformer block: x + Attn(LN(x)); x + MLP(LN(x))."""

    def __init__(self, cfg: EncoderConfig) -> None:
        super().__init__()
        self.layernorm_before = nn.LayerNorm(cfg.width, eps=_LN_EPS)
        self.attention = _Attention(cfg.width, cfg.heads)
        self.layernorm_after = nn.LayerNorm(cfg.width, eps=_LN_EPS)
        self.intermediate = _Dense(cfg.width, cfg.mlp_dim)
        self.output = _Dense(cfg.mlp_dim, cfg.width)

    def forward(self, x: Tensor) -> Tensor:
        x = x + self.attention(self.layernorm_before(x))
        return x + self.output(F.gelu(self.intermediate(self.layernorm_after(x))))


class _Stack(nn.Module):
    def __init__(self, cfg: EncoderConfig) -> None:
        super().__init__()
        self.layer = nn.ModuleList(_Layer(cfg) for _ in range(cfg.depth))

    def forward(self, x: Tensor) -> Tensor:
        for layer in self.layer:
            x = layer(x)
        return x


class ViTEncoder(nn.Module):
    """ViT returning the final-LayerNorm CLS token (HF ``last_hidden_state[:, 0]``)."""

    def __init__(self, cfg: EncoderConfig) -> None:
        super().__init__()
        self.embeddings = _Embeddings(cfg)
        self.encoder = _Stack(cfg)
        self.layernorm = nn.LayerNorm(cfg.width, eps=_LN_EPS)
        self.out_dim = cfg.width
        self.apply(_init_vit)
        nn.init.trunc_normal_(self.embeddings.cls_token, std=0.02)
        nn.init.trunc_normal_(self.embeddings.position_embeddings, std=0.02)

    def forward(self, x: Tensor) -> Tensor:
        tokens = self.encoder(self.embeddings(x))  # (N, 1+P, W)
        return self.layernorm(tokens[:, 0])  # (N, W)


def _init_vit(m: nn.Module) -> None:
    if isinstance(m, nn.Linear | nn.Conv2d):
        nn.init.trunc_normal_(m.weight, std=0.02)
        if m.bias is not None:
            nn.init.zeros_(m.bias)


def _cnn_norm(kind: str, channels: int) -> nn.Module:
    if kind == "batch":
        return nn.BatchNorm2d(channels)
    if kind == "group":
        return nn.GroupNorm(8, channels)
    if kind == "layer":
        return nn.GroupNorm(1, channels)
    return nn.Identity()


class CNNEncoder(nn.Module):
    """Stride-2 conv stages (k4, a normalisation: BatchNorm by default, GELU), then a linear map
    of the flattened grid.

    The final map is kept spatial (not average-pooled) so positions stay linearly readable.
    """

    def __init__(self, cfg: EncoderConfig) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        c_in = 3
        for c in cfg.channels:
            conv = nn.Conv2d(c_in, c, 4, stride=2, padding=1)
            layers += [conv, _cnn_norm(cfg.norm, c), nn.GELU()]
            c_in = c
        self.convs = nn.Sequential(*layers)
        self.grid = min(4, cfg.image_size >> len(cfg.channels))
        self.pool = nn.AdaptiveAvgPool2d(self.grid)
        self.fc = nn.Linear(c_in * self.grid**2, cfg.width)
        self.out_dim = cfg.width

    def forward(self, x: Tensor) -> Tensor:
        f = self.pool(self.convs(x))  # (N, C, g, g)
        return self.fc(f.flatten(1))  # (N, W)


def build_encoder(cfg: EncoderConfig) -> nn.Module:
    return ViTEncoder(cfg) if cfg.kind == "vit" else CNNEncoder(cfg)


def num_patches(cfg: EncoderConfig) -> int:
    return (cfg.image_size // cfg.patch_size) ** 2 if cfg.kind == "vit" else 0


__all__ = [
    "CNNEncoder",
    "EncoderConfig",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "ViTEncoder",
    "build_encoder",
    "num_patches",
]
