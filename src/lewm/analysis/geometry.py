"""Latent geometry: temporal straightness (paper Eq. 9), a 2-D map of latents over a grid of
states (paper Fig. 9), and open-loop rollouts against encoded real frames."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
from scipy import stats
from scipy.spatial.distance import pdist


def straightness(z: torch.Tensor, per_sequence: bool = False) -> torch.Tensor:
    """Mean cosine between consecutive latent velocities (paper Eq. 9); z (B, T, D), T >= 3.

    Returns the scalar mean, or with ``per_sequence`` the mean of each sequence (B,)."""
    if z.ndim != 3 or z.shape[1] < 3:
        raise ValueError(f"straightness needs z of shape (B, T >= 3, D), got {tuple(z.shape)}")
    v = z[:, 1:] - z[:, :-1]  # (B, T-1, D)
    cos = torch.nn.functional.cosine_similarity(v[:, 1:], v[:, :-1], dim=-1)  # (B, T-2)
    return cos.mean(1) if per_sequence else cos.mean()


def _episode_windows(data, frameskip: int, frames: int, max_windows: int, seed: int):
    """Row indices (W, frames) of frame windows `frameskip` steps apart inside episodes."""
    rng = np.random.default_rng(seed)
    span = (frames - 1) * frameskip
    starts = [
        off + np.arange(L - span)
        for L, off in zip(data.ep_len, data.ep_offset, strict=True)
        if L > span
    ]
    if not starts:
        raise ValueError(
            f"no episode has {span + 1} steps for a window of {frames} frames at frameskip "
            f"{frameskip}; use fewer --frames"
        )
    starts = np.concatenate(starts)
    starts = rng.choice(starts, min(max_windows, len(starts)), replace=False)
    return starts[:, None] + np.arange(frames) * frameskip  # (W, frames)


@torch.inference_mode()
def dataset_straightness(
    model, data, frames: int | None = None, max_windows: int = 2000, seed: int = 0
) -> dict:
    """Eq. 9 over windows of ``frames`` consecutive block-start frames of an episode file
    (default history + 1, the training clip, so the number matches ``train/straightness``;
    at least 3, the fewest Eq. 9 is defined on)."""
    frames = frames or max(3, model.config.predictor.history + 1)
    if frames < 3:
        raise ValueError(f"straightness needs windows of >= 3 frames, got {frames}")
    rows = _episode_windows(data, model.config.frameskip, frames, max_windows, seed)
    vals = []
    for i in range(0, len(rows), 128):
        px = torch.as_tensor(data.rows("pixels", rows[i : i + 128]))
        vals.append(straightness(model.encode(px), per_sequence=True))  # (b,)
    per = torch.cat(vals).numpy()
    return {
        "straightness": float(per.mean()),
        "std_over_windows": float(per.std()),
        "windows": len(per),
        "frames": frames,
    }


# -- latent map over a grid of states ----------------------------------------------------------
def state_grid(env: str, n: int = 16) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """States on an n x n grid and the 2-D position that colours them.

    Two-Room: the agent on the free cells of the grid. Push-T: the block (fixed angle) on the
    grid with the agent parked in a corner, so the map shows how block position is laid out.
    Returns states (M, S), positions (M, 2), the names of the two position axes.
    """
    if env == "tworoom":
        from lewm.envs.tworoom import DEFAULT_LAYOUT, HI, LO

        g = np.linspace(LO, HI, n, dtype=np.float32)
        xy = np.stack(np.meshgrid(g, g), -1).reshape(-1, 2)
        xy = xy[DEFAULT_LAYOUT.is_free(xy)]
        return xy, xy, ["agent x", "agent y"]
    if env == "pusht":
        g = np.linspace(140.0, 372.0, n)
        bxy = np.stack(np.meshgrid(g, g), -1).reshape(-1, 2)
        st = np.zeros((len(bxy), 7))
        st[:, 0:2] = 40.0
        st[:, 2:4] = bxy
        st[:, 4] = np.pi / 4
        return st, bxy, ["block x", "block y"]
    raise ValueError(f"no state grid for {env!r}; available: tworoom, pusht")


def render_states(env: str, states: np.ndarray, resolution: int) -> np.ndarray:
    if env == "tworoom":
        from lewm.envs.tworoom import render_batch

        return render_batch(states, resolution)
    from lewm.envs.pusht import render_batch

    return render_batch(states, resolution)


def resolve_method(method: str) -> str:
    """ "auto" -> "tsne" when scikit-learn is installed, else "pca"; other names unchanged."""
    if method != "auto":
        return method
    try:
        import sklearn.manifold  # noqa: F401
    except ImportError:
        return "pca"
    return "tsne"


def embed_2d(z: np.ndarray, method: str = "auto", seed: int = 0) -> np.ndarray:
    """(M, D) -> (M, 2) by PCA (numpy SVD) or t-SNE (needs scikit-learn); "auto" is t-SNE when
    scikit-learn is installed (``pip install lewm[analysis]``), else PCA."""
    method = resolve_method(method)
    if method == "pca":
        zc = z - z.mean(0)
        _, _, vt = np.linalg.svd(zc, full_matrices=False)
        return zc @ vt[:2].T
    if method == "tsne":
        try:
            from sklearn.manifold import TSNE
        except ImportError as e:
            raise ImportError(
                "t-SNE needs scikit-learn: pip install scikit-learn (or use --method pca)"
            ) from e
        return TSNE(2, perplexity=min(30, len(z) - 1), random_state=seed, init="pca").fit_transform(
            z
        )
    raise ValueError(f"method must be 'auto', 'pca' or 'tsne', got {method!r}")


@torch.inference_mode()
def latent_map(model, env: str, n: int = 16, method: str = "auto") -> dict:
    """Encode a grid of states; 2-D map; how well latent distances follow state distances."""
    states, pos, names = state_grid(env, n)
    px = torch.as_tensor(render_states(env, states, model.config.encoder.image_size))
    z = model.encode(px[:, None])[:, 0].float().numpy()  # (M, D)
    method = resolve_method(method)
    xy = embed_2d(z, method)
    rho_latent = stats.spearmanr(pdist(z), pdist(pos))[0]
    rho_map = stats.spearmanr(pdist(xy), pdist(pos))[0]
    return {
        "env": env,
        "method": method,
        "points": len(z),
        "axes": names,
        "spearman_latent_vs_state_distance": float(rho_latent),
        "spearman_map_vs_state_distance": float(rho_map),
        "_xy": xy,
        "_pos": pos,
    }


# -- open-loop rollout against real frames --------------------------------------------------------
@torch.inference_mode()
def open_loop(model, data, horizon: int = 10, episodes: int = 64, seed: int = 0) -> dict:
    """Roll out ``horizon`` blocks open-loop from ``history`` real frames with the real actions;
    distance per step to the encoded real frames, beside the copy-last-frame baseline."""
    norm = model.action_normalizer()
    C, f = model.config.predictor.history, model.config.frameskip
    rows = _episode_windows(data, f, C + horizon, episodes, seed)  # (E, C+H)
    px = torch.as_tensor(data.rows("pixels", rows))  # (E, C+H, h, w, 3)
    z = model.encode(px)  # (E, C+H, D)
    act_rows = rows[:, :1] + np.arange((C + horizon - 1) * f)  # (E, (C+H-1) f)
    act = norm.normalize("action", data.rows("action", act_rows).astype(np.float32))
    blocks = torch.as_tensor(act.reshape(len(rows), C + horizon - 1, -1))  # (E, C+H-1, f A)
    hist = blocks[:, : C - 1] if C > 1 else None
    pred = model.rollout(z[:, :C], blocks[:, C - 1 :][:, None], hist)[:, 0]  # (E, H, D)
    real = z[:, C:]  # (E, H, D)
    err = (pred - real).square().sum(-1)  # (E, H)
    copy = (z[:, C - 1 : C] - real).square().sum(-1)  # (E, H)
    return {
        "context": C,
        "horizon": horizon,
        "episodes": len(rows),
        "rollout_error_mean": err.mean(0).tolist(),
        "rollout_error_std": err.std(0).tolist(),
        "copy_last_error_mean": copy.mean(0).tolist(),
    }


def write_viz(
    out_dir: str | os.PathLike,
    latent: dict | None = None,
    rollout: dict | None = None,
    metrics: str | os.PathLike | None = None,
) -> dict[str, Path]:
    """latent_map.png, open_loop.png, training_curves.png and viz.json with the numbers."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from lewm.utils.io import write_json

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    files, numbers = {}, {}
    if latent is not None:
        xy, pos = latent["_xy"], latent["_pos"]
        fig, axes = plt.subplots(1, 2, figsize=(8, 3.8))
        for ax, j in zip(axes, (0, 1), strict=True):
            sc = ax.scatter(xy[:, 0], xy[:, 1], c=pos[:, j], cmap="viridis", s=12)
            fig.colorbar(sc, ax=ax, label=latent["axes"][j])
            ax.set_title(f"{latent['method'].upper()} of latents, coloured by {latent['axes'][j]}")
            ax.set_xticks([])
            ax.set_yticks([])
        fig.tight_layout()
        fig.savefig(out / "latent_map.png", dpi=100)
        plt.close(fig)
        files["latent_map"] = out / "latent_map.png"
        numbers["latent_map"] = {k: v for k, v in latent.items() if not k.startswith("_")}
        numbers["latent_map"]["xy"] = np.round(xy, 4).tolist()
        numbers["latent_map"]["positions"] = np.round(pos, 3).tolist()
    if rollout is not None:
        h = np.arange(1, rollout["horizon"] + 1)
        m, s = np.array(rollout["rollout_error_mean"]), np.array(rollout["rollout_error_std"])
        fig, ax = plt.subplots(figsize=(5, 3.4))
        ax.plot(h, m, "o-", label="open-loop rollout")
        ax.fill_between(h, m - s, m + s, alpha=0.2)
        ax.plot(h, rollout["copy_last_error_mean"], "s--", label="copy last context frame")
        ax.set_xlabel("blocks ahead")
        ax.set_ylabel("||z_pred - z_real||^2")
        ax.legend()
        fig.tight_layout()
        fig.savefig(out / "open_loop.png", dpi=110)
        plt.close(fig)
        files["open_loop"] = out / "open_loop.png"
        numbers["open_loop"] = rollout
    if metrics is not None and Path(metrics).exists():
        from lewm.analysis.plots import plot_training_curves

        files["training_curves"] = plot_training_curves(metrics, out / "training_curves.png")
    write_json(out / "viz.json", numbers)
    files["json"] = out / "viz.json"
    return files
