"""Training loop for any registered world model (model and objective come from the registry of
``lewm.models`` by ``config.model.kind``): AdamW, warm-up + cosine, grad clipping, bf16
autocast, episode-split validation, atomic checkpoints and exact resume (weights, optimizer,
scheduler, RNG and data position; see lewm.training.checkpoint).

With ``distributed=True`` (under torchrun) the same loop runs data-parallel: every step's global
batch of ``train.batch_size`` clips is split into equal contiguous shards, one per process; the
model is wrapped in DistributedDataParallel (which averages gradients over processes), SIGReg and
BatchNorm use global-batch statistics, and only rank 0 logs, validates and writes checkpoints. A
K-process step then computes the loss and gradients of the single-process step on the same batch.
"""

from __future__ import annotations

import inspect
import json
import logging
import math
import os
import signal
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch

from lewm.data.clips import ClipSampler, EpisodeBlockBatches, EpochBatches, split_episodes
from lewm.data.config import DataConfig
from lewm.data.hdf5 import DataError
from lewm.data.loader import BatchStream, auto_workers, choose_in_memory
from lewm.data.multi import canonical
from lewm.data.normalize import Normalizer
from lewm.losses import latent_std, straightness
from lewm.models import build_model, build_objective
from lewm.training import checkpoint, rundir
from lewm.training.batchnorm import calibration_chunks, convert_batchnorm, recalibrate
from lewm.training.config import TrainConfig
from lewm.utils import distributed as dist_utils
from lewm.utils.config import ConfigError
from lewm.utils.distributed import DistInfo
from lewm.utils.io import write_json
from lewm.utils.progress import progress_bar, progress_enabled

log = logging.getLogger(__name__)

RUN_CONFIG = rundir.RUN_FILE  # kept for callers of the old name
NOT_SHOWN = ("train/samples_per_s", "train/data_wait")  # logged, not in the progress bar


class RunConfig(Protocol):
    """What the trainer reads of a config tree (``lewm.config.Config`` is one): a registered
    world model's config, the training settings, and a round trip through a plain dict."""

    model: Any
    train: TrainConfig

    def to_dict(self) -> dict[str, Any]: ...

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> RunConfig: ...


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(name)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device {name!r} requested but CUDA is not available; use device=cpu")
    return dev


def make_optimizer(params, tc: Any, device: torch.device) -> torch.optim.AdamW:
    """AdamW at ``train.lr`` / ``train.weight_decay``, as one fused kernel over all parameters
    where torch has it (CUDA; CPU since torch 2.4): the same update as torch's default. The
    update alone is 6.8x faster on the cpu preset's 65 tensors and 3.5x on the paper preset's 297
    (one CPU thread; the default loop spends ~10 small operations per tensor), which is < 1 % of
    a CPU training step; on CUDA it replaces the default multi-tensor kernels by one (not yet
    measured on a GPU)."""
    params = list(params)
    kwargs = {"lr": tc.lr, "weight_decay": tc.weight_decay}
    if device.type in ("cpu", "cuda"):
        try:
            return torch.optim.AdamW(params, fused=True, **kwargs)
        except (RuntimeError, ValueError):  # an older torch without a fused CPU kernel
            pass
    return torch.optim.AdamW(params, **kwargs)


def cpu_has_native_bf16() -> bool:
    """True on CPUs with AVX512-BF16 or AMX (bf16 autocast is then 1.5-1.8x faster)."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def resolve_precision(precision: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype, or None for fp32."""
    if precision == "fp32":
        return None
    if precision == "bf16":
        return torch.bfloat16
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else None
    return torch.bfloat16 if cpu_has_native_bf16() else None


def lr_lambda(total_steps: int, warmup_frac: float, warmup_steps: int = 0, schedule_steps: int = 0):
    """Step -> factor of the peak rate: a linear warm-up (``warmup_steps``, else
    ``warmup_frac`` of the run), then a cosine that reaches 0 at ``schedule_steps`` (default: the
    end of the run; a longer schedule stops the run with the rate still high)."""
    horizon = schedule_steps or total_steps
    if warmup_steps > 0:
        warmup = warmup_steps
    else:
        warmup = max(1, int(round(warmup_frac * horizon))) if warmup_frac > 0 else 0

    def f(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        progress = (step - warmup) / max(1, horizon - warmup)
        return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))

    return f


def schedule_of(tc: TrainConfig):
    """The learning-rate factor of a run's ``train`` settings (see :func:`lr_lambda`)."""
    return lr_lambda(tc.steps, tc.warmup_frac, tc.warmup_steps, tc.schedule_steps)


@dataclass
class TrainResult:
    run_dir: Path
    model_dir: Path
    steps: int
    final: dict[str, float]
    seconds: float
    rank: int = 0  # this process's rank (0 when not distributed); only rank 0 writes files


class Trainer:
    def __init__(
        self,
        config: RunConfig,
        data: str | os.PathLike,
        run_dir: str | os.PathLike,
        *,
        resume: bool = False,
        overwrite: bool = False,
        progress: bool | None = None,
        metadata: dict[str, Any] | None = None,
        distributed: bool = False,
        allow_other_data: bool = False,
    ) -> None:
        """``config`` is the run's config; with ``resume`` it is what the caller asks for, and
        it may differ from the recorded one only in keys that are safe to change mid-run
        (:data:`lewm.training.rundir.SAFE_ON_RESUME`): those are applied and recorded in
        run.json, any other difference is refused by name. A resumed run on another dataset is
        refused unless ``allow_other_data``."""
        self.run_dir = Path(run_dir)
        self.lock: rundir.RunLock | None = None
        self.resume_changes: dict[str, list[Any]] = {}
        self._run_record: dict[str, Any] = {}
        if resume:
            self._run_record = rundir.read_run(self.run_dir)
            saved = type(config).from_dict(self._run_record["config"])
            requested = config.to_dict()
            # derived from the data, not chosen: a preset's default must not count as a change
            requested["model"]["action_dim"] = saved.model.action_dim
            self.resume_changes = rundir.resume_changes(saved.to_dict(), requested)
            config = type(config).from_dict(requested)
        # torchrun workers join the process group; a single process keeps DistInfo() (rank 0 of 1)
        self.dist = dist_utils.init(config.train.device) if distributed else DistInfo()
        try:
            self._setup(config, data, resume, overwrite, progress, metadata, allow_other_data)
        except BaseException:
            self.close()
            raise

    def _setup(
        self,
        config: RunConfig,
        data: str | os.PathLike,
        resume: bool,
        overwrite: bool,
        progress: bool | None,
        metadata: dict[str, Any] | None,
        allow_other_data: bool,
    ) -> None:
        W = self.dist.world_size
        if config.train.batch_size % W:
            raise ConfigError(
                f"train.batch_size ({config.train.batch_size}) must be divisible by the number "
                f"of processes ({W}): each process takes an equal share of every step's batch"
            )
        self.local_batch_size = config.train.batch_size // W
        self.config = config
        tc = config.train
        self.device = self.dist.device if self.dist.backend else resolve_device(tc.device)
        self.amp_dtype = resolve_precision(tc.precision, self.device)
        if tc.num_threads:
            torch.set_num_threads(tc.num_threads)
        self.progress = self.dist.is_main and progress_enabled(progress)

        # data --------------------------------------------------------------------------------
        self.data_path = Path(data)
        self.data_config = getattr(config, "data", None) or DataConfig()
        self.dataset = self.data_config.open(self.data_path, in_memory=False)
        self._choose_data_mode()
        self.fingerprint = rundir.data_fingerprint(self.dataset)
        if resume:
            other = rundir.check_same_data(self._run_record, self.data_path, self.fingerprint)
            if other and not allow_other_data:
                raise DataError(
                    f"cannot resume on another dataset: {other}; pass --allow-other-data to "
                    "continue on it anyway (the run keeps its own action normaliser)"
                )
            if other:
                log.warning("resuming on another dataset: %s", other)
        mc = config.model
        if mc.action_dim != self.dataset.action_dim:
            if resume:
                raise DataError(
                    f"the run was trained with action_dim {mc.action_dim}, the dataset has "
                    f"{self.dataset.action_dim}"
                )
            mc.action_dim = self.dataset.action_dim  # derived from data, saved in the config
        self.train_eps, self.val_eps = split_episodes(
            self.dataset.num_episodes, tc.val_fraction, tc.seed
        )
        fit_cols = {"action": self.dataset.rows("action", self._rows_of(self.train_eps))}
        finite = fit_cols["action"][np.isfinite(fit_cols["action"]).all(axis=1)]  # (N, A)
        if self.dataset.has("proprio"):
            fit_cols["proprio"] = self.dataset.rows("proprio", self._rows_of(self.train_eps))
        self.normalizer = Normalizer.fit(fit_cols)
        # model and objective from the world-model registry (config.model.kind) -------------------
        torch.manual_seed(tc.seed)  # identical initial weights on every rank
        self.model = build_model(mc).to(self.device)
        if self.dist.enabled and tc.sync_batchnorm:
            convert_batchnorm(self.model)  # same state-dict keys as nn.BatchNorm*
        if self.dist.enabled:  # but a different dropout stream per rank
            torch.manual_seed(dist_utils.rank_seed(tc.seed, self.dist.rank))
        self.objective = build_objective(mc, tc, self.dist.enabled).to(self.device)
        self.forward_kwargs = self._forward_options(tc)
        self._bn_calibrated_step: int | None = None  # the step whose weights set the BN stats

        N, f = self.model.history, self.model.frameskip
        self.train_clips = ClipSampler(self.dataset, self.train_eps, N, f, self.normalizer)
        self.val_clips = (
            ClipSampler(self.dataset, self.val_eps, N, f, self.normalizer)
            if len(self.val_eps)
            else None
        )
        dc = self.data_config
        self.batches = (
            EpisodeBlockBatches(self.train_clips, tc.batch_size, tc.seed, dc.block_episodes)
            if dc.shuffle == "episodes"
            else EpochBatches(len(self.train_clips), tc.batch_size, tc.seed)
        )

        # what the checkpoint records beside the weights, and the optimiser -----------------------
        self.model.normalizer = self.normalizer
        self.model.metadata = {
            "dataset": canonical(self.data_path),
            "split": {
                "seed": tc.seed,
                "val_fraction": tc.val_fraction,
                "num_episodes": self.dataset.num_episodes,
            },
            "image_shape": list(self.dataset.image_shape),
            "env": self.dataset.attrs.get("env"),
            "data_options": self.data_config.options(),
            # the span of the training actions: evaluation checks it fits the env's action space
            "action_range": [finite.min(0).tolist(), finite.max(0).tolist()]
            if len(finite)
            else None,
            **(metadata or {}),
        }
        self.optimizer = make_optimizer(self.model.parameters(), tc, self.device)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, schedule_of(tc))
        self.step = 0
        self.metrics_path = self.run_dir / "metrics.jsonl"
        # everything above only read; from here the run directory is written. Rank 0 alone
        # inspects, clears and locks it; every rank raises the same error
        error = self._claim_run_dir(resume, overwrite, Path(data)) if self.dist.is_main else None
        error = dist_utils.broadcast_object(error, self.dist)
        if error is not None:
            raise FileExistsError(error)
        if self.dist.is_main:  # said once the run is known to go ahead
            log.log(logging.DEBUG if self.data_in_memory else logging.INFO, self.data_mode_note)
        if resume:
            self._resume()
        elif self.dist.is_main:
            write_json(
                self.run_dir / rundir.RUN_FILE,
                {
                    "format": rundir.RUN_FORMAT,
                    "config": config.to_dict(),
                    "data": str(self.data_path),
                    "data_fingerprint": self.fingerprint,
                    "train_episodes": len(self.train_eps),
                    "val_episodes": len(self.val_eps),
                    "train_clips": len(self.train_clips),
                },
            )
        self.net: torch.nn.Module = self.model  # what training steps call (DDP when distributed)
        if self.dist.enabled:
            # the same objective random stream (SIGReg directions) on every rank
            rng = dist_utils.broadcast_object(self.objective.rng_state(), self.dist)
            self.objective.set_rng_state(rng)
            self.net = torch.nn.parallel.DistributedDataParallel(
                self.model, device_ids=[self.device.index] if self.device.type == "cuda" else None
            )
            if self.dist.is_main:
                log.info(
                    "data-parallel over %d processes (%s): %d clips per process per step",
                    self.dist.world_size,
                    self.dist.backend,
                    self.local_batch_size,
                )

    def _choose_data_mode(self) -> None:
        """Hold the dataset in memory or stream it (``data.mode``; see lewm.data.loader), and
        how many loader processes read it."""
        dc = self.data_config
        copies = int(os.environ.get("LOCAL_WORLD_SIZE", "1")) if self.dist.enabled else 1
        in_memory, why = choose_in_memory(dc.mode, self.dataset.nbytes, copies)
        if in_memory:
            self.dataset.to_memory()
            self.loader_workers = 0  # reads cost microseconds: no process would pay for itself
        else:
            self.loader_workers = auto_workers(copies) if dc.workers < 0 else dc.workers
        self.data_in_memory = in_memory
        self.data_mode_note = why + (
            f"; {self.loader_workers} loader process(es)" if not in_memory else ""
        )

    def _claim_run_dir(self, resume: bool, overwrite: bool, data: Path) -> str | None:
        """Lock the run directory (a new run: empty or a lewm run that may be overwritten);
        the error message if it may not be used."""
        try:
            if resume:
                self.lock = rundir.RunLock(self.run_dir)
                self.lock.acquire()
                rundir.clean_stale_temps(self.run_dir)
            else:
                self.lock = rundir.start_new_run(self.run_dir, overwrite, data)
        except FileExistsError as e:
            return str(e)
        return None

    def close(self) -> None:
        """Release the run directory and leave the process group if this trainer created it."""
        if self.lock is not None:
            self.lock.release()
            self.lock = None
        dist_utils.shutdown(self.dist)

    def _rows_of(self, episodes: np.ndarray) -> np.ndarray:
        ds = self.dataset
        return np.concatenate([ds.ep_offset[e] + np.arange(ds.ep_len[e]) for e in episodes])

    # -- one step ------------------------------------------------------------------------------
    def _autocast(self):
        return torch.autocast(
            device_type=self.device.type,
            dtype=self.amp_dtype or torch.float32,
            enabled=self.amp_dtype is not None,
        )

    def _forward_options(self, tc: TrainConfig) -> dict[str, Any]:
        """Keyword options of the model's training forward that the train config asks for."""
        if tc.open_loop_weight <= 0:
            return {}
        if "open_loop" not in inspect.signature(self.model.forward).parameters:
            raise ConfigError(
                f"train.open_loop_weight: world-model kind {self.config.model.kind!r} has no "
                "open-loop training rollout; set train.open_loop_weight=0"
            )
        if self.model.history < 2:
            raise ConfigError(
                f"train.open_loop_weight needs model.predictor.history >= 2 (clips of 3+ "
                f"frames), got history {self.model.history}; raise the history or set "
                "train.open_loop_weight=0"
            )
        return {"open_loop": True}

    def _forward(
        self, pixels: torch.Tensor, blocks: torch.Tensor, net: torch.nn.Module | None = None
    ) -> dict[str, torch.Tensor]:
        pixels = pixels.to(self.device, non_blocking=True)
        blocks = blocks.to(self.device, non_blocking=True)
        with self._autocast():
            out = (self.model if net is None else net)(pixels, blocks, **self.forward_kwargs)
            terms = self.objective(**out)
        z = out["z"].detach().float()  # (B, T, D) the clip's latents
        terms["z_std"] = latent_std(z)
        if z.shape[1] >= 3:
            terms["straightness"] = straightness(z)
        return terms

    def _shard(self) -> slice | None:
        """This rank's share of every step's global batch (None: all of it)."""
        if not self.dist.enabled:
            return None
        b = self.local_batch_size
        return slice(self.dist.rank * b, (self.dist.rank + 1) * b)

    def batch_stream(self, start: int, end: int) -> BatchStream:
        """This process's (pixels, action blocks) of steps ``start .. end-1``, read ahead by
        the loader processes when the data are streamed."""
        return BatchStream(
            self.train_clips,
            self.batches,
            start,
            end,
            shard=self._shard(),
            workers=self.loader_workers,
            prefetch=self.data_config.prefetch,
            pin_memory=self.device.type == "cuda",
        )

    def train_step(
        self, batch: tuple[torch.Tensor, torch.Tensor] | None = None
    ) -> dict[str, float]:
        """One optimiser step on ``batch`` (this step's clips from :meth:`batch_stream`; read
        here when None)."""
        self.model.train()
        if batch is None:
            idx = self.batches(self.step)  # the global batch of this step
            shard = self._shard()
            batch = self.train_clips.gather(idx if shard is None else idx[shard])
        pixels, blocks = batch
        terms = self._forward(pixels, blocks, self.net)
        self.optimizer.zero_grad(set_to_none=True)
        # Each rank's loss = its shard's MSE mean + lambda * global SIGReg; DDP averages the
        # gradients, which gives the gradient of the global-batch loss (see utils.distributed).
        terms["loss"].backward()
        grad_norm = torch.nn.utils.clip_grad_norm_(
            self.model.parameters(), self.config.train.grad_clip
        )
        lr = self.optimizer.param_groups[0]["lr"]
        self.optimizer.step()
        self.scheduler.step()
        self.step += 1
        if self.dist.enabled:  # report global-batch averages (same numbers on every rank)
            values = torch.stack([v.detach().float() for v in terms.values()])
            torch.distributed.all_reduce(values)
            terms = dict(zip(terms, values / self.dist.world_size, strict=True))
        out = {k: float(v.detach()) for k, v in terms.items()}
        if not math.isfinite(out["loss"]):
            raise FloatingPointError(self._divergence_message(out["loss"]))
        out["grad_norm"], out["lr"] = float(grad_norm), lr
        return out

    @torch.no_grad()
    def validate(self) -> dict[str, float]:
        """Fixed held-out clips, a fixed objective random stream (SIGReg directions):
        comparable across steps.

        Under DDP only rank 0 validates (the full validation set, with the unwrapped model and a
        rank-local objective, so the numbers equal the single-process ones); other ranks
        return {}.
        """
        if self.val_clips is None or not self.dist.is_main:
            return {}
        if not self.dist.enabled:  # under DDP every rank calibrated before (a collective)
            self.calibrate_batchnorm()
        self.model.eval()
        tc = self.config.train
        rng = np.random.default_rng([tc.seed, 7])
        n = min(len(self.val_clips), tc.batch_size * max(1, tc.val_batches))
        idx = np.sort(rng.choice(len(self.val_clips), size=n, replace=False))
        saved = self.objective.rng_state()
        self.objective.manual_seed(tc.seed + 1)
        sums: dict[str, float] = {}
        chunks = [idx[i : i + tc.batch_size] for i in range(0, n, tc.batch_size)]
        chunks = [c for c in chunks if len(c) >= 2]
        with self.objective.local():
            for chunk in chunks:
                terms = self._forward(*self.val_clips.gather(chunk))
                for k, v in terms.items():
                    sums[k] = sums.get(k, 0.0) + float(v)
        self.objective.set_rng_state(saved)
        return {k: v / len(chunks) for k, v in sums.items()}

    def _divergence_message(self, loss: float) -> str:
        tc = self.config.train
        ckpts = checkpoint.complete_checkpoints(self.run_dir)
        again = f"`{self.resume_command(' train.lr=LOWER')}`"
        where = (
            f"the last checkpoint is step {int(ckpts[-1].name.split('_')[-1])}: {again} "
            "continues from it"
            if ckpts
            else f"no checkpoint was written yet: {again} starts this run again from step 0"
        )
        return (
            f"the loss became {loss} at step {self.step} (train.lr={tc.lr:g}): lower the "
            f"learning rate or check the data; {where}"
        )

    def _interrupted(self, signal_name: str) -> TrainingInterrupted:
        """Write a checkpoint of the step just finished (single process) and say how to resume."""
        saved = checkpoint.checkpoint_dir(self.run_dir, self.step)
        if not self.dist.enabled and self.step > 0 and not saved.exists():
            self.save_checkpoint()
        if saved.exists():
            where = f"checkpoint {saved}"
        else:
            ckpts = checkpoint.complete_checkpoints(self.run_dir)
            where = f"the last checkpoint ({ckpts[-1].name})" if ckpts else "no checkpoint yet"
        return TrainingInterrupted(
            f"{signal_name}: training stopped at step {self.step}, {where}; resume with "
            f"`{self.resume_command()}`"
        )

    def calibrate_batchnorm(self) -> int:
        """Recompute the BatchNorm running statistics with the current weights from a fixed set
        of ``train.precise_bn_clips`` training clips (:func:`lewm.training.batchnorm.recalibrate`);
        once per step, a no-op for models without BatchNorm. Under DDP every rank must call it
        (each takes its share of every batch; the global BatchNorm merges them). Returns the
        batches used (0: nothing recomputed)."""
        tc = self.config.train
        if not tc.precise_bn_clips or self._bn_calibrated_step == self.step:
            return 0
        chunks = calibration_chunks(
            len(self.train_clips),
            tc.precise_bn_clips,
            tc.batch_size,
            [tc.seed, 11],
            self.dist.rank,
            self.dist.world_size,
        )

        def forward(chunk: np.ndarray) -> None:
            pixels, blocks = self.train_clips.gather(chunk)
            with self._autocast():
                self.model(
                    pixels.to(self.device, non_blocking=True),
                    blocks.to(self.device, non_blocking=True),
                    **self.forward_kwargs,
                )

        used = recalibrate(self.model, chunks, forward)
        self._bn_calibrated_step = self.step
        return used

    # -- checkpoints (lewm.training.checkpoint) -------------------------------------------------
    def save_checkpoint(self) -> Path:
        """Write a checkpoint (rank 0), BatchNorm statistics recomputed first; under DDP every
        rank must call it (RNG states are gathered so that each rank's dropout stream resumes
        exactly)."""
        self.calibrate_batchnorm()
        return checkpoint.save(
            self.run_dir,
            self.step,
            self.model,
            self.optimizer,
            self.scheduler,
            self.objective,
            self.dist,
            self.device,
            self.config.train.keep_checkpoints,
        )

    def _resume(self) -> None:
        """Restore the newest intact checkpoint (or start over at step 0 when there is none),
        apply the safe config changes, and record the resume in run.json."""
        tc = self.config.train
        if not checkpoint.complete_checkpoints(self.run_dir):
            if self.dist.is_main:
                log.warning(
                    "%s has no checkpoint yet: the run starts again from step 0 with its config",
                    self.run_dir,
                )
        else:
            self.step, ckpt = checkpoint.load(
                self.run_dir,
                self.model,
                self.optimizer,
                self.scheduler,
                self.objective,
                self.dist,
                self.device,
                tc.seed,
            )
            saved_norm = checkpoint.read_normalizer(ckpt)
            if saved_norm is not None:  # the run keeps the statistics its weights were trained on
                self.normalizer = self.model.normalizer = saved_norm
                for clips in (self.train_clips, self.val_clips):
                    if clips is not None:
                        clips.normalizer = saved_norm
            if "train.lr" in self.resume_changes:  # a new peak rate, same schedule shape
                for group in self.optimizer.param_groups:
                    group["initial_lr"] = tc.lr
                self.scheduler.base_lrs = [tc.lr] * len(self.optimizer.param_groups)
                factor = schedule_of(tc)(self.step)
                for group in self.optimizer.param_groups:
                    group["lr"] = tc.lr * factor
            if self.dist.is_main:
                log.info("resumed %s at step %d", ckpt, self.step)
        if self.dist.is_main:
            checkpoint.truncate_metrics(self.metrics_path, self.step)
            record = dict(self._run_record)
            record["config"] = self.config.to_dict()
            record.setdefault("format", rundir.RUN_FORMAT)
            record.setdefault("data_fingerprint", self.fingerprint)
            resume = {"step": self.step, "data": str(self.data_path)}
            if self.resume_changes:
                resume["changed"] = self.resume_changes
                log.info("resume applies %s", self.resume_changes)
            record["resumes"] = [*record.get("resumes", []), resume]
            write_json(self.run_dir / rundir.RUN_FILE, record)

    # -- loop ------------------------------------------------------------------------------------
    def _log(self, record: dict[str, Any]) -> None:
        if not self.dist.is_main:
            return
        with open(self.metrics_path, "a") as f:
            f.write(json.dumps(record) + "\n")

    def fit(self, stop_after: int | None = None) -> TrainResult:
        """Train to ``train.steps`` (or stop early after ``stop_after`` steps of this call).

        Ctrl-C or SIGTERM (single process) stops after the current step, writes a checkpoint and
        raises :class:`TrainingInterrupted`, whose message says how to resume; a second signal
        stops at once.
        """
        with _StopRequest(enabled=not self.dist.enabled) as stop:
            return self._fit(stop_after, stop)

    def resume_command(self, extra: str = "") -> str:
        return f"lewm train --data {self.data_path} --out {self.run_dir} --resume{extra}"

    def _fit(self, stop_after: int | None, stop: _StopRequest) -> TrainResult:
        tc = self.config.train
        end = tc.steps if stop_after is None else min(tc.steps, self.step + stop_after)
        t_start = time.perf_counter()
        window_t, window_n, window_steps = time.perf_counter(), 0, 0
        acc: dict[str, float] = {}
        bar = progress_bar(tc.steps, "train", self.progress, initial=self.step)
        last: dict[str, float] = {}
        stream = self.batch_stream(self.step, end)
        wait = 0.0  # seconds this window spent waiting for the loader
        try:
            while self.step < end:
                t_wait = time.perf_counter()
                batch = next(stream)
                wait += time.perf_counter() - t_wait
                out = self.train_step(batch)
                window_n += tc.batch_size
                window_steps += 1
                for k, v in out.items():
                    acc[k] = acc.get(k, 0.0) + v
                bar.update(1)
                if self.step % tc.log_every == 0 or self.step == end:
                    now = time.perf_counter()
                    # the mean over the steps this window holds: fewer than log_every after a
                    # resume from a checkpoint off the logging grid, or at an early stop
                    rec = {
                        "step": self.step,
                        **{f"train/{k}": v / window_steps for k, v in acc.items()},
                    }
                    rec["train/samples_per_s"] = window_n / max(now - window_t, 1e-9)
                    # the share of the window's wall time spent waiting for data (< 0.05: the
                    # loader keeps up)
                    rec["train/data_wait"] = min(1.0, wait / max(now - window_t, 1e-9))
                    self._log(rec)
                    last = rec
                    shown = [k for k in rec if k.startswith("train/") and k not in NOT_SHOWN]
                    bar.set_postfix({k[6:]: f"{rec[k]:.4g}" for k in shown[:3]})
                    acc, window_t, window_n, window_steps, wait = {}, now, 0, 0, 0.0
                if tc.val_every and self.step % tc.val_every == 0 and self.step < tc.steps:
                    self.calibrate_batchnorm()  # every rank: a collective under DDP
                    if self.dist.is_main:
                        self._log(
                            {
                                "step": self.step,
                                **{f"val/{k}": v for k, v in self.validate().items()},
                            }
                        )
                    window_t = time.perf_counter()
                if self.step == tc.steps or (tc.ckpt_every and self.step % tc.ckpt_every == 0):
                    self.save_checkpoint()
                    window_t = time.perf_counter()
                if stop.signal is not None:
                    bar.close()
                    raise self._interrupted(stop.signal)
        finally:
            stream.close()
        bar.close()
        final = dict(last)
        if self.step == tc.steps:
            self.calibrate_batchnorm()  # every rank (a collective under DDP): validation and model
            val = {f"val/{k}": v for k, v in self.validate().items()}
            if val:
                self._log({"step": self.step, **val})
            final.update(val)
            model_dir = self.run_dir / "model"
            if self.dist.is_main:
                self.model.save_pretrained(model_dir, overwrite=True)
        else:
            model_dir = checkpoint.checkpoint_dir(self.run_dir, self.step)
            if not dist_utils.broadcast_object(model_dir.exists(), self.dist):
                model_dir = self.save_checkpoint()
        dist_utils.barrier(self.dist)  # every rank returns once rank 0's files are written
        return TrainResult(
            self.run_dir,
            model_dir,
            self.step,
            final,
            time.perf_counter() - t_start,
            rank=self.dist.rank,
        )


class TrainingInterrupted(KeyboardInterrupt):
    """Training stopped on Ctrl-C / SIGTERM after writing a checkpoint; the message says how to
    resume."""


class _StopRequest:
    """While active (single process, main thread): the first SIGINT/SIGTERM is remembered
    (``signal`` = its name) so the loop stops after a whole step; a second one stops at once."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled and threading.current_thread() is threading.main_thread()
        self.signal: str | None = None
        self._previous: dict[int, Any] = {}

    def _handle(self, signum: int, frame: Any) -> None:
        if self.signal is not None:
            raise KeyboardInterrupt(f"{self.signal} twice: stopped without a checkpoint")
        self.signal = signal.Signals(signum).name

    def __enter__(self) -> _StopRequest:
        if self.enabled:
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc: Any) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous.clear()


def train(
    config: RunConfig, data: str | os.PathLike, out: str | os.PathLike, **kwargs: Any
) -> TrainResult:
    """Train the world model of ``config.model`` (any registered kind) on an episode HDF5 file
    or a LeRobot dataset folder (read as ``config.data`` says, when the config has that section);
    see :class:`Trainer` (``distributed=True`` under torchrun). Leaves the process group
    afterwards if it joined it."""
    stop_after = kwargs.pop("stop_after", None)
    trainer = Trainer(config, data, out, **kwargs)
    try:
        return trainer.fit(stop_after=stop_after)
    finally:
        trainer.close()
