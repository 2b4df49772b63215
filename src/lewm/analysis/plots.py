"""Plots people would rather look at than read: training curves from ``metrics.jsonl``."""

from __future__ import annotations

import json
import os
from pathlib import Path


def load_metrics(path: str | os.PathLike) -> list[dict]:
    return [json.loads(ln) for ln in Path(path).read_text().splitlines() if ln.strip()]


def plot_training_curves(metrics: str | os.PathLike, out_png: str | os.PathLike) -> Path:
    """Prediction loss, the regulariser, latent std and straightness (train and val) against
    step."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    recs = load_metrics(metrics)
    # the regulariser's panel: SIGReg (LeWM), or the VICReg variance term (PLDM, LeWM + VICReg)
    reg = ("sigreg", "SIGReg", True)
    if not any("train/sigreg" in r for r in recs) and any("train/variance" in r for r in recs):
        reg = ("variance", "variance hinge (VICReg)", False)
    panels = [
        ("pred_loss", "prediction loss (MSE)", True),
        reg,
        ("z_std", "latent per-dim std", False),
    ]
    if any("train/straightness" in r for r in recs):
        panels.append(("straightness", "temporal straightness (Eq. 9)", False))
    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 3.2))
    for ax, (key, title, log) in zip(axes, panels, strict=True):
        for split, style in (("train", "-"), ("val", "o-")):
            pts = [(r["step"], r[f"{split}/{key}"]) for r in recs if f"{split}/{key}" in r]
            if pts:
                xs, ys = zip(*pts, strict=True)
                ax.plot(xs, ys, style, label=split, ms=3)
        ax.set_title(title)
        ax.set_xlabel("step")
        if log:
            ax.set_yscale("log")
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    out_png = Path(out_png)
    fig.savefig(out_png, dpi=110)
    plt.close(fig)
    return out_png
