"""Latent metrics logged during training and reported by analysis (not loss terms)."""

from __future__ import annotations

import torch


def straightness(z: torch.Tensor, per_sequence: bool = False) -> torch.Tensor:
    """Mean cosine between consecutive latent velocities (paper Eq. 9); z (B, T, D), T >= 3.

    Returns the scalar mean, or with ``per_sequence`` the mean of each sequence (B,)."""
    if z.ndim != 3 or z.shape[1] < 3:
        raise ValueError(f"straightness needs z of shape (B, T >= 3, D), got {tuple(z.shape)}")
    v = z[:, 1:] - z[:, :-1]  # (B, T-1, D)
    cos = torch.nn.functional.cosine_similarity(v[:, 1:], v[:, :-1], dim=-1)  # (B, T-2)
    return cos.mean(1) if per_sequence else cos.mean()


def latent_std(z: torch.Tensor) -> torch.Tensor:
    """Per-dimension std over the batch, averaged over time and dimensions; z (B, T, D)."""
    return z.std(dim=0).mean()


__all__ = ["latent_std", "straightness"]
