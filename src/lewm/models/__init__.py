"""World models: a registry of kinds, the protocol the rest of lewm uses, checkpoint folders.

    model = lewm.models.load("runs/tr")           # any registered kind, from its config.json
    model = lewm.models.build_model(config.model)  # fresh weights for a config

Adding a world model: one module and one ``register_model`` line below (docs/architecture.md).
"""

from lewm.models.base import WorldModelBase, model_device
from lewm.models.checkpoint import CheckpointError, load, read_config, resolve_checkpoint
from lewm.models.dinowm import DinoWM, DinoWMConfig
from lewm.models.dinowm import build_objective as _dinowm_objective
from lewm.models.dinowm import tiny_config as _dinowm_tiny
from lewm.models.encoders import EncoderConfig
from lewm.models.lewm import LeWM, LeWMConfig
from lewm.models.lewm import build_objective as _lewm_objective
from lewm.models.lewm import tiny_config as _lewm_tiny
from lewm.models.pldm import PLDM, PLDMConfig
from lewm.models.pldm import build_objective as _pldm_objective
from lewm.models.pldm import tiny_config as _pldm_tiny
from lewm.models.predictor import PredictorConfig
from lewm.models.protocol import WorldModel
from lewm.models.registry import (
    MODELS,
    ModelSpec,
    build_model,
    build_objective,
    model_config,
    model_spec,
    register_model,
)

# -- the registry: one line per world model -----------------------------------------------------
register_model(
    ModelSpec(
        "lewm",
        LeWMConfig,
        LeWM,
        _lewm_objective,
        _lewm_tiny,
        "LeWorldModel",
        required=(
            "latent_dim",
            "action_dim",
            "frameskip",
            "encoder.kind",
            "encoder.image_size",
            "predictor.history",
        ),
    )
)
register_model(
    ModelSpec(
        "pldm",
        PLDMConfig,
        PLDM,
        _pldm_objective,
        _pldm_tiny,
        "PLDM (Sobal et al.): LeWM's networks + inverse dynamics, VICReg and temporal terms",
        required=(
            "latent_dim",
            "action_dim",
            "frameskip",
            "encoder.kind",
            "encoder.image_size",
            "predictor.history",
        ),
    )
)
register_model(
    ModelSpec(
        "dinowm",
        DinoWMConfig,
        DinoWM,
        _dinowm_objective,
        _dinowm_tiny,
        "DINO-WM style: LeWM's predictor over a frozen encoder's features (hf:FOLDER, "
        "lewm:CHECKPOINT or random)",
        required=(
            "action_dim",
            "frameskip",
            "source",
            "features",
            "source_config",
            "predictor.history",
        ),
    )
)

__all__ = [
    "MODELS",
    "CheckpointError",
    "DinoWM",
    "DinoWMConfig",
    "EncoderConfig",
    "LeWM",
    "LeWMConfig",
    "ModelSpec",
    "PLDM",
    "PLDMConfig",
    "PredictorConfig",
    "WorldModel",
    "WorldModelBase",
    "build_model",
    "build_objective",
    "load",
    "model_config",
    "model_device",
    "model_spec",
    "read_config",
    "register_model",
    "resolve_checkpoint",
]
