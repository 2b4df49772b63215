"""Violation of expectation: does the latent prediction error spike at impossible events?

For each environment, matched triplets of trajectories share their start, their actions and
everything before the perturbation frame ``k_p``:

- ``none``: unperturbed;
- ``colour``: from frame k_p on, an object is drawn in another colour (visual perturbation);
- ``teleport``: just before frame k_p, objects jump to random positions (physical perturbation),
  and the same actions are replayed from there.

Surprise at frame k (k >= 1, frames are ``frameskip`` env steps apart) is the squared latent
prediction error ``|| pred(z_{k-C..k-1}, a_{k-C..k-1}) - enc(o_k) ||^2`` with C = min(k, history)
real context frames. At k_p a paired t-test (scipy) compares each perturbed trajectory with its
unperturbed twin; the effect size is Cohen's d_z (mean paired difference / its std).
Only ``encode`` and ``rollout`` of the world model are used, so any model of the planning
protocol can be tested.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from scipy import stats

CONDITIONS = ("none", "colour", "teleport")


@dataclass
class SurpriseConfig:
    trajectories: int = 32  # matched triplets (>= 20 for the paper-style test)
    frames: int = 12  # frames after the first one (each `frameskip` env steps later)
    perturb_frame: int = 6  # first frame that shows the perturbation (k_p)
    seed: int = 0

    def __post_init__(self) -> None:
        if self.trajectories < 2:
            raise ValueError(
                f"trajectories must be >= 2 for a paired test, got {self.trajectories}"
            )
        if not 1 <= self.perturb_frame <= self.frames:
            raise ValueError(
                f"perturb_frame must be in [1, frames={self.frames}], got {self.perturb_frame}"
            )


# -- matched trajectories -------------------------------------------------------------------------
# generator(n, steps, perturb_step, resolution, seed) -> {condition: (frames (n, steps+1, r, r, 3),
# actions (n, steps, A))}; frames are every env step; the caller subsamples them by frameskip.
Generator = Callable[[int, int, int, int, int], dict[str, tuple[np.ndarray, np.ndarray]]]


def tworoom_triplets(n: int, steps: int, t_p: int, resolution: int, seed: int):
    """Two-Room: the noisy expert walks to a random target; the agent turns blue / teleports."""
    from lewm.envs.tworoom import DEFAULT_LAYOUT, SPEED, TwoRoomExpert, render_batch, sample_free
    from lewm.envs.tworoom import step_dynamics as step

    rng = np.random.default_rng(seed)
    states = np.empty((n, steps + 1, 2), np.float32)
    states[:, 0] = sample_free(rng, n, DEFAULT_LAYOUT)
    targets = sample_free(rng, n, DEFAULT_LAYOUT)
    expert = TwoRoomExpert(noise_std=2.0, rng=rng)
    actions = np.empty((n, steps, 2), np.float32)
    for t in range(steps):
        actions[:, t] = expert.act(states[:, t], targets)
        states[:, t + 1] = step(states[:, t], actions[:, t], DEFAULT_LAYOUT, SPEED)
    jumped = states.copy()
    jumped[:, t_p] = sample_free(rng, n, DEFAULT_LAYOUT)  # teleport, then the same actions
    for t in range(t_p, steps):
        jumped[:, t + 1] = step(jumped[:, t], actions[:, t], DEFAULT_LAYOUT, SPEED)

    def frames(st: np.ndarray, colour_from: int | None = None) -> np.ndarray:
        px = render_batch(st.reshape(-1, 2), resolution).reshape(
            n, steps + 1, *([resolution] * 2), 3
        )
        if colour_from is not None:
            late = st[:, colour_from:].reshape(-1, 2)
            px[:, colour_from:] = render_batch(late, resolution, agent_colour=(0, 90, 255)).reshape(
                n, steps + 1 - colour_from, resolution, resolution, 3
            )
        return px

    return {
        "none": (frames(states), actions),
        "colour": (frames(states, t_p), actions),
        "teleport": (frames(jumped), actions),
    }


def pusht_triplets(n: int, steps: int, t_p: int, resolution: int, seed: int):
    """Push-T: the scripted pusher; the block turns green / agent and block both teleport."""
    from lewm.envs.pusht import PushTEnv, PushTExpert, render_batch

    env = PushTEnv(resolution=resolution)
    out = {c: ([], []) for c in CONDITIONS}
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
        st, acts = np.array(st), np.array(acts, np.float32)  # (steps+1, 7), (steps, 2)
        env.reset(seed=int(rng.integers(2**31)))  # a random non-overlapping agent + block pose
        jumped = list(st[:t_p]) + [env.state]
        for t in range(t_p, steps):
            env.step(acts[t])
            jumped.append(env.state)
        jumped = np.array(jumped)
        for cond, states, colours in (
            ("none", st, None),
            ("colour", st, {"block_colour": (40, 170, 60)}),
            ("teleport", jumped, None),
        ):
            px = render_batch(states, resolution)
            if colours:
                px[t_p:] = render_batch(states[t_p:], resolution, **colours)
            out[cond][0].append(px)
            out[cond][1].append(acts)
    return {c: (np.stack(px), np.stack(a)) for c, (px, a) in out.items()}


GENERATORS: dict[str, Generator] = {"tworoom": tworoom_triplets, "pusht": pusht_triplets}


# -- scoring --------------------------------------------------------------------------------------
@torch.inference_mode()
def surprise_curve(model, pixels: torch.Tensor, blocks: torch.Tensor, history: int) -> np.ndarray:
    """pixels uint8 (N, K+1, h, w, 3), normalised blocks (N, K, Ab) -> surprise (N, K+1).

    Entry k >= 1 is ||pred_k - z_k||^2 (sum over latent dims) with the prediction made from the
    C = min(k, history) real frames before k and the blocks between them; entry 0 is NaN.
    """
    N, K1 = pixels.shape[:2]
    z = model.encode(pixels)  # (N, K+1, D)
    out = np.full((N, K1), np.nan)
    for k in range(1, K1):
        C = min(k, history)
        ctx = z[:, k - C : k]  # (N, C, D)
        hist = blocks[:, k - C : k - 1] if C > 1 else None  # (N, C-1, Ab)
        pred = model.rollout(ctx, blocks[:, k - 1][:, None, None], hist)[:, 0, 0]  # (N, D)
        out[:, k] = (pred - z[:, k]).float().square().sum(-1).cpu().numpy()
    return out


def paired_test(perturbed: np.ndarray, unperturbed: np.ndarray) -> dict[str, float]:
    """Paired t-test (two-sided) of surprise at the perturbation frame; Cohen's d_z."""
    diff = perturbed - unperturbed
    t, p = stats.ttest_rel(perturbed, unperturbed)
    sd = diff.std(ddof=1)
    return {
        "t": float(t),
        "p_value": float(p),
        "cohens_dz": float(diff.mean() / sd) if sd > 0 else float("inf") * np.sign(diff.mean()),
        "mean_perturbed": float(perturbed.mean()),
        "mean_unperturbed": float(unperturbed.mean()),
        "ratio": float(perturbed.mean() / max(unperturbed.mean(), 1e-12)),
        "n": int(len(diff)),
    }


def run_surprise(model, env: str, cfg: SurpriseConfig | None = None, resolution: int | None = None):
    """Generate matched triplets for ``env``, score them with ``model``; JSON-ready report."""
    cfg = cfg or SurpriseConfig()
    if env not in GENERATORS:
        raise ValueError(
            f"no surprise trajectories for {env!r}; available: {', '.join(GENERATORS)}"
        )
    norm = model.action_normalizer()
    f = model.config.frameskip
    res = resolution or model.config.encoder.image_size
    trip = GENERATORS[env](cfg.trajectories, cfg.frames * f, cfg.perturb_frame * f, res, cfg.seed)
    dev = next(model.parameters()).device
    curves = {}
    for cond, (px, act) in trip.items():
        n, A = act.shape[0], act.shape[-1]
        if A != model.config.action_dim:
            raise ValueError(
                f"{env} actions have {A} dims, the model expects {model.config.action_dim}"
            )
        blocks = norm.normalize("action", act).reshape(n, cfg.frames, f * A)
        curves[cond] = surprise_curve(
            model.eval(),
            torch.as_tensor(px[:, ::f].copy()).to(dev),
            torch.as_tensor(blocks, dtype=torch.float32).to(dev),
            model.config.predictor.history,
        )
    k = cfg.perturb_frame
    tests = {c: paired_test(curves[c][:, k], curves["none"][:, k]) for c in ("colour", "teleport")}
    return {"env": env, "config": asdict(cfg), "resolution": res, "tests": tests, "curves": curves}


def write_surprise_report(report: dict, out_dir: str | os.PathLike) -> dict[str, Path]:
    """surprise.json (tests + mean/std curves) and surprise.png (mean ± std per condition)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from lewm.utils.io import write_json

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    curves = report["curves"]
    summary = {
        c: {"mean": v[:, 1:].mean(0).tolist(), "std": v[:, 1:].std(0).tolist()}
        for c, v in curves.items()
    }
    write_json(
        out / "surprise.json",
        {**{k: v for k, v in report.items() if k != "curves"}, "curves_from_frame_1": summary},
    )
    fig, ax = plt.subplots(figsize=(6, 3.6))
    ks = np.arange(1, next(iter(curves.values())).shape[1])
    for c, colour in zip(CONDITIONS, ("tab:gray", "tab:green", "tab:red"), strict=True):
        m, s = np.array(summary[c]["mean"]), np.array(summary[c]["std"])
        ax.plot(ks, m, "o-", color=colour, ms=3, label=c)
        ax.fill_between(ks, m - s, m + s, color=colour, alpha=0.15)
    ax.axvline(report["config"]["perturb_frame"], color="k", ls="--", lw=0.8)
    t = report["tests"]
    ax.set_title(
        f"{report['env']}: teleport p={t['teleport']['p_value']:.1e}, "
        f"colour p={t['colour']['p_value']:.1e}",
        fontsize=9,
    )
    ax.set_xlabel("frame (x frameskip env steps)")
    ax.set_ylabel("surprise ||pred - z||^2")
    ax.legend()
    fig.tight_layout()
    fig.savefig(out / "surprise.png", dpi=110)
    plt.close(fig)
    return {"json": out / "surprise.json", "png": out / "surprise.png"}
