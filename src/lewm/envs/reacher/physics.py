"""Reacher physics: dm_control's two-link planar arm (its MJCF and assets) simulated with the
MuJoCo bindings, and the numpy side (state layout, sampling, success, forward kinematics) that
needs no MuJoCo.

State (S = 4, float64 in the env, float32 in data): ``[shoulder, wrist, shoulder_vel,
wrist_vel]`` = qpos (2, rad) then qvel (2, rad/s). The shoulder is an unlimited hinge (any
angle; angles 2 pi apart are the same pose), the wrist is limited to +-160 degrees (MuJoCo's
soft limit lets it pass slightly under torque). A goal is a state too; only its qpos counts.

Axes: N states, S state size, G goal size.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import numpy as np

from lewm.envs.reacher.backend import import_dm_control_reacher, import_mujoco

STATE_DIM = 4  # qpos (shoulder, wrist) + qvel (shoulder, wrist)
ACTION_DIM = 2  # shoulder and wrist motor commands in [-1, 1] (gear 0.05 N m)
PHYSICS_DT = 0.02  # s, dm_control's reacher.xml timestep
ACTION_REPEAT = 2  # physics steps per env step (the authors' DMC wrapper): one step = 0.04 s
EPISODE_STEPS = 500  # env steps in dm_control's 20 s time limit (the gymnasium TimeLimit)
COLLECT_STEPS = 200  # env steps per collected episode (the paper's data: 10,000 x 200)
SUCCESS_TOL = 0.05  # rad: success iff every joint is this close to the goal configuration
WRIST_LIMIT = float(np.radians(160.0))  # the wrist joint's range, +-160 degrees
LINK = 0.12  # m: shoulder -> wrist and wrist -> fingertip (the finger body's offset)


def wrap_angle(a: np.ndarray) -> np.ndarray:
    """Angles mapped to [-pi, pi)."""
    return (np.asarray(a) + np.pi) % (2 * np.pi) - np.pi


def joint_delta(states: np.ndarray, goals: np.ndarray) -> np.ndarray:
    """goal qpos - qpos (..., 2) of states (..., S) and goals (..., G >= 2): the shoulder's
    wrapped to [-pi, pi) (it turns freely), the wrist's as is (its limits forbid the way round)."""
    s, g = np.asarray(states, np.float64), np.asarray(goals, np.float64)
    if s.shape[-1] < 2 or g.shape[-1] < 2:
        raise ValueError(
            f"Reacher states and goals hold qpos (shoulder, wrist) first: at least 2 values on "
            f"the last axis, got shapes {s.shape} and {g.shape}"
        )
    d = g[..., :2] - s[..., :2]
    return np.stack([wrap_angle(d[..., 0]), d[..., 1]], axis=-1)


def joint_error(states: np.ndarray, goals: np.ndarray) -> np.ndarray:
    """The largest joint angle error (rad) of states (..., S) against goals (..., G >= 2),
    shape (...); as :func:`joint_delta`."""
    return np.abs(joint_delta(states, goals)).max(axis=-1)


def success(states: np.ndarray, goals: np.ndarray) -> np.ndarray:
    """The authors' ``qpos_match`` test, vectorised: every joint within ``SUCCESS_TOL`` (0.05
    rad) of the goal configuration (the shoulder's angle compared modulo 2 pi).
    States (..., S), goals (..., G >= 2) -> bool (...)."""
    return joint_error(states, goals) < SUCCESS_TOL


def fingertip(states: np.ndarray) -> np.ndarray:
    """Fingertip position (N, 2) in metres (the arm's base at the origin) of states (N, >= 2)."""
    q = np.asarray(states, np.float64)
    a, b = q[..., 0], q[..., 0] + q[..., 1]
    return LINK * np.stack([np.cos(a) + np.cos(b), np.sin(a) + np.sin(b)], axis=-1)


def sample_state(rng: np.random.Generator, n: int | None = None) -> np.ndarray:
    """Random poses at rest, as dm_control's reset draws them: shoulder uniform in [-pi, pi),
    wrist uniform in its range, zero velocity. (S,) when ``n`` is None, else (n, S)."""
    k = 1 if n is None else n
    s = np.zeros((k, STATE_DIM))
    s[:, 0] = rng.uniform(-np.pi, np.pi, k)
    s[:, 1] = rng.uniform(-WRIST_LIMIT, WRIST_LIMIT, k)
    return s[0] if n is None else s


def check_state(name: str, value: Any) -> np.ndarray:
    """``value`` as a state (S,) float64; one ValueError naming ``name`` and the layout when it
    is not 4 finite numbers with the wrist in [-pi, pi]."""
    s = np.asarray(value, np.float64).reshape(-1) if value is not None else np.empty(0)
    if s.shape != (STATE_DIM,) or not np.isfinite(s).all():
        raise ValueError(
            f"{name} must be 4 finite numbers (shoulder, wrist in rad, shoulder_vel, wrist_vel "
            f"in rad/s), got {value!r}"
        )
    if abs(s[1]) > np.pi:
        raise ValueError(
            f"{name}: the wrist angle {s[1]:.3f} rad is outside [-pi, pi] (its range is +-160 "
            "degrees)"
        )
    return s


def state_grid(n: int) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Poses at rest on an n x n grid of (shoulder in [-pi, pi), wrist in its range): states
    (n*n, S), the fingertip positions (n*n, 2) that colour a latent map, and their axis names."""
    shoulder = np.linspace(-np.pi, np.pi, n, endpoint=False)
    wrist = np.linspace(-WRIST_LIMIT, WRIST_LIMIT, n)
    sh, wr = np.meshgrid(shoulder, wrist, indexing="ij")  # (n, n) each
    states = np.zeros((n * n, STATE_DIM))
    states[:, 0], states[:, 1] = sh.ravel(), wr.ravel()
    return states, fingertip(states), ["fingertip x (m)", "fingertip y (m)"]


@lru_cache(maxsize=1)
def reacher_model() -> Any:
    """This process's ``mujoco.MjModel`` of dm_control's reacher, shared by every env and the
    renderer (read-only while stepping). The target sphere is hidden (alpha 0), as in the
    authors' ``qpos_match`` setup: the goal is a configuration, shown by a goal image."""
    reacher = import_dm_control_reacher()
    mujoco = import_mujoco()
    xml, assets = reacher.get_model_and_assets()
    model = mujoco.MjModel.from_xml_string(xml.decode(), assets)
    target = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_GEOM, "target")
    model.geom_matid[target] = -1  # its own rgba, alpha 0: not drawn, casts no shadow
    model.geom_rgba[target] = (0.0, 0.0, 0.0, 0.0)
    assert model.nq == 2 and model.nv == 2 and model.nu == ACTION_DIM, "unexpected reacher.xml"
    assert abs(model.opt.timestep - PHYSICS_DT) < 1e-12, "unexpected reacher.xml timestep"
    return model


def new_data(state: np.ndarray | None = None) -> Any:
    """A fresh ``mujoco.MjData`` of :func:`reacher_model`, at ``state`` (S,) if given."""
    mujoco = import_mujoco()
    data = mujoco.MjData(reacher_model())
    if state is not None:
        set_state(data, state)
    return data


def set_state(data: Any, state: np.ndarray) -> None:
    """Place qpos and qvel exactly (no history: time and controls reset) and update positions."""
    mujoco = import_mujoco()
    model = reacher_model()
    mujoco.mj_resetData(model, data)
    data.qpos[:] = state[:2]
    data.qvel[:] = state[2:4]
    mujoco.mj_forward(model, data)


def get_state(data: Any) -> np.ndarray:
    """The state (S,) float64 of ``data``."""
    return np.concatenate([data.qpos, data.qvel]).astype(np.float64)


def step(data: Any, action: np.ndarray) -> None:
    """One env step: motor commands ``action`` (2,) clipped to [-1, 1], held for
    ``ACTION_REPEAT`` physics steps."""
    mujoco = import_mujoco()
    model = reacher_model()
    data.ctrl[:] = np.clip(action, -1.0, 1.0)
    for _ in range(ACTION_REPEAT):
        mujoco.mj_step(model, data)


def simulate(state: np.ndarray, actions: np.ndarray) -> np.ndarray:
    """States (T+1, S) float64 from ``state`` (S,) under ``actions`` (T, 2)."""
    data = new_data(state)
    out = np.empty((len(actions) + 1, STATE_DIM))
    out[0] = get_state(data)
    for t, a in enumerate(actions):
        step(data, a)
        out[t + 1] = get_state(data)
    return out
