"""``lewm demo``: the main job, end to end on an embedded default with nothing to download.

collect Two-Room (train + a separate held-out file) -> train the CPU preset -> plan to goal
images with CEM + MPC on 50 held-out tasks (the paper's protocol) -> random baseline -> report.
"""

from __future__ import annotations

import logging
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

log = logging.getLogger(__name__)


@dataclass
class DemoRecipe:
    train_episodes: int
    eval_episodes_file: int  # episodes in the separate held-out file
    overrides: list[str]
    eval_episodes: int
    samples: int
    iterations: int
    receding: int
    resolution: int = 64
    extra: dict = field(default_factory=dict)


# Two-Room recipe: the cpu preset with the paper's Two-Room history N = 1.
FULL = DemoRecipe(
    train_episodes=2000,
    eval_episodes_file=300,
    overrides=[
        "model.predictor.history=1",
        "train.steps=1500",
        "train.batch_size=64",
        "train.lr=1e-3",
        "train.val_every=250",
        "train.ckpt_every=500",
    ],
    eval_episodes=50,
    samples=300,
    iterations=30,
    receding=5,
)
QUICK = DemoRecipe(
    train_episodes=300,
    eval_episodes_file=60,
    overrides=[
        "model.predictor.history=1",
        "train.steps=150",
        "train.batch_size=64",
        "train.lr=1e-3",
        "train.val_every=50",
        "train.ckpt_every=150",
        "train.log_every=10",
    ],
    eval_episodes=10,
    samples=100,
    iterations=10,
    receding=5,
)


def run_demo(out: str | Path, quick: bool = False, seed: int = 0, overwrite: bool = False) -> dict:
    from lewm.analysis.plots import plot_training_curves
    from lewm.config import apply_overrides, preset
    from lewm.data.collect import collect_tworoom
    from lewm.models import LeWM
    from lewm.planning.evaluate import EvalConfig, evaluate
    from lewm.training.trainer import train
    from lewm.utils.io import write_json

    recipe = QUICK if quick else FULL
    out = Path(out)
    if out.exists() and any(out.iterdir()):
        if not overwrite:
            raise FileExistsError(
                f"demo output {out} already exists; pass --overwrite or choose another --out"
            )
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)
    progress = sys.stderr.isatty()
    t0 = time.perf_counter()
    timings = {}

    def stage(name: str) -> None:
        timings[name] = round(time.perf_counter() - t0 - sum(timings.values()), 1)
        log.info("demo: %s done in %.1f s", name, timings[name])

    log.info(
        "demo: collecting %d + %d Two-Room episodes",
        recipe.train_episodes,
        recipe.eval_episodes_file,
    )
    train_h5, heldout_h5 = out / "tworoom_train.h5", out / "tworoom_heldout.h5"
    collect_tworoom(
        train_h5, recipe.train_episodes, resolution=recipe.resolution, seed=seed, progress=progress
    )
    collect_tworoom(
        heldout_h5,
        recipe.eval_episodes_file,
        resolution=recipe.resolution,
        seed=seed + 10_000,
        progress=progress,
    )
    stage("collect")

    cfg = apply_overrides(preset("cpu"), recipe.overrides + [f"train.seed={seed}"])
    log.info("demo: training the cpu preset for %d steps", cfg.train.steps)
    res = train(cfg, train_h5, out / "run", progress=progress)
    plot_training_curves(out / "run" / "metrics.jsonl", out / "training_curves.png")
    stage("train")

    model = LeWM.from_pretrained(res.model_dir)
    ecfg = EvalConfig(
        episodes=recipe.eval_episodes,
        num_samples=recipe.samples,
        iterations=recipe.iterations,
        receding=recipe.receding,
        seed=42 + seed,
        split="all",
    )
    log.info("demo: planning on %d held-out tasks", ecfg.episodes)
    plan = evaluate(model, "tworoom", heldout_h5, ecfg, out_dir=out / "eval")
    stage("eval")
    rnd_cfg = EvalConfig(
        episodes=recipe.eval_episodes, policy="random", seed=42 + seed, split="all", num_gifs=0
    )
    rnd = evaluate(None, "tworoom", heldout_h5, rnd_cfg, out_dir=out / "eval_random")
    stage("random_baseline")

    summary = {
        "success_rate": plan.success_rate,
        "random_success_rate": rnd.success_rate,
        "episodes": len(plan.successes),
        "plan_seconds_mean": plan.plan_seconds_mean,
        "plans": plan.plans,
        "eval_wall_seconds": round(plan.wall_seconds, 1),
        "train_steps": res.steps,
        "train_final": {k: round(v, 5) for k, v in res.final.items() if isinstance(v, float)},
        "timings_s": timings,
        "total_seconds": round(time.perf_counter() - t0, 1),
        "seed": seed,
        "quick": quick,
        "artefacts": {
            "checkpoint": str(res.model_dir),
            "metrics": str(out / "run" / "metrics.jsonl"),
            "training_curves": str(out / "training_curves.png"),
            "eval_json": str(out / "eval" / "eval.json"),
            "gifs": str(out / "eval"),
            "datasets": [str(train_h5), str(heldout_h5)],
        },
    }
    write_json(out / "summary.json", summary)
    # the demo's own eval.json at the top level, as the acceptance reads it
    shutil.copyfile(out / "eval" / "eval.json", out / "eval.json")
    return summary
