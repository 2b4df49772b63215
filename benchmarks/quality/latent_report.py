r"""Everything issue 6 reports for one trained run, as markdown: probe table (trained vs
random-init floor), surprise tests, straightness over training and on the checkpoint, and the
numbers behind `lewm viz`. Each piece is a plain `lewm` command (printed before it runs).

    python benchmarks/quality/latent_report.py RUN --env pusht --out RUN/latent
    python benchmarks/quality/latent_report.py RUN --env tworoom --out OUT \
        --frames 200 --trajectories 4                                  # smoke run on a tiny RUN
"""

from __future__ import annotations

import argparse
import json
import shlex
import subprocess
import sys
from pathlib import Path

from lewm.envs import ENVS


def _lewm(*args: str) -> str:
    print("+ lewm " + shlex.join(args), file=sys.stderr, flush=True)
    cmd = [sys.executable, "-m", "lewm.cli.main", *args]
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode:
        sys.exit(f"lewm {args[0]} failed (exit {r.returncode}):\n{r.stderr[-3000:]}")
    return r.stdout


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("run", help="run directory (with metrics.jsonl and model/)")
    p.add_argument("--env", required=True, choices=sorted(ENVS), help="a registered environment")
    p.add_argument("--out", required=True, help="folder for the probe, surprise and viz outputs")
    p.add_argument("--frames", type=int, default=20000, help="probe frames")
    p.add_argument("--trajectories", type=int, default=32, help="surprise triplets")
    a = p.parse_args()
    out = Path(a.out)
    _lewm("probe", a.run, "--env", a.env, "--frames", str(a.frames), "--out", str(out / "probe"))
    _lewm(
        "surprise", a.run, "--env", a.env, "--trajectories", str(a.trajectories),
        "--out", str(out / "surprise"),
    )  # fmt: skip
    st = json.loads(_lewm("straightness", a.run))
    _lewm("viz", a.run, "--env", a.env, "--out", str(out / "viz"))

    print(f"### {a.env}: `{a.run}`\n")
    print((out / "probe" / "probe.md").read_text())
    sur = json.loads((out / "surprise" / "surprise.json").read_text())
    print("| perturbation | surprise at k_p (perturbed / twin) | ratio | d_z | paired t | p |")
    print("|---|---|---|---|---|---|")
    for cond, t in sur["tests"].items():
        print(
            f"| {cond} | {t['mean_perturbed']:.2f} / {t['mean_unperturbed']:.2f} | "
            f"{t['ratio']:.1f}× | {t['cohens_dz']:.2f} | {t['t']:.2f} | {t['p_value']:.1e} |"
        )
    print(f"\n(n = {sur['tests']['teleport']['n']} matched triplets, k_p = frame "
          f"{sur['config']['perturb_frame']})\n")  # fmt: skip
    recs = [json.loads(x) for x in (Path(a.run) / "metrics.jsonl").read_text().splitlines()]
    tr = [(r["step"], r["train/straightness"]) for r in recs if "train/straightness" in r]
    va = [(r["step"], r["val/straightness"]) for r in recs if "val/straightness" in r]
    if tr:
        peak = max(tr, key=lambda x: x[1])
        print(
            f"Straightness (train batches): step {tr[0][0]}: {tr[0][1]:.3f}, peak at step "
            f"{peak[0]}: {peak[1]:.3f}, step {tr[-1][0]}: {tr[-1][1]:.3f}; validation: "
            + ", ".join(f"{s}: {v:.3f}" for s, v in va)
            + "."
        )
    else:
        print("Straightness is not logged in training for 2-frame clips (history 1).")
    print(
        f"`lewm straightness` on the final model: {st['straightness']:.3f} "
        f"({st['windows']} windows of {st['frames']} frames).\n"
    )
    viz = json.loads((out / "viz" / "viz.json").read_text())
    lm, ol = viz["latent_map"], viz["open_loop"]
    print(
        f"Latent map ({lm['method']}, {lm['points']} grid states): Spearman ρ of latent vs "
        f"state distances {lm['spearman_latent_vs_state_distance']:.3f}. Open-loop rollout "
        f"({ol['context']} context frames, {ol['episodes']} windows), ||z_pred − z||² at blocks "
        f"1 / 5 / {ol['horizon']}: "
        + " / ".join(f"{ol['rollout_error_mean'][i]:.2f}" for i in (0, 4, ol["horizon"] - 1))
        + " (copy-last-frame baseline: "
        + " / ".join(f"{ol['copy_last_error_mean'][i]:.2f}" for i in (0, 4, ol["horizon"] - 1))
        + ")."
    )


if __name__ == "__main__":
    main()
