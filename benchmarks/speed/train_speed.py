"""Training throughput (clips/s) of a preset on this machine, with random uint8 clips.

    python benchmarks/speed/train_speed.py --preset cpu --batch 128 --precision bf16
    python benchmarks/speed/train_speed.py --preset paper --batch 16 --steps 3
    python benchmarks/speed/train_speed.py --preset tiny --batch 8 --steps 1     # smoke run
    python benchmarks/speed/train_speed.py --preset paper --device cuda --precision bf16

Model and objective come from the world-model registry (``model.kind``, as ``lewm train``). One
warm-up step, then the median of ``--steps`` timed optimizer steps (forward, objective, backward,
gradient clipping at ``train.grad_clip``, AdamW; on CUDA synchronised, with the peak memory).
Prints one JSON line; ``--out`` appends it to a JSONL file. benchmarks/gpu/check.py calls
:func:`time_train_steps`.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time

import torch

from lewm.config import PRESETS, Config, apply_overrides, preset
from lewm.models import build_model, build_objective
from lewm.training.trainer import make_optimizer


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_train_steps(
    cfg: Config,
    batch: int,
    steps: int,
    precision: str = "fp32",
    device: str | torch.device = "cpu",
    warmup: int = 1,
    budget_s: float | None = None,
) -> dict:
    """Time optimizer steps of ``cfg``'s model on random uint8 clips of ``batch``, as
    ``lewm train`` runs them (forward and objective under autocast, backward, gradient clipping
    at ``train.grad_clip``, AdamW). ``warmup`` untimed steps, then up to ``steps`` timed ones;
    with ``budget_s`` the timed loop stops once that many seconds (warm-up included) are spent,
    after at least one timed step. Returns s_per_step (median), clips_per_s, the steps timed,
    the last loss and, on CUDA, the peak memory allocated."""
    dev = torch.device(device)
    tc = cfg.train
    model = build_model(cfg.model).to(dev).train()
    objective = build_objective(cfg.model, tc).to(dev)
    opt = make_optimizer(model.parameters(), tc, dev)  # the trainer's (fused AdamW)
    s, N = model.image_size, model.history
    px = torch.randint(0, 256, (batch, N + 1, s, s, 3), dtype=torch.uint8, device=dev)
    blocks = torch.randn(batch, N, model.action_block_dim, device=dev)  # (B, N, Ab)
    amp = precision == "bf16"
    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats(dev)
    t0 = time.perf_counter()
    times: list[float] = []
    loss_value = float("nan")
    for i in range(warmup + steps):
        _sync(dev)
        t = time.perf_counter()
        with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=amp):
            loss = objective(**model(px, blocks))["loss"]
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), tc.grad_clip)
        opt.step()
        loss_value = loss.item()  # a device sync, as the trainer's logging does
        _sync(dev)
        if i >= warmup:
            times.append(time.perf_counter() - t)
            if budget_s is not None and time.perf_counter() - t0 > budget_s:
                break
    step = statistics.median(times)
    rec = {
        "params": sum(q.numel() for q in model.parameters()),
        "image": s,
        "frames_per_clip": N + 1,
        "batch": batch,
        "precision": precision,
        "device": str(dev),
        "warmup_steps": warmup,
        "timed_steps": len(times),
        "s_per_step": round(step, 4),
        "clips_per_s": round(batch / step, 1),
        "loss": loss_value,
    }
    if dev.type == "cuda":
        rec["peak_mem_gib"] = round(torch.cuda.max_memory_allocated(dev) / 2**30, 2)
    return rec


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--preset", default="cpu", choices=list(PRESETS))
    p.add_argument("--batch", type=int, default=128, help="clips per step")
    p.add_argument("--steps", type=int, default=5, help="timed steps (after one warm-up)")
    p.add_argument("--precision", choices=["fp32", "bf16"], default="fp32")
    p.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1, ...")
    p.add_argument("--threads", type=int, default=0)
    p.add_argument("--out", default=None, help="append the JSON record to this file")
    p.add_argument("overrides", nargs="*", help="config overrides, e.g. model.predictor.depth=4")
    a = p.parse_args()
    if a.threads:
        torch.set_num_threads(a.threads)
    cfg = apply_overrides(preset(a.preset), a.overrides)
    timed = time_train_steps(cfg, a.batch, a.steps, a.precision, a.device)
    rec = {
        "bench": "train_speed",
        "preset": a.preset,
        "overrides": a.overrides,
        "kind": cfg.model.kind,
        **{k: timed[k] for k in ("params", "image", "frames_per_clip", "batch", "precision")},
        "device": timed["device"],
        "threads": torch.get_num_threads(),
        "s_per_step": timed["s_per_step"],
        "clips_per_s": timed["clips_per_s"],
        **({"peak_mem_gib": timed["peak_mem_gib"]} if "peak_mem_gib" in timed else {}),
        "machine": f"{platform.processor() or platform.machine()} x{torch.get_num_threads()}",
        "torch": torch.__version__,
        "date": time.strftime("%Y-%m-%d"),
    }
    print(json.dumps(rec))
    if a.out:
        with open(a.out, "a") as f:
            f.write(json.dumps(rec) + "\n")


if __name__ == "__main__":
    main()
