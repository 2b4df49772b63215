import math

import pytest
import torch

from lewm.planning import CEM, SOLVERS, CEMConfig, GoalCost, SolveResult, make_solver, shift_plan

B, H, AB = 4, 5, 4  # episodes, horizon (blocks), block dim


def _targets(seed: int = 0, b: int = B) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(b, H, AB, generator=g) * 3 - 1.5  # (b, H, Ab) in [-1.5, 1.5]


def _quadratic(target: torch.Tensor):
    def cost_fn(a: torch.Tensor) -> torch.Tensor:
        # a (B, S, H, Ab) -> (B, S)
        return (a - target[:, None]).pow(2).sum(dim=(-1, -2))

    return cost_fn


def test_cem_finds_minimum_of_separable_quadratic():
    target = _targets()
    res = CEM(CEMConfig()).solve(_quadratic(target), B, H, AB)
    assert isinstance(res, SolveResult)
    assert res.actions.shape == (B, H, AB) and res.cost.shape == (B,)
    assert res.iterations_run == 30 and len(res.history) == 30
    torch.testing.assert_close(res.actions, target, atol=1e-3, rtol=0)
    # cost reported is the cost of the returned plan
    torch.testing.assert_close(res.cost, _quadratic(target)(res.actions[:, None])[:, 0])
    assert res.cost.max() < 1e-5
    h = res.history
    assert h[-1] < 1e-4 * h[0]
    assert sum(b > a for a, b in zip(h, h[1:], strict=False)) <= 2  # monotone-ish decrease


def test_cem_finds_minimum_of_non_separable_quadratic():
    n = H * AB
    g = torch.Generator().manual_seed(1)
    M = torch.randn(B, n, n, generator=g) / n**0.5
    Q = M @ M.transpose(1, 2) + 0.5 * torch.eye(n)  # (B, n, n) SPD, condition number ~8
    target = _targets(2)

    def cost_fn(a):
        d = (a - target[:, None]).reshape(a.shape[0], a.shape[1], n)  # (B, S, n)
        return torch.einsum("bsi,bij,bsj->bs", d, Q, d)

    start = cost_fn(torch.zeros(B, 1, H, AB))[:, 0]  # (B,) ~10-30
    res = CEM(CEMConfig()).solve(cost_fn, B, H, AB)
    # a diagonal Gaussian converges more slowly along coupled directions than on the sphere
    torch.testing.assert_close(res.actions, target, atol=0.1, rtol=0)
    assert (res.cost < 1e-3 * start).all()


def test_cem_deterministic_for_seed_and_generator():
    target = _targets()
    cfg = CEMConfig(num_samples=32, num_elites=4, iterations=3)
    a = CEM(cfg).solve(_quadratic(target), B, H, AB)
    b = CEM(cfg).solve(_quadratic(target), B, H, AB)
    assert torch.equal(a.actions, b.actions) and a.history == b.history
    c = CEM(CEMConfig(num_samples=32, num_elites=4, iterations=3, seed=1)).solve(
        _quadratic(target), B, H, AB
    )
    assert not torch.equal(a.actions, c.actions)
    # an explicit generator overrides config.seed
    d = CEM(cfg).solve(_quadratic(target), B, H, AB, generator=torch.Generator().manual_seed(1))
    assert torch.equal(c.actions, d.actions)


def test_different_seeds_draw_different_samples_and_candidate0_is_mean():
    seen = {}
    init = _targets(5)

    def recorder(key):
        def cost_fn(a):
            seen.setdefault(key, []).append(a.clone())
            return a.pow(2).sum(dim=(-1, -2))

        return cost_fn

    for seed in (0, 1):
        cfg = CEMConfig(num_samples=16, num_elites=4, iterations=2, seed=seed)
        CEM(cfg).solve(recorder(seed), B, H, AB, init_mean=init)
    first0, first1 = seen[0][0], seen[1][0]  # (B, S, H, Ab) first-iteration candidates
    assert first0.shape == (B, 16, H, AB)
    assert not torch.equal(first0[:, 1:], first1[:, 1:])
    assert torch.equal(first0[:, 0], init) and torch.equal(first1[:, 0], init)
    # samples around the mean with std init_std
    spread = (first0[:, 1:] - init[:, None]).std()
    assert 0.8 < spread < 1.2
    # the last call scores only the returned mean
    assert seen[0][-1].shape == (B, 1, H, AB)


def test_episode_result_depends_only_on_its_own_cost():
    """Batched over episodes without leakage: changing other episodes' targets leaves episode 0
    bit-identical; and every episode converges when solved together."""
    cfg = CEMConfig(num_samples=64, num_elites=8, iterations=5)
    t1 = _targets(0)
    t2 = t1.clone()
    t2[1:] = _targets(7)[1:]
    r1 = CEM(cfg).solve(_quadratic(t1), B, H, AB)
    r2 = CEM(cfg).solve(_quadratic(t2), B, H, AB)
    assert torch.equal(r1.actions[0], r2.actions[0])
    assert not torch.equal(r1.actions[1:], r2.actions[1:])
    full = CEM(CEMConfig()).solve(_quadratic(t2), B, H, AB)
    torch.testing.assert_close(full.actions, t2, atol=1e-3, rtol=0)


def test_warm_start_init_mean_and_min_std():
    target = _targets()
    cfg = CEMConfig(num_samples=16, num_elites=4, iterations=1, init_std=1e-3)
    res = CEM(cfg).solve(_quadratic(target), B, H, AB, init_mean=target)
    torch.testing.assert_close(res.actions, target, atol=5e-3, rtol=0)
    with pytest.raises(ValueError, match="init_mean"):
        CEM(cfg).solve(_quadratic(target), B, H, AB, init_mean=target[:, :2])

    # with a std floor, the second iteration's samples keep spreading
    seen = []

    def cost_fn(a):
        seen.append(a.clone())
        return (a - target[:, None]).pow(2).sum(dim=(-1, -2))

    CEM(CEMConfig(num_samples=64, num_elites=4, iterations=2, init_std=1e-4, min_std=0.5)).solve(
        cost_fn, B, H, AB, init_mean=target
    )
    spread = (seen[1][:, 1:] - seen[1][:, :1]).std()
    assert spread > 0.3


def test_nan_costs_are_never_elites():
    target = _targets()

    def cost_fn(a):
        c = (a - target[:, None]).pow(2).sum(dim=(-1, -2))
        c[:, 1::2] = float("nan")  # half the candidates are invalid
        return c

    res = CEM(CEMConfig()).solve(cost_fn, B, H, AB)
    assert torch.isfinite(res.actions).all() and all(map(math.isfinite, res.history))
    assert (res.actions - target).abs().max() < 0.05


def test_cost_shape_contract():
    with pytest.raises(ValueError, match=r"\(B, S\)"):
        CEM(CEMConfig(num_samples=8, num_elites=2, iterations=1)).solve(
            lambda a: a.sum(dim=(-1, -2, -3)), B, H, AB
        )


@pytest.mark.parametrize(
    ("kwargs", "bad"),
    [
        ({"num_samples": 10, "num_elites": 11}, "11"),
        ({"num_elites": 0}, "0"),
        ({"num_samples": 0}, "0"),
        ({"iterations": 0}, "0"),
        ({"init_std": -1.0}, "-1.0"),
        ({"min_std": -0.5}, "-0.5"),
    ],
)
def test_bad_config_raises_naming_value(kwargs, bad):
    with pytest.raises(ValueError, match=rf"{next(iter(kwargs))}.*{bad}|{bad}"):
        CEMConfig(**kwargs)


def test_make_solver():
    s = make_solver("cem", num_samples=20, num_elites=5, iterations=2, seed=3)
    assert isinstance(s, CEM) and s.config.num_samples == 20 and s.config.seed == 3
    assert "cem" in SOLVERS
    with pytest.raises(ValueError, match="cem"):
        make_solver("nope")
    with pytest.raises(ValueError, match="num_samplez"):
        make_solver("cem", num_samplez=3)
    with pytest.raises(ValueError, match="num_elites"):
        make_solver("cem", num_samples=5, num_elites=6)


def test_shift_plan():
    a = torch.arange(2 * 5 * 3, dtype=torch.float32).reshape(2, 5, 3)
    s = shift_plan(a, 2)
    assert torch.equal(s[:, :3], a[:, 2:]) and torch.equal(s[:, 3:], torch.zeros(2, 2, 3))
    assert torch.equal(shift_plan(a, 0), a)
    assert torch.equal(shift_plan(a, 5), torch.zeros_like(a))
    with pytest.raises(ValueError, match="-1"):
        shift_plan(a, -1)


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
