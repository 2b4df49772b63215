"""Planning in latent space: objective, solvers and receding-horizon MPC.

pixels -> WorldModel.encode -> WorldModel.rollout -> objective -> cost -> solver -> actions.
The planner needs only the :class:`WorldModel` protocol; solvers see only a cost function.
"""

from lewm.models import WorldModel
from lewm.planning.mpc import MPCController, Planner
from lewm.planning.objective import GoalCost
from lewm.planning.protocol import CostFn, Objective, Proposal, Solver, SolveResult
from lewm.planning.solvers import (
    CEM,
    ICEM,
    MPPI,
    SOLVERS,
    CEMConfig,
    GradientConfig,
    GradientSolver,
    ICEMConfig,
    MPPIConfig,
    coloured_noise,
    make_solver,
    shift_plan,
    solver_config,
)

__all__ = [
    "CEM",
    "ICEM",
    "MPPI",
    "SOLVERS",
    "coloured_noise",
    "make_solver",
    "shift_plan",
    "solver_config",
    "CEMConfig",
    "CostFn",
    "GoalCost",
    "GradientConfig",
    "GradientSolver",
    "ICEMConfig",
    "MPCController",
    "MPPIConfig",
    "Objective",
    "Planner",
    "Proposal",
    "SolveResult",
    "Solver",
    "WorldModel",
]
