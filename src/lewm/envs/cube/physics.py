"""Cube physics: OGBench's single-cube scene (a UR5e arm with a Robotiq 2F-85 gripper and one
cube, MuJoCo) driven through OGBench's own controller, with the state layout, sampling and
success test in numpy.

One OGBench ``CubeEnv`` per process (:func:`ogbench_env`, ``ob_type='states'``,
``mode='data_collection'``, target marker hidden) owns the compiled model, the inverse-kinematics
controller and the action mapping. Every lewm env and collector of the process keeps its own
``mujoco.MjData`` and lends it to that env for a step (:func:`step`), so fifty evaluation envs
cost one model compilation (~1 s), not fifty.

Action (A = 5, in [-1, 1]): OGBench's relative end-effector control, checked against
``ManipSpaceEnv.action_space`` of ogbench 1.2.2 (a test asserts it): x, y, z displacement
(+-5 cm per step), yaw change (+-0.3 rad) and gripper opening change (+-1), turned into joint
targets by OGBench's differential IK and held by the arm's PD actuators for 25 physics steps of
2 ms (one env step = 0.05 s, 20 Hz). (The authors' docs say 7-D; their own expert adds noise to
5 components, and the environment's action space has 5.)

State (S = 46, float64 in the env, float32 in data): ``qpos`` (21: 6 arm joints, 8 gripper
joints, the cube's free joint = xyz + quaternion wxyz), ``qvel`` (20), then derived values
stored for probes: end-effector (pinch site) xyz (3, m), its yaw (1, rad) and the gripper
opening (1, 0 = closed .. 1 = open). Only qpos and qvel are read back when a state is placed.
A goal is a state too; only its cube position counts.

Axes: N states, S state size, G goal size.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import numpy as np

from lewm.envs.cube.backend import import_mujoco, import_ogbench_cube

NQ, NV = 21, 20  # the scene's qpos and qvel sizes
STATE_DIM = NQ + NV + 5  # + effector xyz, effector yaw, gripper opening
ACTION_DIM = 5  # dx, dy, dz, dyaw, dgrip in [-1, 1]
QPOS = slice(0, NQ)
QVEL = slice(NQ, NQ + NV)
ARM = slice(0, 6)  # the six arm joints' qpos
CUBE_POS = slice(14, 17)  # the cube's free joint: position (m) ...
CUBE_QUAT = slice(17, 21)  # ... and orientation (wxyz)
EFFECTOR = slice(NQ + NV, NQ + NV + 3)  # pinch-site position (m)
YAW = NQ + NV + 3  # pinch-site yaw (rad)
GRIPPER = NQ + NV + 4  # gripper opening in [0, 1]
PROPRIO = slice(EFFECTOR.start, GRIPPER + 1)  # effector xyz, yaw, gripper opening
CONTROL_DT = 0.05  # s per env step (OGBench's control timestep)
SUBSTEPS = 25  # physics steps of 2 ms per env step
EPISODE_STEPS = 200  # OGBench's time limit for cube-single (and the paper's episodes)
SUCCESS_TOL = 0.04  # m: success iff the cube is this close to the goal's cube position
CUBE_HALF = 0.02  # m: the cube's half side; it rests at z = 0.02
STATE_LAYOUT = (
    "qpos (21: 6 arm, 8 gripper, cube xyz + quat wxyz), qvel (20), effector xyz (m), "
    "effector yaw (rad), gripper opening (0-1)"
)


def cube_pos(states: np.ndarray) -> np.ndarray:
    """The cube's position (..., 3) in metres of states (..., S)."""
    return np.asarray(states, np.float64)[..., CUBE_POS]


def cube_error(states: np.ndarray, goals: np.ndarray) -> np.ndarray:
    """Distance (m) between the cube of states (..., S) and of goals (..., G >= 17), shape (...)."""
    s, g = np.asarray(states, np.float64), np.asarray(goals, np.float64)
    if s.shape[-1] < CUBE_POS.stop or g.shape[-1] < CUBE_POS.stop:
        raise ValueError(
            f"Cube states and goals hold the cube's position at qpos[14:17]: at least "
            f"{CUBE_POS.stop} values on the last axis, got shapes {s.shape} and {g.shape}"
        )
    return np.linalg.norm(s[..., CUBE_POS] - g[..., CUBE_POS], axis=-1)


def success(states: np.ndarray, goals: np.ndarray) -> np.ndarray:
    """The authors' (and OGBench's) test, vectorised: the cube within ``SUCCESS_TOL`` (0.04 m)
    of the goal's cube position. States (..., S), goals (..., G) -> bool (...)."""
    return cube_error(states, goals) <= SUCCESS_TOL


def yaw_of_quat(q: np.ndarray) -> np.ndarray:
    """Yaw (rad) of quaternions (..., 4) wxyz about the world z axis."""
    q = np.asarray(q, np.float64)
    w, x, y, z = q[..., 0], q[..., 1], q[..., 2], q[..., 3]
    return np.arctan2(2 * (w * z + x * y), 1 - 2 * (y * y + z * z))


def check_state(name: str, value: Any) -> np.ndarray:
    """``value`` as a state (S,) float64 (only qpos and qvel, the first 41 values, are needed;
    the derived tail is recomputed); one ValueError naming ``name`` and the layout otherwise."""
    s = np.asarray(value, np.float64).reshape(-1) if value is not None else np.empty(0)
    if s.shape[0] not in (NQ + NV, STATE_DIM) or not np.isfinite(s[: NQ + NV]).all():
        raise ValueError(
            f"{name} must be {NQ + NV} or {STATE_DIM} finite numbers ({STATE_LAYOUT}), got "
            f"shape {s.shape}"
        )
    quat = s[CUBE_QUAT]
    if not 0.5 < np.linalg.norm(quat) < 1.5:
        raise ValueError(
            f"{name}: the cube's orientation qpos[17:21] = {quat.round(3).tolist()} is not a "
            "unit quaternion (wxyz): is the state in another layout?"
        )
    return s


@lru_cache(maxsize=1)
def ogbench_env() -> Any:
    """This process's OGBench ``CubeEnv`` (single cube, states, data-collection mode, target
    marker hidden): its model is shared by every lewm Cube env and the renderer."""
    CubeEnv = import_ogbench_cube()
    import warnings

    with warnings.catch_warnings():  # gymnasium warns about the env's float64 spaces
        warnings.simplefilter("ignore")
        env = CubeEnv(
            env_type="single", ob_type="states", mode="data_collection", visualize_info=False
        )
        env.reset(seed=0)
        space = env.action_space.shape
    model = env.model
    if (model.nq, model.nv, model.nu, model.nmocap) != (NQ, NV, 7, 1):
        raise RuntimeError(
            f"OGBench's single-cube scene has nq={model.nq}, nv={model.nv}, nu={model.nu}, "
            f"nmocap={model.nmocap}; lewm's layout expects 21, 20, 7, 1 (ogbench 1.2.2)"
        )
    if space != (ACTION_DIM,) or env._n_steps != SUBSTEPS:
        raise RuntimeError("OGBench's cube action space or control step changed (ogbench 1.2.2)")
    return env


def model() -> Any:
    """The shared ``mujoco.MjModel`` of the scene."""
    return ogbench_env().model


def new_data() -> Any:
    """A fresh ``mujoco.MjData`` of the scene (the arm at home, not yet placed)."""
    mujoco = import_mujoco()
    return mujoco.MjData(model())


def _lend(data: Any) -> Any:
    env = ogbench_env()
    env._data = data  # OGBench's controller and sampling read and write env._data
    return env


def set_state(data: Any, state: np.ndarray, target: np.ndarray | None = None) -> None:
    """Place qpos and qvel of ``state`` exactly (time and controls reset) and, if given, the
    target marker at ``target`` (3,) m; positions are updated."""
    mujoco = import_mujoco()
    m = model()
    mujoco.mj_resetData(m, data)
    data.qpos[:] = state[QPOS]
    data.qvel[:] = state[QVEL]
    if target is not None:
        data.mocap_pos[0] = target
    mujoco.mj_forward(m, data)


def get_state(data: Any) -> np.ndarray:
    """The state (S,) float64 of ``data`` (after a step or :func:`set_state`)."""
    env = _lend(data)
    site = env._pinch_site_id
    xmat = data.site_xmat[site].reshape(3, 3)
    yaw = np.arctan2(xmat[1, 0], xmat[0, 0])
    grip = np.clip(data.qpos[env._gripper_opening_joint_id] / 0.8, 0.0, 1.0)
    return np.concatenate([data.qpos, data.qvel, data.site_xpos[site], [yaw, grip]])


def step(data: Any, action: np.ndarray) -> None:
    """One env step of ``data``: the 5-d action (OGBench's mapping; targets clipped to the
    workspace), then 25 physics steps. Positions and contact forces (the oracle reads them) are
    then recomputed for the new state: OGBench reads them as ``mj_step`` leaves them, one 2 ms
    physics step stale, which would make a stored state disagree with its own qpos."""
    mujoco = import_mujoco()
    env = _lend(data)
    env.set_control(np.asarray(action, np.float64))
    mujoco.mj_step(env.model, data, nstep=SUBSTEPS)
    mujoco.mj_forward(env.model, data)
    mujoco.mj_rnePostConstraint(env.model, data)


def sample_scene(data: Any, rng: np.random.Generator) -> None:
    """Place ``data`` at a random scene as OGBench's data collection draws it: the arm at a
    random pose above the table (IK), the cube anywhere on its area with any yaw, and a random
    target on the table (in ``data.mocap_pos[0]``)."""
    mujoco = import_mujoco()
    env = _lend(data)
    mujoco.mj_resetData(env.model, data)
    env._np_random = rng  # OGBench samples with env.np_random
    env.initialize_episode()
    mujoco.mj_forward(env.model, data)


def new_target(data: Any, rng: np.random.Generator) -> None:
    """Draw a new random target on the table for the cube (data collection)."""
    env = _lend(data)
    env._np_random = rng
    env.set_new_target(return_info=False)


def oracle_info(data: Any) -> dict[str, Any]:
    """The info dict OGBench's oracles read (proprio, cube and target), for ``data``."""
    env = _lend(data)
    env.pre_step()  # sets the previous-step fields compute_ob_info reads
    return env.compute_ob_info()


def state_grid(n: int) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """The cube at rest on an n x n grid over its area of the table (OGBench's sampling bounds),
    the arm still at one fixed pose above it: states (n*n, S), the cube's xy (n*n, 2) that
    colour a latent map, and their axis names."""
    env = ogbench_env()
    data = new_data()
    sample_scene(data, np.random.default_rng(0))  # one fixed arm pose
    base = get_state(data)
    base[QVEL] = 0.0
    (x0, y0), (x1, y1) = env._object_sampling_bounds
    xs, ys = np.meshgrid(np.linspace(x0, x1, n), np.linspace(y0, y1, n), indexing="ij")
    states = np.repeat(base[None], n * n, axis=0)
    states[:, CUBE_POS] = np.stack([xs.ravel(), ys.ravel(), np.full(n * n, CUBE_HALF)], 1)
    states[:, CUBE_QUAT] = (1.0, 0.0, 0.0, 0.0)
    return (
        states,
        states[:, CUBE_POS.start : CUBE_POS.start + 2].copy(),
        ["cube x (m)", "cube y (m)"],
    )


def simulate(state: np.ndarray, actions: np.ndarray) -> np.ndarray:
    """States (T+1, S) float64 from ``state`` under ``actions`` (T, 5)."""
    data = new_data()
    set_state(data, state)
    out = np.empty((len(actions) + 1, STATE_DIM))
    out[0] = get_state(data)
    for t, a in enumerate(actions):
        step(data, a)
        out[t + 1] = get_state(data)
    return out
