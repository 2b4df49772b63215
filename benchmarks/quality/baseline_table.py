r"""Issue 20's comparison table, from nothing, with one command: LeWM, PLDM, frozen-encoder world
models and LeWM's ablations, trained on the same data for the same number of steps, planned at
the paper's protocol on held-out tasks, over several training seeds.

    python benchmarks/quality/baseline_table.py --env tworoom --out runs/table20     # ~2 h, 2 cores
    python benchmarks/quality/baseline_table.py --env tworoom --out runs/table20 --table-only
    python benchmarks/quality/baseline_table.py --env tworoom --out /tmp/t20 --smoke  # ~2 min
    python benchmarks/quality/baseline_table.py --env pusht --rows lewm pldm dinowm-lewm \
        --hf /data/dinov2-small --out runs/table20_pusht                            # a GPU day

For each seed s: collect a training file (seed s) and a separate held-out file (seed s + 10,000)
of the environment; then, for each row, train the env's preset with the row's overrides and
`train.seed=s` (the same data, batch size and step count for every row: an equal *step* budget),
plan on `--tasks` held-out tasks at the paper's protocol (goal 25 steps ahead, budget 50, CEM
300 x 30, horizon 5, receding 5, one context frame; the same tasks for every row of a seed; on
Reacher also with CEM on 3 frames and the path cost, and with the reacher-cpu preset's planner:
one column each), fit
`lewm probe`'s linear probes on held-out frames, and once per seed run the random policy on the
same tasks. Every stage writes its own JSON under OUT/seed_s/ROW/ and is skipped when that file
exists, so an interrupted table resumes where it stopped; a training cut short continues from its
last checkpoint (stop a long table with SIGTERM to the script and its `lewm train` processes, e.g.
`kill -TERM -- -PGID`: `lewm train` checkpoints the step it is on), and its time is the sum of
its attempts. The exit status is 1 when a stage failed (the table still shows what finished).
`--jobs 2` runs two stages at a time
with one thread each (the default on a 2-core machine); training wall times are measured under
that sharing and say so in the table.

Rows: `lewm` (the preset), `pldm` (model.kind=pldm, Table 2's weights), `dinowm-lewm` (a
predictor over the frozen encoder + projector of the same seed's `lewm` row), `dinowm-random`
(over a frozen, untrained encoder), `dinowm-hf` (over a Hugging Face ViT/DINOv2 folder given by
--hf) and every entry of `lewm.config.ABLATIONS`. An ablation whose config equals the preset's
(e.g. `history-1` on Two-Room) is the `lewm` row and is not trained twice. Writes
OUT/table.md and OUT/table.json.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from lewm.config import ABLATIONS, preset
from lewm.models import load
from lewm.training.rundir import RUN_FILE
from lewm.utils.config import to_dict
from lewm.utils.io import write_json


@dataclass(frozen=True)
class EnvRecipe:
    preset: str
    train_episodes: int
    heldout_episodes: int
    collect_args: tuple[str, ...] = ()  # extra `lewm collect` arguments (training file)
    heldout_args: tuple[str, ...] | None = None  # for the held-out file (None: collect_args)
    train_args: tuple[str, ...] = ()  # extra training overrides on top of the preset
    probe_frames: int = 10_000
    # the planners every row is evaluated with, (name, extra `lewm eval` arguments on top of the
    # preset's eval settings); the first is the main column and writes ROW/eval/, the others
    # ROW/eval_<name>/ (the same held-out tasks: online tasks do not depend on the planner)
    planners: tuple[tuple[str, tuple[str, ...]], ...] = (("paper protocol", ()),)
    # the paper's Fig. 6 / Table 5 success rates (%), and its linear-probe r where it has them
    paper: dict[str, str] = field(default_factory=dict)


ENVS = {
    "tworoom": EnvRecipe(
        "tworoom-cpu",
        2000,
        300,
        paper={"lewm": "87", "pldm": "97", "dinowm": "100 (DINOv2)", "random": "0 (v1 protocol)"},
    ),
    "pusht": EnvRecipe(  # benchmarks/quality/pusht_seeds.py's recipe (22-24 % for LeWM)
        "pusht-cpu",
        2000,
        100,
        collect_args=("--noise", "0.3", "--explore", "0.3"),
        heldout_args=(),  # tasks from the default pusher
        paper={
            "lewm": "96.0 ± 2.83",
            "pldm": "78.0 ± 5.0",
            "dinowm": "74 (DINOv2; 92 ± 1.63 with proprio)",
            "random": "2",
        },
    ),
    "reacher": EnvRecipe(
        "reacher-cpu",
        1000,
        100,
        collect_args=("--policy-kind", "pd", "--workers", "2"),
        planners=(
            # the paper's planner: CEM 300 x 30 on one frame, terminal cost
            ("paper planner", ("--solver", "cem", "--context", "1", "--cost", "terminal")),
            # the paper's solver with the preset's context and cost: what the solver alone adds
            ("CEM 3 frames path", ("--solver", "cem")),
            # the preset's: iCEM at the same budget, 3 frames, path cost (issue 18)
            ("reacher-cpu planner", ()),
        ),
        paper={"lewm": "86", "pldm": "78", "dinowm": "79 (DINOv2)", "random": "10"},
    ),
    "cube": EnvRecipe(
        "cube-cpu",
        600,
        60,
        collect_args=("--workers", "2"),
        paper={"lewm": "74", "pldm": "65", "dinowm": "86 (DINOv2)", "random": "48"},
    ),
}

BASE_ROWS = {
    "lewm": (),
    "pldm": ("model.kind=pldm",),
    "dinowm-lewm": ("model.kind=dinowm", "model.source=lewm:{lewm}"),
    "dinowm-random": ("model.kind=dinowm",),
    "dinowm-hf": ("model.kind=dinowm", "model.source=hf:{hf}", "model.features=cls"),
}
ROWS = {**BASE_ROWS, **{f"lewm/{k}": v for k, v in ABLATIONS.items()}}
DEFAULT_ROWS = [
    "lewm",
    "pldm",
    "dinowm-lewm",
    "dinowm-random",
    "lewm/lambda-0",
    "lewm/lambda-0.01",
    "lewm/lambda-1",
    "lewm/vicreg",
    "lewm/proj-16",
    "lewm/proj-1024",
    "lewm/depth-1",
    "lewm/history-3",
]
# a smoke run: every stage on a few episodes, a few steps, a cheap planner
SMOKE_TRAIN = ("train.steps=6", "train.batch_size=8", "train.val_every=0", "train.ckpt_every=6")
SMOKE_EVAL = ("--episodes", "2", "--samples", "20", "--elites", "6", "--iterations", "2")

_print_lock = threading.Lock()


def say(msg: str) -> None:
    with _print_lock:
        print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def run_logged(args: list[str], log: Path, threads: int | None) -> float:
    """Run `lewm ARGS` with its output in LOG (not `_shared.run_lewm`: that one keeps output in
    memory and ends the script on a failure; here one failed stage must not stop the others) and
    THREADS torch threads; returns the wall seconds; raises RuntimeError on failure."""
    env = dict(os.environ)
    if threads:
        env.update(OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    log.parent.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    with open(log, "w") as f:
        res = subprocess.run(
            [sys.executable, "-m", "lewm.cli.main", *args],
            stdout=f,
            stderr=subprocess.STDOUT,
            env=env,
        )
    if res.returncode:
        tail = "\n".join(log.read_text().splitlines()[-15:])
        raise RuntimeError(
            f"lewm {' '.join(args[:2])} failed ({res.returncode}), see {log}:\n{tail}"
        )
    return time.perf_counter() - t0


class Table:
    def __init__(self, a: argparse.Namespace):
        self.a = a
        self.recipe = ENVS[a.env]
        self.out = Path(a.out)
        self.threads = 1 if a.jobs > 1 else None
        self.train_extra = list(self.recipe.train_args)
        if a.smoke:
            self.train_extra += list(SMOKE_TRAIN)
        self.train_extra += list(a.overrides)  # what the caller says wins over --smoke's
        if a.steps:
            self.train_extra.append(f"train.steps={a.steps}")
        self.rows = self._resolve_rows(a.rows)
        # the random policy needs a model folder only for its settings: the first trained row's
        self.floor_row = next(r for r, same in self.rows.items() if same is None)

    # rows --------------------------------------------------------------------------------------
    def _resolve_rows(self, names: list[str]) -> dict[str, str | None]:
        """name -> None (trained), or the name of the row it is identical to (not retrained)."""
        unknown = [n for n in names if n not in ROWS]
        if unknown:
            raise SystemExit(f"unknown rows {unknown}; known: {', '.join(ROWS)}")
        if "dinowm-hf" in names and not self.a.hf:
            raise SystemExit("row dinowm-hf needs --hf FOLDER (a local Hugging Face ViT/DINOv2)")
        if "dinowm-lewm" in names:  # its encoder comes from the lewm row, trained first
            names = ["lewm", *[n for n in names if n != "lewm"]]
        resolved: dict[str, str | None] = {}
        configs: dict[str, str] = {}
        for n in names:
            if "{" in " ".join(ROWS[n]):  # depends on another run: never the same config
                resolved[n] = None
                continue
            c = json.dumps(
                to_dict(preset(self.recipe.preset, self.overrides(n, 0))), sort_keys=True
            )
            same = next((m for m, cm in configs.items() if cm == c), None)
            resolved[n] = same
            if same is None:
                configs[n] = c
        return resolved

    def overrides(self, row: str, seed: int) -> list[str]:
        lewm_model = self.row_dir(seed, "lewm") / "run"
        fill = {"lewm": str(lewm_model), "hf": str(self.a.hf)}
        return [*self.train_extra, f"train.seed={seed}", *(o.format(**fill) for o in ROWS[row])]

    # paths -------------------------------------------------------------------------------------
    def seed_dir(self, seed: int) -> Path:
        return self.out / f"seed_{seed}"

    def row_dir(self, seed: int, row: str) -> Path:
        return self.seed_dir(seed) / row.replace("/", "_")

    # stages ------------------------------------------------------------------------------------
    def collect(self, seed: int) -> None:
        d = self.seed_dir(seed)
        done = d / "collect.json"
        if done.exists():
            return
        r = self.recipe
        n_train, n_held = (12, 10) if self.a.smoke else (r.train_episodes, r.heldout_episodes)
        secs = {}
        held_args = r.collect_args if r.heldout_args is None else r.heldout_args
        for name, n, s, extra in (
            ("train", n_train, seed, r.collect_args),
            ("heldout", n_held, seed + 10_000, held_args),
        ):
            say(f"seed {seed}: collect {n} {name} episodes")
            secs[name] = run_logged(
                ["collect", self.a.env, "--episodes", str(n), "--seed", str(s), "--out",
                 str(d / f"{name}.h5"), "--overwrite", "--no-progress", *extra],
                d / f"collect_{name}.log", None,
            )  # fmt: skip
        write_json(done, {"episodes": [n_train, n_held], "seconds": secs})

    def eval_args(self, seed: int) -> list[str]:
        d = self.seed_dir(seed)
        # the preset's eval settings (the paper's protocol; Cube's also excludes solved starts)
        args = ["--env", self.a.env, "--data", str(d / "heldout.h5"), "--split", "all"]
        args += ["--preset", self.recipe.preset]
        args += ["--episodes", str(self.a.tasks), "--no-progress", "--device", self.a.device]
        return args + (list(SMOKE_EVAL) if self.a.smoke else [])

    def random_floor(self, seed: int) -> None:
        d = self.seed_dir(seed)
        if (d / "eval_random" / "eval.json").exists():
            return
        say(f"seed {seed}: random policy on the held-out tasks")
        model = self.row_dir(seed, self.floor_row) / "run"  # any model: the policy never reads it
        run_logged(
            ["eval", str(model), *self.eval_args(seed), "--policy", "random", "--gifs", "0",
             "--out", str(d / "eval_random"), "--overwrite"],
            d / "eval_random.log", self.threads,
        )  # fmt: skip

    def train(self, seed: int, row: str) -> None:
        """Train ROW for SEED. A run that an earlier invocation left unfinished (its run.json is
        there, its train.json is not: the table was stopped, e.g. by SIGTERM to the script and its
        `lewm train`, which checkpoints the step it is on) is continued with `lewm train --resume`
        instead of being started again; the training time is then the sum of the attempts, an
        interrupted one counted up to its run's last write (OUT/seed_s/ROW/train_attempts.json)."""
        rd = self.row_dir(seed, row)
        done = rd / "train.json"
        if done.exists():
            return
        run, ledger = rd / "run", rd / "train_attempts.json"
        attempts: list[dict] = []
        resume = (run / RUN_FILE).exists() and ledger.exists()
        if resume:
            attempts = json.loads(ledger.read_text())
            if attempts and "seconds" not in attempts[-1]:  # the attempt the stop cut short
                last_write = max((f.stat().st_mtime for f in run.rglob("*") if f.is_file()),
                                 default=attempts[-1]["start"])  # fmt: skip
                attempts[-1].update(seconds=max(0.0, last_write - attempts[-1]["start"]),
                                    interrupted=True)  # fmt: skip
        ov = self.overrides(row, seed)
        args = ["train", "--data", str(self.seed_dir(seed) / "train.h5"), "--out", str(run),
                "--no-progress"]  # fmt: skip
        if resume:  # the run's own config: run.json holds it, overrides and all
            say(f"seed {seed}: resume {row} (attempt {len(attempts) + 1})")
            args.append("--resume")
        else:
            say(f"seed {seed}: train {row}")
            args += ["--preset", self.recipe.preset, "--overwrite", *ov]
        attempts.append({"start": time.time(), "threads": self.threads or os.cpu_count(),
                         "concurrent_runs": self.a.jobs, "resumed": resume})  # fmt: skip
        write_json(ledger, attempts)
        log = rd / ("train.log" if len(attempts) == 1 else f"train_{len(attempts)}.log")
        attempts[-1]["seconds"] = run_logged(args, log, self.threads)
        write_json(ledger, attempts)
        last: dict = {}
        for line in (run / "metrics.jsonl").read_text().splitlines():
            m = json.loads(line)
            last.update({k: v for k, v in m.items() if k.startswith(("val/", "train/"))})
            last["step"] = m.get("step", last.get("step"))
        write_json(
            done,
            {"overrides": ov, "seconds": sum(a["seconds"] for a in attempts),
             "attempts": len(attempts), "attempt_threads": [a["threads"] for a in attempts],
             "threads": attempts[-1]["threads"],
             "concurrent_runs": max(a["concurrent_runs"] for a in attempts),
             "parameters": load(run).param_counts(), "last": last},
        )  # fmt: skip

    def eval_dir(self, rd: Path, k: int) -> Path:
        """Where planner k's evaluation of the row in RD goes (the first planner's: RD/eval)."""
        name = self.recipe.planners[k][0]
        return rd / ("eval" if k == 0 else "eval_" + re.sub(r"[^a-z0-9]+", "_", name.lower()))

    def evaluate(self, seed: int, row: str) -> None:
        rd = self.row_dir(seed, row)
        for k, (name, extra) in enumerate(self.recipe.planners):
            ed = self.eval_dir(rd, k)
            if (ed / "eval.json").exists():
                continue
            say(f"seed {seed}: plan with {row} ({name})")
            run_logged(
                ["eval", str(rd / "run"), *self.eval_args(seed), *extra, "--gifs", "0",
                 "--out", str(ed), "--overwrite"],
                rd / f"{ed.name}.log", self.threads,
            )  # fmt: skip
        if not (rd / "probe" / "probe.json").exists():
            say(f"seed {seed}: probe {row}")
            frames = 2000 if self.a.smoke else self.recipe.probe_frames
            run_logged(
                ["probe", str(rd / "run"), "--data", str(self.seed_dir(seed) / "heldout.h5"),
                 "--frames", str(frames), "--out", str(rd / "probe"), "--no-progress",
                 "--device", self.a.device],
                rd / "probe.log", self.threads,
            )  # fmt: skip

    def job(self, seed: int, row: str) -> None:
        self.train(seed, row)
        self.evaluate(seed, row)

    # schedule ----------------------------------------------------------------------------------
    def run(self) -> list[str]:
        """Rows in order, seeds inside a row: the table fills row by row (all seeds of a row
        before the next row), so a cut-short table has whole rows. Returns the failures."""
        for s in self.a.seeds:
            self.collect(s)
        trained = [r for r, same in self.rows.items() if same is None]
        failures = []
        with ThreadPoolExecutor(self.a.jobs) as pool:
            first = {s: pool.submit(self.job, s, self.floor_row) for s in self.a.seeds}
            futures = list(first.values())
            for s in self.a.seeds:
                futures.append(pool.submit(self._after, first[s], self.random_floor, s))
            for row in trained[1:]:
                for s in self.a.seeds:
                    needs_lewm = "{lewm}" in " ".join(ROWS[row])  # then "lewm" is trained[0]
                    dep = first[s] if needs_lewm else None
                    futures.append(pool.submit(self._after, dep, self.job, s, row))
            for f in futures:
                try:
                    f.result()
                except Exception as e:  # one failed row must not lose the others
                    failures.append(str(e))
                    say(f"FAILED: {e}")
        if failures:
            say(f"{len(failures)} stage(s) failed; the table shows what finished")
        return failures

    @staticmethod
    def _after(dep, fn, *args):
        if dep is not None:
            dep.result()  # raises if the dependency failed
        return fn(*args)

    # the table ---------------------------------------------------------------------------------
    def collect_results(self) -> dict:
        res: dict = {"env": self.a.env, "preset": self.recipe.preset, "seeds": self.a.seeds,
                     "train_overrides": self.train_extra, "rows": {},
                     "planners": {n: list(x) for n, x in self.recipe.planners}}  # fmt: skip
        res["random"], res["collect_s"] = [], []  # collect_s: training + held-out file, seconds
        for s in self.a.seeds:
            f = self.seed_dir(s) / "eval_random" / "eval.json"
            if f.exists():
                res["random"].append(json.loads(f.read_text())["success_rate"])
            f = self.seed_dir(s) / "collect.json"
            if f.exists():
                res["collect_s"].append(sum(json.loads(f.read_text())["seconds"].values()))
        names = [n for n, _ in self.recipe.planners]
        for row, same in self.rows.items():
            src = same or row
            per_seed = []
            for s in self.a.seeds:
                rd = self.row_dir(s, src)
                evals = [self.eval_dir(rd, k) / "eval.json" for k in range(len(names))]
                files = [rd / "train.json", rd / "probe" / "probe.json", *evals]
                if not all(f.exists() for f in files):
                    continue
                tr, pr, *evs = (json.loads(f.read_text()) for f in files)
                ev = evs[0]
                per_seed.append(
                    {"seed": s, "success": ev["success_rate"], "tasks": len(ev["successes"]),
                     "plan_s": ev["plan_seconds_mean"],
                     "by_planner": {n: {"success": e["success_rate"],
                                        "plan_s": e["plan_seconds_mean"]}
                                    for n, e in zip(names, evs, strict=True)},
                     "train_s": tr["seconds"], "attempt_threads": tr.get("attempt_threads"),
                     "threads": tr["threads"], "params": tr["parameters"],
                     # how many stages shared the cores while this one trained (records from
                     # before it was kept: --jobs > 1 is what gives a run one thread)
                     "concurrent": tr.get("concurrent_runs", 2 if tr["threads"] == 1 else 1),
                     "val_pred": tr["last"].get("val/pred_loss"),
                     "z_std": tr["last"].get("val/z_std"), "steps": tr["last"].get("step"),
                     "probe_r": {q: v["linear"]["r"] for q, v in pr["trained"].items()}}
                )  # fmt: skip
            res["rows"][row] = {"same_as": same, "overrides": list(ROWS[row]), "seeds": per_seed}
        return res

    def markdown(self, res: dict) -> str:
        def ms(xs: list[float], scale: float = 1.0, fmt: str = "{:.1f}") -> str:
            if not xs:
                return "—"
            m = statistics.fmean(xs) * scale
            sd = statistics.pstdev(xs) * scale if len(xs) > 1 else 0.0
            return f"{fmt.format(m)} ± {fmt.format(sd)}"

        paper = self.recipe.paper
        quantities = sorted(
            {q for r in res["rows"].values() for s in r["seeds"] for q in s["probe_r"]}
        )
        planners = [n for n, _ in self.recipe.planners]
        if len(planners) == 1:
            succ_head, plan_head = ["success % (mean ± std)"], ["s / plan"]
        else:
            succ_head = [f"success % ({n})" for n in planners]
            plan_head = [f"s / plan ({n})" for n in planners]
        head = ["row", "overrides", "seeds", succ_head[0], "paper %", *succ_head[1:], "train s",
                *plan_head, "parameters (trainable / total)", "val pred",
                *[f"probe r: {q}" for q in quantities]]  # fmt: skip
        lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        for row, r in res["rows"].items():
            ss = r["seeds"]
            if row == "dinowm-hf":
                p = paper.get("dinowm", "—")
            elif row.startswith("dinowm"):
                p = "— (other encoder)"
            else:
                p = paper.get(row, "—")  # lewm, pldm; the ablations (lewm/...) have none
            ov = " ".join(f"`{o}`" for o in r["overrides"]) or "the preset"
            if r["same_as"]:
                ov += f" (= `{r['same_as']}`)"
            if not ss:
                lines.append(f"| {row} | {ov} | 0 | not run | {p} |" + " |" * (len(head) - 5))
                continue
            par = ss[0]["params"]
            succ = [ms([s["by_planner"][n]["success"] for s in ss], 100) for n in planners]
            cells = [
                row, ov, str(len(ss)), succ[0], p, *succ[1:],
                ms([s["train_s"] for s in ss], 1, "{:.0f}"),
                *[ms([s["by_planner"][n]["plan_s"] for s in ss], 1, "{:.2f}") for n in planners],
                f"{par['trainable']:,} / {par['total']:,}",
                ms([s["val_pred"] for s in ss if s["val_pred"] is not None], 1, "{:.4f}"),
                *[ms([s["probe_r"][q] for s in ss if q in s["probe_r"]], 1, "{:.3f}")
                  for q in quantities],
            ]  # fmt: skip
            lines.append("| " + " | ".join(cells) + " |")
        nr = len(res["random"])
        lines.append(
            f"| random actions | — | {nr} | {ms(res['random'], 100)} | {paper.get('random', '—')} |"
            + " |" * (len(head) - 5)
        )
        tasks = {s["tasks"] for r in res["rows"].values() for s in r["seeds"]}
        threads = {s["threads"] for r in res["rows"].values() for s in r["seeds"]}
        shared = [s.get("concurrent", 1) > 1 for r in res["rows"].values() for s in r["seeds"]]
        sharing = ""
        if shared and all(shared):
            sharing = " and two runs sharing the cores"
        elif any(shared):
            sharing = " (two runs sharing the cores for some of them)"
        lines += [
            "",
            f"{self.a.env}, preset `{self.recipe.preset}` + "
            f"{' '.join(f'`{o}`' for o in res['train_overrides']) or 'nothing'}; seeds "
            f"{res['seeds']}; {sorted(tasks)} held-out tasks per seed at the paper's protocol; "
            f"equal step budget for every row; train s measured with {sorted(threads)} thread(s) "
            f"per run{sharing}. "
            "± is the population std over seeds (the paper's convention).",
        ]
        resumed = [f"{row} seed {s['seed']} ({len(s['attempt_threads'])} attempts, threads "
                   f"{'/'.join(map(str, s['attempt_threads']))})"
                   for row, r in res["rows"].items() for s in r["seeds"]
                   if len(s.get("attempt_threads") or ()) > 1]  # fmt: skip
        if resumed:
            lines.append(
                "\nTrained in several attempts (stopped, then resumed from a checkpoint; train s "
                "sums them): " + "; ".join(resumed) + "."
            )
        if res["collect_s"]:
            lines.append(
                f"\nCollection (training + held-out file, once per seed, before any row): "
                f"{ms(res['collect_s'], 1, '{:.0f}')} s."
            )
        if len(planners) > 1:
            lines.append(
                "\nPlanners (goal 25 steps ahead, budget 50, 300 x 30 samples, horizon 5, "
                "receding 5 for all): "
                + "; ".join(
                    f"{n}: the preset's eval settings" + (f" with `{' '.join(x)}`" if x else "")
                    for n, x in self.recipe.planners
                )
                + "."
            )
        return "\n".join(lines) + "\n"


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--env", choices=sorted(ENVS), default="tworoom")
    p.add_argument("--out", required=True)
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--rows", nargs="+", default=DEFAULT_ROWS, help=f"from: {', '.join(ROWS)}")
    p.add_argument("--steps", type=int, help="training steps for every row (default: the preset's)")
    p.add_argument("--tasks", type=int, default=50, help="held-out planning tasks per seed (50)")
    p.add_argument("--jobs", type=int, default=2, help="stages run at once, one thread each (2)")
    p.add_argument("--device", default="auto", help="where planning and probes run (auto)")
    p.add_argument("--hf", help="a local Hugging Face ViT/DINOv2 folder, for row dinowm-hf")
    p.add_argument("--smoke", action="store_true", help="tiny data, 6 steps, cheap planner")
    p.add_argument("--table-only", action="store_true", help="only read what is on disk")
    p.add_argument("overrides", nargs="*", help="training overrides for every row (KEY=VALUE)")
    a = p.parse_args()
    t = Table(a)
    t.out.mkdir(parents=True, exist_ok=True)
    same = {r: s for r, s in t.rows.items() if s}
    if same:
        say(f"identical configs, trained once: {same}")
    failures: list[str] = []
    if not a.table_only:
        t0 = time.perf_counter()
        failures = t.run()
        say(f"done in {(time.perf_counter() - t0) / 60:.1f} min")
    res = t.collect_results()
    md = t.markdown(res)
    write_json(t.out / "table.json", res)
    (t.out / "table.md").write_text(md)
    print(md)
    if failures:  # the table is written either way; the exit status says it is incomplete
        raise SystemExit(f"{len(failures)} stage(s) failed (above); a second call retries them")


if __name__ == "__main__":
    main()
