"""Fixtures shared by the planning tests; the toy models and solvers live in toys.py."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from toys import render


@pytest.fixture
def one_thread():
    """Solver tensors are tiny: one thread avoids thread-pool overhead on a busy machine."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture
def point_task():
    """Two point-mass episodes: (start (2, 2), goal (2, 2), obs (2, 1, h, w, 3), goal_px)."""
    start, goal = np.array([[2.0, 3.0], [13.0, 12.0]]), np.array([[12.0, 10.0], [4.0, 6.0]])
    obs = torch.from_numpy(np.stack([render(p) for p in start]))[:, None]  # (B, 1, h, w, 3)
    goal_px = torch.from_numpy(np.stack([render(p) for p in goal]))  # (B, h, w, 3)
    return start, goal, obs, goal_px
