"""Planning in latent space: objective, solvers and receding-horizon MPC.

pixels -> WorldModel.encode -> WorldModel.rollout -> objective -> cost -> solver -> actions.
The planner needs only the :class:`WorldModel` protocol; solvers see only a cost function.
"""

from lewm.planning.mpc import MPCController, Planner
from lewm.planning.objective import GoalCost
from lewm.planning.protocol import CostFn, Objective, Solver, WorldModel
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
    SolveResult,
    coloured_noise,
    make_solver,
    shift_plan,
)

__all__ = [
    "CEM",
    "ICEM",
    "MPPI",
    "SOLVERS",
    "coloured_noise",
    "make_solver",
    "shift_plan",
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
    "SolveResult",
    "Solver",
    "WorldModel",
]
