"""Per-dimension z-score normalisation of numeric columns (actions, proprio), fitted on the
training split and stored with every checkpoint."""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

_MIN_STD = 1e-6


class Normalizer:
    """Holds ``mean`` and ``std`` per column; maps raw <-> normalised values.

    Works on numpy arrays and torch tensors (the last axis is the feature axis).
    """

    def __init__(self, stats: dict[str, tuple[np.ndarray, np.ndarray]] | None = None) -> None:
        self.stats: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        for k, (m, s) in (stats or {}).items():
            self.stats[k] = (np.asarray(m, np.float32), np.asarray(s, np.float32))

    @classmethod
    def fit(cls, columns: dict[str, np.ndarray]) -> Normalizer:
        """Fit on (N, F) arrays; rows with any NaN are ignored (episode-final actions)."""
        stats = {}
        for name, x in columns.items():
            x = np.asarray(x, np.float64).reshape(len(x), -1)
            x = x[np.isfinite(x).all(axis=1)]
            if len(x) == 0:
                raise ValueError(f"cannot fit a normaliser for {name!r}: no finite rows")
            mean, std = x.mean(0), x.std(0)
            std = np.where(std < _MIN_STD, 1.0, std)  # constant dims pass through unscaled
            stats[name] = (mean.astype(np.float32), std.astype(np.float32))
        return cls(stats)

    def _get(self, name: str, like):
        if name not in self.stats:
            raise KeyError(f"normaliser has no statistics for {name!r}; has {sorted(self.stats)}")
        m, s = self.stats[name]
        if isinstance(like, Tensor):
            return (
                torch.as_tensor(m, device=like.device, dtype=like.dtype),
                torch.as_tensor(s, device=like.device, dtype=like.dtype),
            )
        return m, s

    def normalize(self, name: str, x):
        m, s = self._get(name, x)
        return (x - m) / s

    def denormalize(self, name: str, x):
        m, s = self._get(name, x)
        return x * s + m

    def dim(self, name: str) -> int:
        return int(self.stats[name][0].shape[0])

    def __contains__(self, name: str) -> bool:
        return name in self.stats

    def to_dict(self) -> dict:
        return {k: {"mean": m.tolist(), "std": s.tolist()} for k, (m, s) in self.stats.items()}

    @classmethod
    def from_dict(cls, d: dict) -> Normalizer:
        return cls({k: (v["mean"], v["std"]) for k, v in d.items()})

    def __repr__(self) -> str:
        return f"Normalizer({sorted(self.stats)})"
