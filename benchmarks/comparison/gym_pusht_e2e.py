r"""gym-pusht (huggingface/gym-pusht) through lewm's generic Gymnasium adapter, end to end:
``lewm collect gym:gym_pusht/PushT-v0`` -> frame checks against gym-pusht's own images ->
``lewm train`` (a tiny model, a few steps) -> ``lewm eval --env gym:gym_pusht/PushT-v0`` (a short
planning run), asserting that every action the env receives lies inside its Box.

gym-pusht needs ``pymunk<7`` and the GUI OpenCV build, lewm's own Push-T needs pymunk 7, so this
runs with the python of a SEPARATE virtual environment (never lewm's own ``.venv``):

    python3 -m venv /work/gympusht-venv
    /work/gympusht-venv/bin/pip install torch==2.13.0       # the CPU wheel first
    /work/gympusht-venv/bin/pip install -e . gym-pusht      # from the repository root
    /work/gympusht-venv/bin/python benchmarks/comparison/gym_pusht_e2e.py --out /tmp/gp
    /work/gympusht-venv/bin/python benchmarks/comparison/gym_pusht_e2e.py --out /tmp/gp \
        --episodes 4 --max-steps 30 --train-steps 4 --eval-episodes 1   # smoke run (~1 min)

(check with ``pip install --dry-run ...`` that no CUDA torch is pulled in.)

The settings, all data (lewm has no gym-pusht code); they are recorded in the dataset, so
``lewm eval`` needs only ``--env``:

    --gym-make obs_type=pixels_agent_pos        frames: the 'pixels' observation, which gym-pusht
    --gym-make observation_width=R              draws at R x R itself (no resize by lewm);
    --gym-make observation_height=R             env.render() is 680 px with an action marker
    --gym-adapter pixels=obs:pixels
    --gym-adapter state=info:pos_agent,info:block_pose   [agent x, y, block x, y, angle]
    --gym-adapter reset_option=reset_to_state   gym-pusht's reset option
    --gym-adapter reset_correction=1            see below
    success: info["is_success"] (the adapter's default key)

reset_to_state: gym-pusht places the block at the position given, *then* turns it about its
centre of gravity, so the block lands elsewhere than the state it was given (its docstring warns
of this "legacy" behaviour). The observed [x, y, angle] is therefore not a state that reproduces
itself. ``reset_correction=1`` makes the adapter read the state back after the reset and reset
once more, shifted by the difference; the script measures frames and states both ways.

Checks (one JSON line each on stdout; the run fails on a broken assertion):
  replay  gym-pusht made directly (no lewm), reset with each episode's seed and stepped with the
          recorded actions: its own 'pixels' observations equal the dataset frames bit for bit.
  states  each recorded state put back through ``reset_to_state`` (gym-pusht directly, and the
          lewm adapter with the correction): frames equal to the recorded ones, and state error.
  render  env.render() (680 px, action marker) resized by lewm vs the observation: why the
          observation is the pixel source.
  eval    actions received by gym-pusht's PushTEnv.step during ``lewm eval``: all inside its
          Box(0, 512); planning ran (plans > 0). ``lewm eval`` runs in this process (main()) so
          that the env's step can be watched; collect and train run as ``lewm`` subprocesses.

Success in gym-pusht means the T covers its fixed green target (``is_success``); lewm's protocol
asks to reach a dataset goal image 25 (here --goal-offset) steps away. With a model trained a
few steps the success rate is ~0 and means nothing; this is a plumbing test, not a benchmark of
planning quality.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/
from _shared import run_lewm  # noqa: E402

ENV = "gym:gym_pusht/PushT-v0"


def settings(resolution: int) -> tuple[dict, dict]:
    make = {
        "obs_type": "pixels_agent_pos",
        "observation_width": resolution,
        "observation_height": resolution,
    }
    adapter = {
        "pixels": "obs:pixels",
        "state": ["info:pos_agent", "info:block_pose"],
        "reset_option": "reset_to_state",
        "reset_correction": 1,
    }
    return make, adapter


def options(make: dict, adapter: dict) -> list[str]:
    """The command-line form of the settings."""
    out = []
    for k, v in make.items():
        out += ["--gym-make", f"{k}={v}"]
    for k, v in adapter.items():
        out += ["--gym-adapter", f"{k}={','.join(v) if isinstance(v, list) else v}"]
    return out


def report(check: str, **fields) -> None:
    print(json.dumps({"check": check, **fields}, default=float), flush=True)


def check_replay(data: Path, seed: int, make: dict) -> None:
    """Dataset frames == gym-pusht's own observations when its episodes are replayed."""
    import gymnasium as gym
    import numpy as np

    from lewm.data.hdf5 import EpisodeDataset

    ds = EpisodeDataset(data)
    # lewm collect resets episode i with this seed (collect_gym's documented seeding)
    seeds = np.random.SeedSequence(seed).generate_state(ds.num_episodes)
    env = gym.make("gym_pusht/PushT-v0", disable_env_checker=True, **make)
    rows = equal = 0
    for i in range(ds.num_episodes):
        ep = ds.episode(i)
        obs, _ = env.reset(seed=int(seeds[i]))
        own = [obs["pixels"]]
        for a in ep["action"][:-1]:
            own.append(env.step(a)[0]["pixels"])
        own = np.stack(own)
        rows += len(own)
        equal += int((own == ep["pixels"]).all(axis=(1, 2, 3)).sum())
    report("replay", rows=rows, frames_equal=equal, all_equal=equal == rows)
    assert equal == rows, "replayed frames differ from the dataset's"


def check_states(data: Path, resolution: int, make: dict, adapter: dict, limit: int) -> None:
    """Recorded states put back: through gym-pusht's reset_to_state alone, and through the
    lewm adapter (reset_correction)."""
    import gymnasium as gym
    import numpy as np

    from lewm.data.hdf5 import EpisodeDataset
    from lewm.envs import make_env

    ds = EpisodeDataset(data)
    states, pixels = ds.column("state"), ds.column("pixels")
    rows = np.linspace(0, ds.num_steps - 1, min(limit, ds.num_steps)).astype(int)
    raw = gym.make("gym_pusht/PushT-v0", disable_env_checker=True, **make)
    ours = make_env(ENV, resolution=resolution, make=make, adapter=adapter)

    def state_of(info) -> np.ndarray:
        return np.concatenate([info["pos_agent"], info["block_pose"]])

    out = {}
    for name in ("gym_pusht_reset_to_state", "lewm_adapter_corrected"):
        equal, px_diff, state_err = 0, [], []
        for r in rows:
            if name.startswith("gym"):
                obs, info = raw.reset(seed=0, options={"reset_to_state": states[r]})
                frame, got = obs["pixels"], state_of(info)
            else:
                ours.reset(seed=0, options={"state": states[r]})
                frame, got = ours.render(), ours.state
            equal += bool((frame == pixels[r]).all())
            px_diff.append(int((frame != pixels[r]).any(axis=-1).sum()))
            state_err.append(float(np.abs(got - states[r]).max()))
        out[name] = {
            "frames_equal": equal,
            "of": len(rows),
            "pixels_differing_max": max(px_diff),
            "state_error_max": max(state_err),
            "state_error_median": float(np.median(state_err)),
        }
    report("states", **out)
    ours_err = out["lewm_adapter_corrected"]["state_error_max"]
    assert ours_err < 1e-6, f"the corrected reset misses recorded states by {ours_err}"
    # the goal image evaluation renders is the adapter's frame of the goal state
    goal = ours.render_state(states[rows[-1]])
    report("goal_image", equal_to_dataset_frame=bool((goal == pixels[rows[-1]]).all()))


def check_render(resolution: int, make: dict, adapter: dict) -> None:
    """env.render() (680 px, with the last action's marker) resized vs the observation."""
    import numpy as np

    from lewm.envs import make_env

    env = make_env(ENV, resolution=resolution, make=make, adapter={**adapter, "pixels": "render"})
    obs, _ = env.reset(seed=1)
    before = np.abs(env.render().astype(int) - obs["pixels"]).mean()
    obs = env.step(np.array([300.0, 200.0], np.float32))[0]
    after = np.abs(env.render().astype(int) - obs["pixels"]).mean()
    report(
        "render",
        raw_render_shape=list(env.unwrapped.render().shape),
        mean_abs_diff_after_reset=round(float(before), 2),
        mean_abs_diff_after_step=round(float(after), 2),
        note="render() is drawn at 680 px (cv2) and marks the last action; the observation is "
        "drawn at R px by gym-pusht itself: the observation is the faithful source",
    )


def run_eval(run: Path, data: Path, a: argparse.Namespace) -> None:
    """``lewm eval --env gym:...`` in this process, watching every action PushTEnv receives."""
    import numpy as np
    from gym_pusht.envs.pusht import PushTEnv

    from lewm.cli.main import main

    received: list[np.ndarray] = []
    outside: list[np.ndarray] = []
    step = PushTEnv.step

    def watched(self, action):
        a_ = np.asarray(action)
        received.append(a_.copy())
        if not self.action_space.contains(a_):
            outside.append(a_.copy())
        return step(self, action)

    PushTEnv.step = watched
    argv = ["eval", str(run), "--env", ENV, "--data", str(data), "--split", "all"]
    argv += ["--episodes", str(a.eval_episodes), "--goal-offset", str(a.goal_offset)]
    argv += ["--budget", str(a.budget), "--samples", "32", "--elites", "4", "--iterations", "2"]
    argv += ["--gifs", "1", "--no-progress", "--overwrite", "--out", str(a.out / "eval")]
    print("+ lewm " + shlex.join(argv) + "   (in process)", file=sys.stderr, flush=True)
    try:
        assert main(argv) == 0, "lewm eval failed"
    finally:
        PushTEnv.step = step
    res = json.loads((a.out / "eval" / "eval.json").read_text())
    acts = np.stack(received)  # (steps, 2)
    report(
        "eval",
        actions=len(acts),
        actions_outside_box=len(outside),
        action_min=acts.min(axis=0).tolist(),
        action_max=acts.max(axis=0).tolist(),
        clipped_steps=res["clipped_steps"],
        plans=res["plans"],
        success_rate=res["success_rate"],
        truncated=res["truncated"],
        goal_image=res["settings"]["goal_image"],
        env_options=res["settings"]["env_options"],
    )
    assert not outside, f"{len(outside)} actions outside the Box"
    assert res["plans"] > 0, "no plan was made"


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter
    )
    p.add_argument("--out", type=Path, default=Path("benchmarks/out/gym_pusht_e2e"))
    p.add_argument("--episodes", type=int, default=8, help="episodes to collect (8)")
    p.add_argument("--max-steps", type=int, default=60, help="actions per episode (60)")
    p.add_argument("--resolution", type=int, default=64, help="frame side (64)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--train-steps", type=int, default=20, help="training steps (20)")
    p.add_argument("--eval-episodes", type=int, default=2, help="planning episodes (2)")
    p.add_argument("--goal-offset", type=int, default=10, help="eval goal offset (10)")
    p.add_argument("--budget", type=int, default=30, help="eval step budget (30)")
    p.add_argument("--state-rows", type=int, default=100, help="rows for the state check (100)")
    a = p.parse_args()
    try:
        import gym_pusht  # noqa: F401  (after --help: only this run needs it)
    except ImportError as e:
        sys.exit(f"gym-pusht is not installed in this python ({e}); see the docstring")
    a.out.mkdir(parents=True, exist_ok=True)
    data, run = a.out / "pusht.h5", a.out / "run"
    make, adapter = settings(a.resolution)
    t0 = time.perf_counter()
    collect = run_lewm(
        "collect", ENV, "--episodes", str(a.episodes), "--out", str(data), "--overwrite",
        "--resolution", str(a.resolution), "--seed", str(a.seed), "--max-steps",
        str(a.max_steps), "--no-progress", *options(make, adapter), echo=sys.stderr,
    )  # fmt: skip
    report("collect", **collect)
    check_replay(data, a.seed, make)
    check_states(data, a.resolution, make, adapter, a.state_rows)
    check_render(a.resolution, make, adapter)
    train = run_lewm(
        "train", "--data", str(data), "--out", str(run), "--preset", "tiny", "--overwrite",
        "--no-progress", "model.predictor.history=1", f"train.steps={a.train_steps}",
        "train.val_every=0", "train.ckpt_every=0", echo=sys.stderr,
    )  # fmt: skip
    report("train", **train)
    run_eval(run, data, a)
    report("done", seconds=round(time.perf_counter() - t0, 1))


if __name__ == "__main__":
    main()
