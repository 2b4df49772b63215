"""The fast planning rollout must give the reference window loop's numbers."""

import pytest
import torch

from lewm.config import apply_overrides, preset
from lewm.models import LeWM


def _model(history: int, depth: int = 2, seed: int = 0) -> LeWM:
    cfg = apply_overrides(
        preset("tiny"), [f"model.predictor.history={history}", f"model.predictor.depth={depth}"]
    )
    torch.manual_seed(seed)
    model = LeWM(cfg.model).eval()
    with torch.no_grad():  # AdaLN-zero starts as identity: give the blocks real effects
        for p in model.predictor.parameters():
            p.add_(torch.randn_like(p) * 0.2)
    return model


@pytest.mark.parametrize(
    "history,context,horizon,chunk",
    [(1, 1, 4, None), (3, 1, 5, None), (3, 2, 5, 7), (3, 3, 6, 5), (4, 3, 6, None), (2, 2, 1, 3)],
)
def test_fast_rollout_equals_reference(history, context, horizon, chunk):
    model = _model(history)
    model.rollout_chunk = chunk
    D, Ab = model.latent_dim, model.action_block_dim
    B, S = 2, 5
    zc = torch.randn(B, context, D)
    hist = torch.randn(B, context - 1, Ab) if context > 1 else None
    acts = torch.randn(B, S, horizon, Ab)
    with torch.inference_mode():
        ref = model.rollout(zc, acts, hist, fast=False)
        fast = model.rollout(zc, acts, hist)
    assert fast.shape == ref.shape == (B, S, horizon, D)
    assert ref.abs().mean() > 0.1  # the comparison is not between zeros
    torch.testing.assert_close(fast, ref, atol=2e-5, rtol=1e-4)


def test_fast_rollout_drops_context_beyond_history():
    model = _model(history=2)
    D, Ab = model.latent_dim, model.action_block_dim
    zc, hist, acts = torch.randn(1, 4, D), torch.randn(1, 3, Ab), torch.randn(1, 3, 4, Ab)
    with torch.inference_mode():
        ref = model.rollout(zc, acts, hist, fast=False)
        fast = model.rollout(zc, acts, hist)
    torch.testing.assert_close(fast, ref, atol=2e-5, rtol=1e-4)


def test_fast_rollout_is_differentiable_like_the_reference():
    model = _model(history=3)
    D, Ab = model.latent_dim, model.action_block_dim
    zc, acts = torch.randn(1, 1, D), torch.randn(1, 2, 5, Ab)
    grads = []
    for fast in (False, True):
        a = acts.clone().requires_grad_(True)
        model.rollout(zc, a, fast=fast).square().sum().backward()
        grads.append(a.grad)
    torch.testing.assert_close(grads[1], grads[0], atol=1e-4, rtol=1e-3)


def test_naive_cache_after_the_window_slides_is_not_exact():
    """Why the fast path recomputes a sliding window: positions shift, cached keys go stale."""
    model = _model(history=2, depth=2)
    blk, D = model.predictor.blocks[0], model.latent_dim
    pos = model.predictor.pos_embedding
    z = torch.randn(1, 3, D)
    mod = blk.adaLN_modulation(torch.randn(1, 3, D))
    with torch.no_grad():
        # window (t0, t1) at positions (0, 1), then the window slides to (t1, t2)
        _, (k, v) = blk(z[:, :2] + pos, mod[:, :2], keep_kv=True)
        exact, _ = blk(z[:, 1:] + pos, mod[:, 1:])
        stale_past = (k[:, :, 1:], v[:, :, 1:])  # t1's keys computed at position 1, not 0
        naive, _ = blk(z[:, 2:] + pos[:, 1:], mod[:, 2:], stale_past)
    assert not torch.allclose(naive[:, -1], exact[:, -1], atol=1e-3)
