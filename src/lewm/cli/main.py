"""The ``lewm`` command: one entry point, one subcommand per job."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys

from lewm import __version__

log = logging.getLogger("lewm")


# Errors that mean "the user asked for something wrong": printed as one line, exit code 2.
def _user_errors() -> tuple[type[BaseException], ...]:
    from lewm.data.hdf5 import DataError
    from lewm.models import CheckpointError
    from lewm.utils.config import ConfigError
    from lewm.utils.distributed import DistributedError

    return (
        ConfigError,
        DistributedError,
        DataError,
        CheckpointError,
        OSError,  # FileExistsError, FileNotFoundError, PermissionError, a full disk, ...
        ValueError,
        KeyError,
        ImportError,
        FloatingPointError,  # training diverged: the message says how to continue
    )


def _one_line(e: BaseException) -> str:
    """The message of a user error on one line."""
    msg = str(e.args[0]) if isinstance(e, KeyError) and e.args else str(e)
    return " ".join((msg or type(e).__name__).split())


def _add_overrides(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "overrides",
        nargs="*",
        metavar="KEY=VALUE",
        help="config overrides, e.g. train.steps=2000 model.predictor.history=1",
    )


def cmd_train(args: argparse.Namespace) -> int:
    from lewm.config import apply_overrides, preset
    from lewm.training.trainer import train
    from lewm.utils.distributed import LAUNCH_HINT, DistributedError, launched_by_torchrun

    if not args.distributed and launched_by_torchrun():
        raise DistributedError(
            "WORLD_SIZE > 1: this looks like one of several torchrun workers, but --distributed "
            f"was not given (every worker would train alone into the same --out); {LAUNCH_HINT}"
        )
    if args.distributed and os.environ.get("RANK", "0") != "0":
        logging.getLogger("lewm").setLevel(logging.WARNING)  # rank 0 speaks for the job
    if args.resume and args.overwrite:
        raise ValueError("--resume continues a run and --overwrite replaces it: give one")
    if args.resume and args.preset is None:
        # the run's own config, with the overrides the user gave (only safe ones are accepted)
        from lewm.config import Config
        from lewm.training.rundir import read_run

        cfg = apply_overrides(Config.from_dict(read_run(args.out)["config"]), args.overrides)
    else:  # a kind switch (model.kind=pldm) keeps the preset's sizes: see lewm.config.preset
        cfg = preset(args.preset or "cpu", args.overrides)
    chosen = {"camera": args.camera, "action_key": args.action_key, "state_key": args.state_key}
    if any(v is not None for v in chosen.values()):  # the flags are data.* overrides
        from lewm.data.config import DataConfig

        given = {k: v for k, v in chosen.items() if v is not None}
        cfg.data = DataConfig(**{**vars(cfg.data), **given})
    res = train(
        cfg,
        args.data,
        args.out,
        resume=args.resume,
        overwrite=args.overwrite,
        progress=None if not args.no_progress else False,
        distributed=args.distributed,
        allow_other_data=args.allow_other_data,
    )
    if res.rank != 0:
        return 0
    summary = {k: round(v, 5) for k, v in res.final.items() if isinstance(v, float)}
    print(
        json.dumps(
            {
                "run_dir": str(res.run_dir),
                "model": str(res.model_dir),
                "steps": res.steps,
                "seconds": round(res.seconds, 1),
                **summary,
            },
            indent=2,
        )
    )
    return 0


def cmd_info(args: argparse.Namespace) -> int:
    from lewm.models import load, resolve_checkpoint
    from lewm.utils.config import to_dict

    path = resolve_checkpoint(args.checkpoint)
    model = load(path)
    info = {
        "checkpoint": str(path),
        "kind": model.config.kind,
        "parameters": model.param_counts(),
        "latent_dim": model.latent_dim,
        "image_size": model.image_size,
        "history": model.history,
        "frameskip": model.frameskip,
        "action_dim": model.action_dim,
        "normalizer": sorted(model.normalizer.stats) if model.normalizer else [],
        "config": to_dict(model.config),
        "metadata": model.metadata,
    }
    print(json.dumps(info, indent=2))
    return 0


def cmd_presets(args: argparse.Namespace) -> int:
    from lewm.config import PRESETS

    width = max(map(len, PRESETS))
    for name, p in PRESETS.items():
        base = f" (from {p.base})" if p.base else ""
        print(f"{name:<{width}}  {p.description}{base}")
    return 0


def cmd_config(args: argparse.Namespace) -> int:
    from lewm.config import preset

    cfg = preset(args.preset, args.overrides)
    print(json.dumps(cfg.to_dict(), indent=2))
    return 0


class _Parser(argparse.ArgumentParser):
    """argparse with errors on one line, like every other lewm error (exit code 2)."""

    def error(self, message: str) -> None:  # type: ignore[override]
        msg = " ".join(message.split())
        self.exit(2, f"{self.prog}: error: {msg} (see `{self.prog} --help`)\n")


def build_parser() -> argparse.ArgumentParser:
    from lewm.config import PRESETS

    p = _Parser(
        prog="lewm",
        description="LeWorldModel: train a JEPA world model from pixels, plan with it, analyse it.",
    )
    p.add_argument("--version", action="version", version=f"lewm {__version__}")
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")

    t = sub.add_parser(
        "train", help="train a world model on an episode HDF5 file or a LeRobot dataset folder"
    )
    t.add_argument(
        "--data",
        required=True,
        help="episode HDF5 file (see `lewm collect`; the authors' files too), several read as "
        "one ('a.h5,b.h5', a quoted glob 'shards/*.h5' or a folder of .h5 files), or a local "
        "LeRobot v3.0 dataset folder. Kept in memory when it fits, else streamed from disk "
        "(data.mode=auto|memory|stream, data.workers, data.prefetch)",
    )
    t.add_argument(
        "--camera",
        default=None,
        help="LeRobot: the camera feature to train on, e.g. observation.images.top (default: "
        "the first RGB camera; = data.camera)",
    )
    t.add_argument(
        "--action-key",
        default=None,
        help="LeRobot: the action column (default: action; = data.action_key)",
    )
    t.add_argument(
        "--state-key",
        default=None,
        help="LeRobot: the state column (default: observation.state; = data.state_key)",
    )
    t.add_argument("--out", required=True, help="run directory (metrics, checkpoints, model/)")
    t.add_argument(
        "--preset",
        default=None,
        choices=list(PRESETS),
        help="configuration preset (default: cpu, or the run's own config with --resume; "
        "`lewm presets` lists them)",
    )
    t.add_argument(
        "--resume",
        action="store_true",
        help="continue the run in --out; overrides may change only the schedule, learning rate, "
        "logging and evaluation settings (recorded in run.json)",
    )
    t.add_argument(
        "--overwrite",
        action="store_true",
        help="replace an existing run directory (only one lewm wrote, never one holding --data)",
    )
    t.add_argument(
        "--allow-other-data",
        action="store_true",
        help="with --resume: continue on a dataset other than the run's",
    )
    t.add_argument("--no-progress", action="store_true", help="no progress bar")
    t.add_argument(
        "--distributed",
        action="store_true",
        help="data-parallel training under torchrun (one process per GPU, or gloo on CPU): "
        "torchrun --nproc-per-node K -m lewm.train --data ... --out ...",
    )
    _add_overrides(t)
    t.set_defaults(func=cmd_train)

    i = sub.add_parser("info", help="describe a checkpoint")
    i.add_argument("checkpoint", help="checkpoint folder or run directory")
    i.set_defaults(func=cmd_info)

    ps = sub.add_parser("presets", help="list the named configuration presets")
    ps.set_defaults(func=cmd_presets)

    c = sub.add_parser("config", help="print the config tree of a preset with overrides applied")
    c.add_argument("--preset", default="cpu", choices=list(PRESETS))
    _add_overrides(c)
    c.set_defaults(func=cmd_config)

    from lewm.cli import analysis, jobs, transfer

    jobs.add_commands(sub)
    analysis.add_commands(sub)
    transfer.add_commands(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    try:
        # key=value overrides may come anywhere on the line, also after options
        args, extra = parser.parse_known_args(argv)
        if extra:
            overrides = all("=" in e and not e.startswith("-") for e in extra)
            if hasattr(args, "overrides") and overrides:
                args.overrides = [*args.overrides, *extra]
            else:
                parser.error(f"unrecognized arguments: {' '.join(extra)}")
    except SystemExit as e:  # --help, --version, or a bad option (already printed, one line)
        return e.code if isinstance(e.code, int) else 0 if e.code is None else 2
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(levelname)s %(name)s: %(message)s",
    )
    if not getattr(args, "func", None):
        parser.print_help()
        return 1
    try:
        return args.func(args)
    except _user_errors() as e:
        print(f"lewm {args.command}: error: {_one_line(e)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as e:
        print(f"lewm {args.command}: {_one_line(e) if str(e) else 'interrupted'}", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
