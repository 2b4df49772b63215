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
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from scipy import stats

from lewm.envs import ENVS, get_spec
from lewm.envs.registry import Surprise
from lewm.models import model_device
from lewm.utils.config import check, check_seed
from lewm.utils.progress import progress_bar

CONDITIONS = ("none", "colour", "teleport")


@dataclass
class SurpriseConfig:
    trajectories: int = 32  # matched triplets (>= 20 for the paper-style test)
    frames: int = 12  # frames after the first one (each `frameskip` env steps later)
    perturb_frame: int = 6  # first frame that shows the perturbation (k_p)
    seed: int = 0

    def __post_init__(self) -> None:
        check(
            2 <= self.trajectories <= 10**5,
            f"surprise trajectories (--trajectories) must be in [2, 100000] for a paired test, "
            f"got {self.trajectories}",
        )
        check(
            1 <= self.frames <= 10**4,
            f"surprise frames (--frames) must be in [1, 10000], got {self.frames}",
        )
        check_seed(self.seed, "surprise seed (--seed)")
        check(
            1 <= self.perturb_frame <= self.frames,
            f"surprise perturb_frame (--perturb-frame) must be in [1, --frames={self.frames}], got "
            f"{self.perturb_frame}",
        )


# -- matched trajectories -------------------------------------------------------------------------
# each environment's spec.surprise(n, steps, perturb_step, resolution, seed) -> {condition:
# (frames (n, steps+1, r, r, 3), actions (n, steps, A))}; frames are every env step; the caller
# subsamples them by frameskip.
def _triplet_generator(env: str) -> Surprise:
    """The matched-trajectory generator of environment ``env`` (a clear error if it has none)."""
    spec = get_spec(env)
    if spec.surprise is None:
        have = sorted(name for name, s in ENVS.items() if s.surprise is not None)
        raise ValueError(f"no surprise trajectories for {env!r}; available: {', '.join(have)}")
    return spec.surprise


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


def run_surprise(
    model,
    env: str,
    cfg: SurpriseConfig | None = None,
    resolution: int | None = None,
    progress: bool | None = False,
    env_options: dict | None = None,
):
    """Generate matched triplets for ``env``, score them with ``model``; JSON-ready report.
    ``env_options``: keywords of the env's ``EnvSpec.data_attrs`` (Cube: ``look``) handed to its
    generator, so the frames look like the model's training data."""
    cfg = cfg or SurpriseConfig()
    generate = _triplet_generator(env)
    spec = get_spec(env)
    options = {k: v for k, v in (env_options or {}).items() if k in spec.data_attrs}
    unknown = sorted(set(env_options or {}) - set(options))
    if unknown:
        raise ValueError(
            f"{env}'s surprise trajectories take no {unknown}; they take {list(spec.data_attrs)}"
        )
    norm = model.action_normalizer()
    f = model.frameskip
    res = resolution or model.image_size
    trip = generate(
        cfg.trajectories, cfg.frames * f, cfg.perturb_frame * f, res, cfg.seed, **options
    )
    dev = model_device(model)
    curves = {}
    bar = progress_bar(len(trip), "surprise", progress, unit="condition")
    for cond, (px, act) in trip.items():
        n, A = act.shape[0], act.shape[-1]
        if A != model.action_dim:
            raise ValueError(f"{env} actions have {A} dims, the model expects {model.action_dim}")
        blocks = norm.normalize("action", act).reshape(n, cfg.frames, f * A)
        curves[cond] = surprise_curve(
            model.eval(),
            torch.as_tensor(px[:, ::f].copy()).to(dev),
            torch.as_tensor(blocks, dtype=torch.float32).to(dev),
            model.history,
        )
        bar.update(1)
    bar.close()
    k = cfg.perturb_frame
    tests = {c: paired_test(curves[c][:, k], curves["none"][:, k]) for c in ("colour", "teleport")}
    return {
        "env": env,
        "config": asdict(cfg),
        "resolution": res,
        "env_options": options,
        "tests": tests,
        "curves": curves,
    }


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
