import numpy as np
import pytest
import torch
from toys import NullModel, PointEnv, PointModel, RecordingModel, SpySolver, render

from lewm.planning import CEM, CEMConfig, MPCController, Planner, shift_plan


def _blank(B: int):
    return [[np.zeros((4, 4, 3), np.uint8)] for _ in range(B)]


def _controller(
    solver,
    *,
    B=3,
    frameskip=5,
    A=2,
    horizon=5,
    receding=5,
    warm_start=True,
    denormalize=None,
    history=1,
):
    model = NullModel(history, frameskip * A)
    planner = Planner(model, solver, horizon=horizon, receding=receding, warm_start=warm_start)
    ctrl = MPCController(
        planner, frameskip=frameskip, action_dim=A, denormalize=denormalize, seed=0
    )
    ctrl.reset(np.zeros((B, 4, 4, 3), np.uint8))
    return ctrl


# -- Planner -------------------------------------------------------------------------------------


def test_planner_reaches_goal_with_point_model():
    model = PointModel(frameskip=2)
    start, goal = np.array([[2.0, 3.0], [13.0, 12.0]]), np.array([[12.0, 10.0], [4.0, 6.0]])
    obs = torch.from_numpy(np.stack([render(p) for p in start]))[:, None]  # (B, 1, h, w, 3)
    goal_px = torch.from_numpy(np.stack([render(p) for p in goal]))  # (B, h, w, 3)
    planner = Planner(model, CEM(CEMConfig()), horizon=5, receding=5)
    res = planner.plan(obs, goal_px, None)
    assert res.actions.shape == (2, 5, 4)
    assert res.cost.max() < 1e-2  # the predicted terminal position is within 0.1 of the goal
    # executing the plan in the true dynamics lands on the goal, the first block moves toward it
    steps = res.actions.reshape(2, 10, 2).numpy()  # (B, H*f, A)
    torch.testing.assert_close(
        torch.tensor(start + steps.sum(1)), torch.tensor(goal), atol=0.1, rtol=0
    )
    first = steps[:, :2].sum(1)  # (B, 2)
    assert ((first * (goal - start)).sum(1) > 0).all()


def test_planner_takes_already_encoded_context_latents():
    model = PointModel(frameskip=2)
    start, goal = np.array([[2.0, 3.0], [13.0, 12.0]]), np.array([[12.0, 10.0], [4.0, 6.0]])
    obs = torch.from_numpy(np.stack([render(p) for p in start]))[:, None]  # (B, 1, h, w, 3)
    goal_px = torch.from_numpy(np.stack([render(p) for p in goal]))  # (B, h, w, 3)
    planner = Planner(model, CEM(CEMConfig()), horizon=5, receding=5)
    z_goal = planner.encode_goal(goal_px)
    gen = [torch.Generator().manual_seed(3) for _ in range(2)]
    from_px = planner.plan_from_goal_latents(obs, z_goal, None, None, gen[0])
    z_ctx = model.encode(obs)  # (B, 1, D)
    from_z = planner.plan_from_goal_latents(None, z_goal, None, None, gen[1], z_context=z_ctx)
    torch.testing.assert_close(from_z.actions, from_px.actions)
    with pytest.raises(ValueError, match=r"z_context must be \(B, C, D\)"):
        planner.plan_from_goal_latents(None, z_goal, z_context=z_ctx[:, 0])


class _BoxSpy(PointModel):
    """A point model that records the largest |action| it was asked to roll out."""

    def __init__(self, frameskip: int) -> None:
        super().__init__(frameskip)
        self.largest = 0.0

    def rollout(self, z_context, actions, history_actions=None):
        self.largest = max(self.largest, float(actions.abs().max()))
        return super().rollout(z_context, actions, history_actions)


def test_planner_action_box_keeps_the_search_inside_the_bounds():
    # the goal is 10 px away along each axis and a plan has 2 blocks x 2 steps: unbounded, CEM
    # reaches it with steps of 2.5; inside the box [-1, 1] the best the env can do is 4 px
    start, goal = np.array([[2.0, 2.0]]), np.array([[12.0, 12.0]])
    obs = torch.from_numpy(np.stack([render(p) for p in start]))[:, None]
    goal_px = torch.from_numpy(np.stack([render(p) for p in goal]))
    free_model, boxed_model = _BoxSpy(2), _BoxSpy(2)
    free = Planner(free_model, CEM(CEMConfig(init_std=3.0)), horizon=2, receding=2)
    res = free.plan(obs, goal_px, None, generator=torch.Generator().manual_seed(0))
    assert free_model.largest > 2.0 and res.cost.item() < 1.0  # promised: the goal reached
    boxed = Planner(
        boxed_model,
        CEM(CEMConfig(init_std=3.0)),
        horizon=2,
        receding=2,
        action_box=(-torch.ones(4), torch.ones(4)),
    )
    res = boxed.plan(obs, goal_px, None, generator=torch.Generator().manual_seed(0))
    assert boxed_model.largest <= 1.0  # the model never scored an action outside the box
    assert res.actions.abs().max() <= 1.0
    # every step pushes to the corner, and the cost is that of the executable plan: 6 px short
    torch.testing.assert_close(res.actions, torch.ones(1, 2, 4), atol=0.05, rtol=0)
    torch.testing.assert_close(res.cost, torch.tensor([72.0]), atol=1.0, rtol=0)
    with pytest.raises(ValueError, match="action_block_dim=4"):
        Planner(PointModel(2), SpySolver(), action_box=(torch.zeros(2), torch.ones(2)))
    with pytest.raises(ValueError, match="low <= high"):
        Planner(PointModel(2), SpySolver(), action_box=(torch.ones(4), torch.zeros(4)))


def test_planner_validates_inputs():
    with pytest.raises(ValueError, match="receding.*6"):
        Planner(NullModel(1, 2), SpySolver(), horizon=5, receding=6)
    with pytest.raises(ValueError, match="receding.*0"):
        Planner(NullModel(1, 2), SpySolver(), horizon=5, receding=0)
    with pytest.raises(ValueError, match="horizon.*0"):
        Planner(NullModel(1, 2), SpySolver(), horizon=0, receding=0)
    planner = Planner(NullModel(2, 4), SpySolver(), horizon=3, receding=1)
    obs = torch.zeros(2, 2, 4, 4, 3, dtype=torch.uint8)
    goal = torch.zeros(2, 4, 4, 3, dtype=torch.uint8)
    with pytest.raises(ValueError, match="history_actions"):
        planner.plan(obs, goal, None)
    with pytest.raises(ValueError, match="model.history=2"):
        planner.plan(torch.zeros(2, 3, 4, 4, 3, dtype=torch.uint8), goal, torch.zeros(2, 2, 4))
    with pytest.raises(ValueError, match="uint8"):
        planner.plan(obs.float(), goal, torch.zeros(2, 1, 4))
    assert planner.plan(obs, goal, torch.zeros(2, 1, 4)).actions.shape == (2, 3, 4)
    with pytest.raises(ValueError, match="action_block_dim"):
        MPCController(planner, frameskip=3, action_dim=2, denormalize=None, seed=0)
    with pytest.raises(ValueError, match="context.*0"):
        MPCController(planner, frameskip=2, action_dim=2, denormalize=None, seed=0, context=0)


# -- MPCController -------------------------------------------------------------------------------


@pytest.mark.parametrize(("receding", "plans"), [(5, 2), (1, 10)])
def test_mpc_executes_budget_and_plans_expected_times(receding, plans):
    solver = SpySolver(delay=0.01)
    ctrl = _controller(solver, receding=receding)
    out = [ctrl.act(_blank(3), np.ones(3, bool)) for _ in range(50)]
    assert len(solver.calls) == plans == ctrl.num_plans == len(ctrl.plan_times)
    assert ctrl.plan_batch_sizes == [3] * plans  # all envs planned together
    assert min(ctrl.plan_times) >= solver.delay  # each plan call timed around the solver
    acts = np.stack(out)  # (50, B, A)
    # step t executes block (t // f) % receding of the current plan, raw step t % f of the block
    plan_len = receding * 5
    for t in (0, 3, 7, 24, 26, 49):
        k, within = t // plan_len + 1, t % plan_len
        blk, step = within // 5, within % 5
        expect = 100 * k + blk + np.array([2 * step, 2 * step + 1]) / 100
        np.testing.assert_allclose(acts[t, 0], expect, rtol=1e-6)


def test_mpc_inactive_envs_get_nan_and_are_not_planned():
    solver = SpySolver()
    ctrl = _controller(solver, B=3)
    out = []
    for t in range(50):
        active = np.array([True, False, t < 10])
        out.append(ctrl.act(_blank(3), active))
    acts = np.stack(out)  # (50, B, A)
    assert [c["batch"] for c in solver.calls] == [2, 1]
    assert np.isnan(acts[:, 1]).all()
    assert np.isnan(acts[10:, 2]).all() and np.isfinite(acts[:10, 2]).all()
    assert np.isfinite(acts[:, 0]).all()


def test_mpc_denormalizes_planned_steps():
    solver = SpySolver()
    ctrl = _controller(solver, B=2, denormalize=lambda a: 2 * a + 1)
    a0 = ctrl.act(_blank(2), np.ones(2, bool))
    np.testing.assert_allclose(a0, 2 * solver.calls[0]["actions"][:, 0, :2].numpy() + 1)


@pytest.mark.parametrize("warm_start", [True, False])
def test_mpc_warm_start_passes_shifted_plan(warm_start):
    solver = SpySolver()
    ctrl = _controller(solver, B=2, frameskip=1, A=1, horizon=5, receding=2, warm_start=warm_start)
    for _ in range(6):  # plans at steps 0, 2, 4
        ctrl.act(_blank(2), np.ones(2, bool))
    assert len(solver.calls) == 3
    assert solver.calls[0]["init_mean"] is None
    for prev, nxt in zip(solver.calls, solver.calls[1:], strict=False):
        if warm_start:
            assert torch.equal(nxt["init_mean"], shift_plan(prev["actions"], 2))
        else:
            assert nxt["init_mean"] is None


def _frame(t: int, env: int) -> np.ndarray:
    img = np.zeros((4, 4, 3), np.uint8)
    img[0, 0, 0], img[0, 0, 1] = t, env
    return img


@pytest.mark.parametrize("context", [None, 1])
def test_mpc_context_frames_and_history_actions(context):
    """After K executed blocks the context is the frames at steps t-(C-1)f, ..., t with
    C = min(history, K+1), and history_actions are exactly the blocks executed between them."""
    f, A, B, hist = 3, 2, 2, 3
    model = RecordingModel(hist, f * A)
    solver = CEM(CEMConfig(num_samples=4, num_elites=2, iterations=1))
    planner = Planner(model, solver, horizon=2, receding=1)
    ctrl = MPCController(
        planner, frameskip=f, action_dim=A, denormalize=None, seed=0, context=context
    )
    ctrl.reset(np.zeros((B, 4, 4, 3), np.uint8))
    executed = []  # (B, A) per step; normalised == raw since denormalize is None
    checked = 0
    for t in range(16):
        n_before = len(model.calls)
        window = [[_frame(t, i)] for i in range(B)]  # a one-frame window is enough
        executed.append(ctrl.act(window, np.ones(B, bool)))
        if len(model.calls) == n_before:
            assert t % f != 0 or t == 0
            continue
        assert t % f == 0  # plans only at block boundaries
        K = t // f
        C = min(hist if context is None else context, K + 1)
        z_ctx, h_act = model.calls[n_before]
        frame_steps = [t - (C - 1 - c) * f for c in range(C)]
        assert z_ctx.shape == (B, C, 1)
        assert z_ctx[:, :, 0].tolist() == [frame_steps] * B
        if C == 1:
            assert h_act is None
        else:
            acts = np.stack(executed[frame_steps[0] : t])  # (steps, B, A)
            blocks = acts.transpose(1, 0, 2).reshape(B, C - 1, f * A)  # (B, C-1, Ab)
            np.testing.assert_array_equal(h_act.numpy(), blocks)
        checked += 1
    assert checked == 6  # plans at steps 0, 3, ..., 15


def test_mpc_reaches_goals_in_point_world():
    """End to end: pixels -> plan -> de-normalised steps -> env, two plans per episode."""
    f = 2
    scale, shift = 0.5, 0.1  # raw = 0.5 * normalised + 0.1 (the 'dataset' statistics)
    model = PointModel(frameskip=f, denorm=lambda a: scale * a + shift)
    starts = [(2.0, 2.0), (14.0, 3.0), (8.0, 12.0)]
    goals = [(10.0, 9.0), (5.0, 10.0), (3.0, 4.0)]
    envs = [PointEnv(s) for s in starts]
    planner = Planner(model, CEM(CEMConfig(iterations=20)), horizon=5, receding=5)
    ctrl = MPCController(
        planner, frameskip=f, action_dim=2, denormalize=lambda a: scale * a + shift, seed=0
    )
    ctrl.reset(np.stack([render(g) for g in goals]))
    frames = [[e.render()] for e in envs]
    for _ in range(20):  # budget 20 = 2 plans of 5 blocks x 2 steps
        acts = ctrl.act(frames, np.ones(3, bool))
        for i, e in enumerate(envs):
            e.step(acts[i])
            frames[i].append(e.render())
    assert ctrl.num_plans == 2
    for e, g in zip(envs, goals, strict=True):
        assert np.linalg.norm(e.pos - np.asarray(g)) < 0.6


def test_mpc_act_before_reset_and_bad_sizes():
    ctrl = MPCController(
        Planner(NullModel(1, 2), SpySolver(), horizon=1, receding=1),
        frameskip=1,
        action_dim=2,
        denormalize=None,
        seed=0,
    )
    with pytest.raises(RuntimeError, match="reset"):
        ctrl.act(_blank(1), np.ones(1, bool))
    ctrl.reset(np.zeros((2, 4, 4, 3), np.uint8))
    with pytest.raises(ValueError, match="2 environments"):
        ctrl.act(_blank(3), np.ones(3, bool))


def test_mpc_with_tiny_lewm_and_history_context():
    """Protocol smoke test with the library's LeWM (history 3): plans with C = 1, 2, 3."""
    from lewm.config import preset
    from lewm.models import LeWM

    cfg = preset("tiny").model
    model = LeWM(cfg).eval()
    s = cfg.encoder.image_size
    planner = Planner(
        model, CEM(CEMConfig(num_samples=8, num_elites=2, iterations=2)), horizon=3, receding=1
    )
    ctrl = MPCController(
        planner, frameskip=cfg.frameskip, action_dim=cfg.action_dim, denormalize=None, seed=0
    )
    g = np.random.default_rng(0)
    ctrl.reset(g.integers(0, 256, (2, s, s, 3), dtype=np.uint8))
    for _ in range(3 * cfg.frameskip):
        frames = [[g.integers(0, 256, (s, s, 3), dtype=np.uint8)] for _ in range(2)]
        a = ctrl.act(frames, np.ones(2, bool))
        assert a.shape == (2, cfg.action_dim) and np.isfinite(a).all()
    assert ctrl.num_plans == 3
