"""Linear and MLP probes from one frozen latent to physical quantities (paper Tables 1 and 3).

Frames of an episode file with a ``state`` column are embedded by the frozen model; the episodes
are split (not the frames, so no episode is in both halves); targets are standardised on the
training half; a ridge-regularised linear map and a small MLP are fitted per quantity and scored
on the held-out half by MSE (± the std over frames of the per-frame squared error, in
standardised units, as the paper reports) and Pearson r (mean over the quantity's components).
The same probes on a randomly initialised model of the same architecture give the floor.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from scipy import stats
from torch import nn

from lewm.envs import ENVS
from lewm.models import build_model, model_device
from lewm.utils.config import check, check_seed
from lewm.utils.progress import progress_bar

log = logging.getLogger(__name__)


def quantities(env: str, state_dim: int) -> dict[str, Callable[[np.ndarray], np.ndarray]]:
    """Quantity name -> (states (N, S) -> target (N, k)): the named quantities of a registered
    environment (its spec's), otherwise every state column on its own."""
    spec = ENVS.get(env)
    if spec is not None and spec.quantities:
        return dict(spec.quantities)
    return {f"state[{j}]": (lambda s, j=j: s[:, j : j + 1]) for j in range(state_dim)}


@dataclass
class ProbeConfig:
    max_frames: int = 20_000  # frames drawn (uniformly, without replacement) from the file
    test_fraction: float = 0.2  # fraction of episodes held out for scoring
    ridge: float = 1e-3  # linear probe: L2 penalty per frame on standardised features
    mlp_hidden: int = 256  # MLP probe: one hidden layer of this width
    mlp_epochs: int = 60
    mlp_lr: float = 1e-3
    batch_size: int = 256  # frames per encoder forward
    features: str = "latent"  # "latent" (projector output, what the predictor sees) | "encoder"
    seed: int = 0

    def __post_init__(self) -> None:
        check(
            self.max_frames >= 10,
            f"probe max_frames (--frames) must be >= 10, got {self.max_frames}",
        )
        check_seed(self.seed, "probe seed (--seed)")
        check(
            0 < self.test_fraction < 1,
            f"probe test_fraction must be in (0, 1), got {self.test_fraction}",
        )
        check(
            self.features in ("latent", "encoder"),
            f"probe features must be 'latent' or 'encoder', got {self.features!r}",
        )
        for name in ("mlp_hidden", "mlp_epochs", "batch_size"):
            check(getattr(self, name) >= 1, f"probe {name} must be >= 1, got {getattr(self, name)}")
        check(self.ridge >= 0 and self.mlp_lr > 0, "probe ridge must be >= 0 and mlp_lr > 0")


@torch.inference_mode()
def embed_frames(
    model,
    pixels: np.ndarray,
    batch_size: int = 256,
    features: str = "latent",
    progress: bool | None = False,
):
    """uint8 frames (N, h, w, 3) -> features (N, F) float32 numpy, in batches: the world model's
    latent (``encode``) or its image encoder's output (``encoder_features``)."""
    dev = model_device(model)
    out = []
    bar = progress_bar(len(pixels), f"embed ({features})", progress, unit="frame")
    for i in range(0, len(pixels), batch_size):
        px = torch.as_tensor(np.ascontiguousarray(pixels[i : i + batch_size])).to(dev)
        if features == "latent":
            z = model.encode(px[:, None])[:, 0]  # (b, D)
        else:
            z = model.encoder_features(px)  # (b, W)
        out.append(z.float().cpu().numpy())
        bar.update(len(px))
    bar.close()
    return np.concatenate(out)


def fit_linear(x_tr: np.ndarray, y_tr: np.ndarray, x_te: np.ndarray, ridge: float) -> np.ndarray:
    """Ridge regression with a bias on standardised features; returns predictions for x_te."""
    mu, sd = x_tr.mean(0), x_tr.std(0) + 1e-6
    a = np.c_[(x_tr - mu) / sd, np.ones(len(x_tr))].astype(np.float64)  # (N, F+1)
    reg = ridge * len(a) * np.eye(a.shape[1])
    reg[-1, -1] = 0.0  # no penalty on the bias
    w = np.linalg.solve(a.T @ a + reg, a.T @ y_tr)  # (F+1, k)
    return np.c_[(x_te - mu) / sd, np.ones(len(x_te))] @ w


def fit_mlp(x_tr: np.ndarray, y_tr: np.ndarray, x_te: np.ndarray, cfg: ProbeConfig) -> np.ndarray:
    """One-hidden-layer MLP (SiLU) trained with Adam on MSE; returns predictions for x_te."""
    g = torch.Generator().manual_seed(cfg.seed)
    mu, sd = x_tr.mean(0), x_tr.std(0) + 1e-6
    xt = torch.as_tensor((x_tr - mu) / sd, dtype=torch.float32)
    yt = torch.as_tensor(y_tr, dtype=torch.float32)
    torch.manual_seed(cfg.seed)
    net = nn.Sequential(
        nn.Linear(xt.shape[1], cfg.mlp_hidden), nn.SiLU(), nn.Linear(cfg.mlp_hidden, yt.shape[1])
    )
    opt = torch.optim.Adam(net.parameters(), lr=cfg.mlp_lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, cfg.mlp_epochs)
    for _ in range(cfg.mlp_epochs):
        for idx in torch.randperm(len(xt), generator=g).split(256):
            loss = nn.functional.mse_loss(net(xt[idx]), yt[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
        sched.step()
    with torch.no_grad():
        return net(torch.as_tensor((x_te - mu) / sd, dtype=torch.float32)).numpy()


def score(y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, float]:
    """MSE (mean over frames and components), its std over frames, and mean Pearson r."""
    per_frame = np.square(y_pred - y_true).mean(axis=1)  # (N,)
    rs = [stats.pearsonr(y_pred[:, j], y_true[:, j])[0] for j in range(y_true.shape[1])]
    return {
        "mse": float(per_frame.mean()),
        "mse_std": float(per_frame.std()),
        "r": float(np.mean(rs)),
    }


def _sample_frames(data, cfg: ProbeConfig) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Row indices of the train and test frames (split by episode) and the episode of each row."""
    rng = np.random.default_rng(cfg.seed)
    n_ep = data.num_episodes
    if n_ep < 2:
        raise ValueError(f"probing needs >= 2 episodes (train/test split), the file has {n_ep}")
    perm = rng.permutation(n_ep)
    n_test = min(n_ep - 1, max(1, round(cfg.test_fraction * n_ep)))
    test_eps = np.zeros(n_ep, bool)
    test_eps[perm[:n_test]] = True
    episode_of_row = np.repeat(np.arange(n_ep), data.ep_len)  # (rows,)
    rows = rng.choice(len(episode_of_row), min(cfg.max_frames, len(episode_of_row)), replace=False)
    rows.sort()
    is_test = test_eps[episode_of_row[rows]]
    return rows[~is_test], rows[is_test], episode_of_row


def probe_model(model, data, env: str, cfg: ProbeConfig, progress: bool | None = False) -> dict:
    """Fit and score linear + MLP probes for every quantity of ``env`` on ``model``'s features."""
    if not data.has("state"):
        raise ValueError(f"{data.path} has no 'state' column: probing needs ground-truth states")
    tr, te, _ = _sample_frames(data, cfg)
    if len(tr) < 10 or len(te) < 10:
        raise ValueError("too few frames on one side of the episode split: raise max_frames")
    state = np.asarray(data.column("state"), np.float64)
    rows = np.concatenate([tr, te])
    feats = embed_frames(
        model, data.rows("pixels", rows), cfg.batch_size, cfg.features, progress=progress
    )
    f_tr, f_te = feats[: len(tr)], feats[len(tr) :]
    if not np.isfinite(feats).all():
        raise ValueError("the model produced non-finite latents: is the checkpoint corrupt?")
    result = {}
    named = quantities(env, state.shape[1])
    bar = progress_bar(len(named), "probes", progress, unit="quantity")
    for name, fn in named.items():
        y_tr, y_te = fn(state[tr]), fn(state[te])
        m, s = y_tr.mean(0), y_tr.std(0) + 1e-9
        y_tr, y_te = (y_tr - m) / s, (y_te - m) / s  # standardised on the training half
        lin = fit_linear(f_tr, y_tr, f_te, cfg.ridge)
        mlp = fit_mlp(f_tr, y_tr, f_te, cfg)
        result[name] = {
            "linear": score(y_te, lin),
            "mlp": score(y_te, mlp),
            "_pred": {"true": y_te, "linear": lin, "mlp": mlp},
        }
        bar.update(1)
    bar.close()
    return result


def random_init_like(model, seed: int = 0):
    """A freshly initialised model of the same kind and config (the probing floor)."""
    torch.manual_seed(seed)
    return build_model(model.config).eval().to(model_device(model))


def run_probe(
    model, data, env: str, cfg: ProbeConfig | None = None, progress: bool | None = False
) -> dict:
    """Probes on ``model`` and on a random-init twin; returns the JSON-ready report."""
    cfg = cfg or ProbeConfig()
    trained = probe_model(model.eval(), data, env, cfg, progress)
    floor = probe_model(random_init_like(model, cfg.seed), data, env, cfg, progress)
    kind = getattr(getattr(model, "config", None), "kind", "lewm")
    return {
        "env": env,
        "kind": kind,
        "config": asdict(cfg),
        "trained": trained,
        "random_init": floor,
    }


def _strip(d: dict) -> dict:
    return {k: {kk: vv for kk, vv in v.items() if kk != "_pred"} for k, v in d.items()}


def markdown_table(report: dict) -> str:
    lines = [
        "| quantity | model | linear MSE | linear r | MLP MSE | MLP r |",
        "|---|---|---|---|---|---|",
    ]
    kind = report.get("kind", "lewm")
    ours = "LeWM (ours)" if kind == "lewm" else f"{kind} (ours)"
    for name in report["trained"]:
        for label, key in ((ours, "trained"), ("random init", "random_init")):
            q = report[key][name]
            lin, mlp = q["linear"], q["mlp"]
            lines.append(
                f"| {name} | {label} | {lin['mse']:.3f} ± {lin['mse_std']:.3f} | {lin['r']:.3f} "
                f"| {mlp['mse']:.3f} ± {mlp['mse_std']:.3f} | {mlp['r']:.3f} |"
            )
    return "\n".join(lines)


def write_probe_report(report: dict, out_dir: str | os.PathLike) -> dict[str, Path]:
    """probe.json, probe.md and probe_scatter.png (predicted vs true, held-out frames)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from lewm.utils.io import write_json

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    clean = {
        **report,
        "trained": _strip(report["trained"]),
        "random_init": _strip(report["random_init"]),
    }
    write_json(out / "probe.json", clean)
    (out / "probe.md").write_text(markdown_table(report) + "\n")
    panels = [
        (n, j) for n, q in report["trained"].items() for j in range(q["_pred"]["true"].shape[1])
    ]
    fig, axes = plt.subplots(1, len(panels), figsize=(3.2 * len(panels), 3.2), squeeze=False)
    for ax, (name, j) in zip(axes[0], panels, strict=True):
        p = report["trained"][name]["_pred"]
        for kind, colour in (("linear", "tab:blue"), ("mlp", "tab:orange")):
            ax.scatter(p["true"][:, j], p[kind][:, j], s=2, alpha=0.3, c=colour, label=kind)
        lim = [p["true"][:, j].min(), p["true"][:, j].max()]
        ax.plot(lim, lim, "k--", lw=0.8)
        ax.set_title(f"{name}[{j}]")
        ax.set_xlabel("true (standardised)")
        ax.set_ylabel("predicted")
    axes[0][0].legend(markerscale=4)
    fig.tight_layout()
    fig.savefig(out / "probe_scatter.png", dpi=100)
    plt.close(fig)
    return {"json": out / "probe.json", "md": out / "probe.md", "png": out / "probe_scatter.png"}
