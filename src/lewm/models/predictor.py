"""Action-conditioned causal transformer predictor (AdaLN-zero), the BN-MLP projector and the
action-block encoder."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from lewm.config import ModelConfig, PredictorConfig


class Projector(nn.Module):
    """Linear -> BatchNorm1d -> GELU -> Linear, applied to every token independently."""

    def __init__(self, d_in: int, hidden: int, d_out: int) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(d_in, hidden), nn.BatchNorm1d(hidden), nn.GELU(), nn.Linear(hidden, d_out)
        )

    def forward(self, x: Tensor) -> Tensor:
        lead = x.shape[:-1]
        return self.net(x.reshape(-1, x.shape[-1])).reshape(*lead, -1)  # (..., d_out)


class ActionEncoder(nn.Module):
    """Action block (frameskip * A raw actions, concatenated) -> embedding of dimension D."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.smooth = nn.Linear(cfg.action_block_dim, cfg.action_smooth_dim)  # = Conv1d k=1
        self.mlp = nn.Sequential(
            nn.Linear(cfg.action_smooth_dim, cfg.action_hidden),
            nn.SiLU(),
            nn.Linear(cfg.action_hidden, cfg.latent_dim),
        )

    def forward(self, blocks: Tensor) -> Tensor:
        return self.mlp(self.smooth(blocks))  # (..., Ab) -> (..., D)


def _modulate(x: Tensor, shift: Tensor, scale: Tensor) -> Tensor:
    return x * (1 + scale) + shift


class _Attention(nn.Module):
    def __init__(self, dim: int, cfg: PredictorConfig) -> None:
        super().__init__()
        self.heads, self.head_dim = cfg.heads, cfg.head_dim
        inner = cfg.heads * cfg.head_dim
        self.norm = nn.LayerNorm(dim)
        self.to_qkv = nn.Linear(dim, 3 * inner, bias=False)
        self.to_out = nn.Linear(inner, dim)
        self.dropout = cfg.dropout

    def forward(self, x: Tensor) -> Tensor:
        N, T, _ = x.shape
        drop = self.dropout if self.training else 0.0
        if T == 1 and drop == 0.0:
            # one token attends only to itself: softmax over one key is 1, so the output is its
            # value; skip the query/key projections and the attention kernel (exact)
            inner = self.heads * self.head_dim
            v = F.linear(self.norm(x), self.to_qkv.weight[2 * inner :])  # (N, 1, inner)
            return self.to_out(v)
        qkv = self.to_qkv(self.norm(x)).view(N, T, 3, self.heads, self.head_dim)
        q, k, v = qkv.permute(2, 0, 3, 1, 4)  # each (N, heads, T, head_dim)
        out = F.scaled_dot_product_attention(q, k, v, dropout_p=drop, is_causal=T > 1)
        out = out.transpose(1, 2).reshape(N, T, -1)  # (N, T, heads*head_dim)
        return F.dropout(self.to_out(out), drop, self.training)


class _MLP(nn.Module):
    def __init__(self, dim: int, cfg: PredictorConfig) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.LayerNorm(dim),
            nn.Linear(dim, cfg.mlp_dim),
            nn.GELU(),
            nn.Dropout(cfg.dropout),
            nn.Linear(cfg.mlp_dim, dim),
            nn.Dropout(cfg.dropout),
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)


class ConditionalBlock(nn.Module):
    """Transformer block whose LayerNorm shift/scale and residual gates come from the action
    embedding (AdaLN-zero: the modulation starts at zero, so every block starts as identity)."""

    def __init__(self, dim: int, cfg: PredictorConfig) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, elementwise_affine=False, eps=1e-6)
        self.attn = _Attention(dim, cfg)
        self.norm2 = nn.LayerNorm(dim, elementwise_affine=False, eps=1e-6)
        self.mlp = _MLP(dim, cfg)
        self.adaLN_modulation = nn.Sequential(nn.SiLU(), nn.Linear(dim, 6 * dim))
        nn.init.zeros_(self.adaLN_modulation[1].weight)
        nn.init.zeros_(self.adaLN_modulation[1].bias)

    def forward(self, x: Tensor, c: Tensor) -> Tensor:
        # x, c: (N, T, D)
        shift1, scale1, gate1, shift2, scale2, gate2 = self.adaLN_modulation(c).chunk(6, dim=-1)
        x = x + gate1 * self.attn(_modulate(self.norm1(x), shift1, scale1))
        return x + gate2 * self.mlp(_modulate(self.norm2(x), shift2, scale2))


class Predictor(nn.Module):
    """Causal transformer over a window of at most ``history`` latents with learned positions."""

    def __init__(self, dim: int, cfg: PredictorConfig) -> None:
        super().__init__()
        self.history = cfg.history
        self.pos_embedding = nn.Parameter(torch.randn(1, cfg.history, dim) * 0.02)
        self.blocks = nn.ModuleList(ConditionalBlock(dim, cfg) for _ in range(cfg.depth))
        self.norm = nn.LayerNorm(dim)

    def forward(self, z: Tensor, c: Tensor) -> Tensor:
        # z, c: (N, T, D) with T <= history; token t attends to tokens <= t
        T = z.shape[1]
        if T > self.history:
            raise ValueError(f"predictor window holds at most {self.history} frames, got {T}")
        x = z + self.pos_embedding[:, :T]
        for block in self.blocks:
            x = block(x, c)
        return self.norm(x)  # (N, T, D)
