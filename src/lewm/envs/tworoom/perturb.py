"""Two-Room matched trajectories for the violation-of-expectation test
(:mod:`lewm.analysis.surprise`): the noisy expert walks to a random target; from the
perturbation step on, the agent is drawn blue (``colour``) or has jumped elsewhere
(``teleport``, the same actions replayed from there)."""

from __future__ import annotations

import numpy as np

from lewm.envs.tworoom.dynamics import DEFAULT_LAYOUT, SPEED, sample_free, step_dynamics
from lewm.envs.tworoom.expert import TwoRoomExpert
from lewm.envs.tworoom.render import render_batch

PERTURBED_COLOUR = (0, 90, 255)  # the agent's colour in the "colour" condition


def surprise_triplets(
    n: int, steps: int, perturb_step: int, resolution: int, seed: int
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """``{"none" | "colour" | "teleport": (frames (n, steps+1, r, r, 3), actions (n, steps, 2))}``,
    one frame per env step; the three share starts, targets, actions and every frame before
    ``perturb_step``."""
    t_p = perturb_step
    rng = np.random.default_rng(seed)
    states = np.empty((n, steps + 1, 2), np.float32)  # (n, T+1, 2)
    states[:, 0] = sample_free(rng, n, DEFAULT_LAYOUT)
    targets = sample_free(rng, n, DEFAULT_LAYOUT)  # (n, 2)
    expert = TwoRoomExpert(noise_std=2.0, rng=rng)
    actions = np.empty((n, steps, 2), np.float32)  # (n, T, 2)
    for t in range(steps):
        actions[:, t] = expert.act(states[:, t], targets)
        states[:, t + 1] = step_dynamics(states[:, t], actions[:, t], DEFAULT_LAYOUT, SPEED)
    jumped = states.copy()
    jumped[:, t_p] = sample_free(rng, n, DEFAULT_LAYOUT)  # teleport, then the same actions
    for t in range(t_p, steps):
        jumped[:, t + 1] = step_dynamics(jumped[:, t], actions[:, t], DEFAULT_LAYOUT, SPEED)

    def frames(st: np.ndarray, colour_from: int | None = None) -> np.ndarray:
        px = render_batch(st.reshape(-1, 2), resolution).reshape(
            n, steps + 1, resolution, resolution, 3
        )  # (n, T+1, r, r, 3)
        if colour_from is not None:
            late = st[:, colour_from:].reshape(-1, 2)  # (n * (T+1-k), 2)
            px[:, colour_from:] = render_batch(
                late, resolution, agent_colour=PERTURBED_COLOUR
            ).reshape(n, steps + 1 - colour_from, resolution, resolution, 3)
        return px

    return {
        "none": (frames(states), actions),
        "colour": (frames(states, t_p), actions),
        "teleport": (frames(jumped), actions),
    }
