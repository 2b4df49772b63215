"""Reacher data policies: ``random`` (uniform i.i.d. motor commands, what the authors' released
collection script runs) and ``pd`` (ours: a noisy joint-space PD controller that drives the arm
to one random goal configuration after another, so the data hold purposeful reaches).

Both are numpy-only and draw from the generator they are given.
"""

from __future__ import annotations

import numpy as np

from lewm.envs.reacher.physics import ACTION_DIM, joint_delta, sample_state, success

POLICY_KINDS = ("random", "pd")
KP = np.array([2.0, 0.5])  # proportional gains (shoulder, wrist): command per rad of error
KD = np.array([0.5, 0.05])  # damping gains: command per rad/s (the wrist is light, it rings)
GOAL_STEPS = 60  # steps spent on one goal configuration at most before the next is drawn


class RandomPolicy:
    """Uniform motor commands in [-1, 1]^2, independent at every step."""

    def __init__(self, rng: np.random.Generator) -> None:
        self.rng = rng

    def act(self, state: np.ndarray) -> np.ndarray:
        return self.rng.uniform(-1.0, 1.0, ACTION_DIM).astype(np.float32)


class PDPolicy:
    """Noisy joint-space PD control toward random goal configurations.

    a = clip(KP * (goal - q) - KD * qdot + noise_std * N(0, 1), -1, 1), the shoulder's error
    taken the short way round. A new goal (a random pose, as resets draw them) is drawn when the
    current one is reached (the success test) or after ``GOAL_STEPS`` steps. Reaches take ~35
    steps (median, noise 0.3).
    """

    def __init__(self, rng: np.random.Generator, noise_std: float = 0.3) -> None:
        self.rng, self.noise_std = rng, float(noise_std)
        self.goal = sample_state(rng)
        self.steps = 0  # steps spent on the current goal

    def act(self, state: np.ndarray) -> np.ndarray:
        s = np.asarray(state, np.float64)
        if self.steps >= GOAL_STEPS or bool(success(s, self.goal)):
            self.goal, self.steps = sample_state(self.rng), 0
        self.steps += 1
        a = KP * joint_delta(s, self.goal) - KD * s[2:4]
        a = a + self.noise_std * self.rng.standard_normal(ACTION_DIM)
        return np.clip(a, -1.0, 1.0).astype(np.float32)


def make_policy(kind: str, rng: np.random.Generator, noise_std: float = 0.3):
    """The data policy ``kind`` ("random" or "pd") drawing from ``rng``."""
    if kind == "random":
        return RandomPolicy(rng)
    if kind == "pd":
        return PDPolicy(rng, noise_std)
    raise ValueError(f"policy_kind (--policy-kind) must be one of {POLICY_KINDS}, got {kind!r}")
