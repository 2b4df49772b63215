"""Training on a file larger than the memory it may use: memory stays flat, the loader keeps up.

    python benchmarks/speed/stream_memory.py --out runs/stream --gib 5 --cap-gib 3
    python benchmarks/speed/stream_memory.py --out /tmp/s --gib 0.05 --cap-gib 2 --res 32 \\
        --preset tiny --steps 4 --batch 8                              # smoke run, ~30 s

Writes an *uncompressed* episode file of ``--gib`` GiB of frames (a moving square on noise, so
neither the disk nor the page cache gets a free ride from compression), then trains on it with
``lewm train`` inside a memory cgroup of ``--cap-gib`` GiB (cgroup v1 or v2; needs the right to
create one, e.g. root in a container; otherwise ``--cap-gib`` becomes an address-space limit,
``ulimit -v``) once per ``--modes`` entry (default ``auto,memory``: auto must choose to stream;
memory must refuse with one clear error rather than be killed). Every ``--every`` seconds it
samples the resident memory of the trainer and of its loader processes. Prints one JSON line
per mode and a markdown table.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from lewm.data.hdf5 import EpisodeWriter


def write_file(path: Path, gib: float, res: int, length: int = 200, seed: int = 0) -> dict:
    frame = res * res * 3
    episodes = max(2, int(round(gib * 2**30 / frame / length)))
    rng = np.random.default_rng(seed)
    t = time.perf_counter()
    with EpisodeWriter(path, attrs={"env": "noise-square"}, compression=None) as w:
        for _ in range(episodes):
            act = rng.uniform(-1, 1, (length, 2)).astype(np.float32)
            pos = np.clip(0.5 + np.cumsum(0.03 * act, axis=0), 0, 1)
            px = rng.integers(0, 40, (length, res, res, 3), dtype=np.uint8)
            s = max(2, res // 8)
            xy = np.round(pos * (res - s)).astype(int)
            for k, (x, y) in enumerate(xy):
                px[k, y : y + s, x : x + s] = (255, 200, 50)
            act[-1] = np.nan
            w.add_episode(pixels=px, action=act, state=pos.astype(np.float32))
    return {
        "episodes": episodes,
        "frames": episodes * length,
        "pixel_gib": round(episodes * length * frame / 2**30, 2),
        "file_gib": round(path.stat().st_size / 2**30, 2),
        "write_s": round(time.perf_counter() - t, 1),
    }


def _cgroup(cap: int) -> Path | None:
    """A fresh memory cgroup limited to ``cap`` bytes, or None when none can be made."""
    name = f"lewm_stream_{os.getpid()}"
    for base, limit in (
        (Path("/sys/fs/cgroup/memory"), "memory.limit_in_bytes"),  # v1
        (Path("/sys/fs/cgroup"), "memory.max"),  # v2
    ):
        if not (base / limit).exists() and not (base / "cgroup.controllers").exists():
            continue
        try:
            cg = base / name
            cg.mkdir(exist_ok=True)
            (cg / limit).write_text(str(cap))
            return cg
        except OSError:
            continue
    return None


def rss(pid: int) -> int:
    """Resident bytes of process ``pid`` (0 once it is gone)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError):
        pass
    return 0


def children(pid: int) -> list[int]:
    """Every descendant of process ``pid`` (loader processes, their children)."""
    try:
        kids = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        return []
    out = [int(k) for k in kids]
    for k in list(out):
        out += children(k)
    return out


def run_mode(args: argparse.Namespace, data: Path, mode: str, cap: int) -> dict:
    out = Path(args.out) / f"run_{mode}"
    cmd = [
        sys.executable, "-m", "lewm.cli.main", "train", "--data", str(data), "--out", str(out),
        "--overwrite", "--no-progress", "--preset", args.preset,
        f"train.steps={args.steps}", f"train.batch_size={args.batch}", "train.val_every=0",
        "train.ckpt_every=0", "train.log_every=1", f"data.mode={mode}",
        f"model.encoder.image_size={args.res}", *args.overrides,
    ]  # fmt: skip
    cg = _cgroup(cap)

    def enter_limit() -> None:
        if cg is not None:
            (cg / "cgroup.procs").write_text(str(os.getpid()))
        else:
            import resource

            resource.setrlimit(resource.RLIMIT_AS, (cap, cap))

    t0 = time.perf_counter()
    proc = subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, preexec_fn=enter_limit
    )
    samples = []
    while proc.poll() is None:
        kids = children(proc.pid)
        main_rss = rss(proc.pid)
        if main_rss:  # 0: the process has just exited
            samples.append((round(time.perf_counter() - t0, 1), main_rss, sum(map(rss, kids))))
        time.sleep(args.every)
    stdout, stderr = proc.communicate()
    wall = time.perf_counter() - t0
    if cg is not None:
        for _ in range(20):
            try:
                cg.rmdir()
                break
            except OSError:
                time.sleep(0.2)
    rec: dict = {
        "mode": mode,
        "limit": f"cgroup {cap / 2**30:.1f} GiB" if cg else f"ulimit -v {cap / 2**30:.1f} GiB",
        "rc": proc.returncode,
        "wall_s": round(wall, 1),
        "stderr_tail": stderr.strip().splitlines()[-3:],
    }
    if samples:
        main = [s[1] for s in samples]
        total = [s[1] + s[2] for s in samples]
        steady = total[len(total) // 3 :] or total
        rec.update(
            {
                "trainer_rss_max_gib": round(max(main) / 2**30, 3),
                "with_loaders_rss_max_gib": round(max(total) / 2**30, 3),
                "rss_first_third_end_gib": round(steady[0] / 2**30, 3),
                "rss_last_gib": round(steady[-1] / 2**30, 3),
                "samples": len(samples),
            }
        )
    metrics = out / "metrics.jsonl"
    if proc.returncode == 0 and metrics.exists():
        rows = [json.loads(x) for x in metrics.read_text().splitlines()]
        rows = [r for r in rows if "train/data_wait" in r][1:]  # the first step starts workers
        if rows:
            waits = [r["train/data_wait"] for r in rows]
            rec["data_wait_median"] = round(float(np.median(waits)), 4)
            rec["data_wait_max"] = round(float(max(waits)), 4)
            rec["clips_per_s"] = round(
                float(np.median([r["train/samples_per_s"] for r in rows])), 2
            )
            rec["s_per_step"] = round(args.batch / rec["clips_per_s"], 3)
    return rec


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--out", required=True)
    p.add_argument("--gib", type=float, default=5.0, help="uncompressed frames in the file")
    p.add_argument("--cap-gib", type=float, default=3.0, help="memory the training may use")
    p.add_argument("--res", type=int, default=224)
    p.add_argument("--preset", default="paper")
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--modes", default="auto,memory")
    p.add_argument("--every", type=float, default=0.5, help="seconds between memory samples")
    p.add_argument("overrides", nargs="*", help="more lewm train overrides")
    args = p.parse_args()
    root = Path(args.out)
    root.mkdir(parents=True, exist_ok=True)
    data = root / f"noise_{args.res}px_{args.gib:g}gib.h5"
    made = write_file(data, args.gib, args.res) if not data.exists() else None
    print(json.dumps({"data": str(data), "written": made}))
    rows = []
    for mode in args.modes.split(","):
        rec = run_mode(args, data, mode, int(args.cap_gib * 2**30))
        print(json.dumps(rec))
        rows.append(rec)
    head = ["mode", "limit", "exit", "trainer RSS max", "+ loaders", "RSS 1/3 -> end"]
    print("\n| " + " | ".join([*head, "data wait", "clips/s"]) + " |")
    print("|" + "---|" * (len(head) + 2))
    for r in rows:
        cells = [
            r["mode"],
            r["limit"],
            r["rc"],
            f"{r.get('trainer_rss_max_gib', '-')} GiB",
            f"{r.get('with_loaders_rss_max_gib', '-')} GiB",
            f"{r.get('rss_first_third_end_gib', '-')} -> {r.get('rss_last_gib', '-')} GiB",
            r.get("data_wait_median", "-"),
            r.get("clips_per_s", "-"),
        ]
        print("| " + " | ".join(map(str, cells)) + " |")


if __name__ == "__main__":
    main()
