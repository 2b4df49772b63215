"""Does a training run survive SIGKILL at any moment, and does ``--resume`` finish it with the
exact weights of a run that was never interrupted?

The script trains a preset once without interruption (the reference) and once more as a
control (two uninterrupted runs must already agree bit for bit, or the comparison means
nothing). Then, K times, it starts the same training as a ``lewm train`` process, sends SIGKILL
at a seeded random moment, and runs ``lewm train --resume`` until the run finishes. Each
finished run's ``model/model.safetensors`` is compared tensor by tensor with the reference.

The kill moment is drawn relative to the run's progress, whatever its start-up took: wait for a
random checkpoint (or the start of training, when run.json appears), then a random part of the
time to the next one as measured in the reference (after the last checkpoint: the final phase,
validation and the ``model/`` folder). Checkpoints are written every ``--ckpt-every`` steps
(default 2), so a fair share of the kills lands while a checkpoint is being written; such a kill
is recognised by the temporary folders it leaves behind (``checkpoints/.step_*``).

    python benchmarks/quality/kill_resume.py --kills 13 --seed 0          # ~3-5 min on 2 cores
    python benchmarks/quality/kill_resume.py --kills 2 --steps 10         # smoke run, ~30 s
    python benchmarks/quality/kill_resume.py --data data/tworoom.h5 --preset tworoom-quick

Without ``--data`` a small Two-Room dataset is collected first. Prints one line per kill, a
markdown table of them and the summary row: kills, kills that landed mid-checkpoint-write,
resumes that worked, runs bit-identical to the reference (then the same as JSON).
"""

from __future__ import annotations

import argparse
import json
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

WEIGHTS = "model/model.safetensors"


def lewm(*args: str) -> list[str]:
    return [sys.executable, "-m", "lewm.cli.main", *args]


@dataclass
class Trial:
    index: int
    anchor: int  # the kill waited for this checkpoint step (0: the start of training) ...
    delay: float  # ... and then this many seconds
    killed: bool = False  # False: the run had finished before the signal
    step_at_kill: int | None = None  # newest complete checkpoint when killed
    temp_dirs: list[str] = field(default_factory=list)  # checkpoints/.step_* left by the kill
    other_temps: list[str] = field(default_factory=list)  # other lewm temporaries left
    resumes: int = 0  # `--resume` calls until the run finished
    resume_ok: bool = False  # a --resume call finished the run
    restarted: bool = False  # nothing to resume from: started over with --overwrite
    errors: list[str] = field(default_factory=list)  # last stderr line of failed calls
    identical: bool | None = None
    max_abs_diff: float | None = None
    temps_after: list[str] = field(default_factory=list)  # temporaries still there at the end


def train_args(a: argparse.Namespace, data: Path, out: Path) -> list[str]:
    return [
        "train",
        "--data",
        str(data),
        "--out",
        str(out),
        "--preset",
        a.preset,
        "--no-progress",
        f"train.steps={a.steps}",
        f"train.ckpt_every={a.ckpt_every}",
        f"train.keep_checkpoints={a.keep}",
        f"train.num_threads={a.threads}",
        *a.overrides,
    ]


def run(cmd: list[str], timeout: float) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)


def last_line(text: str) -> str:
    lines = [ln for ln in text.strip().splitlines() if ln.strip()]
    return lines[-1][:200] if lines else ""


def complete_steps(run_dir: Path) -> list[int]:
    """Steps of the checkpoints that hold weights and training state, oldest first."""
    ckpts = run_dir / "checkpoints"
    if not ckpts.is_dir():
        return []
    return sorted(
        int(c.name.split("_")[1])
        for c in ckpts.glob("step_*")
        if (c / "model.safetensors").exists() and (c / "training_state.pt").exists()
    )


def reached(run_dir: Path, anchor: int) -> bool:
    """Training started (anchor 0), or a complete checkpoint of step >= ``anchor`` exists."""
    if anchor == 0:
        return (run_dir / "run.json").exists()
    steps = complete_steps(run_dir)
    return bool(steps) and steps[-1] >= anchor


def wait_until(done: Callable[[], bool], proc: subprocess.Popen, timeout: float) -> bool:
    """Poll (1 ms) until ``done()``; False if the process ended or time ran out first."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if done():
            return True
        if proc.poll() is not None:
            return done()
        time.sleep(0.001)
    return False


def timeline(proc: subprocess.Popen, run_dir: Path, anchors: list[int], timeout: float) -> dict:
    """Seconds after launch at which training started (anchor 0) and each checkpoint of
    ``anchors`` appeared, and at which ``proc`` ended."""
    t0, seen = time.monotonic(), {}
    todo = [0, *anchors]
    while proc.poll() is None and time.monotonic() - t0 < timeout:
        while todo and reached(run_dir, todo[0]):
            seen[todo.pop(0)] = time.monotonic() - t0
        time.sleep(0.001)
    proc.wait(timeout=timeout)
    return {"marks": seen, "end": time.monotonic() - t0}


def temporaries(run_dir: Path) -> tuple[list[str], list[str]]:
    """(``checkpoints/.step_*`` entries, other hidden entries but the lock) in ``run_dir``."""
    ckpt = sorted(p.name for p in (run_dir / "checkpoints").glob(".step_*"))
    other = sorted(p.name for p in run_dir.glob(".*") if p.name != ".lock")
    return ckpt, other


def compare(a: Path, b: Path) -> tuple[bool, float]:
    """Whether two weight files hold the same tensors bit for bit; the largest difference."""
    import torch
    from safetensors.torch import load_file

    x, y = load_file(str(a)), load_file(str(b))
    if x.keys() != y.keys():
        return False, float("inf")
    same, worst = True, 0.0
    for k in x:
        if x[k].shape != y[k].shape or x[k].dtype != y[k].dtype:
            return False, float("inf")
        if not torch.equal(x[k], y[k]):
            same = False
            worst = max(worst, (x[k].double() - y[k].double()).abs().max().item())
    return same, worst


def kill_and_resume(a, data: Path, run_dir: Path, t: Trial, timeout: float) -> None:
    """Start the run, SIGKILL it at ``t``'s moment, resume until it finishes; fills ``t``."""
    proc = subprocess.Popen(
        lewm(*train_args(a, data, run_dir)), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    if wait_until(lambda: reached(run_dir, t.anchor), proc, timeout):
        time.sleep(t.delay)
    if proc.poll() is None:
        proc.send_signal(signal.SIGKILL)
        t.killed = True
    proc.wait()
    steps = complete_steps(run_dir)
    t.step_at_kill = steps[-1] if steps else None
    if run_dir.exists():
        t.temp_dirs, t.other_temps = temporaries(run_dir)
    for _ in range(3):  # resume until the run finishes
        t.resumes += 1
        r = run(lewm(*train_args(a, data, run_dir), "--resume"), timeout)
        if r.returncode == 0:
            t.resume_ok = True
            break
        t.errors.append(last_line(r.stderr))
        if "run.json" in r.stderr:  # killed before the run existed: nothing to resume
            r = run(lewm(*train_args(a, data, run_dir), "--overwrite"), timeout)
            t.restarted = r.returncode == 0
            if r.returncode:
                t.errors.append(last_line(r.stderr))
            break
    if (run_dir / WEIGHTS).exists():
        t.identical, t.max_abs_diff = compare(
            run_dir.parent / "reference" / WEIGHTS, run_dir / WEIGHTS
        )
        ckpt, other = temporaries(run_dir)
        t.temps_after = ckpt + other


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--kills", type=int, default=13, help="interrupted runs (default 13)")
    p.add_argument("--seed", type=int, default=0, help="seeds the kill moments")
    p.add_argument("--data", default=None, help="episode file (default: collect a small one)")
    p.add_argument("--preset", default="tiny", help="training preset (default tiny)")
    p.add_argument("--steps", type=int, default=60, help="train.steps (default 60)")
    p.add_argument("--ckpt-every", type=int, default=2, help="train.ckpt_every (default 2)")
    p.add_argument("--keep", type=int, default=2, help="train.keep_checkpoints (default 2)")
    p.add_argument("--threads", type=int, default=1, help="train.num_threads (default 1)")
    p.add_argument("--work", default=None, help="working folder (default: a temporary one)")
    p.add_argument("--keep-work", action="store_true", help="keep a temporary working folder")
    p.add_argument("--timeout", type=float, default=600, help="seconds per lewm call at most")
    p.add_argument("overrides", nargs="*", help="more config overrides for every run")
    a = p.parse_args()
    if a.kills < 1 or a.steps < 1 or a.ckpt_every < 1:
        p.error("--kills, --steps and --ckpt-every must be >= 1")

    work = Path(a.work or tempfile.mkdtemp(prefix="lewm_kill_resume_"))
    work.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(a.seed)
    t_start = time.time()
    trials: list[Trial] = []
    try:
        data = Path(a.data) if a.data else work / "data.h5"
        if not a.data:
            collect = ("collect", "tworoom", "--episodes", "40", "--resolution", "16")
            r = run(lewm(*collect, "--no-progress", "--out", str(data)), a.timeout)
            if r.returncode:
                sys.exit(f"collect failed: {last_line(r.stderr)}")

        # the reference, with the moments its training started and each checkpoint appeared
        ref = work / "reference"
        anchors = list(range(a.ckpt_every, a.steps + 1, a.ckpt_every))
        proc = subprocess.Popen(
            lewm(*train_args(a, data, ref)), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        tl = timeline(proc, ref, anchors, a.timeout)
        if proc.returncode or len(tl["marks"]) != len(anchors) + 1:
            sys.exit(f"reference run failed: {last_line(proc.stderr.read().decode())}")
        marks = [tl["marks"][s] for s in [0, *anchors]]
        # from each anchor to the next; after the last one, to the end of the process
        ends = [*marks[1:], tl["end"]]
        spans = {s: b - m for s, m, b in zip([0, *anchors], marks, ends, strict=True)}
        control = work / "control"
        r = run(lewm(*train_args(a, data, control)), a.timeout)
        if r.returncode:
            sys.exit(f"control run failed: {last_line(r.stderr)}")
        control_same, control_diff = compare(ref / WEIGHTS, control / WEIGHTS)
        shutil.rmtree(control)
        print(
            f"reference: {a.preset}, {a.steps} steps, checkpoint every {a.ckpt_every}; start-up "
            f"{marks[0]:.1f} s, training {marks[-1] - marks[0]:.2f} s, final phase "
            f"{tl['end'] - marks[-1]:.2f} s; a second uninterrupted run is bit-identical: "
            f"{control_same} (max |diff| {control_diff:.3g})\n",
            flush=True,
        )

        for i in range(a.kills):
            run_dir = work / f"run_{i:02d}"
            anchor = int(rng.choice([0, *anchors]))
            t = Trial(i, anchor, float(rng.uniform(0.0, 0.95 * spans[anchor])))
            kill_and_resume(a, data, run_dir, t, a.timeout)
            trials.append(t)
            print(
                f"kill {i:2d}: step {anchor} + {t.delay * 1000:3.0f} ms, killed {t.killed}, newest "
                f"checkpoint {t.step_at_kill}, temporaries {t.temp_dirs + t.other_temps}, resumed "
                f"{t.resume_ok} ({t.resumes} call(s)), bit-identical {t.identical}"
                + (f", errors {t.errors}" if t.errors else ""),
                flush=True,
            )
            shutil.rmtree(run_dir, ignore_errors=True)
    finally:
        if not a.keep_work and not a.work:
            shutil.rmtree(work, ignore_errors=True)

    print(
        "\n| kill | at | newest checkpoint | left `checkpoints/.step_*` | other temporaries "
        "| resume | bit-identical | max abs diff |\n|---|---|---|---|---|---|---|---|"
    )
    for t in trials:
        resume = "ok" if t.resume_ok else ("restarted" if t.restarted else "FAILED")
        diff = "-" if t.max_abs_diff is None else f"{t.max_abs_diff:.3g}"
        print(
            f"| {t.index} | step {t.anchor} + {t.delay * 1000:.0f} ms"
            f"{'' if t.killed else ' (finished first)'} | {t.step_at_kill} | "
            f"{', '.join(t.temp_dirs) or '-'} | {', '.join(t.other_temps) or '-'} | {resume} | "
            f"{t.identical} | {diff} |"
        )
    killed = [t for t in trials if t.killed]
    summary = {
        "kills": len(killed),
        "mid_checkpoint_write": sum(bool(t.temp_dirs) for t in killed),
        "resumes_worked": sum(t.resume_ok for t in killed),
        "restarted_from_scratch": sum(t.restarted for t in killed),
        "bit_identical": sum(bool(t.identical) for t in killed),
        "temporaries_left_at_the_end": sum(bool(t.temps_after) for t in killed),
        "control_bit_identical": control_same,
        "seconds": round(time.time() - t_start, 1),
    }
    print(
        "\n| kills | kills mid-checkpoint-write | resumes that worked | runs bit-identical |\n"
        "|---|---|---|---|\n"
        f"| {summary['kills']} | {summary['mid_checkpoint_write']} | "
        f"{summary['resumes_worked']} | {summary['bit_identical']} |"
    )
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
