"""Random action segments that scripted collectors interleave with their policy (Push-T's and
Cube's ``explore``): about a fraction of all steps, in segments of ``length`` steps, each an
AR(1) sequence a_t = rho a_{t-1} + sqrt(1 - rho^2) e_t per action component, e_t ~ N(0, s^2),
with rho ~ U(``rho``) and s ~ U(``std``) drawn per segment, clipped to [-1, 1]: white-noise
jitter to smooth drifts, the kind of sequences a sampling planner proposes."""

from __future__ import annotations

import numpy as np


class RandomSegments:
    """Draws only from ``rng``, and nothing at all when ``fraction`` is 0."""

    def __init__(
        self,
        rng: np.random.Generator,
        fraction: float,
        dim: int,
        length: tuple[int, int],
        std: tuple[float, float],
        rho: tuple[float, float] = (0.0, 0.9),
    ) -> None:
        if not 0.0 <= fraction < 1.0:
            raise ValueError(f"explore must be in [0, 1), got {fraction}")
        if not 1 <= length[0] <= length[1]:
            raise ValueError(f"explore_len must be (lo, hi) with 1 <= lo <= hi, got {length}")
        self.rng, self.fraction, self.dim = rng, float(fraction), int(dim)
        self.length, self.std, self.rho_range = (int(length[0]), int(length[1])), std, rho
        # start probability per policy step so that segments fill ~`fraction` of all steps
        mean_len = 0.5 * (self.length[0] + self.length[1])
        self.start = self.fraction / (mean_len * (1.0 - self.fraction))
        self.reset()

    def reset(self) -> None:
        self.left = 0  # steps left in the current segment
        self.rho, self.sd = 0.0, 0.0
        self.prev = np.zeros(self.dim)

    @property
    def active(self) -> bool:
        return self.left > 0

    def step(self) -> np.ndarray | None:
        """The next action (dim,) float32 of a segment, starting one by chance; None when the
        policy acts this step."""
        if self.fraction > 0 and self.left == 0 and self.rng.random() < self.start:
            self.left = int(self.rng.integers(self.length[0], self.length[1] + 1))
            self.rho = float(self.rng.uniform(*self.rho_range))
            self.sd = float(self.rng.uniform(*self.std))
            self.prev = np.zeros(self.dim)
        if self.left == 0:
            return None
        e = self.rng.normal(0.0, self.sd, size=self.dim)
        self.prev = np.clip(self.rho * self.prev + np.sqrt(1.0 - self.rho**2) * e, -1.0, 1.0)
        self.left -= 1
        return self.prev.astype(np.float32)
