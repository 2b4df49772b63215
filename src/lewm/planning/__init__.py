"""Planning in latent space: objective, solvers and receding-horizon MPC.

pixels -> WorldModel.encode -> WorldModel.rollout -> objective -> cost -> solver -> actions.
The planner needs only the :class:`WorldModel` protocol; solvers see only a cost function.
"""

from lewm.planning.mpc import MPCController, Planner
from lewm.planning.objective import GoalCost
from lewm.planning.protocol import CostFn, Objective, Solver, WorldModel
from lewm.planning.solvers import CEM, SOLVERS, CEMConfig, SolveResult, make_solver, shift_plan

__all__ = [
    "CEM",
    "CEMConfig",
    "CostFn",
    "GoalCost",
    "MPCController",
    "Objective",
    "Planner",
    "SOLVERS",
    "SolveResult",
    "Solver",
    "WorldModel",
    "make_solver",
    "shift_plan",
]
