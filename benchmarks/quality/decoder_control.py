r"""Can the decoder draw what the latent lacks? A control for `lewm decoder`.

Trains the same decoder, with the same settings, on the same frames as `lewm decoder RUN`
(same seed, same episode split), but from the true state instead of the latent: the
environment's probe quantities (Push-T: agent xy, block xy, sin/cos of the block angle). If this
control draws the block's angle and the latent's decoder does not, the latent lacks it; if
neither does, the decoder is too weak to say. Prints both scores and writes `control.png`:
held-out frames, their decoded latents (RUN's decoder/), their decoded states.

    python benchmarks/quality/decoder_control.py RUN --out DIR [--steps 1000]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("run", help="run or checkpoint folder with a decoder/ (`lewm decoder RUN`)")
    p.add_argument("--out", required=True, help="folder for control.json and control.png")
    p.add_argument("--steps", type=int, default=None, help="decoder steps (default: RUN's)")
    p.add_argument("--show", type=int, default=8, help="held-out frames in the picture")
    a = p.parse_args()

    import imageio.v3 as iio

    from lewm.analysis.decoder import (
        DecoderTrainConfig,
        decoder_episodes,
        default_decoder_dir,
        fit_decoder,
        load_decoder,
        sample_rows,
    )
    from lewm.analysis.probe import quantities
    from lewm.data.config import DataConfig
    from lewm.models import load, resolve_checkpoint

    ckpt = resolve_checkpoint(a.run)
    model = load(ckpt)
    latent_decoder, record = load_decoder(default_decoder_dir(ckpt))
    tr = record["training"]
    cfg = DecoderTrainConfig(
        steps=a.steps or tr["steps"],
        batch_size=tr["batch_size"],
        lr=tr["lr"],
        l1_weight=tr["l1_weight"],
        frames=record["data"]["train_frames"],
        val_frames=record["data"]["val_frames"],
        seed=tr["seed"],
    )
    data = DataConfig.recorded(model.metadata).open(
        record["data"]["path"], in_memory=False, recorded=True
    )
    # the rows train_decoder drew: same generator, same calls
    rng = np.random.default_rng(cfg.seed)
    train_eps, val_eps, _ = decoder_episodes(model, data, cfg.seed)
    tr_rows = sample_rows(data, train_eps, cfg.frames, rng)
    va_rows = sample_rows(data, val_eps, cfg.val_frames, rng)
    env = record["data"]["env"] or model.metadata.get("env")
    qs = quantities(env, data.column("state").shape[1])

    def states(rows: np.ndarray) -> torch.Tensor:
        s = np.asarray(data.rows("state", rows), np.float64)
        return torch.as_tensor(np.concatenate([f(s) for f in qs.values()], 1), dtype=torch.float32)

    tr_px, va_px = data.rows("pixels", tr_rows), data.rows("pixels", va_rows)
    control, losses = fit_decoder(states(tr_rows), tr_px, states(va_rows), va_px, cfg)
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    report = {
        "env": env,
        "state_quantities": list(qs),
        "steps": cfg.steps,
        "from_state": losses,
        "from_latent": record["losses"],
    }
    (out / "control.json").write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))

    pick = np.linspace(0, len(va_rows) - 1, min(a.show, len(va_rows))).astype(int)
    with torch.no_grad():
        z = model.encode(torch.as_tensor(va_px[pick])[:, None])[:, 0]  # (k, D)
    rows = [va_px[pick], latent_decoder.frames(z), control.frames(states(va_rows[pick]))]
    gap = np.full((va_px.shape[1], 2, 3), 255, np.uint8)
    lines = [np.concatenate([c for f in r for c in (f, gap)][:-1], 1) for r in rows]
    sep = np.full((2, lines[0].shape[1], 3), 255, np.uint8)
    iio.imwrite(out / "control.png", np.concatenate([lines[0], sep, lines[1], sep, lines[2]], 0))
    print(f"{out / 'control.png'}: rows = held-out frames, decoded latents, decoded true states")


if __name__ == "__main__":
    main()
