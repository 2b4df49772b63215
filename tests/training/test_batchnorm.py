"""Precise BatchNorm statistics (lewm.training.batchnorm.recalibrate and the trainer's use)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from lewm.training.batchnorm import recalibrate
from lewm.training.trainer import Trainer


class Frozen(nn.Module):
    """A sub-module that stays in eval mode, as a frozen pretrained encoder does."""

    def __init__(self) -> None:
        super().__init__()
        self.bn = nn.BatchNorm1d(3)

    def train(self, mode: bool = True) -> Frozen:
        return super().train(False)

    def forward(self, x):
        return self.bn(x)


class Net(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.frozen = Frozen()
        self.lin = nn.Linear(3, 4)
        self.drop = nn.Dropout(0.5)
        self.bn = nn.BatchNorm1d(4)
        self.seen: list[torch.Tensor] = []

    def forward(self, x):
        h = self.drop(self.lin(self.frozen(x)))
        self.seen.append(h.detach().clone())
        return self.bn(h)


def _batches(n=5, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(16, 3, generator=g) * 3 + 5 for _ in range(n)]


def test_recalibrate_recomputes_the_statistics_with_dropout_off_and_restores_the_rest():
    net = Net().train()
    net.bn.running_mean.fill_(100.0)  # stale, as after fast-moving weights
    net.bn.num_batches_tracked.fill_(7)
    frozen_mean = net.frozen.bn.running_mean.clone()
    assert recalibrate(net, _batches(), net) == 5
    seen = net.seen
    # dropout was off: the BN input is the deterministic linear map of each batch
    for x, h in zip(_batches(), seen, strict=True):
        torch.testing.assert_close(h, net.lin(net.frozen.bn.eval()(x)).detach())
    torch.testing.assert_close(net.bn.running_mean, torch.stack([h.mean(0) for h in seen]).mean(0))
    torch.testing.assert_close(
        net.bn.running_var, torch.stack([h.var(0, unbiased=True) for h in seen]).mean(0)
    )
    assert torch.equal(net.frozen.bn.running_mean, frozen_mean)  # frozen layers untouched
    assert net.bn.momentum == 0.1 and int(net.bn.num_batches_tracked) == 7
    assert net.training and net.bn.training and net.drop.training  # the mode it had


def test_recalibrate_keeps_the_old_statistics_when_nothing_or_an_error_comes():
    net = Net().eval()
    before = net.bn.running_mean.clone(), net.bn.running_var.clone()
    assert recalibrate(net, [], net) == 0
    assert torch.equal(net.bn.running_mean, before[0]) and not net.training

    def broken():
        yield from _batches(2)
        raise OSError("the file went away")

    with pytest.raises(OSError, match="went away"):
        recalibrate(net, broken(), net)
    assert torch.equal(net.bn.running_mean, before[0])
    assert torch.equal(net.bn.running_var, before[1])
    assert net.bn.momentum == 0.1 and not net.bn.training


def test_training_recomputes_the_statistics_it_saves_and_trains_the_same_weights(
    tmp_path, toy_h5, tiny_config
):
    tiny_config.train.steps = 12
    tiny_config.train.lr = 3e-3  # weights that move fast: the running averages lag
    tiny_config.train.val_every = 6
    tiny_config.train.ckpt_every = 0

    def run(name, clips):
        tiny_config.train.precise_bn_clips = clips
        t = Trainer(tiny_config, toy_h5, tmp_path / name, progress=False)
        t.fit()
        return t

    plain, precise = run("plain", 0), run("precise", 64)
    try:
        params = dict(precise.model.named_parameters())
        for k, v in plain.model.named_parameters():  # training never reads the statistics
            assert torch.equal(v, params[k]), k
        bufs = dict(precise.model.named_buffers())
        stats = [k for k in bufs if k.endswith("running_mean")]
        assert stats, "the tiny preset has BatchNorm layers"
        plain_bufs = dict(plain.model.named_buffers())
        assert any(not torch.allclose(plain_bufs[k], bufs[k]) for k in stats)
        # the saved statistics are those of the final weights on the fixed calibration clips
        saved = {k: v.clone() for k, v in bufs.items()}
        precise._bn_calibrated_step = None
        assert precise.calibrate_batchnorm() > 0
        for k in stats:
            torch.testing.assert_close(dict(precise.model.named_buffers())[k], saved[k])
    finally:
        plain.close()
        precise.close()
