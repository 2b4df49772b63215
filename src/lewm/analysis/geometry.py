"""Latent geometry: temporal straightness over a dataset (paper Eq. 9), a 2-D map of latents
over a grid of states (paper Fig. 9), and open-loop rollouts against encoded real frames."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
from scipy import stats
from scipy.spatial.distance import pdist

from lewm.envs import ENVS, get_spec
from lewm.losses.metrics import straightness
from lewm.models import model_device
from lewm.utils.progress import progress_bar


def _episode_windows(
    data,
    frameskip: int,
    frames: int,
    max_windows: int,
    seed: int,
    fix: str = "use fewer --frames",
    among: np.ndarray | None = None,
):
    """Row indices (W, frames) of frame windows `frameskip` steps apart inside episodes (all of
    them, or the episode ids ``among``)."""
    if frames < 1 or max_windows < 1:
        raise ValueError(f"windows need >= 1 frame and >= 1 window, got {frames}, {max_windows}")
    rng = np.random.default_rng(seed)
    span = (frames - 1) * frameskip
    eps = np.arange(len(data.ep_len)) if among is None else np.asarray(among, dtype=np.int64)
    starts = [
        int(data.ep_offset[e]) + np.arange(int(data.ep_len[e]) - span)
        for e in eps
        if int(data.ep_len[e]) > span
    ]
    if not starts:
        raise ValueError(
            f"no episode has {span + 1} steps for a window of {frames} frames at frameskip "
            f"{frameskip}; {fix}"
        )
    starts = np.concatenate(starts)
    starts = rng.choice(starts, min(max_windows, len(starts)), replace=False)
    return starts[:, None] + np.arange(frames) * frameskip  # (W, frames)


@torch.inference_mode()
def dataset_straightness(
    model,
    data,
    frames: int | None = None,
    max_windows: int = 2000,
    seed: int = 0,
    progress: bool | None = False,
) -> dict:
    """Eq. 9 over windows of ``frames`` consecutive block-start frames of an episode file
    (default history + 1, the training clip, so the number matches ``train/straightness``;
    at least 3, the fewest Eq. 9 is defined on)."""
    frames = max(3, model.history + 1) if frames is None else frames
    if frames < 3:
        raise ValueError(f"straightness needs windows of >= 3 frames, got {frames}")
    rows = _episode_windows(data, model.frameskip, frames, max_windows, seed)  # (W, frames)
    vals = []
    dev = model_device(model)
    bar = progress_bar(len(rows), "straightness", progress, unit="window")
    for i in range(0, len(rows), 128):
        px = torch.as_tensor(data.rows("pixels", rows[i : i + 128]))  # (b, frames, h, w, 3)
        per = straightness(model.encode(px.to(dev)), per_sequence=True)  # (b,)
        vals.append(per.float().cpu())
        bar.update(len(px))
    bar.close()
    per = torch.cat(vals).numpy()
    return {
        "straightness": float(per.mean()),
        "std_over_windows": float(per.std()),
        "windows": len(per),
        "frames": frames,
    }


# -- latent map over a grid of states ----------------------------------------------------------
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
    if not 2 <= n <= 1000:
        raise ValueError(f"the state grid needs 2 to 1000 points per axis (--grid), got {n}")
    spec = get_spec(env)
    if spec.state_grid is None:
        have = sorted(name for name, s in ENVS.items() if s.state_grid is not None)
        raise ValueError(f"no state grid for {env!r}; available: {', '.join(have)}")
    states, pos, names = spec.state_grid(n)  # (M, S), (M, 2), [2]
    px = torch.as_tensor(spec.render(states, model.image_size))  # (M, h, w, 3)
    z = model.encode(px[:, None].to(model_device(model)))[:, 0].float().cpu().numpy()  # (M, D)
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
def rollout_windows(
    model,
    data,
    horizon: int = 10,
    episodes: int = 64,
    seed: int = 0,
    among: np.ndarray | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Windows of ``history + horizon`` real frames (from the episode ids ``among``, default
    all) and the open-loop rollout of ``horizon`` blocks from the first ``history`` of them
    with the real actions: pixels (E, C+H, h, w, 3), their latents z (E, C+H, D) and the
    predictions (E, H, D); the pixels stay on the CPU, the latents are on the model's device."""
    norm = model.action_normalizer()
    dev = model_device(model)
    C, f = model.history, model.frameskip
    if horizon < 1 or episodes < 1:
        raise ValueError(f"--horizon and episodes must be >= 1, got {horizon} and {episodes}")
    if data.action_dim != model.action_dim:
        raise ValueError(
            f"{data.path} has actions of {data.action_dim} values, the model takes "
            f"{model.action_dim}: the file comes from another environment - give the model's data"
        )
    rows = _episode_windows(data, f, C + horizon, episodes, seed, "use a shorter --horizon", among)
    px = torch.as_tensor(data.rows("pixels", rows))  # (E, C+H, h, w, 3)
    z = model.encode(px.to(dev))  # (E, C+H, D)
    act_rows = rows[:, :1] + np.arange((C + horizon - 1) * f)  # (E, (C+H-1) f)
    act = norm.normalize("action", data.rows("action", act_rows).astype(np.float32))
    blocks = torch.as_tensor(act.reshape(len(rows), C + horizon - 1, -1)).to(dev)  # (E, C+H-1, f A)
    hist = blocks[:, : C - 1] if C > 1 else None
    pred = model.rollout(z[:, :C], blocks[:, C - 1 :][:, None], hist)[:, 0]  # (E, H, D)
    return px, z, pred


@torch.inference_mode()
def open_loop(model, data, horizon: int = 10, episodes: int = 64, seed: int = 0) -> dict:
    """Roll out ``horizon`` blocks open-loop from ``history`` real frames with the real actions;
    distance per step to the encoded real frames, beside the copy-last-frame baseline."""
    C = model.history
    px, z, pred = rollout_windows(model, data, horizon, episodes, seed)
    real = z[:, C:]  # (E, H, D)
    err = (pred - real).square().sum(-1)  # (E, H)
    copy = (z[:, C - 1 : C] - real).square().sum(-1)  # (E, H)
    return {
        "context": C,
        "horizon": horizon,
        "episodes": len(px),
        "rollout_error_mean": err.mean(0).tolist(),
        "rollout_error_std": err.std(0).tolist(),
        "copy_last_error_mean": copy.mean(0).tolist(),
    }


def write_viz(
    out_dir: str | os.PathLike,
    latent: dict | None = None,
    rollout: dict | None = None,
    metrics: str | os.PathLike | None = None,
    extra: dict | None = None,
) -> dict[str, Path]:
    """latent_map.png, open_loop.png, training_curves.png and viz.json with the numbers (and
    the sections of ``extra``, e.g. the decoder's ``imagined``)."""
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
    write_json(out / "viz.json", {**numbers, **(extra or {})})
    files["json"] = out / "viz.json"
    return files
