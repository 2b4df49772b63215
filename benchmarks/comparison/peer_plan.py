"""The paper authors' LeWM + CEMSolver (stable-worldmodel 0.1.1, "swm"), timed like plan_speed.py.

Runs with the python of the authors' own virtual environment ($PEER_PYTHON, see
benchmarks/README.md for the install), never with lewm's: it does not import lewm. Builds their
LeWM at paper size (ViT-tiny/14 at 224 px, 6-layer AdaLN predictor, history 3; 18,034,478
parameters) and times one full CEM plan with their ``CEMSolver`` (300 samples x 30 iterations x
30 elites, horizon 5): median of --repeats plans after one warm-up. Prints one JSON line on
stdout (their solver's own prints go to stderr).

    $PEER_PYTHON benchmarks/comparison/peer_plan.py                 # random init, 1 context frame
    $PEER_PYTHON benchmarks/comparison/peer_plan.py --context 3 --weights W.safetensors
    $PEER_PYTHON benchmarks/comparison/peer_plan.py --samples 4 --iterations 1 --repeats 1  # smoke
    $PEER_PYTHON benchmarks/comparison/peer_plan.py --weights W.safetensors --check-costs IN OUT

lewm's side starts it for you: benchmarks/speed/plan_speed.py --peer and
benchmarks/comparison/peer_weights.py --verify.

torchvision: swm imports ``torchvision.tv_tensors`` at import time and needs nothing else from
it, and PyPI's torchvision cannot load beside the CPU torch wheel. If no torchvision loads, this
script puts a minimal in-process stand-in in its place. A stand-in folder (a ``torchvision``
package) can be given instead on the peer's PYTHONPATH: ``PYTHONPATH=$SWM_SHIM $PEER_PYTHON ...``
(the lewm-side scripts do this for ``--shim DIR`` or ``SWM_SHIM``).

--weights loads a safetensors file written by benchmarks/comparison/peer_weights.py (our weights
under their names). --check-costs skips timing: IN.pt (written by peer_weights.py --verify) holds
normalised pixels, goal, history actions and candidate plans; OUT.pt receives their latents,
predicted latents and costs, so the two implementations can be compared number by number.

Context frames. Their ``LeWM.rollout`` pairs the first C blocks of the sequence it is given with
the C context frames; ``CEMSolver`` passes the H sampled blocks only, so with C > 1 the first C-1
*sampled* blocks stand in for the executed ones and only H-C+1 predictor steps are made (their
policy does the same). ``--match-rollout`` plans H+C-1 blocks instead, so that the predictor
runs H steps with full windows, the same work as lewm's planner (which is given the C-1 executed
blocks). With C = 1 both are the same.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import sys
import time
import types
from importlib.metadata import version as _version
from typing import Any

import numpy as np
import torch
from torch import nn


def _torchvision() -> str:
    """The version of the torchvision swm will import: a real one, a stand-in found on
    PYTHONPATH, or (when neither loads) a minimal in-process stand-in of ``tv_tensors.Image``."""
    try:
        import torchvision

        return torchvision.__version__
    except Exception:
        for name in [m for m in sys.modules if m == "torchvision" or m.startswith("torchvision.")]:
            sys.modules.pop(name)
    tv = types.ModuleType("torchvision")
    tvt = types.ModuleType("torchvision.tv_tensors")

    def image(x):
        x = torch.as_tensor(x)
        return x.permute(2, 0, 1) if x.ndim == 3 and x.shape[-1] in (1, 3) else x

    tvt.Image = image
    tv.tv_tensors, tv.__version__ = tvt, "0.0.0-inline-stub"
    sys.modules["torchvision"], sys.modules["torchvision.tv_tensors"] = tv, tvt
    return tv.__version__


def import_peer() -> str:
    """Import the authors' package (after argument parsing, so ``--help`` needs none of it);
    returns the torchvision version it runs with."""
    os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
    # transformers' ViTModel must be imported before any torchvision stand-in becomes visible
    from transformers import ViTConfig, ViTModel  # noqa: F401

    tv = _torchvision()
    import stable_worldmodel  # noqa: F401

    return tv


# The paper model (le-wm config/train/model/lewm.yaml), named as lewm's ModelConfig fields.
PAPER = {
    "image_size": 224,
    "patch_size": 14,
    "width": 192,  # ViT hidden size
    "depth": 12,
    "heads": 3,
    "mlp_dim": 768,
    "latent_dim": 192,
    "projector_hidden": 2048,
    "action_dim": 2,
    "frameskip": 5,
    "action_smooth_dim": 10,
    "action_hidden": 768,  # their Embedder: mlp_scale * emb_dim = 4 * 192
    "history": 3,
    "pred_depth": 6,
    "pred_heads": 16,
    "pred_head_dim": 64,
    "pred_mlp_dim": 2048,
    "dropout": 0.1,
}


def build_model(m: dict) -> nn.Module:
    """Their LeWM, built from their modules, in eval mode and without gradients."""
    from stable_worldmodel.wm.lewm import LeWM
    from stable_worldmodel.wm.lewm.module import MLP, Embedder, Predictor
    from transformers import ViTConfig, ViTModel

    if m["action_hidden"] % m["latent_dim"]:
        raise ValueError("their Embedder needs action_hidden = mlp_scale * latent_dim")
    enc = ViTModel(
        ViTConfig(
            hidden_size=m["width"],
            num_hidden_layers=m["depth"],
            num_attention_heads=m["heads"],
            intermediate_size=m["mlp_dim"],
            image_size=m["image_size"],
            patch_size=m["patch_size"],
        ),
        add_pooling_layer=False,
        use_mask_token=False,
    )
    D = m["latent_dim"]
    pred = Predictor(
        num_frames=m["history"],
        depth=m["pred_depth"],
        heads=m["pred_heads"],
        mlp_dim=m["pred_mlp_dim"],
        input_dim=D,
        hidden_dim=D,
        output_dim=D,
        dim_head=m["pred_head_dim"],
        dropout=m["dropout"],
        emb_dropout=0.0,
    )
    act = Embedder(
        input_dim=m["frameskip"] * m["action_dim"],
        smoothed_dim=m["action_smooth_dim"],
        emb_dim=D,
        mlp_scale=m["action_hidden"] // D,
    )
    proj = MLP(m["width"], m["projector_hidden"], D, norm_fn=nn.BatchNorm1d)
    pred_proj = MLP(D, m["projector_hidden"], D, norm_fn=nn.BatchNorm1d)
    model = LeWM(
        encoder=enc, predictor=pred, action_encoder=act, projector=proj, pred_proj=pred_proj
    )
    model.eval().requires_grad_(False)
    return model


# transformers renamed ViT's submodules in 5.x; accept weights written for either naming
_VIT_V4_TO_V5 = [
    ("encoder.encoder.layer.", "encoder.layers."),
    (".attention.attention.query.", ".attention.q_proj."),
    (".attention.attention.key.", ".attention.k_proj."),
    (".attention.attention.value.", ".attention.v_proj."),
    (".attention.output.dense.", ".attention.o_proj."),
    (".intermediate.dense.", ".mlp.fc1."),
    (".output.dense.", ".mlp.fc2."),
]


def _rename(key: str, to_v5: bool) -> str:
    for v4, v5 in _VIT_V4_TO_V5:
        key = key.replace(v4, v5) if to_v5 else key.replace(v5, v4)
    return key


def load_weights(model: nn.Module, path: str) -> None:
    from safetensors.torch import load_file

    state = load_file(path)
    own = model.state_dict()
    if not set(state) <= set(own):
        to_v5 = any(k.startswith("encoder.layers.") for k in own)
        state = {_rename(k, to_v5) if k.startswith("encoder.") else k: v for k, v in state.items()}
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    if missing or unexpected:
        raise SystemExit(f"weights do not fit: missing {missing[:6]}, unexpected {unexpected[:6]}")
    bad = [k for k in own if tuple(own[k].shape) != tuple(state[k].shape)]
    if bad:
        raise SystemExit(f"weights of the wrong shape: {bad[:6]}")
    model.load_state_dict(state, strict=True)


def make_solver(model: nn.Module, a: argparse.Namespace, m: dict, n_envs: int, horizon: int) -> Any:
    import stable_worldmodel as swm
    from gymnasium.spaces import Box
    from stable_worldmodel.solver import CEMSolver

    # batch_size=1: their LeWM.criterion broadcasts the goal latents (b, 1, D) against the
    # predictions (b, S, T, D), which only works for b = 1, so their CEMSolver must solve the
    # episodes one after another (as their World does with num_envs > 1)
    solver = CEMSolver(
        model,
        batch_size=1,
        num_samples=a.samples,
        var_scale=1.0,
        n_steps=a.iterations,
        topk=min(a.elites, a.samples),
        device="cpu",
        seed=a.seed,
    )
    cfg = swm.PlanConfig(horizon=horizon, receding_horizon=horizon, action_block=m["frameskip"])
    space = Box(-1.0, 1.0, (n_envs, m["action_dim"]), np.float32)
    solver.configure(action_space=space, n_envs=n_envs, config=cfg)
    return solver


def time_plans(solver: Any, B: int, C: int, m: dict, repeats: int) -> float:
    s, Ab = m["image_size"], m["frameskip"] * m["action_dim"]
    g = torch.Generator().manual_seed(1)

    def info() -> dict:
        # normalised float CHW frames, as their policy's transforms deliver them
        return {
            "pixels": torch.randn(B, C, 3, s, s, generator=g),
            "goal": torch.randn(B, 1, 3, s, s, generator=g),
            "action": torch.zeros(B, C, Ab),
        }

    with contextlib.redirect_stdout(sys.stderr):  # CEMSolver prints its own solve time
        solver.solve(info())  # warm-up
        times = []
        for _ in range(repeats):
            d = info()
            t = time.perf_counter()
            out = solver.solve(d)
            times.append(time.perf_counter() - t)
    assert tuple(out["actions"].shape) == (B, solver.horizon, Ab), out["actions"].shape
    return statistics.median(times)


@torch.inference_mode()
def check_costs(model: nn.Module, src: str, dst: str) -> dict:
    """Their latents, predictions and costs for the inputs saved by our side.

    IN: pixels (B, C, 3, s, s) and goal (B, 3, s, s) normalised float frames, hist (B, C-1, Ab)
    executed blocks (absent when C = 1), cand (B, S, H, Ab) candidate plans.
    OUT: z (B, C, D), z_goal (B, D), pred (B, S, H, D), cost (B, S) from ``get_cost`` given the
    executed blocks followed by each plan (lewm's semantics), and cost_solver_call (B, S) from
    ``get_cost`` given the plan alone, as their CEMSolver calls it (equal to cost when C = 1).
    """
    d = torch.load(src, weights_only=True)
    px, goal, cand = d["pixels"].float(), d["goal"].float(), d["cand"].float()
    B, C = px.shape[:2]
    S, H, Ab = cand.shape[1:]
    hist = d.get("hist")
    seq = cand if C == 1 else torch.cat([hist[:, None].expand(B, S, C - 1, Ab), cand], dim=2)

    def info(b: int) -> dict:  # one episode: their criterion only broadcasts for batch 1
        return {
            "pixels": px[b : b + 1, None].expand(1, S, *px.shape[1:]),
            "goal": goal[b : b + 1, None, None].expand(1, S, 1, *goal.shape[1:]),
            "action": torch.zeros(1, S, C, Ab),
        }

    z = model.encode({"pixels": px})["emb"]  # (B, C, D)
    z_goal = model.encode({"pixels": goal[:, None]})["emb"][:, 0]  # (B, D)
    cost, pred, cost_solver = [], [], []
    for b in range(B):
        i1 = info(b)
        cost.append(model.get_cost(i1, seq[b : b + 1]))  # (1, S)
        pred.append(i1["predicted_emb"][:, :, C:])  # (1, S, H, D): drops the C context latents
        cost_solver.append(model.get_cost(info(b), cand[b : b + 1]))
    cost, pred, cost_solver = torch.cat(cost), torch.cat(pred), torch.cat(cost_solver)
    out = {"z": z, "z_goal": z_goal, "pred": pred, "cost": cost, "cost_solver_call": cost_solver}
    torch.save({k: v.contiguous() for k, v in out.items()}, dst)
    return {k: list(v.shape) for k, v in out.items()}


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--samples", type=int, default=300)
    p.add_argument("--iterations", type=int, default=30)
    p.add_argument("--elites", type=int, default=30, help="capped at --samples")
    p.add_argument("--horizon", type=int, default=5)
    p.add_argument("--context", type=int, default=1, help="observed frames (<= history)")
    p.add_argument("--match-rollout", action="store_true", help="plan H+C-1 blocks (see above)")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument(
        "--batch", type=int, default=0, help="also time B episodes per solve call (one by one)"
    )
    p.add_argument("--threads", type=int, default=0)
    p.add_argument("--seed", type=int, default=0, help="init seed and CEMSolver seed")
    p.add_argument("--weights", default=None, help="safetensors written by peer_weights.py")
    p.add_argument("--model-json", default=None, help="JSON overriding PAPER's model sizes")
    p.add_argument("--check-costs", nargs=2, metavar=("IN", "OUT"), default=None)
    a = p.parse_args()
    try:
        torchvision_version = import_peer()
    except ImportError as e:
        raise SystemExit(
            f"peer_plan.py: {e}. It runs with the python of the authors' virtual environment "
            "(stable-worldmodel 0.1.1 and transformers; see benchmarks/README.md), not lewm's."
        ) from e
    if a.threads:
        torch.set_num_threads(a.threads)
    m = {**PAPER, **(json.loads(a.model_json) if a.model_json else {})}
    torch.manual_seed(a.seed)
    model = build_model(m)
    if a.weights:
        load_weights(model, a.weights)
    if a.check_costs:
        shapes = check_costs(model, *a.check_costs)
        print(json.dumps({"bench": "peer_check_costs", "weights": a.weights, "shapes": shapes}))
        return
    if not 1 <= a.context <= m["history"]:
        raise SystemExit(f"--context must be in [1, history={m['history']}]")
    solver_h = a.horizon + (a.context - 1 if a.match_rollout else 0)
    if solver_h < a.context:
        raise SystemExit(f"their rollout needs a horizon >= context ({a.context})")
    rec = {
        "bench": "peer_plan",
        "impl": f"stable-worldmodel {_version('stable-worldmodel')}",
        "model": m,
        "params": sum(q.numel() for q in model.parameters()),
        "weights": a.weights,
        "samples": a.samples,
        "iterations": a.iterations,
        "elites": min(a.elites, a.samples),
        "horizon": a.horizon,
        "solver_horizon": solver_h,
        "context": a.context,
        "match_rollout": a.match_rollout,
        "predictor_steps": solver_h - a.context + 1,
        "history": m["history"],
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "torchvision": torchvision_version,
        "date": time.strftime("%Y-%m-%d"),
    }
    solver = make_solver(model, a, m, 1, solver_h)
    rec["s_per_plan_single"] = round(time_plans(solver, 1, a.context, m, a.repeats), 3)
    if a.batch:
        solver = make_solver(model, a, m, a.batch, solver_h)
        t = time_plans(solver, a.batch, a.context, m, max(1, a.repeats // 3))
        rec.update(batch=a.batch, s_per_plan_batched=round(t / a.batch, 3))
    print(json.dumps(rec), flush=True)


if __name__ == "__main__":
    main()
