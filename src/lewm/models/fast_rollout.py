"""Planning rollouts that compute exactly what the plain window loop computes, with less work.

The reference (:meth:`LeWM.rollout_reference`) re-runs the predictor on its whole window of up to
``history`` tokens at every step. Three things in that loop do not change and are done once here:

1. **AdaLN modulation.** Token j is always conditioned on action block j, whatever its place in
   the window, so each block's ``adaLN_modulation(a_j)`` is computed once per token, not once
   per window it appears in.
2. **Keys/values while the window grows.** Until the sequence is longer than ``history`` the
   window starts at token 0, every token keeps its learned position, and (causal attention)
   its keys/values in every layer are those of the previous step: only the new token is run.
   Once the window slides, positions shift and cached keys/values would be wrong, so the whole
   window is recomputed (a naive cache is *not* exact; ``tests/models/test_fast_rollout.py``).
3. **Context shared by all candidates.** Tokens before the last context frame hold observed
   latents conditioned on executed actions: they are identical for the S candidates of an
   episode, so they run once per episode (B rows, not B*S) and their keys/values are broadcast.

In the last layer only the last token's output is needed (it is the prediction), so queries,
attention output and MLP run for that token alone. Everything is plain fp32/bf16 PyTorch: no
custom kernels, differentiable (the gradient solver uses it too).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import Tensor

from lewm.models.predictor import ConditionalBlock, _modulate

if TYPE_CHECKING:
    from lewm.models.lewm import LeWM

KV = tuple[Tensor, Tensor]  # keys, values: (R, heads, P, head_dim) each


def block_forward(
    block: ConditionalBlock,
    x: Tensor,
    mod: Tensor,
    past: KV | None,
    last_only: bool,
    keep_kv: bool = True,
) -> tuple[Tensor, KV | None]:
    """One predictor block on T new tokens that follow P cached ones.

    x (R, T, D) block inputs of the new tokens; mod (R, T, 6D) their AdaLN modulation;
    past: keys/values (R, heads, P, hd) of the earlier tokens in this layer, or None.
    Returns the outputs (R, T, D), or (R, 1, D) for the last token only, and the keys/values of
    all P + T tokens (None for a lone token when ``keep_kv`` is False: nobody will read them).
    """
    attn = block.attn
    R, T, D = x.shape
    shift1, scale1, gate1, shift2, scale2, gate2 = mod.chunk(6, dim=-1)
    h = attn.norm(_modulate(block.norm1(x), shift1, scale1))  # (R, T, D)
    inner, heads, hd = attn.heads * attn.head_dim, attn.heads, attn.head_dim
    w = attn.to_qkv.weight  # (3*inner, D)
    if past is None and T == 1:
        # a lone token attends only to itself: its attention output is its value (exact), so
        # skip the query/key work and the attention kernel (the reference does the same)
        if keep_kv:
            kv = F.linear(h, w[inner:]).view(R, 1, 2, heads, hd)
            k, v = kv.permute(2, 0, 3, 1, 4)  # (R, heads, 1, hd) each
            out = v.transpose(1, 2).reshape(R, 1, inner)  # (R, 1, inner)
        else:
            out = F.linear(h, w[2 * inner :])  # (R, 1, inner): the value is all we need
            k = v = None
        Tq = 1
    else:
        # one fused projection: for small models one matmul beats skipping unused queries
        qkv = F.linear(h, w).view(R, T, 3, heads, hd)
        q, k, v = qkv.permute(2, 0, 3, 1, 4)  # (R, heads, T, hd) each
        if past is not None:
            k = torch.cat([past[0], k], dim=2)  # (R, heads, P+T, hd)
            v = torch.cat([past[1], v], dim=2)
        P = k.shape[2] - T
        if last_only:
            q = q[:, :, -1:]  # (R, heads, 1, hd)
        Tq = q.shape[2]
        if Tq == 1:  # the last token sees every key
            out = F.scaled_dot_product_attention(q, k, v)
        elif P == 0:
            out = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        else:  # new token i (absolute P+i) sees keys 0..P+i
            mask = torch.ones(T, P + T, dtype=torch.bool, device=x.device).tril(diagonal=P)
            out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        out = out.transpose(1, 2).reshape(R, Tq, inner)  # (R, Tq, inner)
    if last_only:
        x = x[:, -1:]
        gate1, shift2, scale2, gate2 = gate1[:, -1:], shift2[:, -1:], scale2[:, -1:], gate2[:, -1:]
    out = attn.to_out(out)  # (R, Tq, D)
    x = x + gate1 * out
    x = x + gate2 * block.mlp(_modulate(block.norm2(x), shift2, scale2))
    return x, ((k, v) if k is not None else None)


def _run(
    blocks,
    x: Tensor,
    mods: list[Tensor],
    past: list[KV] | None,
    last_only: bool,
    keep_kv: bool = True,
) -> tuple[Tensor, list[KV | None]]:
    kvs = []
    last = len(blocks) - 1
    for i, block in enumerate(blocks):
        pkv = past[i] if past else None
        x, kv = block_forward(block, x, mods[i], pkv, last_only and i == last, keep_kv)
        kvs.append(kv)
    return x, kvs


def fast_rollout(
    model: LeWM,
    z_context: Tensor,
    hist_emb: Tensor | None,
    plan_emb: Tensor,
    S: int,
    chunk: int | None,
) -> Tensor:
    """z_context (B, C, D), hist_emb (B, C-1, D) or None, plan_emb (B*S, H, D) -> (B, S, H, D)."""
    B, C, D = z_context.shape
    H = plan_emb.shape[1]
    pred = model.predictor
    blocks, hist, pos = pred.blocks, pred.history, pred.pos_embedding  # pos (1, hist, D)
    # 1. modulation of every token, once: shared history tokens on B rows, plan tokens per row
    hist_mods = [b.adaLN_modulation(hist_emb) for b in blocks] if C > 1 else None
    plan_mods = [b.adaLN_modulation(plan_emb) for b in blocks]  # each (B*S, H, 6D)

    # 3. shared prefix of a window starting at token lo: context tokens lo..C-2, on B rows
    prefix_cache: dict[int, list[KV]] = {}

    def shared_prefix(lo: int) -> list[KV]:
        if lo not in prefix_cache:
            x = z_context[:, lo : C - 1] + pos[:, : C - 1 - lo]
            prefix_cache[lo] = _run(blocks, x, [m[:, lo:] for m in hist_mods], None, False)[1]
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
            if lo == 0 and cache is not None:  # 2. growing window: only the newest token is new
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
            h, kvs = _run(blocks, x, mods, past, last_only=True, keep_kv=keep)
            cache = kvs if keep else None
            nxt = model.pred_projector(pred.norm(h[:, -1]))  # (R, D)
            preds.append(nxt)
            seq.append(nxt)
        out.append(torch.stack(preds, dim=1))  # (R, H, D)
    return torch.cat(out).reshape(B, S, H, D)
