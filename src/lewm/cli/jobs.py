"""Subcommands that run whole jobs: collect, eval, demo."""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def cmd_collect(args: argparse.Namespace) -> int:
    from lewm.data.collect import COLLECTORS

    if args.env not in COLLECTORS:
        raise ValueError(f"unknown environment {args.env!r}; available: {', '.join(COLLECTORS)}")
    extra = {"noise_std": args.noise} if args.noise is not None else {}
    if args.noise is not None and not args.noise >= 0:
        raise ValueError(f"--noise must be >= 0, got {args.noise}")
    if args.explore is not None:
        if args.env != "pusht":
            raise ValueError(f"--explore applies to pusht only, not {args.env!r}")
        if not 0.0 <= args.explore < 1.0:
            raise ValueError(f"--explore must be in [0, 1), got {args.explore}")
        extra["explore"] = args.explore
    stats = COLLECTORS[args.env](
        args.out,
        args.episodes,
        resolution=args.resolution,
        seed=args.seed,
        overwrite=args.overwrite,
        progress=not args.no_progress,
        **extra,
    )
    print(json.dumps({"out": args.out, **stats}, indent=2, default=float))
    return 0


def eval_config_from_args(args: argparse.Namespace):
    from lewm.planning.evaluate import EvalConfig

    return EvalConfig(
        episodes=args.episodes,
        goal_offset=args.goal_offset,
        budget=args.budget,
        split=args.split,
        policy=args.policy,
        solver=args.solver,
        # gradient restarts are each a backward pass: 100 as the reference's adam config
        num_samples=args.samples or (100 if args.solver == "adam" else 300),
        num_elites=args.elites,
        iterations=args.iterations,
        horizon=args.horizon,
        receding=args.receding,
        context=args.context,
        cost=args.cost,
        seed=args.seed,
        num_gifs=args.gifs,
    )


def cmd_eval(args: argparse.Namespace) -> int:
    from lewm.envs import (
        ENV_NAMES,
        make_env,  # noqa: F401  (validates the env name early)
    )
    from lewm.models import LeWM
    from lewm.planning.evaluate import evaluate

    if args.env not in ENV_NAMES:
        raise ValueError(f"unknown environment {args.env!r}; available: {', '.join(ENV_NAMES)}")
    cfg = eval_config_from_args(args)
    # the random policy does not use the model, but its metadata (dataset, episode split) makes
    # it draw the same held-out tasks as the planner
    model = LeWM.from_pretrained(args.checkpoint)
    data = args.data or model.metadata.get("dataset")
    if data is None:
        raise ValueError("--data is required: the checkpoint does not record its dataset")
    out = Path(args.out) if args.out else Path(args.checkpoint) / f"eval_{args.env}_{args.policy}"
    if args.distributed:
        from lewm.planning.evaluate import evaluate_distributed
        from lewm.training.distributed import init, shutdown

        info = init("auto")
        try:
            res = evaluate_distributed(model, args.env, data, cfg, out, info)
        finally:
            shutdown(info)
        if not info.is_main:
            return 0
    else:
        res = evaluate(model, args.env, data, cfg, out_dir=out, progress=not args.no_progress)
    print(
        json.dumps(
            {
                "success_rate": res.success_rate,
                "episodes": len(res.successes),
                "plan_seconds_mean": res.plan_seconds_mean,
                "plans": res.plans,
                "wall_seconds": round(res.wall_seconds, 1),
                "eval_json": str(out / "eval.json"),
            },
            indent=2,
        )
    )
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from lewm.demo import run_demo

    summary = run_demo(args.out, quick=args.quick, seed=args.seed, overwrite=args.overwrite)
    print(json.dumps(summary, indent=2))
    return 0


def add_eval_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--env", default="tworoom", help="environment name (default: tworoom)")
    p.add_argument(
        "--data",
        default=None,
        help="episode file with a 'state' column (default: the training dataset)",
    )
    p.add_argument("--episodes", type=int, default=50)
    p.add_argument("--goal-offset", type=int, default=25)
    p.add_argument("--budget", type=int, default=50)
    p.add_argument(
        "--split",
        default="heldout",
        choices=["heldout", "train", "all"],
        help="episodes of the training file to draw tasks from (another file: all)",
    )
    p.add_argument("--policy", default="plan", choices=["plan", "random"])
    p.add_argument("--solver", default="cem")
    p.add_argument(
        "--samples",
        type=int,
        default=None,
        help="candidates per iteration (restarts for adam); default 300, adam 100",
    )
    p.add_argument("--elites", type=int, default=30)
    p.add_argument("--iterations", type=int, default=30)
    p.add_argument("--horizon", type=int, default=5, help="action blocks per plan")
    p.add_argument("--receding", type=int, default=5, help="blocks executed before replanning")
    p.add_argument("--context", type=int, default=1, help="observed frames given to the model")
    p.add_argument(
        "--cost",
        default="terminal",
        choices=["terminal", "path"],
        help="planning cost: distance of the last predicted latent to the goal (paper) or the "
        "mean over all predicted latents (rewards reaching the goal early)",
    )
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--gifs", type=int, default=4)
    p.add_argument(
        "--out", default=None, help="output folder (default: CHECKPOINT/eval_ENV_POLICY)"
    )
    p.add_argument("--no-progress", action="store_true")
    p.add_argument(
        "--distributed",
        action="store_true",
        help="one of several torchrun processes: each evaluates a share of the "
        "episodes, rank 0 merges them into eval.json",
    )


def add_commands(sub: argparse._SubParsersAction) -> None:
    """Register the job subcommands on the main parser."""
    c = sub.add_parser("collect", help="collect an episode dataset from a scripted expert")
    c.add_argument("env", help="environment name, e.g. tworoom")
    c.add_argument("--episodes", type=int, required=True)
    c.add_argument("--out", required=True, help="output .h5 file")
    c.add_argument("--resolution", type=int, default=64)
    c.add_argument("--seed", type=int, default=0)
    c.add_argument(
        "--noise",
        type=float,
        default=None,
        help="std of the Gaussian action noise of the scripted policy "
        "(default: tworoom 2.0 on a unit direction, pusht 0.1)",
    )
    c.add_argument(
        "--explore",
        type=float,
        default=None,
        help="pusht: fraction of steps spent in random action segments between pushes (default 0)",
    )
    c.add_argument("--overwrite", action="store_true")
    c.add_argument("--no-progress", action="store_true")
    c.set_defaults(func=cmd_collect)

    e = sub.add_parser("eval", help="goal-reaching evaluation (the paper's protocol)")
    e.add_argument("checkpoint", help="checkpoint folder or run directory")
    add_eval_args(e)
    e.set_defaults(func=cmd_eval)

    d = sub.add_parser("demo", help="collect, train, plan and report on Two-Room (CPU, <= 20 min)")
    d.add_argument("--out", default="runs/demo")
    d.add_argument("--quick", action="store_true", help="a <= 2 minute smoke version")
    d.add_argument("--seed", type=int, default=0)
    d.add_argument("--overwrite", action="store_true", help="replace an existing --out")
    d.set_defaults(func=cmd_demo)
