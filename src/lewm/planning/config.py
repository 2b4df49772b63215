"""Evaluation settings (the ``eval`` section of the config tree), the solver's among them.

lewm eval RUN eval.episodes=20 eval.solver.kind=icem eval.solver.noise_beta=1
lewm eval RUN --episodes 20 --solver icem        # the same, with flag aliases
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from lewm.planning.objective import COSTS
from lewm.planning.solvers import CEMConfig, solver_config
from lewm.utils.config import check, check_seed, choice

SPLITS = ("heldout", "train", "all")
POLICIES = ("plan", "random", "replay")
PROPOSALS = ("none", "policy")


@dataclass
class EvalConfig:
    """The paper's goal-reaching protocol (App. F.1) and the planner it runs."""

    episodes: int = 50  # start/goal pairs
    goal_offset: int = 25  # env steps between start and goal
    budget: int = 50  # env steps allowed
    split: str = "heldout"  # "heldout" (the model's validation episodes), "train", or "all"
    # "plan" (solver + MPC with the world model), "random" (uniform in the action box) or
    # "replay": the dataset's own actions from the task's start (the goal is the state they lead
    # to after goal_offset steps, so it tells whether the env, reset to the stored state,
    # reproduces the data: an upper reference, not a policy)
    policy: str = "plan"
    horizon: int = 5  # action blocks per plan
    receding: int = 5  # blocks executed before replanning (the paper: the whole plan)
    context: int = 1  # observed frames given to the predictor (the reference plans with 1)
    cost: str = "terminal"  # "terminal" (paper: last predicted latent) or "path" (mean over H)
    seed: int = 42  # task sampling, random policy and the planner's generator
    num_gifs: int = 4  # episodes written as GIFs
    # the solver's own settings, chosen by eval.solver.kind (cem, icem, mppi, adam, policy)
    solver: Any = choice(solver_config, CEMConfig)
    # where each plan's search starts: "none" (zeros, or the shifted previous plan) or "policy"
    # (the checkpoint's trained goal-conditioned policy, `lewm policy RUN`: the amortised
    # planner's plan warm-starts the solver; eval.solver.kind=policy uses it alone)
    proposal: str = "none"
    # drop tasks whose start already passes the env's success test against the goal (the count
    # in the paper's draw is reported either way as solved_at_start); on in the Cube presets
    exclude_solved: bool = False
    # search inside the environment's action box: candidates are clamped to its bounds before the
    # model scores them (the environment clips what it executes anyway). False is the reference,
    # which scores unclipped actions, outside the range of the training data, and then clips.
    bounded_search: bool = False

    def uses_policy(self) -> bool:
        """Whether planning needs the checkpoint's trained policy (as proposal or as solver)."""
        return self.policy == "plan" and (self.proposal == "policy" or self.solver.kind == "policy")

    def __post_init__(self) -> None:
        for name, hi in (("episodes", 10**6), ("goal_offset", 10**6), ("budget", 10**7)):
            value = getattr(self, name)
            check(1 <= value <= hi, f"eval.{name} must be in [1, {hi:.0e}], got {value}")
        check(
            self.budget >= self.goal_offset,
            f"eval.budget ({self.budget}) is smaller than eval.goal_offset ({self.goal_offset}): "
            "the goal would be unreachable by construction",
        )
        check(self.split in SPLITS, f"eval.split must be one of {SPLITS}, got {self.split!r}")
        check(
            self.policy in POLICIES, f"eval.policy must be one of {POLICIES}, got {self.policy!r}"
        )
        check(1 <= self.horizon <= 1000, f"eval.horizon must be in [1, 1000], got {self.horizon}")
        check(
            1 <= self.receding <= self.horizon,
            f"eval.receding must be in [1, eval.horizon={self.horizon}], got {self.receding}",
        )
        check(1 <= self.context <= 1000, f"eval.context must be in [1, 1000], got {self.context}")
        check_seed(self.seed, "eval.seed")
        check(
            self.proposal in PROPOSALS,
            f"eval.proposal must be one of {PROPOSALS}, got {self.proposal!r}",
        )
        check(
            isinstance(self.exclude_solved, bool),
            f"eval.exclude_solved must be true or false, got {self.exclude_solved!r}",
        )
        check(
            isinstance(self.bounded_search, bool),
            f"eval.bounded_search must be true or false, got {self.bounded_search!r}",
        )
        check(self.cost in COSTS, f"eval.cost must be one of {COSTS}, got {self.cost!r}")
        check(
            0 <= self.num_gifs <= 10**4, f"eval.num_gifs must be in [0, 10000], got {self.num_gifs}"
        )
        check(
            hasattr(self.solver, "kind"),
            f"eval.solver must be a solver config (e.g. CEMConfig()), got {self.solver!r}",
        )


__all__ = ["EvalConfig", "POLICIES", "PROPOSALS", "SPLITS"]
