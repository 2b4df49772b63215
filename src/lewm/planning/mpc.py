"""Planning with a world model: the :class:`Planner` (one batched solve) and the receding-horizon
:class:`MPCController` that turns plans into per-step environment actions.

Timeline of one environment (frameskip f, blocks are f raw steps):

    env step   0 ........ f ........ 2f ........ 3f = t
    frames     o_0        o_f        o_2f        o_3f        <- kept: frames where blocks start
    blocks       [ blk 0 ]  [ blk 1 ]  [ blk 2 ]             <- kept: executed normalised blocks

When the queue of planned steps is empty at step t (always a block boundary), the context is
the last C = min(context, frames kept) block-start frames o_{t-(C-1)f}, ..., o_t and the C-1
blocks executed between them (history_actions); the plan's first block leaves o_t.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor

from lewm.models import WorldModel, model_device
from lewm.planning.objective import GoalCost
from lewm.planning.protocol import Objective, Proposal, Solver, SolveResult
from lewm.planning.solvers import shift_plan

log = logging.getLogger(__name__)


def _as_uint8(pixels: Any, device: torch.device) -> Tensor:
    x = torch.as_tensor(np.asarray(pixels) if not isinstance(pixels, Tensor) else pixels)
    if x.dtype != torch.uint8:
        raise ValueError(f"pixels must be uint8 images, got dtype {x.dtype}")
    return x.to(device)


class Planner:
    """World model + objective + solver: one batched plan for B episodes.

    Context frames and goals are encoded once per plan; every candidate evaluation is
    ``objective(model.rollout(z_ctx, candidates, history_actions), z_goal)``. It runs under
    ``torch.inference_mode``, except for solvers that declare ``needs_grad = True``: for them
    ``cost_fn`` is differentiable in the candidate actions (the model must be, as LeWM is).
    ``receding`` (blocks executed before replanning) and ``warm_start`` are read by the
    :class:`MPCController`.

    ``proposal`` (a :class:`~lewm.planning.protocol.Proposal`, e.g. a trained goal-conditioned
    policy): every plan first asks it for a plan from the encoded context and goal, and gives
    that plan to the solver as ``init_mean`` (it replaces the controller's shifted previous
    plan). Its time counts as planning time. A solver that declares ``needs_proposal = True``
    (``policy``: the proposal alone) is refused without one.
    """

    def __init__(
        self,
        model: WorldModel,
        solver: Solver,
        objective: Objective | None = None,
        horizon: int = 5,
        receding: int = 5,
        warm_start: bool = True,
        device: torch.device | str | None = None,
        dtype: torch.dtype = torch.float32,
        proposal: Proposal | None = None,
        action_box: tuple[Any, Any] | None = None,
    ) -> None:
        if getattr(solver, "needs_proposal", False) and proposal is None:
            kind = getattr(getattr(solver, "config", None), "kind", type(solver).__name__)
            raise ValueError(
                f"solver {kind!r} plans with a trained policy's proposal, and none was given: "
                "build the Planner with proposal= (lewm: train one with `lewm policy RUN`)"
            )
        if horizon < 1:
            raise ValueError(f"horizon must be >= 1, got {horizon}")
        if not 1 <= receding <= horizon:
            raise ValueError(f"receding must be in [1, horizon={horizon}], got {receding}")
        self.model, self.solver, self.proposal = model, solver, proposal
        self.objective = objective if objective is not None else GoalCost()
        self.horizon, self.receding, self.warm_start = horizon, receding, warm_start
        self.device = torch.device(device) if device is not None else model_device(model)
        self.dtype = dtype  # dtype of the searched action blocks
        self.action_box = self._box(action_box)  # (lo (Ab,), hi (Ab,)) or None

    @property
    def action_block_dim(self) -> int:
        return int(self.model.action_block_dim)

    def _box(self, box: tuple[Any, Any] | None) -> tuple[Tensor, Tensor] | None:
        if box is None:
            return None
        Ab = self.action_block_dim
        lo, hi = (torch.as_tensor(b, dtype=self.dtype, device=self.device).reshape(-1) for b in box)
        if lo.shape != (Ab,) or hi.shape != (Ab,):
            raise ValueError(
                f"action_box must be two vectors of model.action_block_dim={Ab} numbers, got "
                f"shapes {tuple(lo.shape)} and {tuple(hi.shape)}"
            )
        if torch.isnan(lo).any() or torch.isnan(hi).any() or (lo > hi).any():
            raise ValueError(f"action_box needs low <= high without NaN, got {lo} and {hi}")
        return lo, hi

    def clamp(self, actions: Tensor) -> Tensor:
        """Action blocks (..., Ab) clamped into ``action_box`` (unchanged without one)."""
        if self.action_box is None:
            return actions
        return actions.clamp(*self.action_box)

    def encode_goal(self, goal_pixels: Any) -> Tensor:
        """goal_pixels (B, h, w, 3) uint8 -> goal latents (B, D)."""
        px = _as_uint8(goal_pixels, self.device)
        if px.ndim != 4:
            raise ValueError(f"goal_pixels must be (B, h, w, 3), got {tuple(px.shape)}")
        with torch.inference_mode():
            return self.model.encode(px[:, None])[:, 0]  # (B, 1, D) -> (B, D)

    def plan(
        self,
        obs_pixels: Any,
        goal_pixels: Any,
        history_actions: Tensor | None = None,
        init_mean: Tensor | None = None,
        generator: torch.Generator | None = None,
    ) -> SolveResult:
        """obs_pixels (B, C, h, w, 3) uint8 context frames (last = current), goal_pixels
        (B, h, w, 3), history_actions (B, C-1, Ab) or None, init_mean (B, H, Ab) or None."""
        return self.plan_from_goal_latents(
            obs_pixels, self.encode_goal(goal_pixels), history_actions, init_mean, generator
        )

    def plan_from_goal_latents(
        self,
        obs_pixels: Any,
        z_goal: Tensor,
        history_actions: Tensor | None = None,
        init_mean: Tensor | None = None,
        generator: torch.Generator | None = None,
        z_context: Tensor | None = None,
    ) -> SolveResult:
        """As :meth:`plan` with goals already encoded: z_goal (B, D). ``z_context`` (B, C, D):
        the context frames' latents when the caller has them (then ``obs_pixels`` is not
        encoded and may be None)."""
        if z_context is not None:
            if z_context.ndim != 3:
                raise ValueError(f"z_context must be (B, C, D), got {tuple(z_context.shape)}")
            px = None
            B, C = z_context.shape[:2]
        else:
            px = _as_uint8(obs_pixels, self.device)
            if px.ndim != 5:
                raise ValueError(f"obs_pixels must be (B, C, h, w, 3), got {tuple(px.shape)}")
            B, C = px.shape[:2]
        Ab, history = self.action_block_dim, int(self.model.history)
        if not 1 <= C <= history:
            raise ValueError(f"context frames C must be in [1, model.history={history}], got {C}")
        if C == 1:
            hist = None
        else:
            if history_actions is None or tuple(history_actions.shape) != (B, C - 1, Ab):
                got = None if history_actions is None else tuple(history_actions.shape)
                raise ValueError(
                    f"{C} context frames need history_actions of shape {(B, C - 1, Ab)}, got {got}"
                )
            hist = history_actions.to(self.device, self.dtype)  # (B, C-1, Ab)
        if tuple(z_goal.shape[:1]) != (B,):
            raise ValueError(f"z_goal must be (B={B}, D), got {tuple(z_goal.shape)}")
        z_goal = z_goal.to(self.device)
        # A solver with needs_grad = True (GradientSolver) differentiates cost_fn with respect to
        # the candidate actions, so evaluation runs under no_grad instead of inference_mode (whose
        # tensors cannot enter autograd) and the solver enables grad itself. Only the actions it
        # passes require grad; the model and its parameters are left untouched.
        needs_grad = bool(getattr(self.solver, "needs_grad", False))
        with torch.no_grad() if needs_grad else torch.inference_mode():
            if px is None:
                z_ctx = z_context.to(self.device)
                z_ctx = z_ctx.clone() if needs_grad else z_ctx  # an inference tensor -> normal
            else:
                z_ctx = self.model.encode(px)  # (B, C, D)
            if needs_grad:
                z_goal = z_goal.clone()  # encode_goal's inference tensor -> a normal tensor
                hist = hist.clone() if hist is not None else None

            if self.proposal is not None:  # the amortised first guess replaces init_mean
                init_mean = self.proposal.propose(z_ctx, z_goal, hist, self.horizon)
                init_mean = init_mean.to(self.device, self.dtype)  # (B, H, Ab)

            def cost_fn(cand: Tensor) -> Tensor:
                # cand (B, S, H, Ab) -> predicted (B, S, H, D) -> cost (B, S)
                return self.objective(self.model.rollout(z_ctx, self.clamp(cand), hist), z_goal)

            result = self.solver.solve(
                cost_fn,
                B,
                self.horizon,
                Ab,
                init_mean=init_mean,
                generator=generator,
                device=self.device,
                dtype=self.dtype,
            )
            result.actions = self.clamp(result.actions)  # its cost was scored on the clamped plan
            return result


class MPCController:
    """Receding-horizon control of B environments with per-environment queues of raw steps.

    Call :meth:`reset` with the goal images, then :meth:`act` once per environment step. An
    active environment whose queue is empty replans; all environments replanning at the same
    step (and with the same context length) share one batched :meth:`Planner.plan` call. A plan
    of H blocks becomes H*frameskip raw steps; the first ``receding * frameskip`` are queued
    (de-normalised with ``denormalize``). Inactive environments get NaN, are not planned for,
    and their queues and step counters do not advance.

    With ``action_low``/``action_high`` (the environment's action space) every raw action is
    clipped into the box before it is returned; a clipped action's normalised value is
    recomputed with ``normalize``, so the history of executed blocks (the context of the next
    plan) holds what the environment really received. ``clipped_steps`` counts the executed
    steps that were clipped.
    """

    def __init__(
        self,
        planner: Planner,
        frameskip: int,
        action_dim: int,
        denormalize: Callable[[Tensor], Tensor] | None = None,
        seed: int = 0,
        context: int | None = None,
        *,
        normalize: Callable[[Tensor], Tensor] | None = None,
        action_low: Any = None,
        action_high: Any = None,
    ) -> None:
        if frameskip < 1:
            raise ValueError(f"frameskip must be >= 1, got {frameskip}")
        if action_dim < 1:
            raise ValueError(f"action_dim must be >= 1, got {action_dim}")
        if frameskip * action_dim != planner.action_block_dim:
            raise ValueError(
                f"frameskip {frameskip} x action_dim {action_dim} = {frameskip * action_dim} "
                f"!= model.action_block_dim {planner.action_block_dim}"
            )
        history = int(planner.model.history)
        if context is not None and context < 1:
            raise ValueError(f"context must be >= 1 (or None for model.history), got {context}")
        bounds = []
        for name, value in (("action_low", action_low), ("action_high", action_high)):
            b = None if value is None else np.asarray(value, np.float64).reshape(-1)
            if b is not None and (b.shape != (action_dim,) or np.isnan(b).any()):
                raise ValueError(f"{name} must be {action_dim} numbers, got {value!r}")
            bounds.append(b)
        self.action_low, self.action_high = bounds
        if self.action_low is not None and self.action_high is not None:
            if (self.action_low > self.action_high).any():
                raise ValueError(f"action_low {action_low} exceeds action_high {action_high}")
        if any(b is not None for b in bounds) and normalize is None and denormalize is not None:
            raise ValueError(
                "clipping to action bounds needs normalize (the inverse of denormalize) to "
                "record the executed actions"
            )
        self.planner, self.frameskip, self.action_dim = planner, frameskip, action_dim
        self.denormalize, self.normalize, self.seed = denormalize, normalize, seed
        self.clipped_steps = 0  # executed env steps whose planned action left the action space
        self.context = history if context is None else min(context, history)  # C_max
        self.plan_times: list[float] = []  # wall seconds of each batched plan call
        self.plan_batch_sizes: list[int] = []  # environments in each plan call
        self.last_result: SolveResult | None = None  # the latest plan call's solver output
        self._B = 0

    @property
    def num_plans(self) -> int:
        return len(self.plan_times)

    def reset(self, goal_pixels: Any) -> None:
        """Start new episodes: goal_pixels (B, h, w, 3) uint8. Encodes the goals once."""
        self._z_goal = self.planner.encode_goal(goal_pixels)  # (B, D)
        B = self._z_goal.shape[0]
        self._B = B
        self._gen = torch.Generator(device=self.planner.device).manual_seed(self.seed)
        C = self.context
        self._t = [0] * B  # env steps executed per env
        # per env: (raw (A,), normalised (A,), clipped) of each queued step
        self._queue: list[deque] = [deque() for _ in range(B)]
        self._frames: list[deque] = [deque(maxlen=C) for _ in range(B)]  # block-start frames
        self._blocks: list[deque] = [deque(maxlen=C - 1) for _ in range(B)]  # (Ab,) executed
        self._pending: list[list[np.ndarray]] = [[] for _ in range(B)]  # steps of current block
        self._last_plan: list[Tensor | None] = [None] * B  # (H, Ab) normalised, for warm start
        self.plan_times, self.plan_batch_sizes, self.last_result = [], [], None
        self.clipped_steps = 0

    def context_of(self, i: int) -> tuple[np.ndarray, np.ndarray | None]:
        """Env ``i``'s planning context now: frames (C, h, w, 3), history_actions (C-1, Ab)."""
        C = len(self._frames[i])
        frames = np.stack(list(self._frames[i]))  # (C, h, w, 3)
        if C == 1:
            return frames, None
        blocks = list(self._blocks[i])[-(C - 1) :]
        return frames, np.stack(blocks).astype(np.float32)  # (C-1, Ab)

    def act(self, frames: Sequence[Any], active_mask: Any) -> np.ndarray:
        """One environment step for every env.

        frames[i][-1] must be env i's current observation (h, w, 3) uint8 (full episode lists or
        a recent window both work; the controller keeps the frames it needs). active_mask (B,)
        bool. Returns raw actions (B, A) float32, NaN rows for inactive environments.
        """
        if self._B == 0:
            raise RuntimeError("call reset(goal_pixels) before act()")
        B, f, A = self._B, self.frameskip, self.action_dim
        active = np.asarray(active_mask, dtype=bool).reshape(-1)
        if len(frames) != B or active.shape[0] != B:
            raise ValueError(
                f"expected {B} environments, got {len(frames)} frame lists and "
                f"active_mask of shape {active.shape}"
            )
        needs_plan = []
        for i in np.flatnonzero(active):
            if self._t[i] % f == 0:  # a block starts at this step: keep its frame
                self._frames[i].append(np.array(frames[i][-1], copy=True))
            if not self._queue[i]:
                assert self._t[i] % f == 0, "queues hold whole blocks"
                needs_plan.append(int(i))
        if needs_plan:
            self._replan(needs_plan)

        out = np.full((B, A), np.nan, dtype=np.float32)
        for i in np.flatnonzero(active):
            raw, norm, clipped = self._queue[i].popleft()
            out[i] = raw
            self.clipped_steps += int(clipped)
            self._pending[i].append(norm)
            self._t[i] += 1
            if len(self._pending[i]) == f:  # block complete
                self._blocks[i].append(np.concatenate(self._pending[i]))  # (f*A,) = (Ab,)
                self._pending[i] = []
        return out

    def _replan(self, envs: list[int]) -> None:
        groups: dict[int, list[int]] = {}  # context length -> envs (usually one group)
        for i in envs:
            groups.setdefault(len(self._frames[i]), []).append(i)
        for _, idx in sorted(groups.items()):
            self._plan_group(idx)

    def _plan_group(self, idx: list[int]) -> None:
        p, f, A = self.planner, self.frameskip, self.action_dim
        H, R, Ab = p.horizon, p.receding, p.action_block_dim
        ctx = [self.context_of(i) for i in idx]
        obs = torch.from_numpy(np.stack([c[0] for c in ctx]))  # (n, C, h, w, 3)
        hist = None
        if ctx[0][1] is not None:
            hist = torch.from_numpy(np.stack([c[1] for c in ctx]))  # (n, C-1, Ab)
        init = None
        if p.warm_start and any(self._last_plan[i] is not None for i in idx):
            prev = torch.stack(
                [
                    self._last_plan[i] if self._last_plan[i] is not None else torch.zeros(H, Ab)
                    for i in idx
                ]
            )  # (n, H, Ab)
            init = shift_plan(prev, R)  # (n, H, Ab)
        t0 = time.perf_counter()
        result = p.plan_from_goal_latents(obs, self._z_goal[idx], hist, init, self._gen)
        plan = result.actions.detach().to("cpu", torch.float32)  # (n, H, Ab); syncs the device
        self.plan_times.append(time.perf_counter() - t0)
        self.plan_batch_sizes.append(len(idx))
        self.last_result = result
        log.debug("planned %d envs in %.3fs", len(idx), self.plan_times[-1])

        steps = plan[:, :R].reshape(len(idx), R * f, A)  # (n, R, f*A) -> (n, R*f, A)
        raw = self.denormalize(steps) if self.denormalize is not None else steps  # (n, R*f, A)
        raw = torch.as_tensor(raw).to("cpu", torch.float32).numpy()
        steps_np = steps.numpy()  # (n, R*f, A) normalised, as planned
        raw, steps_np, clipped = self._clip(raw, steps_np)
        for j, i in enumerate(idx):
            self._last_plan[i] = plan[j].clone()
            self._queue[i].extend(zip(raw[j], steps_np[j], clipped[j], strict=True))

    def _clip(self, raw: np.ndarray, norm: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Raw steps (n, K, A) clipped into [action_low, action_high]; the normalised values of
        clipped steps recomputed from the clipped raw ones; which steps (n, K) were clipped."""
        clipped = np.zeros(raw.shape[:2], dtype=bool)  # (n, K)
        if self.action_low is None and self.action_high is None:
            return raw, norm, clipped
        lo = -np.inf if self.action_low is None else self.action_low  # (A,)
        hi = np.inf if self.action_high is None else self.action_high  # (A,)
        bounded = np.clip(raw, lo, hi)  # (n, K, A) float64: exact for in-range float32 values
        clipped = (bounded != raw).any(axis=-1)  # (n, K)
        if not clipped.any():
            return raw, norm, clipped
        raw = bounded.astype(np.float32)
        if self.normalize is not None:
            renorm = torch.as_tensor(self.normalize(torch.from_numpy(raw))).numpy()
        else:  # no normalisation at all: the raw action is the normalised one
            renorm = raw
        norm = np.where(clipped[..., None], renorm.astype(np.float32), norm)
        return raw, norm, clipped
