"""Train the paper authors' LeWM (stable-worldmodel 0.1.1: their modules, built from a Hydra config
with ``hydra.utils.instantiate``, their ``SIGReg``, their HDF5 loader and z-score scaler, their
training forward) in a minimal loop, for a control against lewm's trainer. Runs with the python of
the authors' virtual environment ($PEER_PYTHON with hydra-core; see benchmarks/README.md).

    $PEER_PYTHON benchmarks/comparison/peer_train.py DATA.h5 OUT_DIR --steps 1500 \\
        --lr 1e-3 --warmup-frac 0.01 --batch 64 --seed 0
    lewm import OUT_DIR/model --out OUT_DIR/lewm --data DATA.h5   # then lewm probe, ...

Their own trainer (``scripts/train/lewm.py``) needs Lightning and stable-pretraining, which pull a
CUDA torch build; this loop does what it does per step, and nothing else:
  * data: ``HDF5Dataset(frameskip=5, num_steps=4)`` windows (pixels strided by the frameskip,
    actions reshaped into 4 blocks), pixels ``/255`` and ImageNet-normalised (their
    ``ToImage``; frames already at the model's size are not resized), actions z-scored with their
    ``ZScoreScaler`` fitted on the whole column (their ``column_normalizer``); clips split 90/10
    at random (their ``random_split``; only the 90 % are trained on), shuffled, batches drop the
    last partial one;
  * step: ``lejepa_forward`` (NaN actions -> 0, encode the 4 frames, predict from the first 3 with
    their actions, MSE to frames 2..4, + weight x ``SIGReg(emb.transpose(0, 1))``), AdamW,
    gradient norm clipped to 1.0 (their ``gradient_clip_val``), fp32 (``--precision bf16``: the
    forward and loss under bf16 autocast, as their config's bf16 training);
  * learning rate: lewm's schedule (linear warm-up then cosine to 0 over ``--schedule-steps``,
    default the run), so that both trainers see the same rates; ``--scheduler epoch`` instead
    steps LinearWarmupCosineAnnealing once per epoch, as their config's ``interval: epoch``
    reads.
The model (``--size``) is the small ViT of the control unless told otherwise. The trained model
is written with their ``save_pretrained`` (OUT/model: weights.pt + config.json), plus
OUT/metrics.jsonl.
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from peer_plan import import_peer  # noqa: E402
from upstream_reference import ensure_vit_factory  # noqa: E402

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def model_config(a: argparse.Namespace, action_in: int) -> dict:
    """The Hydra model config (their lewm.yaml's model section) at the control's sizes."""
    D = a.latent

    def mlp(d_in: int) -> dict:
        return {
            "_target_": "stable_worldmodel.wm.lewm.module.MLP",
            "input_dim": d_in,
            "output_dim": D,
            "hidden_dim": a.proj_hidden,
            "norm_fn": {"_target_": "torch.nn.BatchNorm1d", "_partial_": True},
        }

    return {
        "_target_": "stable_worldmodel.wm.lewm.LeWM",
        "encoder": {
            "_target_": "stable_pretraining.backbone.utils.vit_hf",
            "size": "tiny",
            "patch_size": a.patch,
            "image_size": a.image_size,
            "pretrained": False,
            "use_mask_token": False,
            "hidden_size": a.vit_width,
            "num_hidden_layers": a.vit_depth,
            "num_attention_heads": a.vit_heads,
            "intermediate_size": 4 * a.vit_width,
        },
        "predictor": {
            "_target_": "stable_worldmodel.wm.lewm.module.Predictor",
            "num_frames": 3,
            "input_dim": D,
            "hidden_dim": D,
            "output_dim": D,
            "depth": a.pred_depth,
            "heads": a.pred_heads,
            "mlp_dim": a.pred_mlp,
            "dim_head": a.pred_head_dim,
            "dropout": a.dropout,
            "emb_dropout": 0.0,
        },
        "action_encoder": {
            "_target_": "stable_worldmodel.wm.lewm.module.Embedder",
            "input_dim": action_in,
            "emb_dim": D,
            "mlp_scale": a.action_hidden // D,
        },
        "projector": mlp(a.vit_width),
        "pred_proj": mlp(D),
    }


def lr_factor(step: int, total: int, warmup_frac: float, horizon: int) -> float:
    """lewm's schedule (lewm.training.trainer.lr_lambda), written out for this venv."""
    horizon = horizon or total
    warmup = max(1, int(round(warmup_frac * horizon))) if warmup_frac > 0 else 0
    if step < warmup:
        return (step + 1) / warmup
    progress = (step - warmup) / max(1, horizon - warmup)
    return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("data")
    p.add_argument("out")
    p.add_argument("--steps", type=int, default=1500)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--weight-decay", type=float, default=1e-3)
    p.add_argument("--warmup-frac", type=float, default=0.01)
    p.add_argument("--schedule-steps", type=int, default=0, help="cosine horizon (0: the run)")
    p.add_argument("--sigreg-weight", type=float, default=0.09)
    p.add_argument("--sigreg-proj", type=int, default=256)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=0)
    p.add_argument(
        "--precision",
        default="fp32",
        choices=["fp32", "bf16"],
        help="bf16: forward and loss under bf16 autocast (their config trains in bf16)",
    )
    p.add_argument("--log-every", type=int, default=50)
    # the control's model: lewm's pusht-cpu predictor/latent with a small ViT at 64 px
    p.add_argument("--image-size", type=int, default=64)
    p.add_argument("--patch", type=int, default=8)
    p.add_argument("--vit-width", type=int, default=96)
    p.add_argument("--vit-depth", type=int, default=6)
    p.add_argument("--vit-heads", type=int, default=3)
    p.add_argument("--latent", type=int, default=64)
    p.add_argument("--proj-hidden", type=int, default=256)
    p.add_argument("--action-hidden", type=int, default=128)
    p.add_argument("--pred-depth", type=int, default=4)
    p.add_argument("--pred-heads", type=int, default=8)
    p.add_argument("--pred-head-dim", type=int, default=64)
    p.add_argument("--pred-mlp", type=int, default=1024)
    p.add_argument("--dropout", type=float, default=0.0)
    a = p.parse_args()
    if a.threads:
        torch.set_num_threads(a.threads)
    out = Path(a.out)
    if out.exists():
        raise SystemExit(f"{out} already exists")
    import_peer()
    ensure_vit_factory()
    from hydra.utils import instantiate
    from omegaconf import OmegaConf
    from stable_worldmodel.data.formats.hdf5 import HDF5Dataset
    from stable_worldmodel.data.normalization import ZScoreScaler
    from stable_worldmodel.wm.loss import SIGReg
    from stable_worldmodel.wm.utils import save_pretrained

    torch.manual_seed(a.seed)
    t0 = time.perf_counter()
    ds = HDF5Dataset(
        path=a.data,
        frameskip=5,
        num_steps=4,
        keys_to_load=["pixels", "action"],
        keys_to_cache=["pixels", "action"],
    )
    scaler = ZScoreScaler().fit(ds.get_col_data("action"))
    action_in = 5 * ds.get_dim("action")
    g = torch.Generator().manual_seed(a.seed)
    perm = torch.randperm(len(ds), generator=g).numpy()
    train_idx = perm[: int(round(0.9 * len(ds)))]
    load_s = time.perf_counter() - t0

    cfg = model_config(a, action_in)
    model = instantiate(cfg)
    sigreg = SIGReg(knots=17, num_proj=a.sigreg_proj)
    opt = torch.optim.AdamW(model.parameters(), lr=a.lr, weight_decay=a.weight_decay)
    mean = torch.tensor(IMAGENET_MEAN).view(1, 1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(1, 1, 3, 1, 1)
    steps_per_epoch = len(train_idx) // a.batch
    order, pos = np.random.default_rng(a.seed).permutation(train_idx), 0
    out.mkdir(parents=True)
    log = (out / "metrics.jsonl").open("w")
    model.train()
    t1 = time.perf_counter()
    step_seconds = []  # wall time of each step, data included (throughput comparisons)
    for step in range(a.steps):
        t_step = time.perf_counter()
        if pos + a.batch > len(order):
            order, pos = np.random.default_rng(a.seed + step).permutation(train_idx), 0
        items = [ds[int(i)] for i in order[pos : pos + a.batch]]
        pos += a.batch
        px = torch.stack([it["pixels"] for it in items]).float().div_(255.0)  # (B, 4, 3, h, w)
        px = (px - mean) / std
        act = torch.stack([it["action"] for it in items]).float()  # (B, 4, 5*A)
        B = act.shape[0]
        act = scaler.transform(act.reshape(B, -1, ds.get_dim("action"))).reshape(B, 4, -1)
        act = torch.nan_to_num(act, 0.0)
        for group in opt.param_groups:
            group["lr"] = a.lr * lr_factor(step, a.steps, a.warmup_frac, a.schedule_steps)
        batch = {"pixels": px, "action": act}
        # Lightning's "bf16-mixed" (their config's precision): the forward and the loss under
        # bf16 autocast, fp32 weights and optimizer
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=a.precision == "bf16"):
            output = model.encode(batch)  # their lejepa_forward, ctx 3, one prediction
            emb, act_emb = output["emb"], output["act_emb"]
            pred = model.predict(emb[:, :3], act_emb[:, :3])
            pred_loss = (pred - emb[:, 1:]).pow(2).mean()
            sig = sigreg(emb.transpose(0, 1))
            loss = pred_loss + a.sigreg_weight * sig
        opt.zero_grad(set_to_none=True)
        loss.backward()
        gn = torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        step_seconds.append(time.perf_counter() - t_step)
        if step % a.log_every == 0 or step == a.steps - 1:
            rec = {
                "step": step + 1,
                "loss": float(loss),
                "pred_loss": float(pred_loss),
                "sigreg": float(sig),
                "grad_norm": float(gn),
                "lr": opt.param_groups[0]["lr"],
                "z_std": float(emb.detach().std(0).mean()),
            }
            log.write(json.dumps(rec) + "\n")
            log.flush()
    train_s = time.perf_counter() - t1
    model.eval()
    with tempfile.TemporaryDirectory() as tmp:
        save_pretrained(model, run_name="m", config=OmegaConf.create(cfg), cache_dir=tmp)
        shutil.copytree(Path(tmp) / "checkpoints" / "m", out / "model")
    summary = {
        "bench": "peer_train",
        "steps": a.steps,
        "epochs": round(a.steps / max(1, steps_per_epoch), 3),
        "windows": len(ds),
        "params": sum(p.numel() for p in model.parameters()),
        "load_seconds": round(load_s, 1),
        "train_seconds": round(train_s, 1),
        "step_seconds": [round(x, 4) for x in step_seconds],
        "final": rec,
        "args": vars(a),
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
