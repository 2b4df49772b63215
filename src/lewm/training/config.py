"""Training settings (the ``train`` section of the config tree)."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from lewm.utils.config import ConfigError, check, check_seed


@dataclass
class TrainConfig:
    steps: int = 10_000  # optimizer steps
    batch_size: int = 128  # clips per step
    lr: float = 5e-5
    weight_decay: float = 1e-3
    warmup_frac: float = 0.01  # linear warm-up over this fraction of steps, then cosine to 0
    warmup_steps: int = (
        0  # > 0: the warm-up in steps, whatever the run length (replaces warmup_frac)
    )
    # > 0: the cosine reaches 0 at this step instead of at train.steps; a run shorter than it
    # stops with the rate still high (the authors stop at 10 of 100 scheduled epochs)
    schedule_steps: int = 0
    grad_clip: float = 1.0
    sigreg_weight: float = 0.09  # lambda (LeWM's objective)
    sigreg_num_proj: int = 1024
    sigreg_knots: int = 17
    # LeWM's regulariser on the encoder latents: "sigreg" (the paper's, weight sigreg_weight) or
    # "vicreg" (an ablation: PLDM's VICReg variance + covariance terms, weighted by the two keys
    # below, in place of SIGReg; sigreg_* then unused). Other world-model kinds have their own
    # terms (PLDM: model.loss.*)
    regularizer: str = "sigreg"
    vicreg_var_weight: float = 18.0  # the LeWM paper's PLDM alpha (its Table 2)
    vicreg_cov_weight: float = 12.0  # the LeWM paper's PLDM beta (its Table 2)
    # > 0: add this weight x the MSE of an open-loop rollout from each clip's first frame (the
    # predictor also learns from its own predictions). A departure from the paper's objective;
    # needs model.predictor.history >= 2 (clips of 3+ frames)
    open_loop_weight: float = 0.0
    val_fraction: float = 0.1  # fraction of *episodes* held out
    val_every: int = 500  # steps between validations (0: only at the end)
    val_batches: int = 4
    ckpt_every: int = 1000  # steps between checkpoints (0: only at the end)
    keep_checkpoints: int = 2
    log_every: int = 25
    seed: int = 0
    precision: str = "auto"  # "auto" (bf16 on CUDA and on CPUs with native bf16), "bf16", "fp32"
    device: str = "auto"  # "auto", "cpu", "cuda", "cuda:1", ...
    num_threads: int = 0  # torch CPU threads (0: leave torch's default)
    # Under torchrun (--distributed) only: normalise BatchNorm layers with global-batch statistics
    # so K processes compute exactly the single-process function (see lewm.training.batchnorm)
    sync_batchnorm: bool = True
    # BatchNorm running statistics recomputed with the current weights from this many training
    # clips before every validation, checkpoint and the final model (lewm.training.batchnorm:
    # the running averages lag while the weights move fast); 0 keeps the running averages
    precise_bn_clips: int = 512

    def __post_init__(self) -> None:
        check(1 <= self.steps <= 10**9, f"train.steps must be in [1, 1e9], got {self.steps}")
        check(
            2 <= self.batch_size <= 10**6,
            f"train.batch_size must be in [2, 1e6], got {self.batch_size}",
        )
        check_seed(self.seed, "train.seed")
        check(self.lr > 0, f"train.lr must be > 0, got {self.lr}")
        check(self.weight_decay >= 0, f"train.weight_decay must be >= 0, got {self.weight_decay}")
        check(
            0 <= self.warmup_frac < 1,
            f"train.warmup_frac must be in [0, 1), got {self.warmup_frac}",
        )
        for name in ("warmup_steps", "schedule_steps"):
            value = getattr(self, name)
            check(0 <= value <= 10**9, f"train.{name} must be in [0, 1e9], got {value}")
        check(self.grad_clip > 0, f"train.grad_clip must be > 0, got {self.grad_clip}")
        check(
            self.sigreg_weight >= 0, f"train.sigreg_weight must be >= 0, got {self.sigreg_weight}"
        )
        check(
            self.sigreg_num_proj >= 1,
            f"train.sigreg_num_proj must be >= 1, got {self.sigreg_num_proj}",
        )
        check(
            self.open_loop_weight >= 0,
            f"train.open_loop_weight must be >= 0, got {self.open_loop_weight}",
        )
        check(self.sigreg_knots >= 2, f"train.sigreg_knots must be >= 2, got {self.sigreg_knots}")
        check(
            self.regularizer in ("sigreg", "vicreg"),
            f"train.regularizer must be 'sigreg' or 'vicreg', got {self.regularizer!r}",
        )
        for name in ("vicreg_var_weight", "vicreg_cov_weight"):
            value = getattr(self, name)
            check(value >= 0, f"train.{name} must be >= 0, got {value}")
        check(
            0 <= self.val_fraction < 1,
            f"train.val_fraction must be in [0, 1), got {self.val_fraction}",
        )
        check(
            self.precision in ("auto", "bf16", "fp32"),
            f"train.precision must be 'auto', 'bf16' or 'fp32', got {self.precision!r}",
        )
        for name in ("val_every", "ckpt_every", "val_batches", "num_threads", "precise_bn_clips"):
            value = getattr(self, name)
            check(value >= 0, f"train.{name} must be >= 0, got {value}")
        check(
            self.keep_checkpoints >= 1,
            f"train.keep_checkpoints must be >= 1, got {self.keep_checkpoints}",
        )
        check(self.log_every >= 1, f"train.log_every must be >= 1, got {self.log_every}")
        if self.device != "auto":
            try:
                torch.device(self.device)
            except (RuntimeError, ValueError, TypeError):
                raise ConfigError(
                    f"train.device must be auto, cpu, cuda or cuda:N, got {self.device!r}"
                ) from None
        check(
            isinstance(self.sync_batchnorm, bool),
            f"train.sync_batchnorm must be true or false, got {self.sync_batchnorm!r}",
        )


__all__ = ["TrainConfig"]
