r"""Screen planner settings on trained models: every variant plans the same tasks with every
model, and each variant is compared task by task with the first (the control).

    python benchmarks/quality/planner_screen.py --env reacher --out runs/screen \
        --model runs/reacher_e2e/s0_8k/run runs/reacher_e2e/s0_8k/heldout.h5 \
        --model runs/reacher_e2e/s1_8k/run runs/reacher_e2e/s1_8k/heldout.h5 \
        --variant "icem_c3=--solver icem --context 3" \
        --variant "icem_c3_box=--solver icem --context 3 --bounded-search true" \
        --seed 0

A variant is NAME=ARGS: `lewm eval` arguments (flags or eval.* overrides) added to the common
ones (`--env`, the model's task file with `--split all`, `--seed`, `--episodes`, no GIFs). Each
evaluation lands in OUT/NAME/mI/ and is skipped when its eval.json exists, so a screen can be
extended with more variants or models and resumed. Screen on a task seed other than the one you
report (`lewm eval`'s default is 42), then confirm the winner on the reported tasks: a screen of
many variants on 50-150 tasks picks noise otherwise. Writes OUT/screen.md and OUT/screen.json.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path

from paired_success import paired_difference  # this folder: sys.path[0]


def parse_variant(text: str) -> tuple[str, list[str]]:
    name, sep, args = text.partition("=")
    if not sep or not name or "/" in name or name.startswith("."):
        raise argparse.ArgumentTypeError(f"a variant is NAME=ARGS with a plain NAME, got {text!r}")
    return name, shlex.split(args)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--env", required=True, help="environment name, as for `lewm eval --env`")
    ap.add_argument(
        "--model",
        nargs=2,
        action="append",
        required=True,
        metavar=("RUN", "TASKS"),
        help="a trained run (or checkpoint) and the episode file its tasks come from; repeatable",
    )
    ap.add_argument(
        "--variant",
        type=parse_variant,
        action="append",
        required=True,
        metavar="NAME=ARGS",
        help="planner settings; the first is the control; repeatable",
    )
    ap.add_argument("--out", required=True, help="folder for the evaluations and the table")
    ap.add_argument("--seed", type=int, default=0, help="task seed (default 0; report on 42)")
    ap.add_argument("--episodes", type=int, default=50, help="tasks per model (default 50)")
    ap.add_argument("--lewm", default=None, help="the lewm executable (default: beside python)")
    args = ap.parse_args(argv)
    names = [n for n, _ in args.variant]
    if len(set(names)) != len(names):
        ap.error(f"variant names must differ, got {names}")
    lewm = args.lewm or str(Path(sys.executable).with_name("lewm"))
    out = Path(args.out)
    results: dict[str, list[dict]] = {}
    for name, extra in args.variant:
        results[name] = []
        for i, (run, tasks) in enumerate(args.model):
            d = out / name / f"m{i}"
            f = d / "eval.json"
            if not f.exists():
                d.parent.mkdir(parents=True, exist_ok=True)
                cmd = [lewm, "eval", run, "--env", args.env, "--data", tasks, "--split", "all"]
                cmd += ["--seed", str(args.seed), "--episodes", str(args.episodes), "--gifs", "0"]
                cmd += ["--out", str(d), "--overwrite", "--no-progress", *extra]
                t0 = time.perf_counter()
                with open(d.parent / f"m{i}.log", "w") as log:
                    rc = subprocess.call(cmd, stdout=log, stderr=subprocess.STDOUT, env=os.environ)
                if rc != 0:
                    print(f"{name} m{i}: `lewm eval` failed (exit {rc}); see {d.parent}/m{i}.log")
                    return 1
                print(f"{name} m{i}: {time.perf_counter() - t0:.0f} s", flush=True)
            results[name].append(json.loads(f.read_text()))
    control = names[0]
    rows = []
    for name in names:
        evs = results[name]
        for ev, ref in zip(evs, results[control], strict=True):
            if ev["tasks"] != ref["tasks"]:
                print(f"{name} planned other tasks than {control}: compare like with like")
                return 1
        rates = [ev["success_rate"] for ev in evs]
        secs = [ev.get("plan_seconds_mean") for ev in evs]  # None for the random policy
        a = [bool(s) for ev in results[control] for s in ev["successes"]]
        b = [bool(s) for ev in evs for s in ev["successes"]]
        diff, half = paired_difference(a, b)
        rows.append(
            {
                "variant": name,
                "args": shlex.join(dict(args.variant)[name]),
                "per_model": rates,
                "mean": sum(b) / len(b),
                "vs_control": diff,
                "ci95": half,
                "s_per_plan": None if None in secs else sum(secs) / len(secs),
            }
        )
    head = "| variant | `lewm eval` args | " + " | ".join(f"m{i}" for i in range(len(args.model)))
    lines = [
        f"Tasks: {args.episodes} per model, seed {args.seed}; models: "
        + ", ".join(f"m{i} = {r}" for i, (r, _) in enumerate(args.model)),
        "",
        head + " | all | vs the control (95 %) | s / plan |",
        "|" + "---|" * (len(args.model) + 5),
    ]
    for r in rows:
        cells = " | ".join(f"{100 * x:.0f} %" for x in r["per_model"])
        vs = "control" if r["variant"] == control else (
            f"{100 * r['vs_control']:+.1f} ± {100 * r['ci95']:.1f}"
        )  # fmt: skip
        spp = "—" if r["s_per_plan"] is None else f"{r['s_per_plan']:.2f}"
        lines.append(
            f"| {r['variant']} | `{r['args']}` | {cells} | {100 * r['mean']:.1f} % | {vs} | {spp} |"
        )
    table = "\n".join(lines) + "\n"
    out.mkdir(parents=True, exist_ok=True)
    (out / "screen.md").write_text(table)
    (out / "screen.json").write_text(json.dumps(rows, indent=2) + "\n")
    print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
