"""The paper authors' checkpoint format, both ways: import a ``weights.pt`` + ``config.json``
folder written by stable-worldmodel's ``save_pretrained`` (or le-wm's Hugging Face mirrors) as a
lewm :class:`~lewm.models.LeWM`, and export a lewm LeWM so that the authors' ``load_pretrained``
runs it.

    model = import_upstream("hf_pusht/", normalizer=Normalizer.fit({"action": A}))
    export_upstream(model, "for_swm/")           # weights.pt + config.json (+ lewm.json)

What is read
    ``config.json`` in either form the authors publish:

    * the Hydra form ``save_pretrained`` writes (``cfg.model`` of their ``lewm.yaml``, resolved):
      every section carries a ``_target_`` (``stable_worldmodel.wm.lewm.LeWM`` or le-wm's
      ``jepa.JEPA``; ``...vit_hf``, ``...Predictor``/``ARPredictor``, ``...Embedder``, ``...MLP``);
    * the plain form of le-wm's README: the same sections without ``_target_`` (optionally under a
      top-level ``"model"`` key).

    Keys that do not change the computation lewm performs (``_target_``, ``pretrained``,
    ``use_mask_token``, ``norm_fn``, ``dropout``, ``emb_dropout``, ...) are accepted; a setting
    lewm cannot reproduce (a non-BatchNorm projector, a ViT with another activation, a predictor
    whose width differs from the latent size) is one :class:`CheckpointError` naming it.

    ``weights.pt`` is read with ``torch.load(weights_only=True)``: a plain ``state_dict`` (or one
    wrapped in ``{"state_dict": ...}`` / ``{"model": ...}``; a common ``model.`` prefix is
    dropped). ViT keys may carry transformers 4.x names (``encoder.encoder.layer.N.attention.
    attention.query``, the Hugging Face mirrors) or 5.x names (``encoder.layers.N.attention.
    q_proj``). Loading is strict: every tensor of the file is used (only the ViT's mask token,
    which the authors' LeWM never uses, may be left over), every weight of lewm's model comes from
    the file, and a missing key, a wrong shape or a NaN is one error naming the tensor.

What the format does not hold
    The frameskip (actions per block): the action encoder sees ``frameskip * action_dim`` values;
    the authors use 5 for every environment, which is the default here (``frameskip=`` to
    change). The action normaliser: the authors' evaluation z-scores actions with statistics of
    the dataset's ``action`` column (all rows, population std; ``sklearn.StandardScaler``), so
    ``lewm import --data FILE`` fits the same on the file you plan with.

Key names (ours -> theirs; "E.i" = ``encoder.encoder.layer.{i}``, "P.i" = ``predictor.blocks.{i}``)

    E.i.attention.attention.{query,key,value}  encoder.layers.{i}.attention.{q,k,v}_proj (5.x)
    E.i.attention.output.dense                 encoder.layers.{i}.attention.o_proj       (5.x)
    E.i.intermediate.dense / output.dense      encoder.layers.{i}.mlp.fc1 / fc2          (5.x)
    E.i.layernorm_{before,after}               encoder.layers.{i}.layernorm_{before,after}
    (4.x names are ours: unchanged; encoder.embeddings.* and encoder.layernorm.* in both)
    projector.net.*                            projector.net.*
    pred_projector.net.*                       pred_proj.net.*
    action_encoder.smooth (Linear)             action_encoder.patch_embed (Conv1d, kernel 1)
    action_encoder.mlp.{0,2}                   action_encoder.embed.{0,2}
    predictor.pos_embedding                    predictor.pos_embedding
    P.i.attn.to_out                            predictor.transformer.layers.{i}.attn.to_out.0
    P.i.<rest>                                 predictor.transformer.layers.{i}.<rest>
    predictor.norm                             predictor.transformer.norm

Pre-processing is not part of either model: the authors' ``encode`` takes frames already resized
to the image size and normalised with ImageNet statistics; lewm's ``LeWM.preprocess`` does that
from uint8 frames (``encoder.mean``/``std`` are ImageNet's in an imported model).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import pickle
import re
import shutil
import tempfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from lewm.data.normalize import Normalizer
from lewm.models.checkpoint import CheckpointError
from lewm.models.encoders import IMAGENET_MEAN, IMAGENET_STD, EncoderConfig
from lewm.models.lewm import LeWM, LeWMConfig
from lewm.models.predictor import PredictorConfig
from lewm.utils.config import ConfigError, to_dict
from lewm.utils.io import ensure_output_dir, publish_dir, write_error

UPSTREAM_CONFIG = "config.json"
UPSTREAM_WEIGHTS = "weights.pt"
SIDECAR = "lewm.json"  # written by export_upstream: what the authors' format cannot hold
DEFAULT_FRAMESKIP = 5  # every environment of the paper
MAX_CONFIG_BYTES = 4 * 2**20

# stable_pretraining.backbone.utils.vit_hf: named sizes (intermediate size = 4 x hidden size)
VIT_SIZES: dict[str, tuple[int, int, int]] = {  # hidden, layers, heads
    "tiny": (192, 12, 3),
    "small": (384, 12, 6),
    "base": (768, 12, 12),
    "large": (1024, 24, 16),
    "huge": (1280, 32, 16),
}
# ViTConfig fields lewm's encoder computes exactly as transformers does at these values
_VIT_FIXED = {
    "hidden_act": "gelu",
    "layer_norm_eps": 1e-12,
    "qkv_bias": True,
    "num_channels": 3,
}
_VIT_IGNORED = {  # no effect on a ViTModel's outputs in eval mode / with the LeWM pipeline
    "hidden_dropout_prob",
    "attention_probs_dropout_prob",
    "initializer_range",
    "encoder_stride",
    "pooler_output_size",
    "pooler_act",
    "interpolate_pos_encoding",
}
# the classes a config may name (last part of ``_target_``), per section
_TARGETS = {
    "model": {"LeWM", "JEPA"},
    "encoder": {"vit_hf"},
    "predictor": {"Predictor", "ARPredictor"},
    "action_encoder": {"Embedder"},
    "projector": {"MLP"},
    "pred_proj": {"MLP"},
}
# what export_upstream names (stable-worldmodel's own classes)
SWM_TARGETS = {
    "model": "stable_worldmodel.wm.lewm.LeWM",
    "encoder": "stable_pretraining.backbone.utils.vit_hf",
    "predictor": "stable_worldmodel.wm.lewm.module.Predictor",
    "action_encoder": "stable_worldmodel.wm.lewm.module.Embedder",
    "projector": "stable_worldmodel.wm.lewm.module.MLP",
    "pred_proj": "stable_worldmodel.wm.lewm.module.MLP",
    "norm_fn": "torch.nn.BatchNorm1d",
}
MASK_TOKEN = "encoder.embeddings.mask_token"  # vit_hf(use_mask_token=True); LeWM never uses it


# -- key names ----------------------------------------------------------------------------------

_VIT_V5 = [
    (r"attention\.attention\.query\.", "attention.q_proj."),
    (r"attention\.attention\.key\.", "attention.k_proj."),
    (r"attention\.attention\.value\.", "attention.v_proj."),
    (r"attention\.output\.dense\.", "attention.o_proj."),
    (r"intermediate\.dense\.", "mlp.fc1."),
    (r"output\.dense\.", "mlp.fc2."),
]
VIT_NAMINGS = ("v5", "v4")  # transformers >= 5 / < 5


def upstream_key(key: str, vit_naming: str = "v5") -> str:
    """The authors' name of one of lewm's LeWM ``state_dict`` keys (``vit_naming``: the ViT key
    names of transformers 5.x, ``"v5"``, or 4.x, ``"v4"``)."""
    if vit_naming not in VIT_NAMINGS:
        raise ValueError(f"vit_naming must be one of {VIT_NAMINGS}, got {vit_naming!r}")
    if key.startswith("encoder."):
        m = re.fullmatch(r"encoder\.encoder\.layer\.(\d+)\.(.+)", key)
        if m is None or vit_naming == "v4":
            return key  # embeddings.*, layernorm.* (and every key under the 4.x names)
        i, rest = m.groups()
        for pat, rep in _VIT_V5:
            if re.match(pat, rest):
                rest = re.sub(pat, rep, rest, count=1)
                break
        return f"encoder.layers.{i}.{rest}"
    if key.startswith("projector.net."):
        return key
    if key.startswith("pred_projector.net."):
        return "pred_proj." + key[len("pred_projector.") :]
    if key.startswith("action_encoder.smooth."):
        return "action_encoder.patch_embed." + key[len("action_encoder.smooth.") :]
    m = re.fullmatch(r"action_encoder\.mlp\.([02])\.(weight|bias)", key)
    if m:
        return f"action_encoder.embed.{m[1]}.{m[2]}"
    if key == "predictor.pos_embedding":
        return key
    m = re.fullmatch(r"predictor\.norm\.(weight|bias)", key)
    if m:
        return f"predictor.transformer.norm.{m[1]}"
    m = re.fullmatch(r"predictor\.blocks\.(\d+)\.(.+)", key)
    if m:
        i, rest = m.groups()
        rest = re.sub(r"^attn\.to_out\.", "attn.to_out.0.", rest)
        return f"predictor.transformer.layers.{i}.{rest}"
    raise KeyError(f"no upstream name for {key!r}")


_CONV_KEY = "action_encoder.patch_embed.weight"  # Conv1d (out, in, 1) <-> our Linear (out, in)


def to_upstream_state_dict(model: LeWM, vit_naming: str = "v5") -> dict[str, Tensor]:
    """lewm's LeWM weights under the authors' names (new contiguous CPU tensors)."""
    check_exportable(model.config)
    out: dict[str, Tensor] = {}
    for k, v in model.state_dict().items():
        name = upstream_key(k, vit_naming)
        v = v.detach().to("cpu").clone()
        if name == _CONV_KEY:
            v = v[:, :, None]
        if name in out:  # pragma: no cover - the map is one-to-one (tested)
            raise KeyError(f"two keys map to {name!r}")
        out[name] = v.contiguous()
    return out


# -- config.json -> LeWMConfig ------------------------------------------------------------------


@dataclass
class UpstreamConfig:
    """What :func:`parse_upstream_config` read: lewm's config, plus the keys it accepted without
    use and the facts the format does not record."""

    config: LeWMConfig
    ignored: list[str] = field(default_factory=list)
    mask_token: bool = False  # the ViT was built with a (never used) mask token
    action_block_dim: int | None = None  # from config.json (None: taken from the weights)
    frameskip_assumed: bool = True


def _fail(file: Path | str, msg: str) -> CheckpointError:
    return CheckpointError(f"{file}: {msg}")


def _target(section: dict, name: str, file: Path | str) -> None:
    t = section.get("_target_")
    if t is None:
        return
    if not isinstance(t, str) or t.rsplit(".", 1)[-1] not in _TARGETS[name]:
        allowed = " or ".join(sorted(_TARGETS[name]))
        raise _fail(
            file,
            f"{name}._target_ is {t!r}, not the authors' LeWM ({allowed}): lewm imports LeWM "
            "checkpoints only",
        )


class _Section:
    """Typed reads of one config section that remember which keys were used."""

    def __init__(self, data: Any, name: str, file: Path | str) -> None:
        if not isinstance(data, dict):
            raise _fail(file, f"{name} must be an object, got {type(data).__name__}")
        self.data, self.name, self.file, self.used = data, name, file, {"_target_"}

    def has(self, key: str) -> bool:
        return key in self.data and self.data[key] is not None

    def get(self, key: str, default: Any = None, *, kind: type | tuple = int) -> Any:
        self.used.add(key)
        if key not in self.data or self.data[key] is None:
            if default is None:
                raise _fail(self.file, f"{self.name}.{key} is missing")
            return default
        v = self.data[key]
        if isinstance(v, str) and (v == "???" or v.startswith("${")):
            raise _fail(
                self.file,
                f"{self.name}.{key} is {v!r}, an unresolved Hydra value; save the config "
                "resolved (OmegaConf.to_container(cfg, resolve=True), as save_pretrained does)",
            )
        ok = isinstance(v, kind) and not isinstance(v, bool) if kind is int else isinstance(v, kind)
        if kind is float:
            ok = isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)
        if not ok:
            want = {int: "an integer", float: "a number", str: "a string", bool: "true/false"}
            raise _fail(
                self.file,
                f"{self.name}.{key} must be {want.get(kind, kind)}, got {v!r:.60}",
            )
        if kind is int and v < 1:
            raise _fail(self.file, f"{self.name}.{key} must be >= 1, got {v}")
        return v

    def ignored(self) -> list[str]:
        return [f"{self.name}.{k}" for k in self.data if k not in self.used]


def _unwrap_config(cfg: Any, file: Path | str) -> dict:
    if not isinstance(cfg, dict):
        raise _fail(file, f"config.json must hold an object, got {type(cfg).__name__}")
    if "encoder" not in cfg and isinstance(cfg.get("model"), dict):
        cfg = cfg["model"]  # a whole training config: its model section
    missing = [k for k in ("encoder", "predictor", "action_encoder") if k not in cfg]
    if missing:
        raise _fail(
            file,
            f"not an authors' LeWM config: no {', '.join(missing)} section (found keys "
            f"{sorted(cfg)[:8]})",
        )
    return cfg


def parse_upstream_config(
    cfg: Any,
    *,
    frameskip: int | None = None,
    action_block_dim: int | None = None,
    file: Path | str = UPSTREAM_CONFIG,
) -> UpstreamConfig:
    """An authors' ``config.json`` (already parsed) as a lewm :class:`LeWMConfig`.

    ``action_block_dim`` (the action encoder's input width, from the weights) stands in for a
    missing ``action_encoder.input_dim``; ``frameskip`` (default 5) splits it into frameskip x
    action_dim.
    """
    cfg = _unwrap_config(cfg, file)
    top = _Section(cfg, "model", file)
    _target(cfg, "model", file)
    ignored: list[str] = []

    # encoder: stable_pretraining's vit_hf(size, patch_size=16, image_size=224, **ViTConfig)
    enc = _Section(cfg["encoder"], "encoder", file)
    top.used.add("encoder")
    _target(enc.data, "encoder", file)
    kwargs = dict(enc.data)
    size_config = kwargs.get("size_config")
    if size_config is not None:  # newer stable_pretraining: explicit ViTConfig fields
        if not isinstance(size_config, dict):
            raise _fail(file, "encoder.size_config must be an object")
        enc.used.add("size_config")
        kwargs = {**kwargs, **size_config}
        enc = _Section(kwargs, "encoder", file)
        enc.used |= {"size_config"}
    size = enc.get("size", "tiny", kind=str)
    if size not in VIT_SIZES and size_config is None:  # vit_hf refuses it too
        raise _fail(file, f"encoder.size {size!r} is none of {sorted(VIT_SIZES)}")
    hidden, layers, heads = VIT_SIZES.get(size, (0, 0, 0))
    hidden = enc.get("hidden_size", hidden or None)
    layers = enc.get("num_hidden_layers", layers or None)
    heads = enc.get("num_attention_heads", heads or None)
    mlp = enc.get("intermediate_size", 4 * hidden)
    patch = enc.get("patch_size", 16)
    image = enc.get("image_size", 224)
    for key, want in _VIT_FIXED.items():
        if key in kwargs:
            enc.used.add(key)
            got = kwargs[key]
            same = math.isclose(got, want) if isinstance(want, float) else got == want
            if not same:
                raise _fail(
                    file,
                    f"encoder.{key} = {got!r}: lewm's ViT computes with {key} = {want!r} "
                    "(transformers' default) only",
                )
    mask_token = bool(kwargs.get("use_mask_token", True))  # vit_hf's default is True
    enc.used |= {"use_mask_token", "pretrained"} | (_VIT_IGNORED & set(kwargs))
    try:
        encoder = EncoderConfig(
            kind="vit",
            image_size=image,
            width=hidden,
            patch_size=patch,
            depth=layers,
            heads=heads,
            mlp_dim=mlp,
            mean=IMAGENET_MEAN,
            std=IMAGENET_STD,
        )
    except ConfigError as e:
        raise _fail(file, f"encoder: {e}") from e
    ignored += enc.ignored()

    # predictor: Predictor / ARPredictor(num_frames, depth, heads, mlp_dim, input_dim, ...)
    pr = _Section(cfg["predictor"], "predictor", file)
    top.used.add("predictor")
    _target(pr.data, "predictor", file)
    D = pr.get("input_dim")
    for key in ("hidden_dim", "output_dim"):
        v = pr.get(key, D)
        if v != D:
            raise _fail(
                file,
                f"predictor.{key} = {v} differs from predictor.input_dim = {D}: lewm's "
                "predictor works at the latent width (no input/output projections)",
            )
    try:
        predictor = PredictorConfig(
            history=pr.get("num_frames"),
            depth=pr.get("depth"),
            heads=pr.get("heads"),
            head_dim=pr.get("dim_head", 64),
            mlp_dim=pr.get("mlp_dim"),
            dropout=float(pr.get("dropout", 0.0, kind=float)),
        )
    except ConfigError as e:
        raise _fail(file, f"predictor: {e}") from e
    if predictor.heads == 1 and predictor.head_dim == D:
        raise _fail(
            file,
            "predictor with heads = 1 and dim_head = input_dim has no attention output layer in "
            "the authors' code; lewm's predictor always has one",
        )
    emb_drop = pr.get("emb_dropout", 0.0, kind=float)
    if emb_drop:
        ignored.append(f"predictor.emb_dropout={emb_drop} (training only; lewm has none)")
    ignored += pr.ignored()

    # action encoder: Embedder(input_dim, smoothed_dim=10, emb_dim=10, mlp_scale=4)
    ae = _Section(cfg["action_encoder"], "action_encoder", file)
    top.used.add("action_encoder")
    _target(ae.data, "action_encoder", file)
    raw_in = ae.data.get("input_dim")
    if raw_in in (None, "???"):
        if action_block_dim is None:
            raise _fail(file, "action_encoder.input_dim is missing (and no weights to read it)")
        block, ae_used = action_block_dim, True
        ae.used.add("input_dim")
    else:
        block, ae_used = ae.get("input_dim"), False
    smooth = ae.get("smoothed_dim", 10)
    emb_dim = ae.get("emb_dim", 10)
    scale = ae.get("mlp_scale", 4)
    if emb_dim != D:
        raise _fail(
            file,
            f"action_encoder.emb_dim = {emb_dim} differs from predictor.input_dim = {D} (the "
            "predictor is conditioned on action embeddings of the latent width)",
        )
    ignored += ae.ignored()
    del ae_used

    # projectors: MLP(input_dim, hidden_dim, output_dim, norm_fn=BatchNorm1d)
    hidden_dims = []
    for name, d_in in (("projector", hidden), ("pred_proj", D)):
        if cfg.get(name) is None:
            raise _fail(
                file,
                f"no {name} section: lewm's LeWM has both BatchNorm MLP projectors (an "
                "identity projector is not supported)",
            )
        sec = _Section(cfg[name], name, file)
        top.used.add(name)
        _target(sec.data, name, file)
        got_in, got_out = sec.get("input_dim", d_in), sec.get("output_dim", D)
        if got_in != d_in or got_out != D:
            raise _fail(
                file,
                f"{name} maps {got_in} -> {got_out}, lewm's LeWM needs {d_in} -> {D} (encoder "
                "width -> latent for projector, latent -> latent for pred_proj)",
            )
        hidden_dims.append(sec.get("hidden_dim"))
        norm = sec.data.get("norm_fn")
        sec.used |= {"norm_fn", "act_fn"}
        if isinstance(norm, dict):
            t = str(norm.get("_target_", ""))
            if t.rsplit(".", 1)[-1] != "BatchNorm1d":
                raise _fail(
                    file, f"{name}.norm_fn is {t!r}: lewm's projectors use BatchNorm1d only"
                )
        elif norm is not None and "BatchNorm1d" not in str(norm):
            raise _fail(file, f"{name}.norm_fn is {norm!r}: lewm's projectors use BatchNorm1d only")
        act = sec.data.get("act_fn")
        act_name = str(act.get("_target_", "")) if isinstance(act, dict) else str(act)
        if act is not None and "GELU" not in act_name:
            raise _fail(file, f"{name}.act_fn is {act!r}: lewm's projectors use GELU only")
        ignored += sec.ignored()
    if hidden_dims[0] != hidden_dims[1]:
        raise _fail(
            file,
            f"projector.hidden_dim {hidden_dims[0]} != pred_proj.hidden_dim {hidden_dims[1]}: "
            "lewm's projectors share one width (model.projector_hidden)",
        )
    top.used |= {"embed_dim", "history_size"}  # le-wm's interpolation helpers
    ignored += top.ignored()

    fs = DEFAULT_FRAMESKIP if frameskip is None else int(frameskip)
    if fs < 1 or block % fs:
        raise _fail(
            file,
            f"the action encoder takes {block} values per block, not a multiple of frameskip "
            f"{fs}: give the frameskip the model was trained with (lewm import --frameskip K)",
        )
    if action_block_dim is not None and action_block_dim != block:
        raise _fail(
            file,
            f"action_encoder.input_dim is {block} but weights.pt's action encoder takes "
            f"{action_block_dim} values",
        )
    try:
        config = LeWMConfig(
            latent_dim=D,
            projector_hidden=hidden_dims[0],
            action_dim=block // fs,
            frameskip=fs,
            action_smooth_dim=smooth,
            action_hidden=scale * emb_dim,
            encoder=encoder,
            predictor=predictor,
        )
    except ConfigError as e:
        raise _fail(file, str(e)) from e
    return UpstreamConfig(
        config=config,
        ignored=ignored,
        mask_token=mask_token,
        action_block_dim=block,
        frameskip_assumed=frameskip is None,
    )


# -- weights.pt ---------------------------------------------------------------------------------


def read_upstream_weights(file: str | os.PathLike) -> dict[str, Tensor]:
    """The tensors of an authors' ``weights.pt`` (``torch.load(weights_only=True)``, on the CPU).

    Accepts a plain ``state_dict`` or one wrapped in ``{"state_dict": ...}`` / ``{"model": ...}``
    (a key prefix ``model.`` shared by every key is dropped). Anything else, a pickle holding
    Python objects, or a truncated file is one :class:`CheckpointError`.
    """
    file = Path(file)
    if not file.is_file():
        raise CheckpointError(f"{file} does not exist")
    try:
        obj = torch.load(file, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        raise CheckpointError(
            f"{file} holds Python objects besides tensors, which lewm does not unpickle "
            "(torch.load(weights_only=True)); save the weights with "
            "torch.save(model.state_dict(), 'weights.pt') and import that"
        ) from e
    except (RuntimeError, EOFError, OSError, zipfile.BadZipFile, ValueError) as e:
        if isinstance(e, OSError) and not isinstance(e, EOFError) and e.errno is not None:
            raise
        raise CheckpointError(
            f"{file} is truncated or not a PyTorch weights file ({' '.join(str(e).split())[:160]})"
            "; download or copy it again"
        ) from e
    state = obj
    for wrapper in ("state_dict", "model"):
        if isinstance(state, dict) and isinstance(state.get(wrapper), dict):
            if not any(isinstance(v, Tensor) for v in state.values()):
                state = state[wrapper]
    if not isinstance(state, dict) or not state:
        raise CheckpointError(f"{file} holds no state_dict (got {type(obj).__name__})")
    bad = [k for k, v in state.items() if not isinstance(k, str) or not isinstance(v, Tensor)]
    if bad:
        raise CheckpointError(
            f"{file}: entries that are not named tensors: {[str(b) for b in bad[:5]]}"
        )
    if all(k.startswith("model.") for k in state):
        state = {k[len("model.") :]: v for k, v in state.items()}
    return state


def _block_dim_from_weights(state: dict[str, Tensor]) -> int | None:
    w = state.get(_CONV_KEY)
    return int(w.shape[1]) if w is not None and w.ndim == 3 else None


def _fill(model: LeWM, theirs: dict[str, Tensor], file: Path, mask_token: bool) -> str:
    """Copy the authors' tensors into ``model`` (strict); returns the ViT naming found."""
    own = model.state_dict()
    used: set[str] = set()
    namings: set[str] = set()
    new: dict[str, Tensor] = {}
    for key, mine in own.items():
        names = dict.fromkeys(upstream_key(key, n) for n in VIT_NAMINGS)  # ordered, unique
        found = [n for n in names if n in theirs]
        if not found:
            raise CheckpointError(
                f"{file} has no tensor {' or '.join(names)} (lewm's {key}); the file does not "
                "hold the model config.json describes"
            )
        name = found[0]
        if key.startswith("encoder.encoder.layer."):
            namings.add("v5" if name.startswith("encoder.layers.") else "v4")
        t = theirs[name]
        if name == _CONV_KEY and t.ndim == 3 and t.shape[-1] == 1:
            t = t[..., 0]
        if tuple(t.shape) != tuple(mine.shape):
            want = (*mine.shape, 1) if name == _CONV_KEY else tuple(mine.shape)
            raise CheckpointError(
                f"{file}: {name} has shape {tuple(theirs[name].shape)}, config.json describes "
                f"{tuple(want)}"
            )
        if t.is_floating_point():
            if not bool(torch.isfinite(t).all()):
                raise CheckpointError(f"{file}: {name} holds NaN or infinite values")
            t = t.to(mine.dtype)
        elif t.dtype != mine.dtype:
            t = t.to(mine.dtype)
        new[key] = t
        used.add(name)
    left = [k for k in theirs if k not in used and not (k == MASK_TOKEN and mask_token)]
    if left:
        raise CheckpointError(
            f"{file} holds {len(left)} tensor(s) the model config.json describes has no place "
            f"for: {left[:5]}"
        )
    if len(namings) > 1:
        raise CheckpointError(f"{file} mixes transformers 4.x and 5.x ViT key names")
    model.load_state_dict(new, strict=True)
    return namings.pop() if namings else "v5"


# -- import -------------------------------------------------------------------------------------


def find_upstream(path: str | os.PathLike) -> tuple[Path, Path]:
    """``(weights file, config.json)`` of an authors' checkpoint: a folder with ``config.json``
    and ``weights.pt`` (or exactly one ``.pt`` file), or a ``.pt`` file beside a ``config.json``
    (stable-worldmodel's ``load_pretrained`` accepts the same)."""
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"{path} does not exist")
    if path.is_file():
        if path.suffix != ".pt":
            raise CheckpointError(
                f"{path}: give the checkpoint folder (weights.pt + config.json) or its .pt file"
            )
        weights, folder = path, path.parent
    else:
        folder = path
        pts = sorted(folder.glob("*.pt"))
        if (folder / UPSTREAM_WEIGHTS).is_file():
            weights = folder / UPSTREAM_WEIGHTS
        elif len(pts) == 1:
            weights = pts[0]
        elif not pts:
            raise CheckpointError(
                f"{folder} has no weights.pt (an authors' checkpoint is a folder with "
                "weights.pt and config.json)"
            )
        else:
            raise CheckpointError(
                f"{folder} holds {len(pts)} .pt files ({', '.join(p.name for p in pts[:4])}); "
                "give the one to import"
            )
    config = folder / UPSTREAM_CONFIG
    if not config.is_file():
        raise CheckpointError(f"{folder} has no config.json beside {weights.name}")
    return weights, config


def is_upstream_checkpoint(path: str | os.PathLike) -> bool:
    """True for an authors' checkpoint folder (or .pt file) rather than a lewm one."""
    try:
        _, config = find_upstream(path)
    except CheckpointError:
        return False
    try:
        return json.loads(config.read_text()).get("format") != "lewm-checkpoint"
    except (OSError, ValueError, AttributeError):
        return False


def _read_config_file(file: Path) -> Any:
    if file.stat().st_size > MAX_CONFIG_BYTES:
        raise CheckpointError(f"{file} is {file.stat().st_size} bytes, not a model config")
    try:
        return json.loads(file.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise CheckpointError(f"{file} is not valid JSON ({e})") from e


def _sha256(file: Path) -> str:
    h = hashlib.sha256()
    with open(file, "rb") as f:
        for chunk in iter(lambda: f.read(2**20), b""):
            h.update(chunk)
    return h.hexdigest()


def import_upstream(
    path: str | os.PathLike,
    *,
    frameskip: int | None = None,
    normalizer: Normalizer | None = None,
    metadata: dict[str, Any] | None = None,
) -> LeWM:
    """Build a lewm :class:`LeWM` from an authors' checkpoint (see the module docstring).

    ``frameskip``: actions per block (default: the one recorded by :func:`export_upstream`, else
    5). ``normalizer``: action statistics for planning (``Normalizer.fit({"action": A})`` on the
    dataset's action column, as the authors' evaluation does); without one the model encodes and
    predicts but cannot plan. ``metadata`` is merged into ``model.metadata`` (e.g. ``env``).
    """
    weights, config_file = find_upstream(path)
    raw = _read_config_file(config_file)
    sidecar = weights.parent / SIDECAR
    side = _read_config_file(sidecar) if sidecar.is_file() else {}
    if not isinstance(side, dict):
        side = {}
    if frameskip is None and isinstance(side.get("frameskip"), int):
        frameskip = side["frameskip"]
    state = read_upstream_weights(weights)
    parsed = parse_upstream_config(
        raw,
        frameskip=frameskip,
        action_block_dim=_block_dim_from_weights(state),
        file=config_file,
    )
    model = LeWM(parsed.config)
    naming = _fill(model, state, weights, parsed.mask_token)
    if normalizer is None and isinstance(side.get("normalizer"), dict):
        try:
            normalizer = Normalizer.from_dict(side["normalizer"])
        except (KeyError, TypeError, ValueError) as e:
            raise CheckpointError(f"{sidecar}: unreadable normalizer ({e})") from e
    if normalizer is not None and "action" in normalizer:
        if normalizer.dim("action") != parsed.config.action_dim:
            raise CheckpointError(
                f"the action statistics have {normalizer.dim('action')} values, the model's "
                f"action_dim is {parsed.config.action_dim} (frameskip {parsed.config.frameskip}); "
                "use the dataset the model was trained on, or the right --frameskip"
            )
    model.normalizer = normalizer
    meta = dict(side.get("metadata") or {}) if isinstance(side.get("metadata"), dict) else {}
    meta.pop("imported_from", None)
    meta["imported_from"] = {
        "format": "stable-worldmodel",
        "path": str(weights.resolve()),
        "sha256": _sha256(weights),
        "vit_key_names": "transformers-5" if naming == "v5" else "transformers-4",
        "frameskip": parsed.config.frameskip,
        "frameskip_assumed": parsed.frameskip_assumed and "frameskip" not in side,
        "ignored_config_keys": parsed.ignored,
    }
    meta.update(metadata or {})
    model.metadata = meta
    return model.eval()


# -- comparison with the authors' outputs ------------------------------------------------------


@torch.inference_mode()
def reference_outputs(model: LeWM, inputs: dict[str, Tensor]) -> dict[str, Tensor]:
    """lewm's numbers in the authors' conventions, for checks against their code
    (``benchmarks/comparison/upstream_reference.py`` writes the same keys from theirs).

    inputs: ``pixels`` (B, C, 3, s, s) and ``goal`` (B, 3, s, s) frames already resized and
    normalised (their ``encode`` takes those); ``actions`` (B, T, Ab); ``pred_z`` (B, T, D) and
    ``pred_actions`` (B, T, Ab); ``hist`` (B, C-1, Ab) executed and ``cand`` (B, S, H, Ab)
    candidate blocks. Returns ``z``, ``z_goal``, ``act_emb``, ``pred``, ``rollout`` (B, S, H, D)
    and ``cost`` (B, S): squared distance of each candidate's last predicted latent to the goal's,
    what CEM ranks.
    """
    model.eval()
    px = inputs["pixels"]
    B, C = px.shape[:2]
    z = model.projector(model.encoder(px.flatten(0, 1))).reshape(B, C, -1)
    z_goal = model.projector(model.encoder(inputs["goal"]))
    hist = inputs["hist"] if C > 1 else None
    rollout = model.rollout(z, inputs["cand"], hist)
    return {
        "z": z,
        "z_goal": z_goal,
        "act_emb": model.embed_actions(inputs["actions"]),
        "pred": model.predict(inputs["pred_z"], model.embed_actions(inputs["pred_actions"])),
        "rollout": rollout,
        "cost": (rollout[:, :, -1] - z_goal[:, None]).pow(2).sum(-1),
    }


def compare_outputs(ours: dict[str, Tensor], theirs: dict[str, Tensor]) -> dict[str, float]:
    """max |ours - theirs| / max(1, max |theirs|) per output."""
    out = {}
    for k, ref in theirs.items():
        if tuple(ours[k].shape) != tuple(ref.shape):
            raise ValueError(f"{k}: shape {tuple(ours[k].shape)} != {tuple(ref.shape)}")
        diff = float((ours[k].double() - ref.double()).abs().max())
        out[k] = diff / max(1.0, float(ref.abs().max()))
    return out


# -- export -------------------------------------------------------------------------------------


def check_exportable(config: Any) -> None:
    """The authors' LeWM can hold this model (a LeWM with a ViT encoder, ImageNet inputs)."""
    if getattr(config, "kind", None) != "lewm":
        raise CheckpointError(
            f"only LeWM models export to the authors' format, got model.kind "
            f"{getattr(config, 'kind', None)!r}"
        )
    if config.encoder.kind != "vit":
        raise CheckpointError(
            "the authors' LeWM uses a ViT encoder: a model with model.encoder.kind="
            f"{config.encoder.kind!r} cannot be exported"
        )
    if config.action_hidden % config.latent_dim:
        raise CheckpointError(
            f"the authors' action Embedder has a hidden width of mlp_scale x latent_dim; "
            f"model.action_hidden {config.action_hidden} is not a multiple of "
            f"{config.latent_dim}"
        )
    e = config.encoder
    if not (
        all(math.isclose(a, b) for a, b in zip(e.mean, IMAGENET_MEAN, strict=True))
        and all(math.isclose(a, b) for a, b in zip(e.std, IMAGENET_STD, strict=True))
    ):
        raise CheckpointError(
            "the authors' pipeline normalises frames with ImageNet statistics; this model uses "
            f"mean {e.mean} / std {e.std} and would see other inputs there"
        )


def upstream_config(config: LeWMConfig) -> dict[str, Any]:
    """The Hydra-form ``config.json`` stable-worldmodel's ``save_pretrained`` writes for this
    model (its ``lewm.yaml`` model section, resolved)."""
    check_exportable(config)
    e, p, D = config.encoder, config.predictor, config.latent_dim
    encoder: dict[str, Any] = {
        "_target_": SWM_TARGETS["encoder"],
        "size": "tiny",
        "patch_size": e.patch_size,
        "image_size": e.image_size,
        "pretrained": False,
        "use_mask_token": False,
    }
    named = [s for s, v in VIT_SIZES.items() if v == (e.width, e.depth, e.heads)]
    if named and e.mlp_dim == 4 * e.width:
        encoder["size"] = named[0]
    else:  # vit_hf passes extra keys to ViTConfig
        encoder |= {
            "hidden_size": e.width,
            "num_hidden_layers": e.depth,
            "num_attention_heads": e.heads,
            "intermediate_size": e.mlp_dim,
        }

    def mlp(d_in: int) -> dict[str, Any]:
        return {
            "_target_": SWM_TARGETS["projector"],
            "input_dim": d_in,
            "output_dim": D,
            "hidden_dim": config.projector_hidden,
            "norm_fn": {"_target_": SWM_TARGETS["norm_fn"], "_partial_": True},
        }

    return {
        "_target_": SWM_TARGETS["model"],
        "encoder": encoder,
        "predictor": {
            "_target_": SWM_TARGETS["predictor"],
            "num_frames": p.history,
            "input_dim": D,
            "hidden_dim": D,
            "output_dim": D,
            "depth": p.depth,
            "heads": p.heads,
            "mlp_dim": p.mlp_dim,
            "dim_head": p.head_dim,
            "dropout": p.dropout,
            "emb_dropout": 0.0,
        },
        "action_encoder": {
            "_target_": SWM_TARGETS["action_encoder"],
            "input_dim": config.action_block_dim,
            "smoothed_dim": config.action_smooth_dim,
            "emb_dim": D,
            "mlp_scale": config.action_hidden // D,
        },
        "projector": mlp(e.width),
        "pred_proj": mlp(D),
    }


def export_upstream(
    model: LeWM,
    path: str | os.PathLike,
    *,
    vit_naming: str = "v5",
    overwrite: bool = False,
) -> Path:
    """Write ``model`` as an authors' checkpoint folder: ``weights.pt`` (``torch.save`` of their
    ``state_dict``; ViT keys under transformers 5.x names, or 4.x with ``vit_naming="v4"``),
    ``config.json`` (Hydra form) and ``lewm.json`` (frameskip, normaliser and metadata, which
    their format does not hold; their loader ignores it, :func:`import_upstream` reads it back).

    Atomic like lewm's own checkpoints: an existing folder is replaced only with ``overwrite``,
    and a failed write leaves it as it was.
    """
    path = Path(path)
    if path.exists() and not overwrite:
        raise FileExistsError(f"{path} already exists (pass --overwrite to replace it)")
    if path.exists() and not path.is_dir():
        raise FileExistsError(f"{path} exists and is not a folder")
    if path.is_dir() and any(path.iterdir()) and overwrite:
        own = {UPSTREAM_WEIGHTS, UPSTREAM_CONFIG, SIDECAR}
        others = [p.name for p in path.iterdir() if p.name not in own]
        if others:
            raise FileExistsError(
                f"{path} holds files export did not write ({', '.join(others[:4])}); choose "
                "another folder"
            )
    state = to_upstream_state_dict(model, vit_naming)
    config = upstream_config(model.config)
    normalizer = getattr(model, "normalizer", None)
    side = {
        "format": "lewm-upstream-export",
        "frameskip": model.config.frameskip,
        "action_dim": model.config.action_dim,
        "lewm_config": to_dict(model.config),
        "normalizer": normalizer.to_dict() if normalizer is not None else None,
        "metadata": getattr(model, "metadata", {}) or {},
    }
    side_text = json.dumps(side, indent=2) + "\n"
    ensure_output_dir(path.parent)
    try:
        tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
    except OSError as e:
        raise write_error(f"cannot write {path}", e) from e
    try:
        torch.save(state, tmp / UPSTREAM_WEIGHTS)
        (tmp / UPSTREAM_CONFIG).write_text(json.dumps(config, indent=2) + "\n")
        (tmp / SIDECAR).write_text(side_text)
        publish_dir(tmp, path)
    except OSError as e:
        shutil.rmtree(tmp, ignore_errors=True)
        raise write_error(f"cannot write {path}", e, "; nothing was changed") from e
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return path


__all__ = [
    "DEFAULT_FRAMESKIP",
    "SWM_TARGETS",
    "UpstreamConfig",
    "check_exportable",
    "compare_outputs",
    "export_upstream",
    "find_upstream",
    "import_upstream",
    "is_upstream_checkpoint",
    "parse_upstream_config",
    "read_upstream_weights",
    "reference_outputs",
    "to_upstream_state_dict",
    "upstream_config",
    "upstream_key",
]
