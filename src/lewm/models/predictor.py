"""Action-conditioned causal transformer predictor (AdaLN-zero), the BN-MLP projector and the
action-block encoder.

One attention implementation serves training and planning. A block runs on T *new* tokens that
may follow P cached ones (their keys/values), so :meth:`Predictor.forward` (a whole causal window,
training) and :meth:`Predictor.rollout` (autoregressive planning with caches) share every line of
the block. The rollout computes exactly what re-running the window at every step computes
(``LeWM.rollout_reference``) with less work:

1. **AdaLN modulation.** Token j is always conditioned on action block j, whatever its place in
   the window, so each block's modulation of a token is computed once, not once per window.
2. **Keys/values while the window grows.** Until the sequence is longer than ``history`` the
   window starts at token 0, every token keeps its learned position, and (causal attention) its
   keys/values in every layer are those of the previous step: only the new token is run. Once the
   window slides, positions shift and cached keys/values would be wrong, so the whole window is
   recomputed (a naive cache is *not* exact; ``tests/models/test_fast_rollout.py``).
3. **Context shared by all candidates.** Tokens before the last context frame hold observed
   latents conditioned on executed actions: they are identical for the S candidates of an
   episode, so they run once per episode (B rows, not B*S) and their keys/values are broadcast.

In the last layer only the last token's output is needed (it is the prediction), so queries,
attention output and MLP run for that token alone. Plain PyTorch, differentiable (the gradient
solver plans through it).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from lewm.utils.config import check

KV = tuple[Tensor, Tensor]  # keys, values of cached tokens: (N, heads, P, head_dim) each


@dataclass
class PredictorConfig:
    history: int = 3  # N: latents of context the predictor attends to (window size)
    depth: int = 6
    heads: int = 16
    head_dim: int = 64
    mlp_dim: int = 2048
    dropout: float = 0.1

    def __post_init__(self) -> None:
        check(self.history >= 1, f"model.predictor.history must be >= 1, got {self.history}")
        check(self.depth >= 1, f"model.predictor.depth must be >= 1, got {self.depth}")
        check(self.heads >= 1, f"model.predictor.heads must be >= 1, got {self.heads}")
        check(self.head_dim >= 1, f"model.predictor.head_dim must be >= 1, got {self.head_dim}")
        check(self.mlp_dim >= 1, f"model.predictor.mlp_dim must be >= 1, got {self.mlp_dim}")
        check(
            0.0 <= self.dropout < 1.0,
            f"model.predictor.dropout must be in [0, 1), got {self.dropout}",
        )


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

    def __init__(self, block_dim: int, smooth_dim: int, hidden: int, latent_dim: int) -> None:
        super().__init__()
        self.smooth = nn.Linear(block_dim, smooth_dim)  # = Conv1d k=1
        self.mlp = nn.Sequential(
            nn.Linear(smooth_dim, hidden), nn.SiLU(), nn.Linear(hidden, latent_dim)
        )

    def forward(self, blocks: Tensor) -> Tensor:
        return self.mlp(self.smooth(blocks))  # (..., Ab) -> (..., D)


def _modulate(x: Tensor, shift: Tensor, scale: Tensor) -> Tensor:
    return x * (1 + scale) + shift


class Attention(nn.Module):
    """Pre-norm causal self-attention over T new tokens that follow P cached ones."""

    def __init__(self, dim: int, cfg: PredictorConfig) -> None:
        super().__init__()
        self.heads, self.head_dim = cfg.heads, cfg.head_dim
        inner = cfg.heads * cfg.head_dim
        self.norm = nn.LayerNorm(dim)
        self.to_qkv = nn.Linear(dim, 3 * inner, bias=False)
        self.to_out = nn.Linear(inner, dim)
        self.dropout = cfg.dropout

    def forward(
        self,
        x: Tensor,
        past: KV | None = None,
        *,
        last_only: bool = False,
        keep_kv: bool = False,
    ) -> tuple[Tensor, KV | None]:
        """x (N, T, D): new token i sees the P cached tokens and new tokens <= i.

        Returns outputs (N, T, D) (or (N, 1, D) for the last token only) and, with ``keep_kv``,
        the keys/values of all P + T tokens (None otherwise: nobody will read them).
        """
        N, T, _ = x.shape
        drop = self.dropout if self.training else 0.0
        heads, hd = self.heads, self.head_dim
        inner = heads * hd
        h = self.norm(x)  # (N, T, D)
        w = self.to_qkv.weight  # (3*inner, D)
        k = v = None
        if past is None and T == 1 and drop == 0.0:
            # a lone token attends only to itself: softmax over one key is 1, so its output is
            # its value (exact); skip the query/key work and the attention kernel
            if keep_kv:
                kv = F.linear(h, w[inner:]).view(N, 1, 2, heads, hd)
                k, v = kv.permute(2, 0, 3, 1, 4)  # (N, heads, 1, hd) each
                out = v.transpose(1, 2).reshape(N, 1, inner)  # (N, 1, inner)
            else:
                out = F.linear(h, w[2 * inner :])  # (N, 1, inner): the value is all we need
        else:
            # one fused projection: for small models one matmul beats skipping unused queries
            qkv = F.linear(h, w).view(N, T, 3, heads, hd)
            q, k, v = qkv.permute(2, 0, 3, 1, 4)  # (N, heads, T, hd) each
            if past is not None:
                k = torch.cat([past[0], k], dim=2)  # (N, heads, P+T, hd)
                v = torch.cat([past[1], v], dim=2)
            P = k.shape[2] - T
            if last_only:
                q = q[:, :, -1:]  # (N, heads, 1, hd)
            Tq = q.shape[2]
            if Tq == 1:  # the last token sees every key
                out = F.scaled_dot_product_attention(q, k, v, dropout_p=drop)
            elif P == 0:
                out = F.scaled_dot_product_attention(q, k, v, dropout_p=drop, is_causal=True)
            else:  # new token i (absolute P+i) sees keys 0..P+i
                mask = torch.ones(T, P + T, dtype=torch.bool, device=x.device).tril(diagonal=P)
                out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=drop)
            out = out.transpose(1, 2).reshape(N, Tq, inner)  # (N, Tq, inner)
        out = self.to_out(out)  # (N, Tq, D)
        if drop > 0.0:
            out = F.dropout(out, drop, self.training)
        return out, ((k, v) if keep_kv else None)


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
        self.attn = Attention(dim, cfg)
        self.norm2 = nn.LayerNorm(dim, elementwise_affine=False, eps=1e-6)
        self.mlp = _MLP(dim, cfg)
        self.adaLN_modulation = nn.Sequential(nn.SiLU(), nn.Linear(dim, 6 * dim))
        nn.init.zeros_(self.adaLN_modulation[1].weight)
        nn.init.zeros_(self.adaLN_modulation[1].bias)

    def modulation(self, c: Tensor) -> Tensor:
        """Action embeddings (N, T, D) -> this block's modulation (N, T, 6D)."""
        return self.adaLN_modulation(c)

    def forward(
        self,
        x: Tensor,
        mod: Tensor,
        past: KV | None = None,
        *,
        last_only: bool = False,
        keep_kv: bool = False,
    ) -> tuple[Tensor, KV | None]:
        """x (N, T, D) new tokens after the P cached ones in ``past``; mod (N, T, 6D) their
        modulation. Returns (N, T, D) outputs (or (N, 1, D) with ``last_only``) and, with
        ``keep_kv``, the keys/values of all P + T tokens."""
        shift1, scale1, gate1, shift2, scale2, gate2 = mod.chunk(6, dim=-1)
        out, kv = self.attn(
            _modulate(self.norm1(x), shift1, scale1), past, last_only=last_only, keep_kv=keep_kv
        )
        if last_only:
            x, gate1, shift2, scale2, gate2 = (t[:, -1:] for t in (x, gate1, shift2, scale2, gate2))
        x = x + gate1 * out
        x = x + gate2 * self.mlp(_modulate(self.norm2(x), shift2, scale2))
        return x, kv


class Predictor(nn.Module):
    """Causal transformer over a window of at most ``history`` latents with learned positions."""

    def __init__(self, dim: int, cfg: PredictorConfig) -> None:
        super().__init__()
        self.history = cfg.history
        self.pos_embedding = nn.Parameter(torch.randn(1, cfg.history, dim) * 0.02)
        self.blocks = nn.ModuleList(ConditionalBlock(dim, cfg) for _ in range(cfg.depth))
        self.norm = nn.LayerNorm(dim)

    def forward(self, z: Tensor, c: Tensor) -> Tensor:
        """z, c (N, T, D) with T <= history; token t attends to tokens <= t. Returns (N, T, D)."""
        T = z.shape[1]
        if T > self.history:
            raise ValueError(f"predictor window holds at most {self.history} frames, got {T}")
        x = z + self.pos_embedding[:, :T]
        for block in self.blocks:
            x, _ = block(x, block.modulation(c))
        return self.norm(x)  # (N, T, D)

    def _run(
        self,
        x: Tensor,
        mods: list[Tensor],
        past: list[KV] | None,
        last_only: bool,
        keep_kv: bool,
    ) -> tuple[Tensor, list[KV | None]]:
        """All blocks on new tokens x (N, T, D); only the last block may be ``last_only``."""
        kvs = []
        last = len(self.blocks) - 1
        for i, block in enumerate(self.blocks):
            x, kv = block(
                x,
                mods[i],
                past[i] if past else None,
                last_only=last_only and i == last,
                keep_kv=keep_kv,
            )
            kvs.append(kv)
        return x, kvs

    def rollout(
        self,
        z_context: Tensor,
        hist_emb: Tensor | None,
        plan_emb: Tensor,
        samples: int,
        head: Callable[[Tensor], Tensor],
        chunk: int | None = None,
    ) -> Tensor:
        """Autoregressive prediction of H latents per candidate plan (see the module docstring).

        z_context (B, C, D) with C <= history; hist_emb (B, C-1, D) embeddings of the executed
        blocks between context frames (None if C == 1); plan_emb (B*S, H, D) embeddings of the
        S candidate plans of each episode, episode-major; ``head`` maps the normalised last
        token (R, D) to the predicted latent (R, D). Rows are processed ``chunk`` at a time.
        Returns (B, S, H, D).
        """
        B, C, D = z_context.shape
        H, S, hist, pos = plan_emb.shape[1], samples, self.history, self.pos_embedding
        # 1. modulation of every token, once: shared history tokens on B rows, plan tokens per row
        hist_mods = [b.modulation(hist_emb) for b in self.blocks] if C > 1 else None
        plan_mods = [b.modulation(plan_emb) for b in self.blocks]  # each (B*S, H, 6D)

        # 3. shared prefix of a window starting at token lo: context tokens lo..C-2, on B rows
        prefix_cache: dict[int, list[KV]] = {}

        def shared_prefix(lo: int) -> list[KV]:
            if lo not in prefix_cache:
                x = z_context[:, lo : C - 1] + pos[:, : C - 1 - lo]
                mods = [m[:, lo:] for m in hist_mods]
                prefix_cache[lo] = self._run(x, mods, None, False, True)[1]
            return prefix_cache[lo]

        rows = B * S
        step = chunk or rows
        out = []
        for r0 in range(0, rows, step):
            r1 = min(rows, r0 + step)
            episode = torch.arange(r0, r1, device=z_context.device) // S  # (R,) row -> episode
            p_mods = [m[r0:r1] for m in plan_mods]
            seq = [z_context[episode, C - 1]]  # per-row latents of tokens C-1, C, ... each (R, D)
            cache: list[KV] | None = None  # per-row keys/values of tokens 0..n-1 (growing phase)
            preds = []
            for k in range(H):
                n = C + k  # tokens so far: C context + k predictions
                lo = max(0, n - hist)
                p = max(0, C - 1 - lo)  # shared tokens at the window's start
                if lo == 0 and cache is not None:  # 2. growing window: only the newest is new
                    first, past = n - 1, cache
                else:
                    first = lo + p
                    past = None
                    if p:
                        past = [(kk[episode], vv[episode]) for kk, vv in shared_prefix(lo)]
                # per-row tokens first..n-1 hold seq[j - (C-1)]
                x = torch.stack(seq[first - (C - 1) : n - (C - 1)], dim=1)  # (R, T, D)
                x = x + pos[:, first - lo : n - lo]
                mods = [m[:, first - (C - 1) : n - (C - 1)] for m in p_mods]
                keep = n + 1 <= hist  # the next window still starts at token 0: it reuses these
                h, kvs = self._run(x, mods, past, last_only=True, keep_kv=keep)
                cache = kvs if keep else None
                nxt = head(self.norm(h[:, -1]))  # (R, D)
                preds.append(nxt)
                seq.append(nxt)
            out.append(torch.stack(preds, dim=1))  # (R, H, D)
        return torch.cat(out).reshape(B, S, H, D)


__all__ = [
    "ActionEncoder",
    "Attention",
    "ConditionalBlock",
    "KV",
    "Predictor",
    "PredictorConfig",
    "Projector",
]
