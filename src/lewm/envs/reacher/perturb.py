"""Reacher matched trajectories for the violation-of-expectation test
(:mod:`lewm.analysis.surprise`): the PD policy reaches for random configurations; from the
perturbation step on, the arm is drawn blue (``colour``) or has jumped to another pose
(``teleport``, the same actions replayed from there)."""

from __future__ import annotations

import numpy as np

from lewm.envs.reacher.physics import (
    STATE_DIM,
    get_state,
    joint_error,
    new_data,
    sample_state,
    simulate,
    step,
)
from lewm.envs.reacher.policy import PDPolicy
from lewm.envs.reacher.render import render_batch

PERTURBED_COLOUR = (40, 90, 230)  # the arm's colour in the "colour" condition
MIN_JUMP = 0.5  # rad: a teleport moves some joint at least this far


def surprise_triplets(
    n: int, steps: int, perturb_step: int, resolution: int, seed: int
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """``{"none" | "colour" | "teleport": (frames (n, steps+1, r, r, 3), actions (n, steps, 2))}``,
    one frame per env step; the three share starts, actions and every frame before
    ``perturb_step``."""
    t_p = perturb_step
    rng = np.random.default_rng(seed)
    states = np.empty((n, steps + 1, STATE_DIM))  # (n, T+1, 4)
    actions = np.empty((n, steps, 2), np.float32)  # (n, T, 2)
    jumped = np.empty_like(states)  # (n, T+1, 4)
    for i in range(n):
        data = new_data(sample_state(rng))
        policy = PDPolicy(rng, noise_std=0.3)
        states[i, 0] = get_state(data)
        for t in range(steps):
            actions[i, t] = policy.act(states[i, t])
            step(data, actions[i, t])
            states[i, t + 1] = get_state(data)
        jump = sample_state(rng)  # a pose at rest far from the one it replaces
        while joint_error(jump, states[i, t_p]) < MIN_JUMP:
            jump = sample_state(rng)
        jumped[i, :t_p] = states[i, :t_p]
        jumped[i, t_p:] = simulate(jump, actions[i, t_p:])

    r = resolution

    def draw(st: np.ndarray, **style) -> np.ndarray:  # (n, k, 4) -> (n, k, r, r, 3)
        return render_batch(st.reshape(-1, STATE_DIM), r, **style).reshape(*st.shape[:2], r, r, 3)

    none = draw(states)  # rendering is the slow part: the shared past is drawn once
    colour, teleport = none.copy(), none.copy()
    colour[:, t_p:] = draw(states[:, t_p:], arm_colour=PERTURBED_COLOUR)
    teleport[:, t_p:] = draw(jumped[:, t_p:])
    return {"none": (none, actions), "colour": (colour, actions), "teleport": (teleport, actions)}
