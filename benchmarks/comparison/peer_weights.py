"""Our LeWM weights under the names of the paper authors' implementation (stable-worldmodel 0.1.1),
and a number-by-number check that both implementations then compute the same thing.

    # convert the seeded random-init paper model (or a checkpoint) to their state_dict
    python benchmarks/comparison/peer_weights.py OUT.safetensors [--seed 0 | --checkpoint DIR]
    # verify: perturbed paper model -> their LeWM (run in the peer venv) -> compare outputs
    python benchmarks/comparison/peer_weights.py --verify $PEER_PYTHON [--contexts 1 3]
    LEWM_PEER_PYTHON=$PEER_PYTHON python benchmarks/comparison/peer_weights.py --verify

Runs in lewm's environment (torch + safetensors); their side runs with the python of its own
virtual environment (``--verify PEER_PYTHON`` or ``LEWM_PEER_PYTHON``; see benchmarks/README.md)
through ``benchmarks/comparison/peer_plan.py --check-costs``. ``--shim DIR`` (or ``SWM_SHIM``) puts
a torchvision stand-in folder on that process's PYTHONPATH; without it peer_plan.py uses its own.
The convert mode's JSON record also holds ``model_json``, the sizes peer_plan.py's
``--model-json`` takes (benchmarks/speed/plan_speed.py uses both).

The name map (ours -> theirs) lives in the library: ``lewm.models.upstream`` (``upstream_key``,
``to_upstream_state_dict``), which also imports the authors' checkpoints and exports ours
(``lewm import`` / ``lewm export --format upstream``).

Pre-processing: their ``LeWM.encode`` feeds its ``pixels`` straight to the ViT, so it expects
frames already resized to 224 and normalised (their policy's transforms do that); ours takes
uint8 HWC frames and resizes (antialiased bilinear, only if needed) and normalises (ImageNet
mean/std) itself. The check feeds their model the tensor our ``LeWM.preprocess`` makes.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import torch
from safetensors.torch import save_file
from torch import Tensor

from lewm.config import PRESETS, preset
from lewm.models import LeWM, LeWMConfig, build_model, load

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/
from _shared import perturb  # noqa: E402

from lewm.models.upstream import check_exportable, to_upstream_state_dict

PEER_PLAN = Path(__file__).with_name("peer_plan.py")
PEER_PYTHON_ENV, SHIM_ENV = "LEWM_PEER_PYTHON", "SWM_SHIM"


def check_convertible(cfg: LeWMConfig) -> None:
    check_exportable(cfg)


def peer_model_json(cfg: LeWMConfig) -> dict:
    """Our LeWMConfig as peer_plan.py's model sizes (its PAPER dict)."""
    check_convertible(cfg)
    e, p = cfg.encoder, cfg.predictor
    return {
        "image_size": e.image_size,
        "patch_size": e.patch_size,
        "width": e.width,
        "depth": e.depth,
        "heads": e.heads,
        "mlp_dim": e.mlp_dim,
        "latent_dim": cfg.latent_dim,
        "projector_hidden": cfg.projector_hidden,
        "action_dim": cfg.action_dim,
        "frameskip": cfg.frameskip,
        "action_smooth_dim": cfg.action_smooth_dim,
        "action_hidden": cfg.action_hidden,
        "history": p.history,
        "pred_depth": p.depth,
        "pred_heads": p.heads,
        "pred_head_dim": p.head_dim,
        "pred_mlp_dim": p.mlp_dim,
        "dropout": p.dropout,
    }


def save_peer_weights(model: LeWM, path: str | os.PathLike, vit_naming: str = "v5") -> Path:
    state = to_upstream_state_dict(model, vit_naming)
    save_file(state, str(path), metadata={"format": "stable-worldmodel-lewm", "from": "lewm"})
    return Path(path)


def seeded_model(cfg: LeWMConfig, seed: int) -> LeWM:
    torch.manual_seed(seed)
    return build_model(cfg).eval()


def peer_python(given: str | None) -> str:
    """The peer venv's python: ``given``, else $LEWM_PEER_PYTHON; a clear error without both."""
    path = given or os.environ.get(PEER_PYTHON_ENV)
    if not path:
        raise SystemExit(
            f"the authors' code runs with the python of its own virtual environment: give it "
            f"with --verify PEER_PYTHON or set {PEER_PYTHON_ENV} (see benchmarks/README.md)"
        )
    return path


def run_peer(
    python: str, args: list[str], shim: str | None = None, timeout: float | None = None
) -> dict:
    """Run peer_plan.py with the peer venv's python (``shim``, a torchvision stand-in folder,
    first on its PYTHONPATH); its last stdout line is one JSON record."""
    env = dict(os.environ)
    if shim:
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [shim, env.get("PYTHONPATH")]))
    r = subprocess.run(
        [python, str(PEER_PLAN), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
    )
    lines = [ln for ln in r.stdout.splitlines() if ln.startswith("{")]
    if r.returncode != 0 or not lines:
        raise RuntimeError(
            f"peer_plan.py failed (exit {r.returncode}):\n{r.stderr[-3000:]}\n{r.stdout[-1000:]}"
        )
    return json.loads(lines[-1])


# -- verification ----------------------------------------------------------------------------


def _diff(a: Tensor, b: Tensor) -> dict:
    a, b = a.double(), b.double()
    d, scale = float((a - b).abs().max()), float(b.abs().max())
    return {"max_abs_diff": d, "max_abs_value": scale, "diff_over_max": d / max(scale, 1e-12)}


@torch.inference_mode()
def verify(a: argparse.Namespace) -> dict:
    from lewm.planning.objective import GoalCost

    cfg = preset(a.preset).model
    check_convertible(cfg)
    model = seeded_model(cfg, a.seed)
    if not a.no_perturb:
        perturb(model, a.seed)
    s, Ab, H, S, B = model.image_size, model.action_block_dim, a.horizon, a.samples, a.batch
    report: dict = {"bench": "peer_weights_verify", "preset": a.preset, "seed": a.seed}
    report["params"] = model.param_counts()["total"]
    with tempfile.TemporaryDirectory() as tmp:
        w = save_peer_weights(model, Path(tmp) / "peer.safetensors")
        for C in a.contexts:
            g = torch.Generator().manual_seed(a.seed + 100 * C)
            px = torch.randint(0, 256, (B, C, a.image_px, a.image_px, 3), generator=g).byte()
            goal = torch.randint(0, 256, (B, a.image_px, a.image_px, 3), generator=g).byte()
            hist = torch.randn(B, C - 1, Ab, generator=g) if C > 1 else None
            cand = torch.randn(B, S, H, Ab, generator=g)
            # their model gets exactly our pre-processed (resized, normalised) frames
            pre = model.preprocess(px.reshape(B * C, a.image_px, a.image_px, 3))
            inputs = {
                "pixels": pre.reshape(B, C, 3, s, s).contiguous(),
                "goal": model.preprocess(goal).contiguous(),
                "cand": cand,
            }
            if hist is not None:
                inputs["hist"] = hist
            src, dst = Path(tmp) / f"in_{C}.pt", Path(tmp) / f"out_{C}.pt"
            torch.save(inputs, src)
            args = ["--weights", str(w), "--check-costs", str(src), str(dst)]
            args += ["--model-json", json.dumps(peer_model_json(cfg))]
            if a.threads:
                args += ["--threads", str(a.threads)]
            run_peer(a.peer_python, args, a.shim)
            theirs = torch.load(dst, weights_only=True)

            z = model.encode(px)  # (B, C, D)
            z_goal = model.encode(goal[:, None])[:, 0]  # (B, D)
            pred = model.rollout(z, cand, hist)  # fast path (B, S, H, D)
            pred_ref = model.rollout_reference(z, cand, hist)
            pred_their_z = model.rollout(theirs["z"], cand, hist)  # predictor alone
            cost = GoalCost()(pred, z_goal)  # (B, S)
            rec = {
                "encoder_latents": _diff(z, theirs["z"]),
                "goal_latents": _diff(z_goal, theirs["z_goal"]),
                "one_step_pred": _diff(pred[:, :, 0], theirs["pred"][:, :, 0]),
                "rollout_pred_fast": _diff(pred, theirs["pred"]),
                "rollout_pred_reference": _diff(pred_ref, theirs["pred"]),
                "rollout_pred_from_their_z": _diff(pred_their_z, theirs["pred"]),
                "cost": _diff(cost, theirs["cost"]),
            }
            if C > 1:  # what their CEMSolver scores: sampled blocks stand in for executed ones
                rec["cost_vs_their_solver_call"] = _diff(cost, theirs["cost_solver_call"])
            checked = [k for k in rec if k != "cost_vs_their_solver_call"]
            worst = max(rec[k]["max_abs_diff"] / max(1.0, rec[k]["max_abs_value"]) for k in checked)
            rec["ok"] = worst <= a.tol
            report[f"context_{C}"] = rec
    report["ok"] = all(report[f"context_{C}"]["ok"] for C in a.contexts)
    report["tol"] = a.tol
    return report


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("out", nargs="?", help="safetensors file to write (convert mode)")
    p.add_argument("--preset", default="paper", choices=list(PRESETS))
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--checkpoint", default=None, help="convert a lewm checkpoint instead")
    p.add_argument("--vit-naming", choices=["v5", "v4"], default="v5")
    p.add_argument(
        "--verify",
        metavar="PEER_PYTHON",
        nargs="?",
        const="",
        default=None,
        help=f"compare with the authors' LeWM run by this python (default: ${PEER_PYTHON_ENV})",
    )
    p.add_argument(
        "--shim",
        default=os.environ.get(SHIM_ENV),
        help=f"torchvision stand-in folder for the peer's PYTHONPATH (default: ${SHIM_ENV})",
    )
    p.add_argument("--contexts", type=int, nargs="+", default=[1, 3])
    p.add_argument("--batch", type=int, default=2, help="episodes in the check")
    p.add_argument("--samples", type=int, default=4, help="candidate plans per episode")
    p.add_argument("--horizon", type=int, default=5)
    p.add_argument("--image-px", type=int, default=224, help="side of the random uint8 frames")
    p.add_argument("--no-perturb", action="store_true", help="check the plain random init")
    p.add_argument("--threads", type=int, default=0)
    p.add_argument("--tol", type=float, default=1e-4, help="max |diff| / max(1, max |value|)")
    a = p.parse_args()
    if a.threads:
        torch.set_num_threads(a.threads)
    if a.verify is not None:
        a.peer_python = peer_python(a.verify)
        rep = verify(a)
        print(json.dumps(rep))
        sys.exit(0 if rep["ok"] else 1)
    if not a.out:
        p.error("give OUT.safetensors, or --verify [PEER_PYTHON]")
    if a.checkpoint:
        model = load(a.checkpoint)
    else:
        model = seeded_model(preset(a.preset).model, a.seed)
    path = save_peer_weights(model, a.out, a.vit_naming)
    rec = {"bench": "peer_weights", "out": str(path), **model.param_counts()}
    print(json.dumps({**rec, "model_json": peer_model_json(model.config)}))


if __name__ == "__main__":
    main()
