"""Subcommands that run whole jobs: collect, eval, demo."""

from __future__ import annotations

import argparse
import json
import textwrap
from pathlib import Path
from typing import Any

from lewm.cli.common import check_env, device_arg, given, integer, number, seed_arg

GYM_HELP = (
    "gym:ID is any Gymnasium environment (gym:MODULE:ID imports MODULE first; gym:ns/Name-v0 "
    "imports ns if it is a module). --gym-make KEY=VALUE (repeatable) passes a keyword argument "
    "to gymnasium.make; --gym-adapter KEY=VALUE (repeatable) sets how lewm reads the env: "
    "pixels (render | obs | obs:KEY), state (obs | obs:KEY | info:KEY, comma-separated), "
    "reset_option, reset_method, reset_correction, goal_option, goal_image (render | dataset), "
    "success (info | terminated), success_keys. VALUEs are JSON when they parse (64, true, null, "
    "[...]), text otherwise."
)


def key_values(items: list[str] | None, flag: str) -> dict[str, Any]:
    """Repeated ``KEY=VALUE`` options as a dict; a VALUE that parses as JSON (numbers, true,
    false, null, lists, objects) is that value, anything else the text itself."""
    out: dict[str, Any] = {}
    for item in items or []:
        key, sep, text = item.partition("=")
        key = key.strip()
        if not sep or not key.isidentifier():
            raise ValueError(f"{flag} takes KEY=VALUE with KEY a name, got {item!r}")
        try:
            out[key] = json.loads(text)
        except json.JSONDecodeError:
            out[key] = text
    return out


def _gym_only(args: argparse.Namespace, flags: dict[str, Any]) -> None:
    """Refuse the options of gym:ID environments for a registered environment."""
    used = [flag for flag, value in flags.items() if value]
    if used:
        raise ValueError(
            f"{', '.join(used)}: only for gym:ID environments, not for the registered "
            f"environment {args.env!r}"
        )


def _collect_gym(args: argparse.Namespace) -> dict[str, Any]:
    from lewm.envs import collect_gym

    for flag, value in (
        ("--noise", args.noise),
        ("--explore", args.explore),
        ("--targets", args.targets),
        ("--max-turn", args.max_turn),
        ("--policy-kind", args.policy_kind),
        ("--look", args.look),
        ("--workers", args.workers),
    ):
        if value is not None:
            raise ValueError(
                f"{flag} is an option of lewm's scripted collectors; a gym:ID environment is "
                "collected with a uniform random policy in its action space, or with "
                "--policy module:callable"
            )
    return collect_gym(
        args.out,
        args.episodes,
        env=args.env,
        make=key_values(args.gym_make, "--gym-make"),
        adapter=key_values(args.gym_adapter, "--gym-adapter"),
        policy=args.policy,
        overwrite=args.overwrite,
        progress=False if args.no_progress else None,
        **given(resolution=args.resolution, seed=args.seed, max_steps=args.max_steps),
    )


def cmd_collect(args: argparse.Namespace) -> int:
    from lewm.envs import get_spec, is_gym_name

    if is_gym_name(args.env):
        stats = _collect_gym(args)
        print(json.dumps({"out": args.out, **stats}, indent=2, default=float))
        return 0
    _gym_only(
        args,
        {"--gym-make": args.gym_make, "--gym-adapter": args.gym_adapter, "--policy": args.policy},
    )
    spec = get_spec(args.env)
    # the collector's own options, from flags given (unset flags leave its defaults alone)
    flags = {
        "--noise": ("noise_std", args.noise),
        "--explore": ("explore", args.explore),
        "--targets": ("targets", args.targets),
        "--max-turn": ("max_turn", args.max_turn),
        "--policy-kind": ("policy_kind", args.policy_kind),
        "--look": ("look", args.look),
    }
    options = {}
    for flag, (option, value) in flags.items():
        if value is None:
            continue
        if option not in spec.collect_options:
            raise ValueError(
                f"{flag} ({option}) is not an option of the {spec.name} collector; it takes: "
                f"{', '.join(spec.collect_options) or 'no options'}"
            )
        options[option] = value
    # keywords every collector takes (the collector's defaults when a flag is not given)
    for name in ("resolution", "seed", "max_steps", "workers"):
        if getattr(args, name) is not None:
            options[name] = getattr(args, name)
    stats = spec.collect(
        args.out,
        args.episodes,
        overwrite=args.overwrite,
        progress=False if args.no_progress else None,
        **options,
    )
    print(json.dumps({"out": args.out, **stats}, indent=2, default=float))
    return 0


# `lewm eval` flags are aliases of keys of the config tree's eval section; their defaults live
# only in EvalConfig and the solver configs (a flag that is not given changes nothing).
EVAL_FLAGS = {
    "episodes": "eval.episodes",
    "goal_offset": "eval.goal_offset",
    "budget": "eval.budget",
    "split": "eval.split",
    "policy": "eval.policy",
    "horizon": "eval.horizon",
    "receding": "eval.receding",
    "context": "eval.context",
    "cost": "eval.cost",
    "seed": "eval.seed",
    "gifs": "eval.num_gifs",
    "solver": "eval.solver.kind",
    "proposal": "eval.proposal",
    "exclude_solved": "eval.exclude_solved",
    "bounded_search": "eval.bounded_search",
}
# options every solver understands, possibly under its own name (GradientConfig.ALIASES)
SOLVER_FLAGS = {"samples": "num_samples", "elites": "num_elites", "iterations": "iterations"}


def eval_config_from_args(args: argparse.Namespace):
    """The eval section: ``--preset``'s, then ``eval.*`` overrides, then the flag aliases."""
    from dataclasses import fields

    from lewm.config import apply_overrides, preset
    from lewm.planning.solvers import solver_config
    from lewm.utils.config import ConfigError, parse_override

    for item in args.overrides:
        key = ".".join(parse_override(item)[0])
        if not key.startswith("eval."):
            raise ConfigError(
                f"lewm eval takes eval.* overrides (e.g. eval.solver.kind=icem); {key!r} is "
                "not an evaluation setting"
            )
    flags = [
        f"{key}={getattr(args, name)}"
        for name, key in EVAL_FLAGS.items()
        if getattr(args, name) is not None
    ]
    env_defaults: list[str] = []  # what an honest evaluation of this env needs (EnvSpec)
    env = getattr(args, "env", None)
    if env is not None:
        from lewm.envs import ENVS

        spec = ENVS.get(env)
        env_defaults = list(spec.eval_defaults) if spec is not None else []
    cfg = preset(args.preset, [*env_defaults, *args.overrides, *flags])  # kinds first
    kind = cfg.eval.solver.kind
    cls = solver_config(kind)
    names = {f.name for f in fields(cls)}
    solver_flags = []
    for flag, option in SOLVER_FLAGS.items():
        value = getattr(args, flag)
        if value is None:
            continue
        target = option if option in names else getattr(cls, "ALIASES", {}).get(option)
        if target is None:
            raise ConfigError(
                f"--{flag} ({option}) is not a setting of solver {kind!r}; its settings: "
                f"{', '.join(sorted(names - {'kind'}))} (as eval.solver.NAME=VALUE)"
            )
        solver_flags.append(f"eval.solver.{target}={value}")
    return apply_overrides(cfg, solver_flags).eval


def gym_env_options(args: argparse.Namespace, data: str | None) -> dict[str, Any]:
    """``make_env`` options of a gym:ID environment: the make kwargs and adapter settings the
    dataset was collected with (``lewm collect gym:ID`` records them), updated key by key by
    ``--gym-make`` / ``--gym-adapter``. Checked (the id imported and found) before any work."""
    from lewm.envs import gym_config, gym_id
    from lewm.envs.gym_adapter import resolve

    make: dict[str, Any] = {}
    adapter: dict[str, Any] = {}
    recorded = _dataset_attrs(data)
    env = recorded.get("env")
    if isinstance(env, str) and gym_id(env) == gym_id(args.env):
        try:
            make = json.loads(recorded.get("gym_make") or "{}")
            adapter = json.loads(recorded.get("gym_adapter") or "{}")
        except json.JSONDecodeError as e:
            raise ValueError(
                f"dataset {data}: its recorded gym_make / gym_adapter attributes are not JSON "
                f"({e}); give the settings with --gym-make / --gym-adapter"
            ) from None
    make.update(key_values(args.gym_make, "--gym-make"))
    adapter.update(key_values(args.gym_adapter, "--gym-adapter"))
    resolve(gym_config(args.env, make, adapter))
    return {"make": make, "adapter": adapter}


def _dataset_attrs(data: str | None) -> dict[str, Any]:
    """The attributes of episode file ``data`` ({} if it cannot be read: evaluation then says
    why)."""
    import h5py

    if data is None:
        return {}
    try:
        with h5py.File(data, "r") as f:
            return {k: (v.item() if hasattr(v, "item") else v) for k, v in f.attrs.items()}
    except (OSError, ValueError):
        return {}


def cmd_eval(args: argparse.Namespace) -> int:
    from lewm.envs import get_spec, gym_config, is_gym_name
    from lewm.models import load
    from lewm.planning.evaluate import eval_folder_name, evaluate

    device = device_arg(args.device)  # a device this machine lacks fails before any work
    if args.offline:
        return _eval_offline(args, device)
    model = None
    if args.env is None:  # the environment the model's training data came from
        model = load(args.checkpoint)
        args.env = (model.metadata or {}).get("env")
        if not args.env:
            from lewm.envs import ENV_NAMES

            raise ValueError(
                f"--env is required ({', '.join(ENV_NAMES)}, or gym:ID): the checkpoint does "
                "not record the environment of its training data"
            )
        from lewm.envs import ENVS

        if not is_gym_name(args.env) and args.env not in ENVS:
            raise ValueError(
                f"no --env given, and the model's data come from {args.env!r}, which lewm cannot "
                f"simulate (available: {', '.join(sorted(ENVS))}, or gym:ID): give --env NAME "
                "(and --any-env)"
            )
    gym_env = is_gym_name(args.env)
    if gym_env:
        gym_config(args.env)  # a malformed name fails before any work
    else:
        get_spec(args.env)  # an unknown environment fails before any work
        _gym_only(args, {"--gym-make": args.gym_make, "--gym-adapter": args.gym_adapter})
    cfg = eval_config_from_args(args)
    # the random policy does not use the model, but its metadata (dataset, episode split) makes
    # it draw the same held-out tasks as the planner
    model = load(args.checkpoint) if model is None else model
    check_env(model, args.env, args.any_env)
    data = args.data or model.metadata.get("dataset")
    if data is None:
        raise ValueError("--data is required: the checkpoint does not record its dataset")
    env_options = gym_env_options(args, data) if gym_env else None
    proposal = None
    if cfg.uses_policy():  # the checkpoint's trained policy, checked before any work
        from lewm.models import resolve_checkpoint
        from lewm.planning.policy import policy_for

        proposal = policy_for(resolve_checkpoint(args.checkpoint), model)
    # by default a folder per setting, beside the model: comparing solvers never overwrites
    folder = eval_folder_name(args.env, cfg, data, env_options)
    out = Path(args.out or Path(args.checkpoint) / folder)
    progress = False if args.no_progress else None
    if args.distributed:
        from lewm.planning.evaluate import evaluate_distributed
        from lewm.utils.distributed import init, shutdown

        info = init("auto")
        try:
            res = evaluate_distributed(
                model,
                args.env,
                data,
                cfg,
                out,
                info,
                progress=progress,
                overwrite=args.overwrite,
                env_options=env_options,
                proposal=proposal,
            )
        finally:
            shutdown(info)
        if not info.is_main:
            return 0
    else:
        res = evaluate(
            model,
            args.env,
            data,
            cfg,
            out_dir=out,
            device=device,
            progress=progress,
            overwrite=args.overwrite,
            env_options=env_options,
            proposal=proposal,
        )
    print(
        json.dumps(
            {
                "success_rate": res.success_rate,
                "episodes": len(res.successes),
                "plan_seconds_mean": res.plan_seconds_mean,
                "plans": res.plans,
                "clipped_steps": res.clipped_steps,
                "wall_seconds": round(res.wall_seconds, 1),
                "eval_json": str(out / "eval.json"),
            },
            indent=2,
        )
    )
    return 0


# what --offline does not use: no environment runs, so these would be silently ignored
OFFLINE_UNUSED = {
    "env": "--env",
    "gym_make": "--gym-make",
    "gym_adapter": "--gym-adapter",
    "any_env": "--any-env",
    "distributed": "--distributed",
    "budget": "--budget",
    "receding": "--receding",
    "policy": "--policy",
    "gifs": "--gifs",
}


def _eval_offline(args: argparse.Namespace, device: Any) -> int:
    """``lewm eval RUN --offline``: open-loop prediction error and action recovery on logged
    episodes, no environment (lewm.planning.offline)."""
    import dataclasses

    from lewm.models import load, resolve_checkpoint
    from lewm.planning.offline import OFFLINE_FILE, evaluate_offline, offline_folder_name
    from lewm.utils.config import ConfigError, parse_override

    used = [
        flag
        for name, flag in OFFLINE_UNUSED.items()
        if getattr(args, name, None) not in (None, False, [])
    ]
    online = {"eval.budget", "eval.receding", "eval.policy", "eval.num_gifs"}
    used += [o for o in args.overrides if ".".join(parse_override(o)[0]) in online]
    if used:
        raise ConfigError(
            f"--offline runs no environment, so {', '.join(used)} would be ignored: drop "
            f"{'it' if len(used) == 1 else 'them'} (offline reads episodes of --data only)"
        )
    if args.horizon is not None:  # receding is an online setting: keep it valid, unused
        args.overrides = [*args.overrides, f"eval.receding={args.horizon}"]
    cfg = eval_config_from_args(args)
    model = load(args.checkpoint)
    f = int(model.frameskip)
    horizon_given = args.horizon is not None or any(
        ".".join(parse_override(o)[0]) == "eval.horizon" for o in args.overrides
    )
    if not horizon_given and cfg.goal_offset % f == 0:  # the plan ends at the logged goal
        K = cfg.goal_offset // f
        cfg = dataclasses.replace(cfg, horizon=K, receding=K)
    data = args.data or model.metadata.get("dataset")
    if data is None:
        raise ValueError("--data is required: the checkpoint does not record its dataset")
    proposal = None
    if cfg.uses_policy():
        from lewm.planning.policy import policy_for

        proposal = policy_for(resolve_checkpoint(args.checkpoint), model)
    out = Path(args.out or Path(args.checkpoint) / offline_folder_name(cfg, data))
    res = evaluate_offline(
        model,
        data,
        cfg,
        out_dir=out,
        device=device,
        progress=False if args.no_progress else None,
        overwrite=args.overwrite,
        proposal=proposal,
    )
    print(
        json.dumps(
            {
                "tasks": len(res.tasks),
                "blocks": res.blocks,
                "rollout_error_at_goal": round(res.rollout_error[-1], 4),
                "copy_last_error_at_goal": round(res.copy_last_error[-1], 4),
                "action_r2": round(res.action_r2, 3),
                "first_block_r2": round(res.first_block_r2, 3),
                "net_action_r2": round(res.net_action_r2, 3),
                "net_action_error": {k: round(v, 4) for k, v in res.net_action_error.items()},
                "cost_planned": round(res.cost_planned, 4),
                "cost_logged": round(res.cost_logged, 4),
                "cost_planned_median": round(res.cost_planned_median, 4),
                "cost_logged_median": round(res.cost_logged_median, 4),
                "plan_cheaper_fraction": round(res.plan_cheaper_fraction, 3),
                "plan_seconds_mean": round(res.plan_seconds_mean, 4),
                "offline_json": str(out / OFFLINE_FILE),
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
    """The evaluation options: ``eval.*`` overrides and flags that alias them (defaults: the
    preset's eval section, i.e. the paper's protocol)."""
    from lewm.config import PRESETS

    p.add_argument(
        "--env",
        default=None,
        help="environment: a registered name (tworoom, pusht, reacher, cube) or gym:ID (default: "
        "the one the model's training data came from). "
        + GYM_HELP
        + " For gym:ID the settings recorded in the dataset by `lewm collect gym:ID` are used, "
        "updated key by key by these options.",
    )
    _add_gym_args(p)
    p.add_argument(
        "--data",
        default=None,
        help="episode file with a 'state' column (default: the training dataset)",
    )
    p.add_argument(
        "--preset",
        default="paper",
        choices=list(PRESETS),
        help="take the eval settings of this preset (default: paper, the paper's protocol)",
    )
    alias = "alias of eval.{}".format
    p.add_argument("--episodes", type=int, help=alias("episodes (start/goal pairs; 50)"))
    p.add_argument("--goal-offset", type=int, help=alias("goal_offset (env steps; 25)"))
    p.add_argument("--budget", type=int, help=alias("budget (env steps allowed; 50)"))
    p.add_argument(
        "--split",
        choices=["heldout", "train", "all"],
        help=alias("split: episodes of the training file to draw tasks from (another file: all)"),
    )
    p.add_argument(
        "--policy",
        choices=["plan", "random", "replay"],  # = planning.config.POLICIES
        help=alias(
            "policy (plan): plan with the model, the random policy, or replay the dataset's own "
            "actions from each start (is the goal reachable from the reset state?)"
        ),
    )
    p.add_argument(
        "--solver",
        help=alias(
            "solver.kind: cem (default), icem, mppi, adam, or policy (the checkpoint's trained "
            "policy alone, see `lewm policy`)"
        ),
    )
    p.add_argument(
        "--proposal",
        choices=["none", "policy"],
        help=alias(
            "proposal: policy = start every search at the plan of the checkpoint's trained "
            "policy (`lewm policy RUN`), e.g. --proposal policy --samples 30 --iterations 3 "
            "eval.solver.init_std=0.5 (default: none)"
        ),
    )
    p.add_argument(
        "--samples",
        type=int,
        help=alias("solver.num_samples: candidates per iteration (restarts for adam)"),
    )
    p.add_argument("--elites", type=int, help=alias("solver.num_elites"))
    p.add_argument("--iterations", type=int, help=alias("solver.iterations (adam: solver.steps)"))
    p.add_argument("--horizon", type=int, help=alias("horizon: action blocks per plan (5)"))
    p.add_argument(
        "--receding", type=int, help=alias("receding: blocks executed before replanning (5)")
    )
    p.add_argument(
        "--context", type=int, help=alias("context: observed frames given to the model (1)")
    )
    p.add_argument(
        "--cost",
        choices=["terminal", "path"],
        help=alias(
            "cost: distance of the last predicted latent to the goal (terminal, the paper) or "
            "the mean over all predicted latents (path)"
        ),
    )
    p.add_argument(
        "--exclude-solved",
        choices=["true", "false"],
        help=alias(
            "exclude_solved: leave out tasks whose start already passes the success test "
            "(default: false; true for cube); their count is reported either way"
        ),
    )
    p.add_argument(
        "--bounded-search",
        choices=["true", "false"],
        help=alias(
            "bounded_search: clamp every candidate to the environment's action bounds before the "
            "model scores it (default: false, the reference, which scores unclipped actions)"
        ),
    )
    p.add_argument("--seed", type=int, help=alias("seed (42)"))
    p.add_argument("--gifs", type=int, help=alias("num_gifs (4)"))
    p.add_argument(
        "--out",
        default=None,
        help="output folder (default: CHECKPOINT/eval_ENV_POLICY_SOLVER_DIGEST, one per setting)",
    )
    p.add_argument(
        "--overwrite", action="store_true", help="replace an earlier evaluation in that folder"
    )
    p.add_argument(
        "--any-env",
        action="store_true",
        help="allow an environment other than the one the model was trained on",
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument(
        "--offline",
        action="store_true",
        help="no environment: on the logged episodes of --data (any file of the model's "
        "frames and actions, no 'state' column needed), the open-loop prediction error per "
        "block along the logged actions and how well one plan toward the logged goal "
        "(--goal-offset steps later) recovers the logged actions, beside baselines; writes "
        "offline.json and offline.png (default folder CHECKPOINT/offline_SOLVER_DIGEST). The "
        "plan's horizon is goal-offset / frameskip blocks",
    )
    p.add_argument(
        "--device",
        default="auto",
        help="where the model plans: auto (default: CUDA when available), cpu, cuda or cuda:N; "
        "with --distributed each torchrun process takes its own GPU",
    )
    p.add_argument(
        "--distributed",
        action="store_true",
        help="one of several torchrun processes: each evaluates a share of the "
        "episodes, rank 0 merges them into eval.json",
    )
    p.add_argument(
        "overrides",
        nargs="*",
        metavar="KEY=VALUE",
        help="eval.* overrides, e.g. eval.solver.kind=icem eval.solver.noise_beta=1",
    )


def _add_gym_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--gym-make",
        action="append",
        metavar="KEY=VALUE",
        help="gym:ID only: a keyword argument of gymnasium.make (repeatable), e.g. "
        "--gym-make obs_type=pixels_agent_pos",
    )
    p.add_argument(
        "--gym-adapter",
        action="append",
        metavar="KEY=VALUE",
        help="gym:ID only: an adapter setting (repeatable), e.g. --gym-adapter "
        "reset_option=reset_to_state --gym-adapter state=info:pos_agent,info:block_pose",
    )


def add_commands(sub: argparse._SubParsersAction) -> None:
    """Register the job subcommands on the main parser."""
    c = sub.add_parser(
        "collect",
        help="collect an episode dataset from a scripted expert (or a random policy in any "
        "Gymnasium environment, gym:ID)",
        description=textwrap.fill("Collect episodes into an HDF5 file. " + GYM_HELP, 78),
        epilog="example (huggingface/gym-pusht):\n"
        "  lewm collect gym:gym_pusht/PushT-v0 --episodes 20 --out pusht.h5 --resolution 64 \\\n"
        "    --gym-make obs_type=pixels_agent_pos \\\n"
        "    --gym-make observation_width=64 --gym-make observation_height=64 \\\n"
        "    --gym-adapter pixels=obs:pixels \\\n"
        "    --gym-adapter state=info:pos_agent,info:block_pose \\\n"
        "    --gym-adapter reset_option=reset_to_state --gym-adapter reset_correction=1",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    c.add_argument(
        "env",
        help="environment: a registered name (tworoom, pusht, reacher, cube) or gym:ID (see above)",
    )
    c.add_argument("--episodes", type=integer(1, 10**7), required=True)
    c.add_argument("--out", required=True, help="output .h5 file")
    c.add_argument("--resolution", type=integer(8, 4096), help="image side in pixels (default: 64)")
    c.add_argument("--seed", type=seed_arg(), help="random seed (default: 0)")
    c.add_argument(
        "--max-steps",
        type=integer(1, 10**6),
        default=None,
        help="actions per episode at most (default: the environment's)",
    )
    c.add_argument(
        "--noise",
        type=number(0.0, 1e6),
        default=None,
        help="noise_std: std of the Gaussian action noise of the scripted policy (cube: the "
        "largest per-episode noise level, 0.1) "
        "(default: the environment's)",
    )
    c.add_argument(
        "--explore",
        type=number(0.0, 1.0, below_hi=True),
        default=None,
        help="explore (pusht, cube): fraction of steps spent in random action segments between "
        "the scripted policy's moves "
        "(default: the environment's)",
    )
    c.add_argument(
        "--targets",
        choices=("random", "goal"),
        default=None,
        help="targets (pusht): 'goal' makes each episode's first block target the task's goal "
        "pose, as in human demonstrations; random targets follow (default: random)",
    )
    c.add_argument(
        "--max-turn",
        type=number(0.0, 180.0),
        default=None,
        metavar="DEGREES",
        help="max_turn (pusht): largest turn of a random block target (default: 90)",
    )
    c.add_argument(
        "--policy-kind",
        choices=("random", "pd"),
        default=None,
        help="policy_kind (reacher): 'random' (uniform commands, the authors' released data) or "
        "'pd' (noisy PD control toward random joint configurations) (default: random)",
    )
    c.add_argument(
        "--look",
        choices=("fast", "draft", "ogbench"),
        default=None,
        help="look (cube): 'fast' draws the arm with its collision meshes, no shadows (~5x "
        "faster on a CPU); 'draft' is 'fast' without anti-aliasing (~2.6x faster again); "
        "'ogbench' is MuJoCo's default look of OGBench's scene (default: draft)",
    )
    c.add_argument(
        "--workers",
        type=integer(1, 256),
        default=None,
        help="worker processes that simulate and render episodes (at most one per episode; "
        "a seed gives the same data for any count; not for gym:ID) (default: 1)",
    )
    _add_gym_args(c)
    c.add_argument(
        "--policy",
        default=None,
        metavar="MODULE:CALLABLE",
        help="gym:ID only: policy(observation, action_space, rng) -> action, actions clipped into "
        "the action space (default: uniform random in the action space)",
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
    d.add_argument("--seed", type=seed_arg(), default=0)
    d.add_argument("--overwrite", action="store_true", help="replace an existing --out")
    d.set_defaults(func=cmd_demo)
