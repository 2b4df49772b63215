"""Fuzz the ``lewm`` command line with malformed options, config overrides, datasets,
checkpoints and paths.

The cases are generated, not listed: seeded ``numpy.random.default_rng`` streams (one per kind)
draw the bad values, the keys of the config tree, the truncation points, the flipped bytes, the
tensors made NaN. Every case is invalid *by construction*, and for each one the test asserts the
CLI contract:

- exit code 2 and no Python traceback;
- exactly one line on stderr, ``lewm COMMAND: error: MESSAGE``, naming the option, config key or
  file at fault (argument-parsing errors, ``--episodes abc`` or an unknown choice, too: lewm's
  parser prints them on one line);
- nothing that existed before the call changes: the list of files and the sha256 of each, in the
  trained world, in the case's inputs and in the working folder; and a new output folder named on
  the command line does not appear (no case is valid, so no output is expected at all).

The CLI runs in-process (``main(argv)`` under ``capsys``; log records and warnings are written to
the captured stderr as a real process would print them), and a handful of cases also as a real
``python -m lewm.cli.main`` process. A per-case alarm and address-space and file-size ceilings
keep a case that is wrongly accepted from running for minutes or filling memory or disk.

    LEWM_FUZZ_SEED=N            another seed (the default one is fixed, so a failure reproduces)
    LEWM_FUZZ_REPORT=out.jsonl  one JSON record per case: argv, exit code, stderr, traceback
                                frames, modified files, problems (the failure report)
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import time
import traceback
import typing
import warnings
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, fields, is_dataclass
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pytest

from lewm.cli.main import build_parser, main
from lewm.config import Config, apply_overrides, preset
from lewm.planning.solvers import SOLVERS

SEED = int(os.environ.get("LEWM_FUZZ_SEED", "20260"))
REPORT = os.environ.get("LEWM_FUZZ_REPORT")
KINDS = ("option", "config", "dataset", "checkpoint", "path")
MIN_CASES = {"option": 100, "config": 150, "dataset": 40, "checkpoint": 60, "path": 20}
CASE_TIMEOUT_S = 10  # a wrongly accepted case is stopped here (and fails)
MEMORY_HEADROOM = 3 * 2**30  # address space allowed beyond what the test process already has
FILE_CEILING = 2**30  # the largest file a case may write

# The valid world every case mutates (the commands of the task statement).
COLLECT = ("collect", "tworoom", "--episodes", "30", "--resolution", "16", "--no-progress")
TRAIN = ("--preset", "tiny", "--no-progress", "model.predictor.history=1", "train.steps=2")

# A valid command line per command, quick to run should a bad value be accepted. Placeholders:
# {DATA} the valid dataset, {CKPT} the valid checkpoint (run/model), {BAD} the case's mutated
# input, {NEW} an output folder that does not exist, {FILE} an existing file, {DIR} an existing
# non-empty folder, {RO} a read-only folder, {MISSING} a path that does not exist.
EVAL_COMMON = ("eval.episodes=1", "eval.num_gifs=0")
EVAL_SOLVER_BASE = {  # valid, fast solver settings per kind
    "cem": ("eval.solver.num_samples=8", "eval.solver.num_elites=2", "eval.solver.iterations=1"),
    "icem": (
        "eval.solver.kind=icem",
        "eval.solver.num_samples=8",
        "eval.solver.num_elites=4",
        "eval.solver.keep_elites=1",
        "eval.solver.iterations=1",
    ),
    "mppi": (
        "eval.solver.kind=mppi",
        "eval.solver.num_samples=8",
        "eval.solver.num_elites=2",
        "eval.solver.iterations=1",
    ),
    "adam": ("eval.solver.kind=adam", "eval.solver.num_samples=2", "eval.solver.steps=1"),
}
EVAL_FAST = (*EVAL_COMMON, *EVAL_SOLVER_BASE["cem"])
BASE: dict[str, tuple[str, ...]] = {
    "collect": ("collect", "tworoom", "--episodes=2", "--resolution=16", "--no-progress"),
    "train": ("train", "--data", "{DATA}", "--out", "{NEW}", *TRAIN, "train.val_every=0"),
    "eval": ("eval", "{CKPT}", "--out", "{NEW}", "--no-progress", *EVAL_FAST),
    "probe": ("probe", "{CKPT}", "--out", "{NEW}", "--no-progress", "--frames=200"),
    "surprise": (
        "surprise",
        "{CKPT}",
        "--out",
        "{NEW}",
        "--no-progress",
        "--trajectories=4",
        "--frames=3",
        "--perturb-frame=2",
    ),
    "straightness": ("straightness", "{CKPT}", "--no-progress", "--frames=3"),
    "viz": (
        "viz",
        "{CKPT}",
        "--out",
        "{NEW}",
        "--no-progress",
        "--grid=4",
        "--method=pca",
        "--horizon=2",
    ),
    "info": ("info", "{CKPT}"),
    "config": ("config", "--preset=tiny"),
    "demo": ("demo", "--out", "{NEW}", "--quick"),
}
COLLECT_OUT = ("--out", "{NEW}/data.h5")  # collect writes a file; {NEW} is its new folder


def _rngs() -> dict[str, np.random.Generator]:
    """One generator per kind, so that changing one kind's generator leaves the others' cases."""
    seqs = np.random.SeedSequence(SEED).spawn(len(KINDS))
    return {k: np.random.default_rng(s) for k, s in zip(KINDS, seqs, strict=True)}


# -- cases ----------------------------------------------------------------------------------------

Builder = Callable[["World", Path, dict[str, Path], np.random.Generator], str]


@dataclass(frozen=True)
class Case:
    id: str
    kind: str  # one of KINDS
    argv: tuple[str, ...]  # with placeholders (see BASE)
    names: tuple[str, ...]  # the error must contain one of these (placeholders allowed)
    what: str  # the defect, in words
    seed: int  # of the builder's generator (byte positions, tensors, ...)
    parse_error: bool = False  # rejected by the argument parser (still one line)
    build: Builder | None = None  # makes {BAD}; returns a detail for messages

    @property
    def command(self) -> str:
        return self.argv[0]


class _Ids:
    def __init__(self) -> None:
        self.count: Counter[str] = Counter()

    def __call__(self, *parts: Any) -> str:
        raw = "-".join(str(p) for p in parts if p != "")
        safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in raw.lower())[:70]
        self.count[safe] += 1
        return f"{safe}-{self.count[safe]:02d}"


def _word(rng: np.random.Generator, avoid: set[str] = frozenset()) -> str:
    """A random lowercase word that is none of ``avoid``."""
    while True:
        w = "".join(rng.choice(list("abcdefghijklmnopqrstuvwxyz"), int(rng.integers(4, 9))))
        if w not in avoid:
            return w


def _neg(rng: np.random.Generator) -> str:
    return str(-int(rng.integers(2, 10**6)))


def _huge(rng: np.random.Generator) -> str:
    # sizes no machine holds (and 2**63 overflows int64)
    return str(rng.choice([10**12, 10**15, 2**63, 10**30]))


# -- kind 1: option values ------------------------------------------------------------------------


@dataclass(frozen=True)
class NumOpt:
    command: str
    flag: str
    float_: bool = False
    zero: bool = True  # 0 is out of range
    negative: bool = True  # negatives are out of range
    huge: bool = False  # absurd sizes are out of range (memory no machine has)
    extra: tuple[str, ...] = ()  # further out-of-range values, given the command's BASE line
    key: str | None = None  # the config key the flag is an alias of (an error may name either)


NUM_OPTS = (
    NumOpt("collect", "--episodes", huge=True),
    NumOpt("collect", "--resolution", huge=True, extra=("1", "7")),
    NumOpt("collect", "--seed", zero=False),
    NumOpt("collect", "--max-steps"),
    NumOpt("collect", "--noise", float_=True, zero=False, extra=("nan", "inf", "-inf")),
    # Two-Room's collector has no explore option: any value is a mistake
    NumOpt("collect", "--explore", float_=True, extra=("0.3", "1")),
    # every collector takes --workers (1 to 256 processes)
    NumOpt("collect", "--workers", huge=True, extra=("257",)),
    NumOpt("eval", "--episodes", huge=True, key="eval.episodes"),
    NumOpt("eval", "--goal-offset", extra=("1000000",), key="eval.goal_offset"),  # > budget 50
    NumOpt("eval", "--budget", extra=("24", "1"), key="eval.budget"),  # < goal_offset 25
    NumOpt("eval", "--horizon", huge=True, key="eval.horizon"),
    NumOpt("eval", "--receding", extra=("6", "1000"), key="eval.receding"),  # > horizon 5
    NumOpt("eval", "--context", key="eval.context"),
    NumOpt("eval", "--seed", zero=False, key="eval.seed"),
    NumOpt("eval", "--gifs", zero=False, key="eval.num_gifs"),
    NumOpt("eval", "--samples", huge=True, key="eval.solver.num_samples"),
    NumOpt("eval", "--elites", extra=("9", "5000"), key="eval.solver.num_elites"),  # > samples 8
    NumOpt("eval", "--iterations", key="eval.solver.iterations"),
    NumOpt("probe", "--frames", extra=("1", "9")),  # a probe needs >= 10 frames
    NumOpt("probe", "--seed", zero=False),
    NumOpt("surprise", "--trajectories", huge=True, extra=("1",)),  # a paired test needs 2
    NumOpt("surprise", "--frames", huge=True),
    NumOpt("surprise", "--perturb-frame", extra=("4", "99")),  # > frames 3
    NumOpt("surprise", "--seed", zero=False),
    NumOpt("straightness", "--frames", huge=True, extra=("1", "2")),  # Eq. 9 needs 3 frames
    NumOpt("straightness", "--seed", zero=False),
    NumOpt("viz", "--grid", huge=True),
    NumOpt("viz", "--horizon", huge=True),
    NumOpt("viz", "--seed", zero=False),
    NumOpt("demo", "--seed", zero=False),
)
INT_JUNK = ("abc", "1.5", "true", "", "[1]", "3x", "1/2")  # argparse's int() refuses them
FLOAT_JUNK = ("abc", "true", "", "1,5", "0.1.2", "[0.1]", "1e")
# argparse choices (an unknown one is a parse error) and free strings checked after parsing
CHOICE_OPTS = (
    ("collect", "--policy-kind"),
    ("eval", "--split"),
    ("eval", "--policy"),
    ("eval", "--cost"),
    ("eval", "--preset"),
    ("probe", "--features"),
    ("viz", "--method"),
    ("train", "--preset"),
    ("config", "--preset"),
)
ENV_OPTS = ("eval", "probe", "surprise", "viz")


def _base(command: str) -> tuple[str, ...]:
    return (*BASE[command], *COLLECT_OUT) if command == "collect" else BASE[command]


def _option_flags() -> dict[str, set[str]]:
    """Every option string of every subcommand (for unknown flags that are no abbreviation)."""
    parser = build_parser()
    sub = next(a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction")
    return {
        name: {s for a in p._actions for s in a.option_strings} for name, p in sub.choices.items()
    }


def option_cases(rng: np.random.Generator, ids: _Ids) -> Iterator[Case]:
    def case(command, tail, names, what, parse_error=False):
        return Case(
            ids("option", command, what),
            "option",
            (*_base(command), *tail),
            names,
            what,
            int(rng.integers(2**32)),
            parse_error,
        )

    for o in NUM_OPTS:
        names = (o.flag,) + ((o.key,) if o.key else ())
        # argparse-level: not a number at all
        junk = FLOAT_JUNK if o.float_ else (*INT_JUNK, "nan", "inf", "-inf")
        for v in rng.choice(junk, 2, replace=False):
            yield case(o.command, (f"{o.flag}={v}",), (o.flag,), f"{o.flag}={v!s}", True)
        # past parsing: numbers out of range
        values = list(o.extra)
        values += ["0"] if o.zero else []
        values += ["-1", _neg(rng)] if o.negative else []
        values += [_huge(rng)] if o.huge else []
        values += ["nan", "-inf"] if o.float_ and "nan" not in values else []
        for v in dict.fromkeys(values):
            yield case(o.command, (f"{o.flag}={v}",), names, f"{o.flag}={v}")
    for command, flag in CHOICE_OPTS:
        for v in ("huge" if flag == "--preset" else _word(rng), ""):
            yield case(command, (f"{flag}={v}",), (flag,), f"{flag}={v}", True)
    known_envs = {"tworoom", "pusht", "reacher"}
    for command in ENV_OPTS:
        # pusht: an environment the (Two-Room) model was not trained on
        for v in ("pusht", _word(rng, known_envs), ""):
            names = ("--env", "environment", *([f"'{v}'"] if v else []))
            yield case(command, (f"--env={v}",), names, f"--env={v}")
    for v in ("cma", _word(rng, set(SOLVERS)), ""):
        yield case("eval", (f"--solver={v}",), ("--solver", "eval.solver.kind"), f"--solver={v}")
    for v in ("maze", _word(rng, known_envs)):  # collect's environment is positional
        argv = ("collect", v, *BASE["collect"][2:], *COLLECT_OUT)
        yield Case(
            ids("option", "collect", "env", v),
            "option",
            argv,
            (v, "environment"),
            f"collect {v}",
            int(rng.integers(2**32)),
        )
    # unknown flags: a real one mistyped, never an abbreviation argparse would accept
    flags = _option_flags()
    for command in ("collect", "train", "eval", "probe", "surprise", "straightness", "viz"):
        real = sorted(f for f in flags[command] if f.startswith("--"))
        for _ in range(2):
            while True:
                f = str(rng.choice(real))
                i = int(rng.integers(3, len(f) + 1))
                bad = f[:i] + _word(rng)[0] + f[i:]
                if not any(r.startswith(bad) for r in flags[command]):
                    break
            yield case(command, (f"{bad}=1",), (bad,), f"unknown flag {bad}", True)


# -- kind 2: config overrides ---------------------------------------------------------------------

VIT = (  # a small ViT encoder for the tiny preset, so that the ViT-only keys are in use
    "model.encoder.kind=vit",
    "model.encoder.image_size=16",
    "model.encoder.patch_size=8",
    "model.encoder.width=32",
    "model.encoder.heads=2",
    "model.encoder.depth=1",
    "model.encoder.mlp_dim=32",
)
VIT_ONLY = {"patch_size", "depth", "heads", "mlp_dim"}
JUNK = {
    "int": ("abc", "1.5", "true", "", "[1]", "nan", "inf"),
    "float": ("abc", "true", "", "[0.1]", "0.1.2", "1e"),
    "bool": ("maybe", "2", "", "nan", "0.5"),
    "ints": ("a,b", "8.5,16", "true,false", "[8,", "{}"),
    "floats": ("a,b,c", "true,0.5,0.5", "[0.5,", "x"),
    "str": (),  # any text is a string: only out-of-range values
}


def _type_class(t: Any) -> str | None:
    if t in (bool, int, float, str):
        return t.__name__
    args = [a for a in typing.get_args(t) if a is not type(None)]
    if typing.get_origin(t) is tuple and args:
        return {int: "ints", float: "floats"}.get(args[0])
    if len(args) == 1 and len(typing.get_args(t)) == 2:  # Optional[X]
        return _type_class(args[0])
    return None


def _leaves(obj: Any, prefix: str = "") -> Iterator[tuple[str, str | None, Any]]:
    """(key, type class, value) of every leaf of a config dataclass tree."""
    hints = typing.get_type_hints(type(obj))
    for f in fields(obj):
        value = getattr(obj, f.name)
        key = f"{prefix}.{f.name}" if prefix else f.name
        if is_dataclass(value):
            yield from _leaves(value, key)
        else:
            yield key, _type_class(hints[f.name]), value


def _out_of_range(key: str, cfg: Config, rng: np.random.Generator) -> tuple[str, ...]:
    """Values outside the documented range of ``key``, given the rest of ``cfg``."""
    s, e = cfg.eval.solver, cfg.eval
    n = _neg(rng)
    pos, nonneg, min2 = ("0", "-1", n), ("-1", n), ("1", "0", n)
    unit = ("-0.1", "1", "1.5", "inf")  # [0, 1)
    positive = ("0", "-1", "inf", "-inf")  # > 0 and finite
    word = _word(rng)
    table: dict[str, tuple[str, ...]] = {
        "train.steps": pos,
        "train.batch_size": min2,
        "train.lr": positive,
        "train.weight_decay": ("-0.001", "inf"),
        "train.warmup_frac": unit,
        "train.warmup_steps": nonneg,
        "train.schedule_steps": nonneg,
        "train.grad_clip": ("0", "-1"),
        "train.sigreg_weight": ("-0.09", "inf"),
        "train.sigreg_num_proj": pos,
        "train.sigreg_knots": min2,
        "train.val_fraction": unit,
        "train.val_every": nonneg,
        "train.val_batches": nonneg,
        "train.ckpt_every": nonneg,
        "train.keep_checkpoints": pos,
        "train.log_every": pos,
        "train.seed": nonneg,
        "train.num_threads": nonneg,
        "train.precision": ("fp64", ""),
        "train.device": ("tpu", "cuda:x"),
        "model.kind": (word, ""),
        "model.encoder.kind": ("resnet", ""),
        "model.encoder.image_size": ("7", "0", n),
        "model.encoder.channels": ("0,8", "-8,16", "[]", "8,8,8,8,8"),  # 16 px >> 5 stages = 0
        "model.encoder.norm": ("instance", ""),
        "model.encoder.mean": ("0.5,0.5", "0.1,0.2,0.3,0.4"),
        "model.encoder.std": ("0,0.2,0.2", "-1,1,1", "1,1"),
        "model.encoder.patch_size": ("0", "-1", "5"),  # 5 does not divide 16
        "model.encoder.heads": ("0", "-1", "3"),  # 3 does not divide width 32
        "model.predictor.dropout": unit,
        "eval.budget": (str(e.goal_offset - 1), "0", n),
        "eval.receding": ("0", "-1", str(e.horizon + 1)),
        "eval.seed": nonneg,
        "eval.num_gifs": nonneg,
        "eval.split": (word, ""),
        "eval.policy": (word, ""),
        "eval.cost": (word, ""),
        "eval.solver.kind": ("cma", ""),
        "eval.solver.num_elites": ("0", "-1", str(s.num_samples + 1)),
        "eval.solver.init_std": ("-1", "inf") + (("0",) if s.kind != "adam" else ()),
        "eval.solver.min_std": ("-0.1", "-inf"),
        "eval.solver.seed": nonneg,
        "eval.solver.noise_beta": ("-1", "-inf"),
        "eval.solver.momentum": ("-0.1", "1", "2"),
        "eval.solver.sample_decay": ("0.5", "0", "-1"),
        "eval.solver.temperature": ("0", "-0.5"),
        "eval.solver.lr": ("0", "-0.1", "inf"),
        "eval.solver.grad_clip": ("-1", "-inf"),
    }
    if s.kind == "icem":
        table["eval.solver.keep_elites"] = ("-1", str(min(s.num_elites, s.num_samples - 1) + 1))
    sizes = (  # integers that must be >= 1
        "model.latent_dim model.projector_hidden model.action_dim model.frameskip "
        "model.action_smooth_dim model.action_hidden model.encoder.width model.encoder.depth "
        "model.encoder.mlp_dim model.predictor.history model.predictor.depth "
        "model.predictor.heads model.predictor.head_dim model.predictor.mlp_dim eval.episodes "
        "eval.goal_offset eval.horizon eval.context eval.solver.num_samples "
        "eval.solver.iterations eval.solver.steps"
    ).split()
    return table.get(key, pos if key in sizes else ())


def _config_variants() -> Iterator[tuple[str, tuple[str, ...], Callable[[str], bool]]]:
    """(name, prefix overrides, which keys to fuzz under them)."""
    yield (
        "tiny",
        (),
        lambda k: not (k.startswith("model.encoder.") and k.split(".")[-1] in VIT_ONLY),
    )
    yield "vit", VIT, lambda k: k.startswith("model.encoder.") and k.split(".")[-1] in VIT_ONLY
    cem = {f.name for f in fields(SOLVERS["cem"][0])}
    for kind in SOLVERS:
        if kind != "cem":
            own = {f.name for f in fields(SOLVERS[kind][0])} - (cem - {"init_std", "num_elites"})
            yield (
                kind,
                (f"eval.solver.kind={kind}",),
                functools.partial(
                    lambda own, k: k.startswith("eval.solver.") and k[12:] in own, own
                ),
            )


def _config_line(command: str, prefix: tuple[str, ...], kind: str) -> tuple[str, ...]:
    """The valid command line a config case appends its bad override to."""
    if command == "eval":
        return (*BASE["eval"][: -len(EVAL_FAST)], *EVAL_COMMON, *EVAL_SOLVER_BASE[kind])
    return (*BASE[command], *prefix)


def _all_keys(cfg: Config) -> set[str]:
    return {k for k, _, _ in _leaves(cfg)}


def _typo(key: str, rng: np.random.Generator, real: set[str], sections: list[str]) -> str | None:
    """A mistyped key: a letter dropped, doubled, swapped or replaced, a suffix, another
    section. None when the draw happens to be a real key (or not a plain dotted key)."""
    *head, leaf = key.split(".")
    op = int(rng.integers(6))
    i = int(rng.integers(len(leaf)))
    if op == 0 and len(leaf) > 2:
        leaf = leaf[:i] + leaf[i + 1 :]
    elif op == 1:
        leaf = leaf[:i] + leaf[i] + leaf[i:]
    elif op == 2 and len(leaf) > 2:
        j = min(i, len(leaf) - 2)
        leaf = leaf[:j] + leaf[j + 1] + leaf[j] + leaf[j + 2 :]
    elif op == 3:
        leaf = leaf[:i] + _word(rng)[0] + leaf[i + 1 :]
    elif op == 4:
        leaf = leaf + str(rng.choice(["s", "_x", "2"]))
    elif sections:
        head = str(rng.choice(sections)).split(".")
    else:
        return None
    out = ".".join([*head, leaf])
    ok = out not in real and all(out.split(".")) and out.replace(".", "").replace("_", "").isalnum()
    return out if ok and out.lower() != key.lower() else None


def _as_text(value: Any) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, tuple | list):
        return ",".join(str(v) for v in value)
    return str(value)


def config_cases(rng: np.random.Generator, ids: _Ids) -> Iterator[Case]:
    def case(command, prefix, kind, item, names, what):
        return Case(
            ids("config", command, what),
            "config",
            (*_config_line(command, prefix, kind), item),
            names,
            what,
            int(rng.integers(2**32)),
        )

    def commands(key):
        return ("train", "config", "eval") if key.startswith("eval.") else ("train", "config")

    tiny = preset("tiny")
    real = _all_keys(apply_overrides(tiny, []))
    for kind in SOLVERS:
        real |= _all_keys(apply_overrides(tiny, [f"eval.solver.kind={kind}"]))
    sections = sorted({k.rsplit(".", 1)[0] for k in real if "." in k})
    for variant, prefix, wanted in _config_variants():
        solver = prefix[0].split("=")[1] if variant in SOLVERS else "cem"
        for key, typ, _value in _leaves(apply_overrides(tiny, list(prefix))):
            if not wanted(key) or typ is None:
                continue
            cmds = commands(key)
            ranges = {}  # out-of-range values depend on the command's base line
            for command in cmds:
                line = _config_line(command, prefix, solver)
                cfg = preset("paper" if command == "eval" else "tiny")
                cfg = apply_overrides(cfg, [a for a in line if "=" in a and a[0] != "-"])
                ranges[command] = list(_out_of_range(key, cfg, rng))
            picks: list[tuple[str, str]] = []  # each bad value goes to one command, drawn
            for _ in range(min(2, max(len(v) for v in ranges.values()))):
                command = str(rng.choice(cmds))
                left = [v for v in ranges[command] if (command, v) not in picks]
                if left:
                    picks.append((command, str(rng.choice(left))))
            if JUNK[typ]:
                picks.append((str(rng.choice(cmds)), str(rng.choice(JUNK[typ]))))
            if typ == "float":
                picks.append((str(rng.choice(cmds)), "nan"))
            for command, v in picks:
                yield case(command, prefix, solver, f"{key}={v}", (key,), f"{key}={v}")
    # unknown keys made by mistyping real ones (the value is the key's valid value)
    tiny_leaves = [(k, v) for k, _, v in _leaves(tiny)]
    made = 0
    while made < 36:
        key, value = tiny_leaves[int(rng.integers(len(tiny_leaves)))]
        bad = _typo(key, rng, real, sections)
        if bad is None:
            continue
        command = str(rng.choice(commands(bad)))
        item = f"{bad}={_as_text(value)}"
        yield case(command, (), "cem", item, (bad,), f"unknown key {bad}")
        made += 1
    # malformed key=value syntax
    numeric = [(k, v) for k, t, v in _leaves(tiny) if t in ("int", "float")]
    for _ in range(24):
        key, value = numeric[int(rng.integers(len(numeric)))]
        v = _as_text(value)
        section, leaf = key.rsplit(".", 1)
        forms = {
            "double dot": f"{section}..{leaf}={v}",
            "leading dot": f".{key}={v}",
            "trailing dot": f"{key}.={v}",
            "empty key": f"={v}",
            "leaf as section": f"{key}.{_word(rng)}={v}",
            "section as leaf": f"{section}={v}",
            "empty value": f"{key}=",
            "double =": f"{key}=={v}",
            "two values": f"{key}={v}={v}",
            "no =": key,
        }
        form = str(rng.choice(list(forms)))
        command = str(rng.choice(commands(key)))
        if form == "no =" and command == "eval":
            command = "config"  # lewm eval reads a bare word after its options as a stray arg
        item = forms[form]
        typed = item.split("=", 1)[0]  # the key as typed
        names = (item, key) + ((f"'{typed}'",) if typed else ())
        yield case(command, (), "cem", item, names, f"{form} {item}")
    # eval takes eval.* overrides only: a valid training key is still wrong there
    others = [(k, v) for k, v in tiny_leaves if not k.startswith("eval.")]
    for i in rng.permutation(len(others))[:8]:
        key, value = others[i]
        yield case("eval", (), "cem", f"{key}={_as_text(value)}", (key,), f"non-eval key {key}")


# -- kind 3: malformed datasets -------------------------------------------------------------------

DATA_CMDS = ("train", "eval", "probe", "straightness")
REQUIRED = ("pixels", "action", "ep_len", "ep_offset")


def _data_line(command: str) -> tuple[str, ...]:
    if command == "train":
        return tuple("{BAD}" if a == "{DATA}" else a for a in BASE["train"])
    return (*BASE[command][:2], "--data", "{BAD}", *BASE[command][2:])


def _h5_layout_problem(path: Path, original: Path) -> str | None:
    """Why ``path`` is not a valid episode file, checked independently of lewm: ``"file"`` when
    it cannot be opened or its index, actions or layout are broken or unreadable (every command
    reads those), ``"column"`` when only some other column's data is unreadable (commands that
    read every row fail), None when it reads like a valid file (a flip that changed data values
    only, or nothing)."""
    try:
        with h5py.File(original, "r") as o:
            shapes = {k: (o[k].shape, o[k].dtype) for k in o}
        with h5py.File(path, "r") as f:
            if set(f) != set(shapes) or any(not isinstance(f[k], h5py.Dataset) for k in f):
                return "file"
            if any((f[k].shape, f[k].dtype) != shapes[k] for k in f):
                return "file"
            dict(f.attrs)
            ep_len, ep_off = f["ep_len"][:], f["ep_offset"][:]
            action = f["action"][:]
            n = f["pixels"].shape[0]
            tiles = np.array_equal(ep_off, np.concatenate([[0], np.cumsum(ep_len)[:-1]]))
            if (ep_len < 1).any() or not tiles or ep_len.sum() != n:
                return "file"
            last = np.zeros(n, bool)
            last[ep_off + ep_len - 1] = True
            if (~np.isfinite(action).all(1) & ~last).any():
                return "file"
    except Exception:
        return "file"
    try:
        with h5py.File(path, "r") as f:
            for k in f:
                f[k][:]
    except Exception:
        return "column"
    return None


def _copy(w: World, d: Path) -> Path:
    bad = d / "bad.h5"
    shutil.copyfile(w.data, bad)
    return bad


def _h5_edit(edit: Callable[[h5py.File, np.random.Generator], str]) -> Builder:
    def build(w: World, d: Path, paths: dict[str, Path], rng: np.random.Generator) -> str:
        paths["BAD"] = _copy(w, d)
        with h5py.File(paths["BAD"], "r+") as f:
            return edit(f, rng)

    return build


def _replace(f: h5py.File, name: str, data: np.ndarray) -> None:
    del f[name]
    f.create_dataset(name, data=data)


def _edit_delete(f, rng, name):
    del f[name]
    return f"deleted column {name}"


def _edit_group(f, rng, name):
    del f[name]
    f.create_group(name)
    return f"{name} is a group, not a dataset"


def _edit_dtype(f, rng, name, dtype):
    a = f[name][:]
    if name == "ep_len":
        a = a + 0.5
    _replace(f, name, a.astype(dtype))
    return f"{name} stored as {np.dtype(dtype)}"


def _edit_shape(f, rng, name, how):
    a = f[name][:]
    k = int(rng.integers(1, 50))
    new = {
        "drop channel axis": lambda: a[..., 0],
        "4 channels": lambda: np.concatenate([a, a[..., :1]], -1),
        "1 channel": lambda: a[..., :1],
        "1-D": lambda: a[:, 0],
        "3-D": lambda: a[:, :, None],
        "fewer rows": lambda: a[:-k],
        "2-D index": lambda: a[:, None],
        "3 action dims": lambda: np.concatenate([a, a[:, :1]], 1),
    }[how]()
    _replace(f, name, new)
    return f"{name} {how}: {a.shape} -> {new.shape}"


def _edit_index(f, rng, how):
    ep_len, ep_off = f["ep_len"][:], f["ep_offset"][:]
    e = len(ep_len)
    i = int(rng.integers(1, e - 1))
    d = int(rng.choice([-3, -2, -1, 1, 2, 5]))
    if how == "ep_len off by d":
        ep_len[i] = ep_len[i] + d if ep_len[i] + d >= 1 else ep_len[i] + 1
    elif how == "ep_offset off by d":
        ep_off[i] += d
    elif how == "ep_len one short":
        ep_len = ep_len[:-1]
    elif how == "last episode dropped":
        ep_len, ep_off = ep_len[:-1], ep_off[:-1]
    elif how == "zero-length episode":
        ep_len[i + 1] += ep_len[i]
        ep_len[i] = 0
        ep_off = np.concatenate([[0], np.cumsum(ep_len)[:-1]])
    elif how == "negative length":
        ep_len[i + 1] += 2 * ep_len[i]
        ep_len[i] = -ep_len[i]
        ep_off = np.concatenate([[0], np.cumsum(ep_len)[:-1]])
    elif how == "offsets from 1":
        ep_off = ep_off + 1
    elif how == "lengths swapped":
        j = next(j for j in range(e) if ep_len[j] != ep_len[i])
        ep_len[[i, j]] = ep_len[[j, i]]
    elif how == "no episodes":
        ep_len, ep_off = ep_len[:0], ep_off[:0]
    _replace(f, "ep_len", ep_len)
    _replace(f, "ep_offset", ep_off)
    return f"{how} (episode {i}, d={d})"


def _edit_nan_action(f, rng, value):
    ep_len, ep_off = f["ep_len"][:], f["ep_offset"][:]
    eps = np.flatnonzero(ep_len >= 2)
    ep = int(rng.choice(eps))
    row = int(ep_off[ep] + rng.integers(0, ep_len[ep] - 1))  # never the episode's last row
    a = f["action"][:]
    dims = [int(rng.integers(a.shape[1]))] if rng.random() < 0.5 else list(range(a.shape[1]))
    a[row, dims] = value
    f["action"][...] = a
    return f"action[{row}, {dims}] = {value} (episode {ep}, not its last step)"


def _build_truncate(w, d, paths, rng):
    data = w.data.read_bytes()
    paths["BAD"] = bad = d / "bad.h5"
    while True:
        cut = int(rng.integers(1, len(data)))
        bad.write_bytes(data[:cut])
        if _h5_layout_problem(bad, w.data) == "file":
            return f"truncated to {cut} of {len(data)} bytes"


def _chunks(path: Path, names: tuple[str, ...] | None = None) -> list[tuple[int, int]]:
    """(byte offset, size) of every stored chunk of the chunked datasets ``names`` (all)."""
    out = []
    with h5py.File(path, "r") as f:
        for name in names or list(f):
            ds = f[name].id
            if f[name].chunks is None:
                continue
            for i in range(ds.get_num_chunks()):
                info = ds.get_chunk_info(i)
                out.append((info.byte_offset, info.size))
    return out


def _build_flip(w, d, paths, rng):
    """1-4 random bytes XOR-ed in the file's metadata and episode index (chunked column data is
    left alone: a flip there changes a value or hits unused space), kept only when an
    independent reader finds the file broken (a flip in padding changes nothing: redrawn)."""
    data = w.data.read_bytes()
    mask = np.ones(len(data), bool)
    for off, size in _chunks(w.data):
        mask[off : off + size] = False
    where = np.flatnonzero(mask)
    paths["BAD"] = bad = d / "bad.h5"
    for _ in range(400):
        b = bytearray(data)
        pos = sorted(int(p) for p in rng.choice(where, int(rng.integers(1, 5))))
        for p in pos:
            b[p] ^= int(rng.integers(1, 256))
        bad.write_bytes(bytes(b))
        if _h5_layout_problem(bad, w.data) == "file":
            return f"bytes {pos} flipped"
    b = bytearray(data)
    b[1] ^= 0xFF  # the signature
    bad.write_bytes(bytes(b))
    return "signature byte 1 flipped"


def _build_pixel_chunk(w, d, paths, rng):
    """Garbage over one compressed pixel frame: only a command reading every frame sees it."""
    data = bytearray(w.data.read_bytes())
    chunks = _chunks(w.data, ("pixels",))
    paths["BAD"] = bad = d / "bad.h5"
    for _ in range(100):
        k = int(rng.integers(len(chunks)))
        off, size = chunks[k]
        b = bytearray(data)
        b[off : off + size] = rng.integers(0, 256, size, dtype=np.uint8).tobytes()
        bad.write_bytes(bytes(b))
        if _h5_layout_problem(bad, w.data) == "column":
            return f"pixel frame {k} ({size} bytes at {off}) overwritten with garbage"
    raise AssertionError("no unreadable pixel chunk could be made")


def _build_bytes(kind: str) -> Builder:
    def build(w, d, paths, rng):
        paths["BAD"] = bad = d / "bad.h5"
        n = int(rng.integers(1, 20000))
        content = {
            "empty file": b"",
            "random bytes": rng.integers(0, 256, n, dtype=np.uint8).tobytes(),
            "text": b"pixels,action\n" + b"0,0.5\n" * int(rng.integers(1, 100)),
            "json": json.dumps({"pixels": [], "action": []}).encode(),
            "hdf5 signature + garbage": b"\x89HDF\r\n\x1a\n"
            + rng.integers(0, 256, n, dtype=np.uint8).tobytes(),
            "npy array": b"\x93NUMPY\x01\x00v\x00{'descr': '<f4', 'fortran_order': False, "
            b"'shape': (4,), }" + b" " * 50 + b"\n" + np.zeros(4, np.float32).tobytes(),
        }[kind]
        bad.write_bytes(content)
        return f"{kind} ({len(content)} bytes)"

    return build


def _build_empty_h5(w, d, paths, rng):
    paths["BAD"] = bad = d / "bad.h5"
    with h5py.File(bad, "w") as f:
        f.attrs["env"] = "tworoom"
    return "an HDF5 file without datasets"


def dataset_cases(rng: np.random.Generator, ids: _Ids) -> Iterator[Case]:
    fams: list[tuple[str, Builder, tuple[str, ...]]] = []
    for name in REQUIRED:
        fams.append((f"no {name}", _h5_edit(functools.partial(_edit_delete, name=name)), DATA_CMDS))
        fams.append(
            (f"{name} a group", _h5_edit(functools.partial(_edit_group, name=name)), DATA_CMDS)
        )
    # probing and evaluation need the ground-truth state
    fams.append(("no state", _h5_edit(functools.partial(_edit_delete, name="state")), ("eval",)))
    fams.append(("no state", _h5_edit(functools.partial(_edit_delete, name="state")), ("probe",)))
    for name, dtype in (
        ("pixels", np.float32),
        ("pixels", np.uint16),
        ("action", "S8"),
        ("action", np.complex64),
        ("ep_len", np.float64),
    ):
        edit = functools.partial(_edit_dtype, name=name, dtype=dtype)
        fams.append((f"{name} as {np.dtype(dtype)}", _h5_edit(edit), DATA_CMDS))
    for name, how in (
        ("pixels", "drop channel axis"),
        ("pixels", "4 channels"),
        ("pixels", "1 channel"),
        ("pixels", "fewer rows"),
        ("action", "1-D"),
        ("action", "3-D"),
        ("action", "fewer rows"),
        ("ep_len", "2-D index"),
    ):
        edit = functools.partial(_edit_shape, name=name, how=how)
        fams.append((f"{name} {how}", _h5_edit(edit), DATA_CMDS))
    # a model trained on 2-D actions cannot plan with 3-D ones (training on them is fine)
    edit = functools.partial(_edit_shape, name="action", how="3 action dims")
    fams.append(("action 3 dims", _h5_edit(edit), ("eval",)))
    for how in (
        "ep_len off by d",
        "ep_offset off by d",
        "ep_len one short",
        "last episode dropped",
        "zero-length episode",
        "negative length",
        "offsets from 1",
        "lengths swapped",
        "no episodes",
    ):
        fams.append((how, _h5_edit(functools.partial(_edit_index, how=how)), DATA_CMDS))
    for value in (np.nan, np.inf, -np.inf):
        edit = functools.partial(_edit_nan_action, value=value)
        fams.append((f"action {value} mid-episode", _h5_edit(edit), DATA_CMDS))
    fams.append(("truncated", _build_truncate, DATA_CMDS * 2))
    fams.append(("bytes flipped", _build_flip, DATA_CMDS * 3))
    fams.append(("pixel chunk garbage", _build_pixel_chunk, ("train", "train")))
    for kind in (
        "empty file",
        "random bytes",
        "text",
        "json",
        "hdf5 signature + garbage",
        "npy array",
    ):
        fams.append((kind, _build_bytes(kind), (str(rng.choice(DATA_CMDS)),)))
    fams.append(("hdf5 without datasets", _build_empty_h5, DATA_CMDS))
    for what, build, cmds in fams:
        # one command per family instance: the 4-command families are spread over the commands
        chosen = cmds if len(cmds) <= 3 or len(cmds) > 4 else rng.permutation(cmds)[:2]
        for command in chosen:
            yield Case(
                ids("dataset", command, what),
                "dataset",
                _data_line(str(command)),
                ("{BAD}", "bad.h5"),
                what,
                int(rng.integers(2**32)),
                build=build,
            )


# -- kind 4: malformed checkpoints ----------------------------------------------------------------

CKPT_CMDS = ("info", "eval", "probe", "surprise", "straightness", "viz")
SIZES = (
    "latent_dim projector_hidden action_dim frameskip action_smooth_dim action_hidden "
    "encoder.image_size encoder.width predictor.history predictor.depth predictor.heads "
    "predictor.head_dim predictor.mlp_dim"
).split()


def _ckpt_line(command: str, with_out: bool) -> tuple[str, ...]:
    line = tuple("{BAD}" if a == "{CKPT}" else a for a in BASE[command])
    if not with_out and "--out" in line:  # the default output goes next to the checkpoint
        i = line.index("--out")
        line = line[:i] + line[i + 2 :]
    return line


def _saved_model_dict() -> dict[str, Any]:
    """The model section of the world's config.json (the tiny preset, history 1)."""
    cfg = apply_overrides(preset("tiny"), ["model.predictor.history=1"])
    return json.loads(json.dumps(cfg.to_dict()["model"]))


def _dict_leaves(d: dict, prefix: str = "") -> Iterator[tuple[str, Any]]:
    for k, v in d.items():
        key = f"{prefix}.{k}" if prefix else k
        if isinstance(v, dict):
            yield key, v
            yield from _dict_leaves(v, key)
        else:
            yield key, v


def _get_parent(d: dict, key: str) -> tuple[dict, str]:
    *head, leaf = key.split(".")
    for h in head:
        d = d[h]
    return d, leaf


def _ckpt_copy(w: World, d: Path, paths: dict[str, Path]) -> Path:
    paths["BAD"] = bad = d / "ckpt"
    shutil.copytree(w.ckpt, bad)
    return bad


def _json_edit(file: str, edit: Callable[[Any, np.random.Generator], tuple[Any, str]]) -> Builder:
    """Load ``file`` of a checkpoint copy, ``edit`` it; the result is written as JSON (or as
    text, when the edit returns bytes)."""

    def build(w, d, paths, rng):
        bad = _ckpt_copy(w, d, paths)
        obj, detail = edit(json.loads((bad / file).read_text()), rng)
        data = obj if isinstance(obj, bytes) else json.dumps(obj, indent=2).encode()
        (bad / file).write_bytes(data)
        return detail

    return build


def _wrong_type(value: Any, rng: np.random.Generator) -> Any:
    """A JSON value of another type than ``value`` (an int stays no number a lenient reader
    could take: 16 -> 16.5, never 16.0)."""
    if isinstance(value, bool):
        options = ["yes", 1.5, None, [value]]
    elif isinstance(value, int):
        options = [str(value), value + 0.5, True, None, [value], {"value": value}]
    elif isinstance(value, float):
        options = [str(value), True, None, [value], {}]
    elif isinstance(value, str):
        options = [5, None, True, [value], {}]
    elif isinstance(value, list):
        options = [",".join(map(str, value)), 8, None, {"a": 8}, [[v] for v in value]]
    else:  # a section
        options = [[], "cnn", 5, None]
    return options[int(rng.integers(len(options)))]


def _edit_type(cfg, rng, key):
    parent, leaf = _get_parent(cfg, key)
    parent[leaf] = _wrong_type(parent[leaf], rng)
    return cfg, f"{key} = {parent[leaf]!r}"


def _edit_set(cfg, rng, key, value):
    parent, leaf = _get_parent(cfg, key)
    parent[leaf] = value
    return cfg, f"{key} = {value!r}"


def _edit_del(cfg, rng, key):
    parent, leaf = _get_parent(cfg, key)
    del parent[leaf]
    return cfg, f"{key} deleted"


def _edit_text(cfg, rng, how):
    text = json.dumps(cfg, indent=2)
    if how == "truncated":
        while True:
            cut = int(rng.integers(1, len(text) - 1))
            try:
                json.loads(text[:cut])
            except ValueError:
                return text[:cut].encode(), f"truncated at {cut} of {len(text)}"
    if how == "not json":
        return b"format: lewm-checkpoint\nversion: 2\n", "YAML, not JSON"
    if how == "random bytes":
        return rng.integers(0, 256, int(rng.integers(1, 3000)), dtype=np.uint8).tobytes(), how
    if how == "empty":
        return b"", "empty file"
    value = {"list": [cfg], "string": "lewm-checkpoint", "number": 2, "null": None}[how]
    return value, f"top level is a {how}"


def _st_load(path: Path) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    from safetensors import safe_open
    from safetensors.numpy import load_file

    with safe_open(str(path), "np") as f:
        meta = f.metadata() or {}
    return load_file(str(path)), meta


def _st_edit(edit: Callable[[dict, np.random.Generator], str]) -> Builder:
    def build(w, d, paths, rng):
        from safetensors.numpy import save_file

        bad = _ckpt_copy(w, d, paths) / "model.safetensors"
        tensors, meta = _st_load(bad)
        detail = edit(tensors, rng)
        save_file(tensors, str(bad), metadata=meta)
        return detail

    return build


def _float_tensor(tensors: dict, rng) -> str:
    names = sorted(k for k, v in tensors.items() if v.dtype.kind == "f" and v.size > 0)
    return names[int(rng.integers(len(names)))]


def _st_nan(tensors, rng, value):
    name = _float_tensor(tensors, rng)
    t = tensors[name].copy()
    i = int(rng.integers(t.size))
    t.reshape(-1)[i] = value
    tensors[name] = t
    return f"{name}[{i}] (flat) = {value}"


def _st_shape(tensors, rng, how):
    name = _float_tensor(tensors, rng)
    t = tensors[name]
    if how == "another shape":
        tensors[name] = np.concatenate([t, t[:1]], 0) if t.ndim else np.ones(2, t.dtype)
        return f"{name}: {t.shape} -> {tensors[name].shape}"
    if how == "missing tensor":
        del tensors[name]
        return f"{name} removed"
    tensors[name + "_extra"] = t.copy()
    return f"extra tensor {name}_extra"


def _st_problem(path: Path, original: Path) -> bool:
    """Whether ``path`` is not a valid copy of the original weights (unreadable, other names,
    shapes or dtypes, or non-finite values), checked without lewm."""
    try:
        t, _ = _st_load(path)
    except Exception:
        return True
    o, _ = _st_load(original)
    if {k: (v.shape, v.dtype) for k, v in t.items()} != {
        k: (v.shape, v.dtype) for k, v in o.items()
    }:
        return True
    return any(v.dtype.kind == "f" and not np.isfinite(v).all() for v in t.values())


def _build_st_bytes(how: str) -> Builder:
    def build(w, d, paths, rng):
        bad = _ckpt_copy(w, d, paths) / "model.safetensors"
        data = bad.read_bytes()
        if how == "missing":
            bad.unlink()
            return "model.safetensors deleted"
        if how == "empty":
            bad.write_bytes(b"")
            return "empty model.safetensors"
        header = 8 + int.from_bytes(data[:8], "little")
        for _ in range(400):
            if how == "truncated":
                cut = int(rng.integers(1, len(data)))
                b, detail = data[:cut], f"truncated to {cut} of {len(data)} bytes"
            else:  # flips, mostly in the header
                end = header if rng.random() < 0.7 else len(data)
                pos = sorted(int(p) for p in rng.integers(0, end, int(rng.integers(1, 4))))
                b = bytearray(data)
                for p in pos:
                    b[p] ^= int(rng.integers(1, 256))
                b, detail = bytes(b), f"bytes {pos} flipped (header: {header} bytes)"
            bad.write_bytes(b)
            if _st_problem(bad, w.ckpt / "model.safetensors"):
                return detail
        bad.write_bytes(b"\xff" * 8 + data[8:])
        return "header length set to 2**64-1"

    return build


def _norm_edit(cfg, rng, how):
    a = cfg["action"]
    if how == "mean and std of length 3":
        a["mean"], a["std"] = a["mean"] + [0.0], a["std"] + [1.0]
    elif how == "mean and std of length 1":
        a["mean"], a["std"] = a["mean"][:1], a["std"][:1]
    elif how == "std longer than mean":
        a["std"] = a["std"] + [1.0]
    elif how == "zero std":
        a["std"][int(rng.integers(len(a["std"])))] = 0.0
    elif how == "negative std":
        a["std"][int(rng.integers(len(a["std"])))] *= -1
    elif how == "NaN mean":
        a["mean"][int(rng.integers(len(a["mean"])))] = float("nan")
    elif how == "inf std":
        a["std"][int(rng.integers(len(a["std"])))] = float("inf")
    elif how == "action is a list":
        cfg["action"] = [a["mean"], a["std"]]
    elif how == "action is a string":
        cfg["action"] = "z-score"
    elif how == "mean is text":
        a["mean"] = "abc"
    elif how == "std is null":
        a["std"] = None
    elif how == "no std":
        del a["std"]
    elif how == "top level is a list":
        cfg = [cfg]
    else:
        return _edit_text(cfg, rng, how)
    return cfg, how


def checkpoint_cases(rng: np.random.Generator, ids: _Ids) -> Iterator[Case]:
    saved = _saved_model_dict()
    defaults = json.loads(json.dumps(Config().to_dict()["model"]))  # LeWMConfig defaults
    leaves = [k for k, _ in _dict_leaves(saved) if k != "kind"]
    fams: list[tuple[str, Builder, tuple[str, ...], tuple[str, ...]]] = []  # + error names
    config_names = ("config.json",)

    def add(what, build, cmds=CKPT_CMDS, names=config_names, n=1):
        for _ in range(n):
            fams.append((what, build, cmds, names))

    for key in rng.permutation(leaves)[:14]:
        edit = functools.partial(_edit_type, key=f"model.{key}")
        add(f"model.{key} wrong type", _json_edit("config.json", edit), names=(*config_names, key))
    for key in ("version", "format", "model", "metadata"):
        edit = functools.partial(_edit_type, key=key)
        add(f"{key} wrong type", _json_edit("config.json", edit), names=(*config_names, key))
    for key in rng.permutation(SIZES)[:10]:
        value = int(rng.choice([10**8, 10**9, 10**12]))
        edit = functools.partial(_edit_set, key=f"model.{key}", value=value)
        add(f"model.{key} absurd", _json_edit("config.json", edit), names=(*config_names, key))
    edit = functools.partial(_edit_set, key="model.encoder.channels", value=[8, 10**8])
    add("channels absurd", _json_edit("config.json", edit), names=(*config_names, "channels"))
    for key in rng.permutation(SIZES)[:8]:
        edit = functools.partial(_edit_set, key=f"model.{key}", value=-int(rng.integers(1, 100)))
        add(f"model.{key} negative", _json_edit("config.json", edit), names=(*config_names, key))
    # a missing key whose default differs from the saved value changes what the file means
    flat_saved, flat_default = dict(_dict_leaves(saved)), dict(_dict_leaves(defaults))
    differ = [k for k in leaves if flat_saved[k] != flat_default.get(k)]
    for key in rng.permutation(differ)[:6]:
        edit = functools.partial(_edit_del, key=f"model.{key}")
        add(f"model.{key} missing", _json_edit("config.json", edit), names=(*config_names, key))
    for key in ("format", "version", "model"):
        edit = functools.partial(_edit_del, key=key)
        add(f"{key} missing", _json_edit("config.json", edit), names=(*config_names, key))
    real = {k.split(".")[-1] for k in leaves}
    for where in ("model", "model.encoder", "model.predictor", "", "", "model"):
        pool = sorted({k.split(".")[-1] for k in flat_saved} | {"format", "version", "metadata"})
        while True:
            name = _typo(str(rng.choice(pool)), rng, real | {"format", "version", "metadata"}, [])
            if name is not None:
                break
        key = f"{where}.{name}" if where else name
        edit = functools.partial(_edit_set, key=key, value=int(rng.integers(1, 64)))
        add(f"unknown key {key}", _json_edit("config.json", edit), names=(*config_names, name))
    # `True in (1, 2)` holds in Python: a boolean version must not pass for version 1
    for value in (0, 3, 99, -1, "2", None, 2.5, [2], True):
        edit = functools.partial(_edit_set, key="version", value=value)
        add(f"version {value!r}", _json_edit("config.json", edit), names=(*config_names, "version"))
    for value in ("lewm-checkpoint-v3", "", None, 1, "LEWM-CHECKPOINT"):
        edit = functools.partial(_edit_set, key="format", value=value)
        add(f"format {value!r}", _json_edit("config.json", edit), names=(*config_names, "format"))
    for how in ("truncated", "truncated", "not json", "random bytes", "empty", "list", "number"):
        add(f"config.json {how}", _json_edit("config.json", functools.partial(_edit_text, how=how)))
    # metadata the commands use: the default dataset and environment
    for value in (12345, ["data.h5"], "/nonexistent/fuzz/data.h5"):
        edit = functools.partial(_edit_set, key="metadata.dataset", value=value)
        cmds = ("eval", "probe", "straightness", "viz")
        add(f"metadata.dataset {value!r}", _json_edit("config.json", edit), cmds, ("dataset",))
    for value in (42, ["tworoom"], "maze"):
        edit = functools.partial(_edit_set, key="metadata.env", value=value)
        cmds = ("probe", "surprise", "viz")
        add(f"metadata.env {value!r}", _json_edit("config.json", edit), cmds, ("env",))
    st_names = ("model.safetensors",)
    for how, n in (("truncated", 4), ("flipped", 6), ("missing", 2), ("empty", 1)):
        add(f"weights {how}", _build_st_bytes(how), names=st_names, n=n)
    for how, n in (("another shape", 4), ("missing tensor", 2), ("extra tensor", 2)):
        add(f"weights {how}", _st_edit(functools.partial(_st_shape, how=how)), names=st_names, n=n)
    for value in (np.nan, np.nan, np.inf, -np.inf):
        edit = functools.partial(_st_nan, value=value)
        add(f"weights {value}", _st_edit(edit), names=st_names)
    for how in (
        "mean and std of length 3",
        "mean and std of length 1",
        "std longer than mean",
        "zero std",
        "negative std",
        "NaN mean",
        "inf std",
        "action is a list",
        "action is a string",
        "mean is text",
        "std is null",
        "no std",
        "top level is a list",
        "truncated",
        "not json",
        "empty",
    ):
        edit = functools.partial(_norm_edit, how=how)
        add(f"normalizer {how}", _json_edit("normalizer.json", edit), names=("normalizer.json",))
    for i, (what, build, cmds, names) in enumerate(fams):
        command = cmds[(i + int(rng.integers(len(cmds)))) % len(cmds)]
        yield Case(
            ids("checkpoint", command, what),
            "checkpoint",
            _ckpt_line(command, with_out=bool(rng.random() < 0.5)),
            names,
            what,
            int(rng.integers(2**32)),
            build=build,
        )


# -- kind 5: paths --------------------------------------------------------------------------------


def path_cases(rng: np.random.Generator, ids: _Ids) -> Iterator[Case]:
    def line(command: str, **swap: str) -> tuple[str, ...]:
        out = list(_base(command))
        for flag, value in swap.items():
            flag = "--" + flag
            if flag in out:
                out[out.index(flag) + 1] = value
            else:
                out[1:1] = [flag, value]
        return tuple(out)

    def ckpt(command: str, value: str) -> tuple[str, ...]:
        return tuple(value if a == "{CKPT}" else a for a in _base(command))

    specs: list[tuple[str, tuple[str, ...], tuple[str, ...]]] = [
        ("train --out an existing file", line("train", out="{FILE}"), ("{FILE}", "--out")),
        ("train --out a folder that is no run", line("train", out="{DIR}"), ("{DIR}", "--out")),
        ("train --out below a file", line("train", out="{FILE}/run"), ("{FILE}", "--out")),
        ("train --out read-only", line("train", out="{RO}/run"), ("{RO}", "--out")),
        ("train --data a folder", line("train", data="{DIR}"), ("{DIR}", "--data")),
        ("train --data missing", line("train", data="{MISSING}"), ("{MISSING}", "--data")),
        ("train --resume nothing", (*line("train"), "--resume"), ("{NEW}", "resume")),
        ("train --resume no checkpoints", (*line("train", out="{DIR}"), "--resume"), ("{DIR}",)),
        ("collect --out an existing file", line("collect", out="{FILE}"), ("{FILE}", "--out")),
        ("collect --out a folder", line("collect", out="{DIR}"), ("{DIR}", "--out")),
        ("collect --out below a file", line("collect", out="{FILE}/d.h5"), ("{FILE}", "--out")),
        ("collect --out read-only", line("collect", out="{RO}/d.h5"), ("{RO}", "--out")),
        ("demo --out an existing file", line("demo", out="{FILE}"), ("{FILE}", "--out")),
        ("info missing", ("info", "{MISSING}"), ("{MISSING}",)),
        ("info a file", ("info", "{FILE}"), ("{FILE}",)),
        ("info a folder", ("info", "{DIR}"), ("{DIR}",)),
        ("straightness --data a folder", (*BASE["straightness"], "--data={DIR}"), ("{DIR}",)),
        (
            "straightness --data missing",
            (*BASE["straightness"], "--data={MISSING}"),
            ("{MISSING}",),
        ),
        ("straightness missing", ckpt("straightness", "{MISSING}"), ("{MISSING}",)),
    ]
    for command in ("eval", "probe", "surprise", "viz"):
        specs += [
            (f"{command} --out an existing file", line(command, out="{FILE}"), ("{FILE}", "--out")),
            (f"{command} --out below a file", line(command, out="{FILE}/x"), ("{FILE}", "--out")),
            (f"{command} --out read-only", line(command, out="{RO}/x"), ("{RO}", "--out")),
            (f"{command} checkpoint missing", ckpt(command, "{MISSING}"), ("{MISSING}",)),
            (f"{command} checkpoint a file", ckpt(command, "{FILE}"), ("{FILE}",)),
        ]
        if command != "surprise":
            specs += [
                (f"{command} --data a folder", (*_base(command), "--data={DIR}"), ("{DIR}",)),
                (
                    f"{command} --data missing",
                    (*_base(command), "--data={MISSING}"),
                    ("{MISSING}",),
                ),
            ]
    for what, argv, names in specs:
        yield Case(ids("path", argv[0], what), "path", argv, names, what, int(rng.integers(2**32)))


def generate() -> list[Case]:
    rngs, ids = _rngs(), _Ids()
    gens = {
        "option": option_cases,
        "config": config_cases,
        "dataset": dataset_cases,
        "checkpoint": checkpoint_cases,
        "path": path_cases,
    }
    return [c for kind in KINDS for c in gens[kind](rngs[kind], ids)]


CASES = generate()
STATS: dict[str, Counter[str]] = {k: Counter() for k in KINDS}
for _c in CASES:
    STATS[_c.kind]["generated"] += 1


# -- the world and the running of a case ---------------------------------------------------------


@dataclass
class World:
    root: Path  # everything lives below
    world: Path  # the valid inputs: data.h5, run/
    pristine: Path  # a copy, to restore the world after a case that modified it
    cases: Path  # one folder per case (its mutated inputs), removed after the case
    cwd: Path  # the working folder of every call (relative outputs would land here)

    @property
    def data(self) -> Path:
        return self.world / "data.h5"

    @property
    def run(self) -> Path:
        return self.world / "run"

    @property
    def ckpt(self) -> Path:
        return self.world / "run" / "model"


def snapshot(*roots: Path, exclude: tuple[Path, ...] = ()) -> dict[str, str]:
    """relative path -> sha256 of every file (and "<dir>" for every folder) below ``roots``."""
    out: dict[str, str] = {}
    for root in roots:
        if not root.exists():
            continue
        for dirpath, dirnames, filenames in os.walk(root):
            here = Path(dirpath)
            dirnames[:] = [n for n in dirnames if here / n not in exclude]
            for n in dirnames:
                out[str(here / n)] = "<dir>"
            for n in filenames:
                p = here / n
                if p in exclude:
                    continue
                try:
                    out[str(p)] = hashlib.sha256(p.read_bytes()).hexdigest()
                except OSError as e:
                    out[str(p)] = f"<unreadable: {e}>"
    return out


def diff(before: dict[str, str], after: dict[str, str], root: Path) -> list[str]:
    def rel(p: str) -> str:
        return os.path.relpath(p, root)

    changes = [f"changed {rel(p)}" for p in before if p in after and before[p] != after[p]]
    changes += [f"removed {rel(p)}" for p in before if p not in after]
    changes += [f"new {rel(p)}" for p in after if p not in before]
    return sorted(changes)


@dataclass
class Result:
    rc: int | None
    stdout: str
    stderr: str
    outcome: str  # "return" | "exit" | "exception" | "timeout"
    exc: str = ""  # type: message, for an exception that escaped main
    frames: tuple[str, ...] = ()  # its last frames, file:line function
    seconds: float = 0.0


class CaseTimeout(BaseException):
    """Raised by the alarm: a BaseException, so that no ``except Exception`` swallows it."""


def _alarm(signum, frame):
    raise CaseTimeout(f"still running after {CASE_TIMEOUT_S} s")


_HIDDEN = (DeprecationWarning, PendingDeprecationWarning, ImportWarning, ResourceWarning)


def run_in_process(argv: list[str], capsys) -> Result:
    """``main(argv)`` as a process would run it: log records (INFO and up, main's format) and
    warnings (Python's default filters) go to the captured stderr, an escaping exception is
    exit code 1 with its traceback on stderr."""
    capsys.readouterr()
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    console = logging.StreamHandler(sys.stderr)  # sys.stderr is capsys's now
    console.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    root.addHandler(console)
    root.setLevel(logging.INFO)
    old_alarm = signal.signal(signal.SIGALRM, _alarm)
    # repeating: an exception raised where Cython code cannot pass it on (h5py) is swallowed
    signal.setitimer(signal.ITIMER_REAL, CASE_TIMEOUT_S, 1.0)
    rc, outcome, exc, frames, trace = None, "return", "", (), ""
    start = time.perf_counter()
    with warnings.catch_warnings(record=True) as caught:
        warnings.resetwarnings()
        warnings.simplefilter("default")
        for category in _HIDDEN:
            warnings.simplefilter("ignore", category)
        try:
            rc = main(list(argv))
            rc = 0 if rc is None else rc
        except SystemExit as e:
            outcome = "exit"
            rc = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
            if isinstance(e.code, str):
                print(e.code, file=sys.stderr)
        except CaseTimeout as e:
            outcome, exc = "timeout", str(e)
            frames = _frames(e)
        except BaseException as e:  # noqa: BLE001 - what a process would die of
            outcome, rc = "exception", 1
            exc = f"{type(e).__name__}: {str(e)[:300]}"
            frames = _frames(e)
            trace = "".join(traceback.format_exception(e))
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, old_alarm)
            root.handlers[:] = handlers
            root.setLevel(level)
    seconds = time.perf_counter() - start
    out = capsys.readouterr()
    shown = [
        warnings.formatwarning(w.message, w.category, w.filename, w.lineno, w.line) for w in caught
    ]
    stderr = "".join(shown) + out.err + trace
    return Result(rc, out.out, stderr, outcome, exc, frames, seconds)


def _frames(e: BaseException, n: int = 4) -> tuple[str, ...]:
    tb = traceback.extract_tb(e.__traceback__)[-n:]
    return tuple(f"{Path(f.filename).name}:{f.lineno} {f.name}" for f in tb)


def resolve(text: str, paths: dict[str, Path]) -> str:
    for name, path in paths.items():
        text = text.replace("{" + name + "}", str(path))
    return text


def prepare(case: Case, w: World, case_dir: Path) -> tuple[list[str], dict[str, Path], str]:
    """Make the case's inputs; returns the command line, the placeholders' paths and the
    builder's detail."""
    rng = np.random.default_rng(case.seed)
    case_dir.mkdir(parents=True)
    paths = {
        "DATA": w.data,
        "CKPT": w.ckpt,
        "RUN": w.run,
        "NEW": case_dir / "new_output",
        "FILE": case_dir / f"existing_{_word(rng)}.txt",
        "DIR": case_dir / f"existing_{_word(rng)}",
        "RO": case_dir / "readonly",
        "MISSING": case_dir / f"missing_{_word(rng)}.h5",
        "BAD": case_dir / "bad",
    }
    detail = case.build(w, case_dir, paths, rng) if case.build else ""
    text = " ".join(case.argv)
    if "{FILE}" in text:
        n = int(rng.integers(1, 4096))
        paths["FILE"].write_bytes(rng.integers(0, 256, n, dtype=np.uint8).tobytes())
    if "{DIR}" in text:
        paths["DIR"].mkdir()
        (paths["DIR"] / "notes.txt").write_text(f"not a lewm folder {rng.integers(10**6)}\n")
    if "{RO}" in text:
        paths["RO"].mkdir()
        (paths["RO"] / "keep.txt").write_text("read-only\n")
        paths["RO"].chmod(0o500)
    return [resolve(a, paths) for a in case.argv], paths, detail


def readonly_is_enforced(folder: Path) -> bool:
    """Whether a write into a chmod-0o500 folder fails here (not as root, which may write)."""
    probe = folder / ".write_probe"
    try:
        probe.write_text("x")
    except OSError:
        return True
    probe.unlink()
    return False


def problems(case: Case, res: Result, paths: dict[str, Path], changes: list[str]) -> list[str]:
    """What the call did against the contract (empty: it met it)."""
    out = []
    if res.outcome == "timeout":
        out.append(f"accepted: {res.exc} (stopped by the test), at {' <- '.join(res.frames)}")
    elif res.exc:
        out.append(f"traceback: {res.exc} at {' <- '.join(reversed(res.frames))}")
    elif "Traceback (most recent call last)" in res.stderr:
        out.append("a traceback on stderr")
    if res.outcome != "timeout" and res.rc != 2:
        out.append(f"exit code {res.rc}, expected 2")
    lines = res.stderr.rstrip("\n").split("\n") if res.stderr.strip() else []
    names = [resolve(n, paths) for n in case.names]
    names += [Path(n).name for n in names if "/" in n]
    prefix = f"lewm {case.command}: error: "
    if case.parse_error:
        if len(lines) != 1:
            out.append(f"{len(lines)} stderr lines, expected 1")
        if not lines or not any(n.lower() in lines[-1].lower() for n in names):
            out.append(f"the last stderr line does not name {case.names}")
    else:
        if len(lines) != 1:
            out.append(f"{len(lines)} stderr lines, expected 1")
        errors = [ln for ln in lines if ln.startswith(prefix)]
        if not errors:
            out.append(f"no stderr line starts with {prefix!r}")
        elif not any(n.lower() in errors[-1][len(prefix) :].lower() for n in names):
            out.append(f"the error does not name any of {case.names}")
    if paths["NEW"].exists():
        made = sorted(str(p.relative_to(paths["NEW"])) for p in paths["NEW"].rglob("*"))
        out.append(f"created the new output folder {{NEW}}: {made[:8]}")
    if changes:
        out.append(f"modified {len(changes)} pre-existing path(s): {changes[:8]}")
    return out


def describe(case: Case, argv: list[str], detail: str, res: Result, found: list[str]) -> str:
    tail = res.stderr.rstrip("\n").split("\n")[-6:]
    return "\n".join(
        [
            f"case {case.id} (kind {case.kind}, LEWM_FUZZ_SEED={SEED}, case seed {case.seed})",
            f"  lewm {' '.join(case.argv)}",
            f"  defect: {case.what}" + (f" ({detail})" if detail else ""),
            *(f"  - {p}" for p in found),
            "  stderr (last lines):",
            *(f"    | {ln[:300]}" for ln in tail),
        ]
    )


def record(case: Case, argv: list[str], detail: str, res: Result, found: list[str]) -> None:
    STATS[case.kind]["ran"] += 1
    STATS[case.kind]["passed" if not found else "failed"] += 1
    if not REPORT:
        return
    lines = res.stderr.rstrip("\n").split("\n") if res.stderr.strip() else []
    entry = {
        "id": case.id,
        "kind": case.kind,
        "command": case.command,
        "argv": list(case.argv),
        "what": case.what,
        "detail": detail,
        "seed": SEED,
        "case_seed": case.seed,
        "parse_error": case.parse_error,
        "outcome": res.outcome,
        "rc": res.rc,
        "exc": res.exc,
        "frames": list(res.frames),
        "stderr_lines": len(lines),
        "stderr": lines[-8:],
        "problems": found,
        "seconds": round(res.seconds, 3),
    }
    with open(REPORT, "a") as f:
        f.write(json.dumps(entry) + "\n")


@pytest.fixture(scope="module", autouse=True)
def _ceilings():
    """While the module runs: an address-space ceiling, so that a wrongly accepted absurd size
    fails to allocate instead of exhausting the (shared) machine, and a file-size ceiling (with
    SIGXFSZ ignored, an oversize write fails with EFBIG), so that a wrongly accepted absurd
    episode count cannot fill the disk before the alarm stops it."""
    try:
        import resource
    except ImportError:  # not on this platform: no ceilings
        yield
        return
    limits = {}
    with open("/proc/self/status") as f:
        vm = next(int(ln.split()[1]) * 1024 for ln in f if ln.startswith("VmSize:"))
    for which, value in (
        (resource.RLIMIT_AS, vm + MEMORY_HEADROOM),
        (resource.RLIMIT_FSIZE, FILE_CEILING),
    ):
        soft, hard = limits[which] = resource.getrlimit(which)
        if hard != resource.RLIM_INFINITY:
            value = min(value, hard)
        resource.setrlimit(which, (value, hard))
    old_xfsz = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    yield
    signal.signal(signal.SIGXFSZ, old_xfsz)
    for which, limit in limits.items():
        resource.setrlimit(which, limit)


@pytest.fixture(scope="module")
def world(tmp_path_factory, _ceilings) -> World:
    """A tiny valid world, built once: a Two-Room dataset and a 2-step tiny run."""
    root = tmp_path_factory.mktemp("fuzz")
    w = World(root, root / "world", root / "pristine", root / "cases", root / "cwd")
    for p in (w.world, w.cases, w.cwd):
        p.mkdir()
    assert main([*COLLECT, "--out", str(w.data)]) == 0
    assert (
        main(["train", "--data", str(w.data), "--out", str(w.run), *TRAIN, "train.val_every=0"])
        == 0
    )
    shutil.copytree(w.world, w.pristine)
    return w


def _restore(w: World) -> None:
    shutil.rmtree(w.world)
    shutil.copytree(w.pristine, w.world)
    for p in w.cwd.iterdir():
        shutil.rmtree(p) if p.is_dir() else p.unlink()


def _remove(folder: Path) -> None:
    for p in [folder, *folder.rglob("*")]:
        if p.is_dir() and not p.is_symlink():
            p.chmod(0o700)
    shutil.rmtree(folder, ignore_errors=True)


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_cli_rejects_invalid_input(case: Case, world: World, capsys, monkeypatch):
    case_dir = world.cases / case.id
    monkeypatch.chdir(world.cwd)
    try:
        argv, paths, detail = prepare(case, world, case_dir)
        if "{RO}" in " ".join(case.argv) and not readonly_is_enforced(paths["RO"]):
            # This sandbox runs as root, and chmod 0o500 does not stop root from writing: a
            # read-only output folder cannot be made here, so this sub-case says nothing.
            STATS[case.kind]["skipped"] += 1
            pytest.skip("chmod 0o500 does not stop writes here (root): no read-only folder")
        roots = (world.world, case_dir, world.cwd)
        before = snapshot(*roots, exclude=(paths["NEW"],))
        res = run_in_process(argv, capsys)
        after = snapshot(*roots, exclude=(paths["NEW"],))
        changes = diff(before, after, world.root)
        found = problems(case, res, paths, changes)
        record(case, argv, detail, res, found)
        if any(c.split(" ", 1)[1].startswith(("world", "cwd")) for c in changes):
            _restore(world)  # the next case starts from the valid world again
    finally:
        _remove(case_dir)
    if found:
        pytest.fail(describe(case, argv, detail, res, found), pytrace=False)


# -- a few cases as a real process ---------------------------------------------------------------


def _pick_subprocess_cases() -> list[Case]:
    wanted: list[Callable[[Case], bool]] = [
        lambda c: c.kind == "option" and c.command == "eval" and "=-" in c.argv[-1],
        lambda c: c.kind == "option" and c.parse_error and c.command == "probe",
        lambda c: c.kind == "config" and c.command == "train",
        lambda c: c.kind == "dataset" and c.what == "truncated",
        lambda c: c.kind == "checkpoint" and c.command == "info",
        lambda c: c.kind == "path" and c.what == "collect --out an existing file",
    ]
    return [next(c for c in CASES if pick(c)) for pick in wanted]


SUBPROCESS_CASES = _pick_subprocess_cases()


@pytest.fixture(scope="module")
def processes(world: World) -> dict[str, Any]:
    """Start every subprocess case at once (each in its own copy of the world), so that their
    interpreter start-ups overlap; each test then waits for its own."""
    started = {}
    for case in SUBPROCESS_CASES:
        base = world.root / "processes" / case.id
        own = World(base, base / "world", world.pristine, base / "cases", base / "cwd")
        shutil.copytree(world.pristine, own.world)
        own.cwd.mkdir()
        case_dir = own.cases / case.id
        argv, paths, detail = prepare(case, own, case_dir)
        roots = (own.world, case_dir, own.cwd)
        before = snapshot(*roots, exclude=(paths["NEW"],))
        err = open(base / "stderr", "w+")
        out = open(base / "stdout", "w+")
        proc = subprocess.Popen(
            [sys.executable, "-m", "lewm.cli.main", *argv], cwd=own.cwd, stdout=out, stderr=err
        )
        started[case.id] = (proc, own, roots, paths, before, out, err, argv, detail, time.time())
    return started


@pytest.mark.parametrize("case", SUBPROCESS_CASES, ids=[c.id for c in SUBPROCESS_CASES])
def test_cli_rejects_invalid_input_as_a_process(case: Case, processes):
    proc, own, roots, paths, before, out, err, argv, detail, t0 = processes[case.id]
    try:
        rc = proc.wait(timeout=300)
        outcome = "exit"
    except subprocess.TimeoutExpired:
        proc.kill()
        rc, outcome = proc.wait(), "timeout"
    err.seek(0)
    out.seek(0)
    res = Result(rc, out.read(), err.read(), outcome, seconds=time.time() - t0)
    out.close()
    err.close()
    if rc is not None and rc < 0:
        res.exc = f"killed by signal {-rc}"
    changes = diff(before, snapshot(*roots, exclude=(paths["NEW"],)), own.root)
    found = problems(case, res, paths, changes)
    if found:
        pytest.fail("as a process: " + describe(case, argv, detail, res, found), pytrace=False)


# -- the counts -----------------------------------------------------------------------------------


def test_every_kind_ran_enough_cases(request):
    """Each kind generated and ran at least MIN_CASES of its cases (when the whole module runs);
    prints the counts per kind (shown with ``-rA``)."""
    selected = Counter(
        item.callspec.params["case"].kind
        for item in request.session.items
        if getattr(item, "originalname", "") == "test_cli_rejects_invalid_input"
    )
    print(f"seed {SEED}; cases per kind:")
    for kind in KINDS:
        s = STATS[kind]
        print(
            f"  {kind:<10} generated {s['generated']:>4}  ran {s['ran']:>4}  passed "
            f"{s['passed']:>4}  failed {s['failed']:>4}  skipped {s['skipped']:>3}"
        )
    print(f"  total      generated {sum(s['generated'] for s in STATS.values()):>4}")
    for kind in KINDS:
        assert STATS[kind]["generated"] >= MIN_CASES[kind], (kind, dict(STATS[kind]))
        if selected[kind] == STATS[kind]["generated"]:  # the whole kind was selected
            assert STATS[kind]["ran"] >= MIN_CASES[kind], (kind, dict(STATS[kind]))
