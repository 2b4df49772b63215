"""Clips for training: N+1 frames strided by ``frameskip`` and the N action blocks between them.

Block k concatenates the ``frameskip`` raw actions executed from frame k to frame k+1, each
normalised with the training-split statistics. Episode splits are by *episode*, never by clip.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from lewm.data.hdf5 import DataError, EpisodeDataset
from lewm.data.normalize import Normalizer


def split_episodes(
    num_episodes: int, val_fraction: float, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Random disjoint (train, val) episode ids; at least one of each when val_fraction > 0."""
    perm = np.random.default_rng(seed).permutation(num_episodes)
    if val_fraction <= 0:
        return np.sort(perm), np.array([], dtype=np.int64)
    if num_episodes < 2:
        raise DataError(
            "a validation split needs at least 2 episodes (or set train.val_fraction=0)"
        )
    n_val = min(num_episodes - 1, max(1, round(val_fraction * num_episodes)))
    return np.sort(perm[n_val:]), np.sort(perm[:n_val])


class ClipSampler:
    """Index of every valid clip start in the given episodes, with batched gathering."""

    def __init__(
        self,
        dataset: EpisodeDataset,
        episodes: np.ndarray,
        history: int,
        frameskip: int,
        normalizer: Normalizer,
    ) -> None:
        for name, value in (("history", history), ("frameskip", frameskip)):
            if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
                raise DataError(
                    f"a clip needs {name} >= 1 (an integer), got {value!r}: history is the "
                    "number of context frames the predictor sees, frameskip the raw steps per "
                    "action block"
                )
        self.ds, self.history, self.frameskip, self.normalizer = (
            dataset,
            history,
            frameskip,
            normalizer,
        )
        span = history * frameskip  # raw steps from the first to the last frame of a clip
        starts, counts = [], []
        for ep in np.asarray(episodes, dtype=np.int64):
            L, off = int(dataset.ep_len[ep]), int(dataset.ep_offset[ep])
            counts.append(max(0, L - span))
            if L - 1 >= span:
                starts.append(off + np.arange(L - span))
        self.starts = np.concatenate(starts) if starts else np.zeros(0, dtype=np.int64)
        # clips of the k-th episode given: [episode_first[k], episode_first[k] + episode_clips[k])
        self.episode_clips = np.asarray(counts, dtype=np.int64)
        self.episode_first = np.concatenate([[0], np.cumsum(self.episode_clips)[:-1]]).astype(
            np.int64
        )
        if len(self.starts) == 0:
            raise DataError(
                f"no episode in this split is long enough for a clip of {history + 1} frames at "
                f"frameskip {frameskip} ({span + 1} steps); lower predictor.history/frameskip or "
                "collect longer episodes"
            )
        self._frame_off = np.arange(history + 1) * frameskip  # (N+1,)
        self._action_off = np.arange(span)  # (N*f,)

    def __len__(self) -> int:
        return len(self.starts)

    def gather(self, idx: np.ndarray) -> tuple[Tensor, Tensor]:
        """Clips ``idx`` -> pixels uint8 (B, N+1, h, w, 3), action blocks float32 (B, N, f*A)."""
        s = self.starts[np.asarray(idx)]  # (B,)
        pixels = self.ds.rows("pixels", s[:, None] + self._frame_off)  # (B, N+1, h, w, 3)
        act = self.ds.rows("action", s[:, None] + self._action_off)  # (B, N*f, A)
        act = self.normalizer.normalize("action", act.astype(np.float32))
        B, A = len(s), act.shape[-1]
        blocks = act.reshape(B, self.history, self.frameskip * A)  # (B, N, f*A)
        return torch.from_numpy(np.ascontiguousarray(pixels)), torch.from_numpy(
            blocks.astype(np.float32)
        )


class EpochBatches:
    """Deterministic batches: step s -> a slice of the permutation of epoch s // steps_per_epoch.

    Depends only on (seed, step), so a resumed run sees exactly the batches it would have seen.
    """

    def __init__(self, num_items: int, batch_size: int, seed: int) -> None:
        if num_items < batch_size:
            raise DataError(
                f"the training split has {num_items} clips, fewer than the batch size "
                f"{batch_size}; lower train.batch_size or collect more data"
            )
        self.n, self.bs, self.seed = num_items, batch_size, seed
        self.steps_per_epoch = num_items // batch_size
        self._epoch, self._perm = -1, None

    def __call__(self, step: int) -> np.ndarray:
        epoch, i = divmod(step, self.steps_per_epoch)
        if epoch != self._epoch:
            self._epoch = epoch
            self._perm = np.random.default_rng([self.seed, epoch]).permutation(self.n)
        return self._perm[i * self.bs : (i + 1) * self.bs]


class EpisodeBlockBatches(EpochBatches):
    """Deterministic batches that touch few episodes at a time (for data read from disk):
    each epoch permutes the episodes, cuts them into blocks of ``block`` episodes, and permutes
    the clips within each block; batches are consecutive slices of that order. A batch then
    reads frames of about ``block`` neighbouring-in-time episodes instead of frames spread over
    the whole file. Depends only on (seed, step): exactly resumable, like :class:`EpochBatches`.
    """

    def __init__(self, clips: ClipSampler, batch_size: int, seed: int, block: int) -> None:
        super().__init__(len(clips), batch_size, seed)
        if isinstance(block, bool) or not isinstance(block, int | np.integer) or block < 1:
            raise DataError(f"an episode block needs >= 1 episode, got {block!r}")
        self.block = int(block)
        self.first, self.count = clips.episode_first, clips.episode_clips

    def __call__(self, step: int) -> np.ndarray:
        epoch, i = divmod(step, self.steps_per_epoch)
        if epoch != self._epoch:
            self._epoch = epoch
            rng = np.random.default_rng([self.seed, epoch, 1])
            eps = rng.permutation(len(self.count))
            order = []
            for b in range(0, len(eps), self.block):
                block = eps[b : b + self.block]
                ids = np.concatenate(
                    [self.first[e] + np.arange(self.count[e]) for e in block]
                ).astype(np.int64)
                order.append(ids[rng.permutation(len(ids))])
            self._perm = np.concatenate(order)
        return self._perm[i * self.bs : (i + 1) * self.bs]
