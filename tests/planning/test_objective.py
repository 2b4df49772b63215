"""The planning cost: squared latent distance to the goal, of the last step or of the path."""

import pytest
import torch

from lewm.planning import GoalCost


def test_goal_cost_is_terminal_squared_distance():
    z_pred = torch.zeros(2, 3, 4, 6)
    z_pred[:, :, -1] = torch.arange(3.0)[None, :, None]  # only the last step matters
    z_pred[:, :, 0] = 100.0
    z_goal = torch.ones(2, 6)
    cost = GoalCost()(z_pred, z_goal)
    assert cost.shape == (2, 3)
    torch.testing.assert_close(cost, torch.tensor([[6.0, 0.0, 6.0]] * 2))
    with pytest.raises(ValueError, match="z_goal"):
        GoalCost()(z_pred, torch.ones(2, 5))
    with pytest.raises(ValueError, match="z_pred"):
        GoalCost()(z_pred[0], z_goal)


def test_path_cost_averages_every_predicted_step():
    # candidate 0 reaches the goal at step 1 and stays; candidate 1 arrives only at the last step
    z_goal = torch.zeros(1, 2)
    z_pred = torch.zeros(1, 2, 4, 2)
    z_pred[0, 0, 0] = torch.tensor([2.0, 0.0])
    z_pred[0, 1, :3] = torch.tensor([2.0, 0.0])
    terminal, path = GoalCost("terminal")(z_pred, z_goal), GoalCost("path")(z_pred, z_goal)
    torch.testing.assert_close(terminal, torch.tensor([[0.0, 0.0]]))  # terminal: a tie
    torch.testing.assert_close(path, torch.tensor([[1.0, 3.0]]))  # path: early arrival wins
    with pytest.raises(ValueError, match="cost mode"):
        GoalCost("final")
