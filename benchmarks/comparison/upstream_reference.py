"""Reference numbers from the paper authors' own code (stable-worldmodel 0.1.1) for lewm's
importer and exporter (``lewm.models.upstream``). Runs with the python of the authors' virtual
environment ($PEER_PYTHON, see benchmarks/README.md; needs hydra-core for their loader), never
with lewm's: it does not import lewm.

    # build their LeWM from a Hydra config with hydra.utils.instantiate, move every weight off its
    # init, save it with their save_pretrained (weights.pt + config.json), and record their
    # outputs on seeded inputs in reference.pt
    $PEER_PYTHON benchmarks/comparison/upstream_reference.py make --size small OUT_DIR
    $PEER_PYTHON benchmarks/comparison/upstream_reference.py make --size paper OUT_DIR
    # load a folder (e.g. written by `lewm export --format upstream`) with their load_pretrained
    # and compute the same outputs for the inputs of a reference.pt
    $PEER_PYTHON benchmarks/comparison/upstream_reference.py run CKPT_DIR IN.pt OUT.pt

Which transformers runs decides the ViT key names of weights.pt: 5.x writes
``encoder.layers.N.attention.q_proj``, 4.x (``PYTHONPATH=DIR_WITH_TRANSFORMERS_4``) writes
``encoder.encoder.layer.N.attention.attention.query``, as the Hugging Face mirrors hold.

``stable_pretraining`` (their ViT factory ``vit_hf``) pulls Lightning and torchvision; when it
is not installed, a stand-in module with the same ``vit_hf`` behaviour (a transformers
``ViTModel`` of the named size, intermediate size 4 x hidden, extra keys passed to ``ViTConfig``,
no pooling layer) is registered under its name, so the config's ``_target_`` resolves.

reference.pt holds, all float32 (B episodes, C context frames, S candidates, H horizon):
  inputs  pixels (B, C, 3, s, s) normalised frames; goal (B, 3, s, s); actions (B, T, Ab) action
          blocks; pred_z (B, T, D) latents and pred_actions (B, T, Ab) for the predictor;
          hist (B, C-1, Ab) executed blocks; cand (B, S, H, Ab) candidate plans
  outputs z (B, C, D) = encode(pixels); z_goal (B, D); act_emb (B, T, D) = action_encoder(actions);
          pred (B, T, D) = predict(pred_z, action_encoder(pred_actions)); rollout (B, S, H, D)
          predicted latents after each candidate block; cost (B, S) = get_cost for [hist, cand]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import types
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from peer_plan import import_peer  # noqa: E402  (the torchvision stand-in, then swm)

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/
from _shared import perturb  # noqa: E402

SIZES = {
    # the paper model: cfg.model of stable-worldmodel's scripts/train/config/lewm.yaml, resolved
    # for PushT (action_encoder.input_dim = frameskip 5 x action_dim 2)
    "paper": {
        "encoder": {"size": "tiny", "patch_size": 14, "image_size": 224},
        "embed_dim": 192,
        "history": 3,
        "pred": {"depth": 6, "heads": 16, "mlp_dim": 2048, "dim_head": 64},
        "proj_hidden": 2048,
        "action_in": 10,
    },
    # a few-kB model for lewm's test fixtures: explicit ViTConfig fields through vit_hf's kwargs
    "small": {
        "encoder": {
            "size": "tiny",
            "patch_size": 14,
            "image_size": 28,
            "hidden_size": 24,
            "num_hidden_layers": 2,
            "num_attention_heads": 2,
            "intermediate_size": 48,
        },
        "embed_dim": 16,
        "history": 3,
        "pred": {"depth": 2, "heads": 2, "mlp_dim": 32, "dim_head": 8},
        "proj_hidden": 32,
        "action_in": 10,
    },
}


def hydra_config(size: str) -> dict:
    """The model section exactly as their save_pretrained writes it (Hydra ``_target_`` form)."""
    s = SIZES[size]
    D = s["embed_dim"]
    width = s["encoder"].get("hidden_size", 192)

    def mlp(d_in: int) -> dict:
        return {
            "_target_": "stable_worldmodel.wm.lewm.module.MLP",
            "input_dim": d_in,
            "output_dim": D,
            "hidden_dim": s["proj_hidden"],
            "norm_fn": {"_target_": "torch.nn.BatchNorm1d", "_partial_": True},
        }

    return {
        "_target_": "stable_worldmodel.wm.lewm.LeWM",
        "encoder": {
            "_target_": "stable_pretraining.backbone.utils.vit_hf",
            **s["encoder"],
            "pretrained": False,
            "use_mask_token": False,
        },
        "predictor": {
            "_target_": "stable_worldmodel.wm.lewm.module.Predictor",
            "num_frames": s["history"],
            "input_dim": D,
            "hidden_dim": D,
            "output_dim": D,
            **s["pred"],
            "dropout": 0.1,
            "emb_dropout": 0.0,
        },
        "action_encoder": {
            "_target_": "stable_worldmodel.wm.lewm.module.Embedder",
            "input_dim": s["action_in"],
            "emb_dim": D,
        },
        "projector": mlp(width),
        "pred_proj": mlp(D),
    }


def _vit_hf(
    size="tiny", patch_size=16, image_size=224, pretrained=False, use_mask_token=True, **kw
):
    """Stand-in for ``stable_pretraining.backbone.utils.vit_hf`` (pretrained=False path)."""
    from transformers import ViTConfig, ViTModel

    sizes = {
        "tiny": (192, 12, 3),
        "small": (384, 12, 6),
        "base": (768, 12, 12),
        "large": (1024, 24, 16),
        "huge": (1280, 32, 16),
    }
    if pretrained:
        raise SystemExit("pretrained=True needs the network; LeWM configs use False")
    h, n, a = sizes[size]
    params = {"hidden_size": h, "num_hidden_layers": n, "num_attention_heads": a}
    params["intermediate_size"] = 4 * h
    params |= {"image_size": image_size, "patch_size": patch_size, **kw}
    model = ViTModel(ViTConfig(**params), add_pooling_layer=False, use_mask_token=use_mask_token)
    model.config.interpolate_pos_encoding = True
    return model


def ensure_vit_factory() -> str:
    try:
        import stable_pretraining.backbone.utils  # noqa: F401

        return "stable_pretraining"
    except Exception:
        for name in [m for m in sys.modules if m.split(".")[0] == "stable_pretraining"]:
            sys.modules.pop(name)
    pkg = types.ModuleType("stable_pretraining")
    backbone = types.ModuleType("stable_pretraining.backbone")
    utils = types.ModuleType("stable_pretraining.backbone.utils")
    utils.vit_hf = _vit_hf
    pkg.backbone, backbone.utils = backbone, utils
    pkg.__path__, backbone.__path__ = [], []  # packages, so "a.b.c" imports resolve
    sys.modules.update(
        {
            "stable_pretraining": pkg,
            "stable_pretraining.backbone": backbone,
            "stable_pretraining.backbone.utils": utils,
        }
    )
    return "stand-in"


def make_inputs(cfg: dict, seed: int, B: int = 2, C: int = 3, S: int = 5, H: int = 4) -> dict:
    g = torch.Generator().manual_seed(seed)
    s = cfg["encoder"]["image_size"]
    D = cfg["predictor"]["input_dim"]
    Ab = cfg["action_encoder"]["input_dim"]
    T = cfg["predictor"]["num_frames"]
    return {
        "pixels": torch.randn(B, C, 3, s, s, generator=g),
        "goal": torch.randn(B, 3, s, s, generator=g),
        "actions": torch.randn(B, T, Ab, generator=g),
        "pred_z": torch.randn(B, T, D, generator=g),
        "pred_actions": torch.randn(B, T, Ab, generator=g),
        "hist": torch.randn(B, C - 1, Ab, generator=g),
        "cand": torch.randn(B, S, H, Ab, generator=g),
    }


@torch.inference_mode()
def outputs(model: torch.nn.Module, d: dict) -> dict:
    """Their model's numbers for the inputs ``d`` (see the module docstring)."""
    model.eval()
    px, goal, hist, cand = d["pixels"], d["goal"], d["hist"], d["cand"]
    B, C = px.shape[:2]
    S, H, Ab = cand.shape[1:]
    z = model.encode({"pixels": px})["emb"]
    z_goal = model.encode({"pixels": goal[:, None]})["emb"][:, 0]
    act_emb = model.action_encoder(d["actions"])
    pred = model.predict(d["pred_z"], model.action_encoder(d["pred_actions"]))
    seq = torch.cat([hist[:, None].expand(B, S, C - 1, Ab), cand], dim=2)
    cost, roll = [], []
    for b in range(B):  # their criterion broadcasts goals for one episode at a time
        info = {
            "pixels": px[b : b + 1, None].expand(1, S, *px.shape[1:]),
            "goal": goal[b : b + 1, None, None].expand(1, S, 1, *goal.shape[1:]),
            "action": torch.zeros(1, S, C, Ab),
        }
        cost.append(model.get_cost(info, seq[b : b + 1]))
        roll.append(info["predicted_emb"][:, :, C:])
    out = {
        "z": z,
        "z_goal": z_goal,
        "act_emb": act_emb,
        "pred": pred,
        "rollout": torch.cat(roll),
        "cost": torch.cat(cost),
    }
    return {k: v.float().contiguous() for k, v in out.items()}


def make(a: argparse.Namespace) -> dict:
    from hydra.utils import instantiate
    from omegaconf import OmegaConf
    from stable_worldmodel.wm.utils import save_pretrained

    cfg = hydra_config(a.size)
    torch.manual_seed(a.seed)
    model = instantiate(cfg)
    perturb(model, a.seed)
    model.eval()
    out = Path(a.out)
    if out.exists():
        raise SystemExit(f"{out} already exists")
    with tempfile.TemporaryDirectory() as tmp:
        # as their training script calls it: the (Hydra) OmegaConf model config
        save_pretrained(model, run_name="ref", config=OmegaConf.create(cfg), cache_dir=tmp)
        src = Path(tmp) / "checkpoints" / "ref"
        shutil.copytree(src, out)
    d = make_inputs(cfg, a.seed + 1000)
    torch.save({"inputs": d, "outputs": outputs(model, d)}, out / "reference.pt")
    return {"params": sum(p.numel() for p in model.parameters()), "keys": len(model.state_dict())}


def run(a: argparse.Namespace) -> dict:
    from stable_worldmodel.wm.utils import load_pretrained

    path = Path(a.checkpoint).resolve()
    model = load_pretrained(str(path / "weights.pt"), cache_dir=str(path.parent))
    d = torch.load(a.inputs, weights_only=True)
    d = d.get("inputs", d)
    torch.save(outputs(model, d), a.output)
    return {"params": sum(p.numel() for p in model.parameters())}


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = p.add_subparsers(dest="mode", required=True)
    m = sub.add_parser("make", help="their model + save_pretrained + reference outputs")
    m.add_argument("out")
    m.add_argument("--size", choices=list(SIZES), default="small")
    m.add_argument("--seed", type=int, default=0)
    r = sub.add_parser("run", help="load_pretrained a folder; outputs for IN's inputs")
    r.add_argument("checkpoint")
    r.add_argument("inputs")
    r.add_argument("output")
    p.add_argument("--threads", type=int, default=0)
    a = p.parse_args()
    if a.threads:
        torch.set_num_threads(a.threads)
    os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
    tv = import_peer()
    factory = ensure_vit_factory()
    import transformers

    rec = make(a) if a.mode == "make" else run(a)
    rec |= {
        "bench": f"upstream_reference_{a.mode}",
        "transformers": transformers.__version__,
        "torchvision": tv,
        "vit_hf": factory,
    }
    print(json.dumps(rec))


if __name__ == "__main__":
    main()
