"""SIGReg: Sketched Isotropic Gaussian Regulariser (LeJEPA / LeWM).

For each time step, the B embeddings are projected on M random unit directions and each 1-D
projection is tested against N(0, 1) with the Epps-Pulley statistic

    EP(h) = B * integral w(t) |phi_B(t; h) - exp(-t^2/2)|^2 dt,   w(t) = exp(-t^2/2),

where phi_B is the empirical characteristic function. The integral over [-t_max, t_max] is taken
by symmetry as twice a trapezoid rule with ``knots`` points on [0, t_max] (the released code's
quadrature: 17 knots on [0, 3]). The result is averaged over directions and time steps.

Data-parallel training (``distributed=True``): phi_B must be the ECF of the *global* batch, not of
each rank's share, and every rank must project on the same directions. The cos/sin sums and the
sample count are summed over ranks with a differentiable all-reduce, so the statistic (and its
gradient, once DDP averages gradients over ranks) equals the single-process value on the union
batch, B included. Directions stay identical because every rank's generator has the same seed and
draws once per call (the trainer also broadcasts rank 0's generator state at start-up).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import Tensor, nn

from lewm.utils.distributed import all_reduce_sum, is_distributed


class SIGReg(nn.Module):
    """``SIGReg(num_proj=1024, knots=17)(z)`` with ``z`` of shape (T, B, D) -> scalar.

    Directions are drawn fresh on every call from an internal CPU ``torch.Generator`` seeded by
    ``seed`` (so runs are reproducible and resumable: see :meth:`get_rng_state`), or passed
    explicitly as ``directions`` (D, M) for testing. With ``distributed=True`` and an initialised
    multi-rank process group, the ECF is taken over all ranks' samples (see the module docstring);
    otherwise the flag has no effect.
    """

    def __init__(
        self,
        num_proj: int = 1024,
        knots: int = 17,
        t_max: float = 3.0,
        seed: int = 0,
        distributed: bool = False,
    ):
        super().__init__()
        if num_proj < 1 or knots < 2 or t_max <= 0:
            raise ValueError(
                "SIGReg needs num_proj >= 1, knots >= 2, t_max > 0; "
                f"got {num_proj}, {knots}, {t_max}"
            )
        self.num_proj = num_proj
        t = torch.linspace(0.0, t_max, knots, dtype=torch.float64)
        dt = t_max / (knots - 1)
        trap = torch.full((knots,), 2 * dt, dtype=torch.float64)
        trap[0] = trap[-1] = dt  # 2 x trapezoid on [0, t_max] = integral over [-t_max, t_max]
        self.register_buffer("t", t.float(), persistent=False)
        self.register_buffer("phi0", torch.exp(-0.5 * t**2).float(), persistent=False)
        self.register_buffer("weights", (trap * torch.exp(-0.5 * t**2)).float(), persistent=False)
        self.generator = torch.Generator().manual_seed(seed)
        self.distributed = distributed

    @contextmanager
    def local(self) -> Iterator[SIGReg]:
        """Temporarily compute on this rank's samples only (e.g. rank-0-only validation)."""
        saved, self.distributed = self.distributed, False
        try:
            yield self
        finally:
            self.distributed = saved

    def get_rng_state(self) -> Tensor:
        return self.generator.get_state()

    def set_rng_state(self, state: Tensor) -> None:
        self.generator.set_state(state)

    def sample_directions(self, dim: int) -> Tensor:
        """(dim, num_proj) unit-norm columns, from the internal generator (on CPU)."""
        A = torch.randn(dim, self.num_proj, generator=self.generator)
        return A / A.norm(dim=0, keepdim=True)

    def statistic(self, z: Tensor, directions: Tensor) -> Tensor:
        """Per-(time, direction) Epps-Pulley statistics (T, M) for z (T, B, D)."""
        B = z.shape[1]
        proj = z.float() @ directions.to(z.device, torch.float32)  # (T, B, M)
        x = proj.unsqueeze(-1) * self.t  # (T, B, M, K)
        if self.distributed and is_distributed():
            return self._global_statistic(x)
        ecf_re = torch.cos(x).mean(dim=1)  # (T, M, K)
        ecf_im = torch.sin(x).mean(dim=1)  # (T, M, K)
        err = (ecf_re - self.phi0) ** 2 + ecf_im**2  # (T, M, K)
        return (err @ self.weights) * B  # (T, M)

    def _global_statistic(self, x: Tensor) -> Tensor:
        """As :meth:`statistic`, with the ECF and B taken over every rank's samples."""
        T, B, M, K = x.shape
        sums = torch.stack([torch.cos(x).sum(dim=1), torch.sin(x).sum(dim=1)])  # (2, T, M, K)
        count = x.new_full((1,), float(B))  # this rank's batch size; no gradient
        total = all_reduce_sum(torch.cat([sums.flatten(), count]))  # (2*T*M*K + 1,)
        n = total[-1]  # global batch size (exact in float32 below 2**24)
        ecf = total[:-1].view(2, T, M, K) / n  # (2, T, M, K): global cos / sin means
        err = (ecf[0] - self.phi0) ** 2 + ecf[1] ** 2  # (T, M, K)
        return (err @ self.weights) * n  # (T, M)

    def forward(self, z: Tensor, directions: Tensor | None = None) -> Tensor:
        if z.ndim != 3:
            raise ValueError(f"SIGReg expects z of shape (T, B, D), got {tuple(z.shape)}")
        if directions is None:
            directions = self.sample_directions(z.shape[-1])
        elif directions.shape[0] != z.shape[-1]:
            raise ValueError(
                f"directions must be (D={z.shape[-1]}, M), got {tuple(directions.shape)}"
            )
        with torch.autocast(device_type=z.device.type, enabled=False):
            return self.statistic(z, directions).mean()
