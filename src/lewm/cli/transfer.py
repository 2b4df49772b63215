"""``lewm import`` / ``lewm export``: the paper authors' checkpoint format (stable-worldmodel's
``weights.pt`` + ``config.json``) in and out; see :mod:`lewm.models.upstream`."""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

from lewm.cli.common import integer

log = logging.getLogger("lewm")


def _action_stats(data: str) -> tuple[object, dict]:
    """The action normaliser the authors' evaluation uses (z-score over every finite row of the
    dataset's ``action`` column) and what the checkpoint records about the data."""
    import numpy as np

    from lewm.data.hdf5 import DataError
    from lewm.data.normalize import Normalizer
    from lewm.data.open import open_dataset

    ds = open_dataset(data, in_memory=False)
    try:
        actions = np.asarray(ds.column("action")[:], np.float64).reshape(ds.num_steps, -1)
        env = ds.attrs.get("env") if hasattr(ds, "attrs") else None
    finally:
        ds.close()
    finite = actions[np.isfinite(actions).all(axis=1)]
    if not len(finite):
        raise DataError(f"dataset {data} has no finite action rows to fit action statistics on")
    meta = {
        "normalizer_data": str(Path(data).resolve()),
        "action_range": [finite.min(0).tolist(), finite.max(0).tolist()],
    }
    if isinstance(env, str):
        meta["env"] = env
    return Normalizer.fit({"action": finite}), meta


def _check_replaceable(out: Path, source: Path) -> None:
    """--overwrite replaces only a lewm checkpoint folder, never the checkpoint being read."""
    if not out.exists():
        return
    src = source if source.is_dir() else source.parent
    if out.resolve() == src.resolve():
        raise FileExistsError(f"--out {out} is the checkpoint being imported; choose another path")
    try:
        own = json.loads((out / "config.json").read_text()).get("format") == "lewm-checkpoint"
    except (OSError, ValueError, AttributeError):
        own = False
    if not own:
        raise FileExistsError(
            f"--out {out} exists and is not a lewm checkpoint folder; --overwrite replaces only "
            "those: choose another path"
        )


def cmd_import(args: argparse.Namespace) -> int:
    from lewm.models.upstream import import_upstream
    from lewm.utils.io import refuse_existing

    refuse_existing(args.out, args.overwrite, "checkpoint")
    _check_replaceable(Path(args.out), Path(args.checkpoint))
    normalizer, meta = (None, {})
    if args.data:
        normalizer, meta = _action_stats(args.data)
    if args.env:
        meta["env"] = args.env
    model = import_upstream(
        args.checkpoint, frameskip=args.frameskip, normalizer=normalizer, metadata=meta
    )
    out = model.save_pretrained(args.out, overwrite=args.overwrite)
    src = model.metadata["imported_from"]
    summary = {
        "checkpoint": str(out),
        "parameters": model.param_counts()["total"],
        "vit_key_names": src["vit_key_names"],
        "frameskip": model.frameskip,
        "action_dim": model.action_dim,
        "normalizer": sorted(model.normalizer.stats) if model.normalizer else [],
        "ignored_config_keys": src["ignored_config_keys"],
    }
    print(json.dumps(summary, indent=2))
    if src["frameskip_assumed"]:
        log.warning(
            "the authors' format does not record the frameskip: assumed %d (%d actions of "
            "dimension %d per block); pass --frameskip if the model was trained otherwise",
            model.frameskip,
            model.frameskip,
            model.action_dim,
        )
    if model.normalizer is None:
        log.warning(
            "no action statistics: the model encodes and predicts, but planning needs them; "
            "import again with --data FILE (the dataset the model plans on)"
        )
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from lewm.models import load
    from lewm.models.upstream import export_upstream

    model = load(args.checkpoint)
    out = export_upstream(model, args.out, vit_naming=args.vit_names, overwrite=args.overwrite)
    print(
        json.dumps(
            {
                "folder": str(out),
                "format": args.format,
                "files": sorted(p.name for p in out.iterdir()),
                "vit_key_names": "transformers-5" if args.vit_names == "v5" else "transformers-4",
                "parameters": model.param_counts()["total"],
            },
            indent=2,
        )
    )
    return 0


def add_commands(sub: argparse._SubParsersAction) -> None:
    i = sub.add_parser(
        "import",
        help="convert an authors' checkpoint (weights.pt + config.json) to a lewm checkpoint",
        description="Convert a checkpoint folder written by the paper authors' code "
        "(stable-worldmodel save_pretrained, le-wm's Hugging Face mirrors: weights.pt + "
        "config.json, Hydra or plain config form, transformers 4.x or 5.x ViT key names) into "
        "a lewm checkpoint folder.",
    )
    i.add_argument("checkpoint", help="folder with weights.pt + config.json, or the .pt file")
    i.add_argument("--out", required=True, help="lewm checkpoint folder to write")
    i.add_argument(
        "--data",
        default=None,
        help="dataset whose action column gives the action statistics planning needs (the "
        "authors z-score actions over the whole file)",
    )
    i.add_argument(
        "--frameskip",
        type=integer(1, 1000),
        default=None,
        help="actions per block the model was trained with (not in their format; default 5, "
        "as in every environment of the paper)",
    )
    i.add_argument("--env", default=None, help="environment the model belongs to (metadata)")
    i.add_argument("--overwrite", action="store_true", help="replace an existing --out")
    i.set_defaults(func=cmd_import)

    e = sub.add_parser(
        "export",
        help="write a lewm LeWM checkpoint in another format (the authors' weights.pt + "
        "config.json)",
    )
    e.add_argument("checkpoint", help="lewm checkpoint folder or run directory")
    e.add_argument("--out", required=True, help="folder to write")
    e.add_argument(
        "--format",
        choices=["upstream"],
        default="upstream",
        help="upstream: stable-worldmodel's save_pretrained folder, loadable with their "
        "load_pretrained (default)",
    )
    e.add_argument(
        "--vit-names",
        choices=["v5", "v4"],
        default="v5",
        help="ViT key names of transformers 5.x (v5, default) or 4.x (v4)",
    )
    e.add_argument("--overwrite", action="store_true", help="replace an existing --out")
    e.set_defaults(func=cmd_export)
