"""Training throughput, lewm beside the authors' LeWM, same model, same data, same machine.

    python benchmarks/comparison/train_throughput.py --peer-python /work/peer-venv/bin/python \\
        --data runs/pusht/data_2k_x03.h5 --data-paper runs/tp/pusht_224.h5 --out runs/tp

Two configurations, each trained by both for a few steps, one after the other (never at the same
time): ``small`` (the issue-16 control: a 6-layer ViT of width 96 at 64 px with the pusht-cpu
predictor, 1,935,630 parameters in both) and ``paper`` (ViT-tiny/14 at 224 px, 18,034,478
parameters). The peer is ``benchmarks/comparison/peer_train.py``: their modules built from their
Hydra config, their HDF5 loader (every column cached in RAM), their z-scoring, their
``lejepa_forward`` loss, AdamW, in a plain loop (their Lightning trainer needs a CUDA
torchvision; without Lightning's per-step overhead the peer can only look faster). lewm is
``lewm train`` with the same model. Step time = the median wall time of the steps after
``--skip`` warm-up steps, data included; clips/s = batch / step time. Both use the machine's
default torch threads unless ``--threads``, and the same precision (``--precisions``: fp32, and
bf16 autocast, which their config trains in and lewm's ``train.precision=auto`` picks on CPUs
with AVX512-BF16 or AMX).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
SMALL_VIT = [
    "model.encoder.kind=vit", "model.encoder.image_size=64", "model.encoder.patch_size=8",
    "model.encoder.width=96", "model.encoder.depth=6", "model.encoder.heads=3",
    "model.encoder.mlp_dim=384",
]  # fmt: skip
CONFIGS = {
    # name: (lewm preset + overrides, peer_train.py arguments, batch)
    "small": (["--preset", "pusht-cpu", *SMALL_VIT], [], 64),
    "paper": (
        ["--preset", "paper"],
        [
            "--image-size", "224", "--patch", "14", "--vit-width", "192", "--vit-depth", "12",
            "--vit-heads", "3", "--latent", "192", "--proj-hidden", "2048",
            "--action-hidden", "768", "--pred-depth", "6", "--pred-heads", "16",
            "--pred-head-dim", "64", "--pred-mlp", "2048", "--dropout", "0.1",
            "--sigreg-proj", "1024",
        ],
        16,
    ),
}  # fmt: skip


def _run(cmd: list[str], env: dict[str, str], log: Path) -> float:
    t = time.perf_counter()
    with open(log, "w") as f:
        proc = subprocess.run(cmd, stdout=f, stderr=subprocess.STDOUT, env=env, cwd=ROOT)
    if proc.returncode:
        raise SystemExit(f"{' '.join(cmd[:4])} ... failed ({proc.returncode}); see {log}")
    return time.perf_counter() - t


def peer(a: argparse.Namespace, name: str, data: str, steps: int, env: dict, prec: str) -> dict:
    _, peer_args, batch = CONFIGS[name]
    out = Path(a.out) / f"peer_{name}_{prec}"
    if out.exists():
        import shutil

        shutil.rmtree(out)
    cmd = [
        a.peer_python, "benchmarks/comparison/peer_train.py", data, str(out),
        "--steps", str(steps), "--batch", str(batch), "--log-every", "1000000",
        "--precision", prec, *peer_args,
    ]  # fmt: skip
    if a.threads:
        cmd += ["--threads", str(a.threads)]
    wall = _run(cmd, env, Path(a.out) / f"peer_{name}_{prec}.log")
    summary = json.loads((out / "summary.json").read_text())
    step_s = float(np.median(summary["step_seconds"][a.skip :]))
    return {
        "who": "authors (peer_train.py)",
        "params": summary["params"],
        "batch": batch,
        "s_per_step": round(step_s, 4),
        "clips_per_s": round(batch / step_s, 2),
        "load_s": summary["load_seconds"],
        "wall_s": round(wall, 1),
    }


def ours(a: argparse.Namespace, name: str, data: str, steps: int, env: dict, prec: str) -> dict:
    lewm_args, _, batch = CONFIGS[name]
    out = Path(a.out) / f"lewm_{name}_{prec}"
    cmd = [
        sys.executable, "-m", "lewm.cli.main", "train", "--data", data, "--out", str(out),
        "--overwrite", "--no-progress", *lewm_args, f"train.steps={steps}",
        f"train.batch_size={batch}", "train.log_every=1", "train.val_every=0",
        "train.ckpt_every=0", "train.val_fraction=0.1", f"train.precision={prec}",
    ]  # fmt: skip
    if a.threads:
        cmd.append(f"train.num_threads={a.threads}")
    wall = _run(cmd, env, Path(a.out) / f"lewm_{name}_{prec}.log")
    rows = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    rows = [r for r in rows if "train/samples_per_s" in r][a.skip :]
    step_s = float(np.median([batch / r["train/samples_per_s"] for r in rows]))
    info = json.loads(
        subprocess.run(
            [sys.executable, "-m", "lewm.cli.main", "info", str(out / "model")],
            capture_output=True,
            text=True,
            env=env,
            cwd=ROOT,
        ).stdout
    )
    return {
        "who": "lewm",
        "params": info["parameters"]["total"],
        "batch": batch,
        "s_per_step": round(step_s, 4),
        "clips_per_s": round(batch / step_s, 2),
        "data_wait": round(float(np.median([r["train/data_wait"] for r in rows])), 4),
        "wall_s": round(wall, 1),
    }


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--peer-python", required=True, help="python of the authors' venv")
    p.add_argument("--data", required=True, help="64-px episode file (small)")
    p.add_argument("--data-paper", help="224-px episode file (paper); none: skip the paper rows")
    p.add_argument("--out", required=True)
    p.add_argument("--steps", type=int, default=40)
    p.add_argument("--paper-steps", type=int, default=8)
    p.add_argument("--skip", type=int, default=3, help="warm-up steps left out of the median")
    p.add_argument("--threads", type=int, default=0)
    p.add_argument("--configs", default="small,paper")
    p.add_argument("--precisions", default="fp32,bf16")
    a = p.parse_args()
    Path(a.out).mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    results = []
    precs = [x for x in a.precisions.split(",") if x]
    for name in a.configs.split(","):
        data, steps = (a.data, a.steps) if name == "small" else (a.data_paper, a.paper_steps)
        if data is None:
            continue
        for prec in precs:
            for fn in (peer, ours):
                rec = {"config": name, "precision": prec, **fn(a, name, data, steps, env, prec)}
                print(json.dumps(rec), flush=True)
                results.append(rec)
    flags = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    meta = {
        "machine": platform.processor() or platform.machine(),
        "avx512_bf16": "avx512_bf16" in flags,
        "cpus": os.cpu_count(),
        "date": time.strftime("%Y-%m-%d"),
        "threads": a.threads or "default",
    }
    (Path(a.out) / "throughput.json").write_text(
        json.dumps({"meta": meta, "results": results}, indent=2)
    )
    print("\n| config | precision | who | params | batch | s/step | clips/s | lewm ÷ authors |")
    print("|---|---|---|---|---|---|---|---|")
    for name in a.configs.split(","):
        for prec in precs:
            rows = [r for r in results if r["config"] == name and r["precision"] == prec]
            if len(rows) != 2:
                continue
            ratio = rows[1]["clips_per_s"] / rows[0]["clips_per_s"]
            for r in rows:
                mark = f"**{ratio:.2f}×**" if r["who"] == "lewm" else ""
                print(
                    f"| {name} | {prec} | {r['who']} | {r['params']:,} | {r['batch']} | "
                    f"{r['s_per_step']} | {r['clips_per_s']} | {mark} |"
                )


if __name__ == "__main__":
    main()
