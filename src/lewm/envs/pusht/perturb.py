"""Push-T matched trajectories for the violation-of-expectation test
(:mod:`lewm.analysis.surprise`): the scripted pusher; from the perturbation step on, the block
is drawn green (``colour``) or agent and block have jumped to a random pose (``teleport``, the
same actions replayed from there)."""

from __future__ import annotations

import numpy as np

from lewm.envs.pusht.expert import PushTExpert
from lewm.envs.pusht.render import render_batch

PERTURBED_BLOCK_COLOUR = (40, 170, 60)  # the block's colour in the "colour" condition


def surprise_triplets(
    n: int, steps: int, perturb_step: int, resolution: int, seed: int
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """``{"none" | "colour" | "teleport": (frames (n, steps+1, r, r, 3), actions (n, steps, 2))}``,
    one frame per env step; the three share starts, actions and every frame before
    ``perturb_step``."""
    from lewm.envs.pusht.env import PushTEnv

    t_p = perturb_step
    env = PushTEnv(resolution=resolution)
    out: dict[str, tuple[list, list]] = {c: ([], []) for c in ("none", "colour", "teleport")}
    seeds = np.random.SeedSequence(seed).generate_state(n)
    for s in seeds:
        rng = np.random.default_rng(int(s))
        env.reset(seed=int(s))
        expert = PushTExpert(rng, noise_std=0.1)
        st = [env.state]
        acts = []
        for _ in range(steps):
            acts.append(expert.act(st[-1]))
            env.step(acts[-1])
            st.append(env.state)
        st, acts = np.array(st), np.array(acts, np.float32)  # (T+1, 7), (T, 2)
        env.reset(seed=int(rng.integers(2**31)))  # a random non-overlapping agent + block pose
        jumped = list(st[:t_p]) + [env.state]
        for t in range(t_p, steps):
            env.step(acts[t])
            jumped.append(env.state)
        jumped = np.array(jumped)  # (T+1, 7)
        for cond, states, colours in (
            ("none", st, None),
            ("colour", st, {"block_colour": PERTURBED_BLOCK_COLOUR}),
            ("teleport", jumped, None),
        ):
            px = render_batch(states, resolution)  # (T+1, r, r, 3)
            if colours:
                px[t_p:] = render_batch(states[t_p:], resolution, **colours)
            out[cond][0].append(px)
            out[cond][1].append(acts)
    return {c: (np.stack(px), np.stack(a)) for c, (px, a) in out.items()}
