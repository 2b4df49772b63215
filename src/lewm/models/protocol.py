"""What the rest of lewm asks of a world model.

The data path is one-way: pixels -> ``encode`` -> ``rollout`` -> planning cost -> solver ->
actions. Planning reads only ``encode``, ``rollout``, ``history`` and ``action_block_dim``;
evaluation, analysis and the CLI read the rest of :class:`WorldModel`; training also calls the
model on clips (``model(pixels, action_blocks) -> dict`` with at least ``"z"``, the clip's
latents) and hands that dict to the model's training objective. Any model that provides these
(LeWM, a baseline, a toy in a test) plugs in; see ``lewm.models.registry``.
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

from torch import Tensor

from lewm.data.normalize import Normalizer


@runtime_checkable
class WorldModel(Protocol):
    """A world model over pixels and normalised action blocks.

    ``history`` is the number of context frames the predictor attends to (C_max); an action
    block is ``frameskip`` raw actions of ``action_dim`` values, concatenated step-major
    (``action_block_dim = frameskip * action_dim``), z-scored with :meth:`action_normalizer`.
    """

    config: Any  # the model's config dataclass (it has a ``kind``: its registry name)
    normalizer: Normalizer | None  # statistics of the training data (set by training)
    metadata: dict[str, Any]  # dataset, episode split, env name, ... (set by training)

    @property
    def history(self) -> int: ...

    @property
    def frameskip(self) -> int: ...

    @property
    def action_dim(self) -> int: ...

    @property
    def action_block_dim(self) -> int: ...

    @property
    def latent_dim(self) -> int: ...

    @property
    def image_size(self) -> int:
        """Side of the square images the encoder sees (data at other sizes is resized)."""
        ...

    def action_normalizer(self) -> Normalizer:
        """The saved action statistics, or a clear error if there are none."""
        ...

    def encode(self, pixels: Tensor) -> Tensor:
        """pixels (B, T, h, w, 3) uint8 -> latents (B, T, D). Preprocessing is the model's job."""
        ...

    def encoder_features(self, pixels: Tensor) -> Tensor:
        """pixels (N, h, w, 3) uint8 -> the image encoder's features (N, W) before any
        projection (what probes compare with the latent)."""
        ...

    def rollout(
        self, z_context: Tensor, actions: Tensor, history_actions: Tensor | None = None
    ) -> Tensor:
        """Predict the latent after each planned block.

        z_context (B, C, D): latents of the last C observed frames (C <= history).
        actions (B, S, H, Ab): S candidate plans per episode; actions[:, :, 0] leaves the last
            context frame.
        history_actions (B, C-1, Ab): blocks executed between the context frames (None if C == 1).
        Returns (B, S, H, D).
        """
        ...


__all__ = ["WorldModel"]
