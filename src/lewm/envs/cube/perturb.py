"""Cube matched trajectories for the violation-of-expectation test
(:mod:`lewm.analysis.surprise`): OGBench's noisy oracle picks and places the cube; from the
perturbation step on, the cube is drawn blue (``colour``) or has jumped elsewhere on the table
(``teleport``, the same actions replayed from there)."""

from __future__ import annotations

import numpy as np

from lewm.envs.cube.collect import OraclePolicy
from lewm.envs.cube.physics import (
    CUBE_HALF,
    CUBE_POS,
    NQ,
    STATE_DIM,
    get_state,
    new_data,
    ogbench_env,
    sample_scene,
    simulate,
    step,
)
from lewm.envs.cube.render import DEFAULT_LOOK, check_look, render_batch

PERTURBED_COLOUR = (40, 90, 230)  # the cube's colour in the "colour" condition
MIN_JUMP = 0.1  # m: a teleport moves the cube at least this far on the table


def surprise_triplets(
    n: int, steps: int, perturb_step: int, resolution: int, seed: int, look: str = DEFAULT_LOOK
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """``{"none" | "colour" | "teleport": (frames (n, steps+1, r, r, 3), actions (n, steps, 5))}``,
    one frame per env step, drawn in ``look`` (the data's: ``EnvSpec.data_attrs``); the three
    share starts, actions and every frame before ``perturb_step``."""
    check_look(look)
    t_p = perturb_step
    rng = np.random.default_rng(seed)
    bounds = ogbench_env()._object_sampling_bounds  # (2, 2): the cube's area on the table
    states = np.empty((n, steps + 1, STATE_DIM))  # (n, T+1, S)
    actions = np.empty((n, steps, 5), np.float32)  # (n, T, 5)
    jumped = np.empty_like(states)
    for i in range(n):
        data = new_data()
        sample_scene(data, rng)
        policy = OraclePolicy(rng)
        states[i, 0] = get_state(data)
        for t in range(steps):
            actions[i, t] = policy.act(data)
            step(data, actions[i, t])
            states[i, t + 1] = get_state(data)
        here = states[i, t_p, CUBE_POS][:2]
        xy = rng.uniform(*bounds)
        while np.linalg.norm(xy - here) < MIN_JUMP:
            xy = rng.uniform(*bounds)
        moved = states[i, t_p].copy()
        moved[CUBE_POS] = (*xy, CUBE_HALF)  # on the table, at rest
        moved[NQ + 14 : NQ + 20] = 0.0  # the cube's velocity
        jumped[i, :t_p] = states[i, :t_p]
        jumped[i, t_p:] = simulate(moved, actions[i, t_p:])

    r = resolution

    def draw(st: np.ndarray, **style) -> np.ndarray:  # (n, k, S) -> (n, k, r, r, 3)
        flat = render_batch(st.reshape(-1, STATE_DIM), r, look=look, **style)
        return flat.reshape(*st.shape[:2], r, r, 3)

    none = draw(states)
    colour, teleport = none.copy(), none.copy()
    colour[:, t_p:] = draw(states[:, t_p:], cube_colour=PERTURBED_COLOUR)
    teleport[:, t_p:] = draw(jumped[:, t_p:])
    return {"none": (none, actions), "colour": (colour, actions), "teleport": (teleport, actions)}
