"""Shared fixtures: tiny sizes declared once."""

from __future__ import annotations

import pytest
import torch

from lewm.config import preset
from lewm.data.synthetic import make_toy_dataset


@pytest.fixture(autouse=True)
def _deterministic_threads():
    torch.manual_seed(0)
    yield


@pytest.fixture(scope="session")
def toy_h5(tmp_path_factory) -> str:
    """16 random-walk episodes of 40 steps at 16 px (written once per session, read-only)."""
    return make_toy_dataset(tmp_path_factory.mktemp("data") / "toy.h5", episodes=16, length=40)


@pytest.fixture
def tiny_config():
    return preset("tiny")


@pytest.fixture
def picture():
    """check(path) decodes a PNG (or every frame of a GIF) and asserts it shows something: more
    than a handful of distinct colours, i.e. not an empty or blank figure. Returns the pixels."""
    import imageio.v3 as iio
    import numpy as np

    def check(path, min_colours: int = 8):
        img = np.asarray(iio.imread(path, index=None if str(path).endswith(".gif") else 0))
        colours = np.unique(img.reshape(-1, img.shape[-1]), axis=0)
        assert len(colours) >= min_colours, f"{path}: {len(colours)} colours - a blank picture?"
        return img

    return check
