"""Subcommands that look inside a trained model, or train a head on its frozen latents: probe,
surprise, straightness, viz, decoder, policy."""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

from lewm.cli.common import check_env, device_arg, given, integer, number, same_env, seed_arg
from lewm.utils.io import check_can_create

log = logging.getLogger(__name__)


def _load(checkpoint: str, device: str = "cpu"):
    """The model of a checkpoint on ``device`` ("cpu", "cuda", "cuda:1", or "auto": CUDA when
    available)."""
    from lewm.models import load, resolve_checkpoint

    dev = device_arg(device)  # a clear error for "cuda" without CUDA, before anything is loaded
    path = resolve_checkpoint(checkpoint)
    return load(path).to(dev), path


def _device_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--device",
        default="cpu",
        help="where the model runs: cpu (default), cuda, cuda:N, or auto (CUDA when available)",
    )


def _model_and_data_args(p: argparse.ArgumentParser) -> None:
    """The model (only read) and the episode file a head or a calibration reads."""
    p.add_argument("checkpoint", help="checkpoint folder or run directory (only read)")
    p.add_argument(
        "--data", default=None, help="episode file of the model's env (default: its training data)"
    )


def _progress(args: argparse.Namespace) -> bool | None:
    return False if args.no_progress else None


def _dataset(model, data: str | None):
    from lewm.data.config import DataConfig

    path = data or (model.metadata or {}).get("dataset")
    if path is None:
        raise ValueError("--data is required: the checkpoint does not record its dataset")
    # the camera/columns the model was trained on; analyses read a few thousand rows
    return DataConfig.recorded(model.metadata).open(path, in_memory=False, recorded=True)


def _look_of_data(model, env: str, data: str | None) -> dict:
    """The env keywords recorded in ``data`` (default: the model's training file, when it is
    still on disk), e.g. Cube's ``look``, so generated frames look like what the model saw."""
    from lewm.envs import get_spec
    from lewm.envs.registry import data_env_options

    if not get_spec(env).data_attrs:
        return {}
    recorded = (model.metadata or {}).get("dataset")
    if data is None and (recorded is None or not Path(recorded).exists()):
        log.warning(
            "the model's training data (%s) is not on disk: %s frames are drawn with the env's "
            "defaults; give --data FILE to draw them like that file",
            recorded,
            env,
        )
        return {}
    return data_env_options(env, _dataset(model, data))


def _out_dir(args, ckpt: Path, name: str) -> Path:
    if args.out:
        return Path(args.out)
    return (ckpt.parent if ckpt.name == "model" else ckpt) / f"{name}_{args.env}"


def _analysis_env(name: str) -> str:
    """Analyses need what lewm's own environments describe (probe quantities, surprise
    perturbations, state grids): refuse a ``gym:ID`` name with the reason."""
    if name.startswith("gym:"):
        raise ValueError(
            f"{name}: probe, surprise and viz need an environment registered with lewm (its "
            "EnvSpec names the probed quantities, the surprise perturbations and the state "
            "grid); a gym:ID environment works with collect and eval - give --env with a "
            "registered one (lewm.envs.ENV_NAMES), or register an EnvSpec for it"
        )
    return name


def _env_from(model, env: str | None, any_env: bool = False, registered: bool = False) -> str:
    if env is not None:
        _analysis_env(env)
        if registered:  # an unknown name first gets the list of environments
            from lewm.envs import get_spec

            get_spec(env)
        check_env(model, env, any_env)
        return env
    guess = (model.metadata or {}).get("env")
    if guess:
        _analysis_env(guess)
        if registered:
            from lewm.envs import get_spec

            get_spec(guess)  # an environment this lewm does not have: say so now
        return guess
    from lewm.envs import ENV_NAMES

    raise ValueError(
        f"--env is required ({', '.join(ENV_NAMES)}): the checkpoint does not record it"
    )


def cmd_probe(args: argparse.Namespace) -> int:
    from lewm.analysis.probe import ProbeConfig, markdown_table, run_probe, write_probe_report

    model, ckpt = _load(args.checkpoint, args.device)
    args.env = _env_from(model, args.env, args.any_env)
    cfg = ProbeConfig(**given(max_frames=args.frames, features=args.features, seed=args.seed))
    data = _dataset(model, args.data)
    if not data.has("state"):
        raise ValueError(f"{data.path} has no 'state' column: probing needs ground-truth states")
    out = check_can_create(_out_dir(args, ckpt, "probe"))  # before the work, not after
    report = run_probe(model, data, args.env, cfg, _progress(args))
    files = write_probe_report(report, out)
    print(markdown_table(report))
    print(json.dumps({k: str(v) for k, v in files.items()}, indent=2))
    return 0


def cmd_surprise(args: argparse.Namespace) -> int:
    from lewm.analysis.surprise import SurpriseConfig, run_surprise, write_surprise_report

    model, ckpt = _load(args.checkpoint, args.device)
    args.env = _env_from(model, args.env, args.any_env, registered=True)
    cfg = SurpriseConfig(
        **given(
            trajectories=args.trajectories,
            frames=args.frames,
            perturb_frame=args.perturb_frame,
            seed=args.seed,
        )
    )
    out = check_can_create(_out_dir(args, ckpt, "surprise"))
    options = _look_of_data(model, args.env, args.data)
    report = run_surprise(model, args.env, cfg, progress=_progress(args), env_options=options)
    files = write_surprise_report(report, out)
    print(json.dumps({"tests": report["tests"], **{k: str(v) for k, v in files.items()}}, indent=2))
    return 0


def cmd_straightness(args: argparse.Namespace) -> int:
    from lewm.analysis.geometry import dataset_straightness

    model, ckpt = _load(args.checkpoint, args.device)
    data = _dataset(model, args.data)
    res = dataset_straightness(
        model, data, args.frames, **given(seed=args.seed), progress=_progress(args)
    )
    print(json.dumps({"checkpoint": str(ckpt), **res}, indent=2))
    return 0


def _decoder(args: argparse.Namespace, model, ckpt: Path, data):
    """The decoder ``lewm viz`` draws with: --decoder DIR, else the checkpoint's decoder/ when
    there is one (None without); checked against the model and the data before any work."""
    from lewm.analysis.decoder import (
        check_decoder_data,
        check_decoder_for,
        default_decoder_dir,
        load_decoder,
    )

    folder = Path(args.decoder) if args.decoder else default_decoder_dir(ckpt)
    if args.decoder is None and not folder.exists():
        return None
    decoder, record = load_decoder(folder)
    check_decoder_for(record, ckpt, folder)
    check_decoder_data(decoder, model, data)
    return decoder, record


def cmd_viz(args: argparse.Namespace) -> int:
    from lewm.analysis.geometry import latent_map, open_loop, write_viz

    model, ckpt = _load(args.checkpoint, args.device)
    args.env = _env_from(model, args.env, args.any_env, registered=True)
    data = _dataset(model, args.data)
    decoder = _decoder(args, model, ckpt, data)
    out = check_can_create(_out_dir(args, ckpt, "viz"))
    latent = latent_map(model, args.env, **given(n=args.grid, method=args.method))
    rollout = open_loop(model, data, **given(horizon=args.horizon, seed=args.seed))
    extra = {}
    if decoder is not None:
        from lewm.analysis.decoder import imagine

        dec, record = decoder
        options = given(horizon=args.horizon, seed=args.seed)
        imagined = imagine(model, dec, data, record, **options)
        extra["imagined"] = {k: v for k, v in imagined.items() if not k.startswith("_")}
    run_dir = ckpt.parent if ckpt.name == "model" else ckpt.parent.parent
    metrics = run_dir / "metrics.jsonl"
    files = write_viz(out, latent, rollout, metrics, extra)
    if decoder is not None:
        from lewm.analysis.decoder import write_imagined

        files.update(write_imagined(out, imagined))
    summary = {k: v for k, v in latent.items() if not k.startswith("_")}
    files = {k: str(v) for k, v in files.items()}
    report = {"latent_map": summary, "open_loop": rollout, **extra, "files": files}
    print(json.dumps(report, indent=2))
    return 0


def _head_inputs(args: argparse.Namespace, what: str):
    """The model, its checkpoint folder and the data a head (decoder, policy) is trained on:
    the model's own environment and frame format, one clear error otherwise."""
    from lewm.analysis.decoder import check_data

    model, ckpt = _load(args.checkpoint)
    data = _dataset(model, args.data)
    recorded, env = (model.metadata or {}).get("env"), data.attrs.get("env")
    if recorded and env and not same_env(recorded, env):
        raise ValueError(
            f"--data {data.path} holds {env!r} episodes, the model was trained on {recorded!r} "
            f"data: {what} on its latents of these frames would mean nothing - give the "
            "model's data"
        )
    check_data(model, data)
    return model, ckpt, data


def cmd_decoder(args: argparse.Namespace) -> int:
    from lewm.analysis.decoder import (
        DecoderTrainConfig,
        check_decoder_out,
        default_decoder_dir,
        save_decoder,
        train_decoder,
    )

    model, ckpt, data = _head_inputs(args, "the decoder")
    cfg = DecoderTrainConfig(
        **given(
            steps=args.steps,
            batch_size=args.batch,
            lr=args.lr,
            l1_weight=args.l1,
            frames=args.frames,
            seed=args.seed,
        )
    )
    out = check_decoder_out(
        Path(args.out) if args.out else default_decoder_dir(ckpt), args.overwrite
    )
    return _fit_head("decoder", train_decoder, save_decoder, model, data, ckpt, cfg, out, args)


def cmd_calibrate(args: argparse.Namespace) -> int:
    """``lewm calibrate``: the BatchNorm running statistics recomputed with the model's weights
    from ``--clips`` clips of its training episodes (lewm.training.batchnorm.recalibrate), saved
    as a new model folder, with how far they moved."""
    import torch

    from lewm.data.clips import ClipSampler
    from lewm.models import resolve_checkpoint
    from lewm.models.checkpoint import CONFIG_FILE, NORMALIZER_FILE, WEIGHTS_FILE
    from lewm.planning.evaluate import eval_episodes
    from lewm.training.batchnorm import calibration_chunks, recalibrate

    dev = device_arg(args.device)  # a device this machine lacks fails before any work
    out = Path(args.out)
    if out.resolve() == resolve_checkpoint(args.checkpoint).resolve():
        raise ValueError("--out is the checkpoint itself: give a new folder (the input is kept)")
    if out.exists():  # before any work; --overwrite replaces only a model folder or an empty one
        if not args.overwrite:
            raise FileExistsError(f"{out} exists: pass --overwrite to replace it, or another --out")
        names = {p.name for p in out.iterdir()} if out.is_dir() else None
        model_files = {CONFIG_FILE, WEIGHTS_FILE, NORMALIZER_FILE}
        if names is None or (names and not (CONFIG_FILE in names and names <= model_files)):
            held = "is a file" if names is None else "holds " + ", ".join(sorted(names)[:5])
            raise FileExistsError(
                f"--overwrite replaces only a model folder, and {out} {held}: give another --out"
            )
    model, ckpt, data = _head_inputs(args, "calibration")
    model = model.to(dev)
    if getattr(model, "normalizer", None) is None:
        raise ValueError(f"{ckpt} has no action normaliser (normalizer.json): cannot read clips")
    layers = [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    before = [(m.running_mean.clone(), m.running_var.clone()) for m in layers]
    episodes = eval_episodes(data, Path(data.path), model.metadata or {}, "train")
    clips = ClipSampler(data, episodes, int(model.history), int(model.frameskip), model.normalizer)
    chunks = calibration_chunks(len(clips), args.clips, args.batch, args.seed)

    def forward(chunk):
        pixels, blocks = clips.gather(chunk)
        model(pixels.to(dev), blocks.to(dev))

    used = recalibrate(model, chunks, forward)
    if not used:
        raise ValueError(
            f"{ckpt}: no BatchNorm layer that trains (nothing to recompute), or no clip"
        )
    # how stale the old statistics were: per layer, the median shift of the mean in units of the
    # new standard deviation
    shift = [
        float(((m.running_mean - mu).abs() / (m.running_var + m.eps).sqrt()).median())
        for m, (mu, _) in zip(layers, before, strict=True)
    ]
    check_can_create(out)
    model.cpu().save_pretrained(out, overwrite=args.overwrite)
    summary = {
        "model": str(out),
        "clips": int(sum(len(c) for c in chunks)),
        "batches": used,
        "layers": len(layers),
        "mean_shift_in_std_median_max": round(max(shift), 4),
    }
    print(json.dumps(summary, indent=2))
    return 0


def cmd_policy(args: argparse.Namespace) -> int:
    from lewm.planning.policy import (
        PolicyTrainConfig,
        check_policy_out,
        default_policy_dir,
        save_policy,
        train_policy,
    )

    model, ckpt, data = _head_inputs(args, "a policy")
    cfg = PolicyTrainConfig(
        **given(
            steps=args.steps,
            batch_size=args.batch,
            lr=args.lr,
            horizon=args.horizon,
            hidden=args.hidden,
            goal_min=args.goal_min,
            goal_max=args.goal_max,
            max_frames=args.frames,
            seed=args.seed,
        )
    )
    out = check_policy_out(Path(args.out) if args.out else default_policy_dir(ckpt), args.overwrite)
    return _fit_head("policy", train_policy, save_policy, model, data, ckpt, cfg, out, args)


def _fit_head(kind: str, fit, save, model, data, ckpt: Path, cfg, out: Path, args) -> int:
    """Train a head on the frozen model (``fit``), save it into ``out`` (``save``), print the
    summary: shared by ``lewm decoder`` and ``lewm policy``."""
    check_can_create(out)
    head, record = fit(model, data, ckpt, cfg, _progress(args))
    save(head, record, out, overwrite=args.overwrite)
    summary = {kind: str(out), "split": record["data"]["split"], **record["losses"]}
    print(json.dumps({**summary, "seconds": record["training"]["seconds"]}, indent=2))
    return 0


def add_commands(sub: argparse._SubParsersAction) -> None:
    def common(p: argparse.ArgumentParser, data: bool = True) -> None:
        p.add_argument("checkpoint", help="checkpoint folder or run directory")
        p.add_argument("--env", default=None, help="environment (default: the dataset's)")
        p.add_argument(
            "--any-env",
            action="store_true",
            help="allow an environment other than the one the model was trained on",
        )
        if data:
            p.add_argument(
                "--data", default=None, help="episode file (default: the training dataset)"
            )
        p.add_argument("--out", default=None, help="output folder (default: next to the model)")
        p.add_argument("--seed", type=seed_arg(), help="random seed (default: 0)")
        p.add_argument("--no-progress", action="store_true", help="no progress bar")
        _device_arg(p)

    p = sub.add_parser("probe", help="linear + MLP probes from the latent to physical quantities")
    common(p)
    p.add_argument(
        "--frames", type=integer(10, 10**7), help="frames drawn from the file (default: 20,000)"
    )
    p.add_argument(
        "--features",
        choices=["latent", "encoder"],
        help="what is probed: the latent (default) or the image encoder's output",
    )
    p.set_defaults(func=cmd_probe)

    p = sub.add_parser("surprise", help="violation of expectation: colour change and teleport")
    common(p, data=False)
    p.add_argument(
        "--data",
        default=None,
        help="an episode file whose recorded look the generated frames follow (Cube's `look`; "
        "default: the model's training data)",
    )
    p.add_argument("--trajectories", type=integer(2, 10**5), help="matched triplets (default: 32)")
    p.add_argument(
        "--frames",
        type=integer(1, 10**4),
        help="frames per trajectory after the first (default: 12)",
    )
    p.add_argument(
        "--perturb-frame",
        type=integer(1, 10**4),
        help="first perturbed frame, at most --frames (default: 6)",
    )
    p.set_defaults(func=cmd_surprise)

    p = sub.add_parser("straightness", help="temporal straightness of latent paths (Eq. 9)")
    p.add_argument("checkpoint", help="checkpoint folder or run directory")
    p.add_argument("--data", default=None, help="episode file (default: the training dataset)")
    p.add_argument("--frames", type=integer(3, 10**4), help="window (default: max(3, history + 1))")
    p.add_argument("--seed", type=seed_arg(), help="random seed (default: 0)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    _device_arg(p)
    p.set_defaults(func=cmd_straightness)

    p = sub.add_parser("viz", help="latent map over a state grid, open-loop rollout, curves")
    common(p)
    p.add_argument("--grid", type=integer(2, 1000), help="grid points per axis (default: 16)")
    p.add_argument(
        "--method",
        choices=["auto", "pca", "tsne"],
        help="2-D map: t-SNE (needs scikit-learn) or PCA; auto (default) = t-SNE when installed",
    )
    p.add_argument("--horizon", type=integer(1, 10**4), help="open-loop blocks (default: 10)")
    p.add_argument(
        "--decoder",
        default=None,
        metavar="DIR",
        help="a decoder folder (`lewm decoder`): also write imagined.png / imagined.gif and the "
        "per-step pixel error of the decoded rollout (default: the checkpoint's decoder/, "
        "used when it exists)",
    )
    p.set_defaults(func=cmd_viz)

    p = sub.add_parser(
        "decoder",
        help="train a small decoder from the frozen model's latents to frames (for `lewm viz`)",
    )
    _model_and_data_args(p)
    p.add_argument("--steps", type=integer(1, 10**7), help="optimiser steps (default: 1000)")
    p.add_argument("--batch", type=integer(1, 10**5), help="frames per step (default: 32)")
    p.add_argument("--lr", type=number(1e-8, 1.0), help="AdamW learning rate (default: 1e-3)")
    p.add_argument("--l1", type=number(0.0, 1e3), help="weight of an L1 term (default: 0)")
    p.add_argument(
        "--frames", type=integer(1, 10**7), help="training frames encoded (default: 4096)"
    )
    p.add_argument("--seed", type=seed_arg(), help="random seed (default: 0)")
    p.add_argument(
        "--out", default=None, help="decoder folder (default: CHECKPOINT/decoder, e.g. RUN/model/)"
    )
    p.add_argument(
        "--overwrite", action="store_true", help="replace an existing decoder folder (only one)"
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_decoder)

    p = sub.add_parser(
        "calibrate",
        help="recompute a model's BatchNorm statistics from its training clips (for models "
        "trained before lewm did it itself, or imported ones) into a new model folder",
    )
    _model_and_data_args(p)
    p.add_argument("--out", required=True, help="the new model folder (the input is never changed)")
    p.add_argument(
        "--clips", type=integer(2, 10**7), default=512, help="training clips read (default: 512)"
    )
    p.add_argument("--batch", type=integer(2, 10**5), default=64, help="clips per batch (64)")
    p.add_argument("--seed", type=seed_arg(), default=0, help="which clips (default: 0)")
    p.add_argument(
        "--overwrite", action="store_true", help="replace an existing model folder at --out"
    )
    _device_arg(p)
    p.set_defaults(func=cmd_calibrate)

    p = sub.add_parser(
        "policy",
        help="train a goal-conditioned policy on the frozen model's latents (the amortised "
        "planner: `lewm eval --solver policy`, or --proposal policy to warm-start CEM)",
    )
    _model_and_data_args(p)
    p.add_argument("--steps", type=integer(1, 10**7), help="optimiser steps (default: 4000)")
    p.add_argument("--batch", type=integer(1, 10**6), help="pairs per step (default: 256)")
    p.add_argument("--lr", type=number(1e-8, 1.0), help="AdamW learning rate (default: 1e-3)")
    p.add_argument(
        "--horizon", type=integer(1, 1000), help="action blocks per plan (default: 5, eval's)"
    )
    p.add_argument("--hidden", type=integer(1, 16384), help="MLP width (default: 512)")
    p.add_argument(
        "--goal-min",
        type=integer(1, 10**6),
        help="smallest goal offset in env steps (default: one block = frameskip)",
    )
    p.add_argument(
        "--goal-max",
        type=integer(1, 10**6),
        help="largest goal offset in env steps (default: 2 x horizon blocks)",
    )
    p.add_argument(
        "--frames",
        type=integer(1, 10**8),
        help="frames of training episodes encoded, whole episodes (default: 150,000)",
    )
    p.add_argument("--seed", type=seed_arg(), help="random seed (default: 0)")
    p.add_argument(
        "--out", default=None, help="policy folder (default: CHECKPOINT/policy, e.g. RUN/model/)"
    )
    p.add_argument(
        "--overwrite", action="store_true", help="replace an existing policy folder (only one)"
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_policy)
