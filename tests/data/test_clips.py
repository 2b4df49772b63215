import numpy as np
import pytest

from lewm.data.clips import ClipSampler, split_episodes
from lewm.data.hdf5 import DataError, EpisodeDataset
from lewm.data.normalize import Normalizer


def _sampler(toy_h5, history, frameskip=2):
    ds = EpisodeDataset(toy_h5)
    norm = Normalizer.fit({"action": ds.column("action")})
    return ClipSampler(ds, np.arange(ds.num_episodes), history, frameskip, norm)


def test_clip_frames_are_strided_and_blocks_hold_the_actions_between_them(toy_h5):
    s = _sampler(toy_h5, history=2, frameskip=3)
    pixels, blocks = s.gather(np.array([0, 5]))
    assert pixels.shape == (2, 3, 16, 16, 3) and blocks.shape == (2, 2, 3 * 2)
    ds, start = s.ds, s.starts[5]
    np.testing.assert_array_equal(pixels[1, 2].numpy(), ds.column("pixels")[start + 6])
    raw = ds.column("action")[start + 3 : start + 6]  # the 3 actions from frame 1 to frame 2
    expect = s.normalizer.normalize("action", raw.astype(np.float32)).reshape(-1)
    np.testing.assert_allclose(blocks[1, 1].numpy(), expect, rtol=1e-6)
    # no clip crosses an episode end: 16 episodes of 40 steps, span 6 -> 34 starts each
    assert len(s) == 16 * 34


@pytest.mark.parametrize("history, frameskip", [(0, 2), (-1, 2), (2, 0), (1.5, 2), (True, 2)])
def test_history_and_frameskip_must_be_positive_integers(toy_h5, history, frameskip):
    with pytest.raises(DataError, match="history|frameskip"):
        _sampler(toy_h5, history, frameskip)


def test_split_is_by_episode_and_reproducible():
    tr, va = split_episodes(20, 0.2, seed=3)
    assert len(va) == 4 and not set(tr) & set(va) and set(tr) | set(va) == set(range(20))
    assert np.array_equal(split_episodes(20, 0.2, seed=3)[1], va)
