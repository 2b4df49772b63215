import json

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

from lewm.analysis.decoder import (
    DecoderConfig,
    DecoderError,
    DecoderTrainConfig,
    LatentDecoder,
    check_decoder_for,
    imagine,
    load_decoder,
    model_fingerprint,
    save_decoder,
    train_decoder,
    write_imagined,
)
from lewm.data.hdf5 import EpisodeDataset
from lewm.models import load
from lewm.training.trainer import train


@pytest.fixture(scope="module")
def tiny_ckpt(tmp_path_factory, toy_h5):
    from lewm.config import apply_overrides, preset

    cfg = apply_overrides(preset("tiny"), ["train.steps=4", "train.val_every=0"])
    run = train(cfg, toy_h5, tmp_path_factory.mktemp("dec") / "run", progress=False).run_dir
    return run / "model"


def _record(config: DecoderConfig, sha: str = "0" * 64) -> dict:
    return {
        "format": "lewm-decoder",
        "version": 1,
        "decoder": vars(config),
        "model": {"sha256": sha, "checkpoint": "somewhere"},
        "data": {"path": "nowhere.h5"},
        "training": {"seed": 0},
        "losses": {"val_mse": 0.0},
    }


@pytest.mark.parametrize("size", [(16, 16), (24, 40), (7, 5)])
def test_architecture_draws_the_asked_size(size):
    dec = LatentDecoder(DecoderConfig(latent_dim=8, height=size[0], width=size[1]))
    out = dec(torch.randn(3, 8))  # (3, 3, h, w)
    assert out.shape == (3, 3, *size) and 0 <= out.min() and out.max() <= 1
    assert dec.frames(torch.randn(2, 4, 8)).shape == (2, 4, *size, 3)


def test_save_load_round_trip_gives_identical_outputs(tmp_path):
    torch.manual_seed(1)
    cfg = DecoderConfig(latent_dim=8, height=16, width=16)
    dec = LatentDecoder(cfg)
    dec.z_mean.normal_()  # the latent statistics are saved with the weights
    dec.z_std.uniform_(0.5, 2)
    save_decoder(dec, _record(cfg), tmp_path / "d")
    again, record = load_decoder(tmp_path / "d")
    z = torch.randn(5, 8)
    assert torch.equal(dec.eval()(z), again(z))
    assert record["decoder"] == vars(cfg)
    # nothing is replaced without overwrite, and then only a decoder folder
    with pytest.raises(FileExistsError, match="--overwrite"):
        save_decoder(dec, _record(cfg), tmp_path / "d")
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("mine")
    with pytest.raises(FileExistsError, match="only a decoder folder"):
        save_decoder(dec, _record(cfg), tmp_path / "other", overwrite=True)
    assert (tmp_path / "other" / "notes.txt").read_text() == "mine"
    save_decoder(dec, _record(cfg), tmp_path / "d", overwrite=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d", "other"]  # no temporaries


def test_broken_decoder_folders_are_one_clear_error(tmp_path):
    cfg = DecoderConfig(latent_dim=8, height=16, width=16)
    with pytest.raises(DecoderError, match="no decoder at"):
        load_decoder(tmp_path / "missing")
    save_decoder(LatentDecoder(cfg), _record(cfg), tmp_path / "d")
    weights = tmp_path / "d" / "decoder.safetensors"
    state = load_file(weights)
    state["head.bias"][0] = float("nan")
    save_file(state, weights)
    with pytest.raises(DecoderError, match="'head.bias' holds NaN"):
        load_decoder(tmp_path / "d")
    (tmp_path / "d" / "decoder.json").write_text(json.dumps(_record(DecoderConfig(8, 32, 32))))
    with pytest.raises(DecoderError, match="does not match the architecture"):
        load_decoder(tmp_path / "d")
    (tmp_path / "d" / "decoder.json").write_text(json.dumps({**_record(cfg), "model": {}}))
    with pytest.raises(DecoderError, match="invalid decoder record"):
        load_decoder(tmp_path / "d")
    (tmp_path / "d" / "decoder.json").write_text("{not json")
    with pytest.raises(DecoderError, match="cannot read"):
        load_decoder(tmp_path / "d")


def test_decoder_learns_beats_the_mean_frame(tiny_ckpt, toy_h5):
    model, data = load(tiny_ckpt), EpisodeDataset(toy_h5)
    cfg = DecoderTrainConfig(steps=300, frames=512, val_frames=128)
    dec, record = train_decoder(model, data, tiny_ckpt, cfg)
    losses = record["losses"]
    # a decoder that ignored the latent could do no better than the mean frame
    assert losses["val_mse"] < 0.75 * losses["val_mean_frame_mse"], losses
    assert record["data"]["split"] == "model"  # the model's held-out episodes stay held out
    assert record["model"]["sha256"] == model_fingerprint(tiny_ckpt)


def test_imagine_numbers_and_pictures(tiny_ckpt, toy_h5, tmp_path, picture):
    model, data = load(tiny_ckpt), EpisodeDataset(toy_h5)
    cfg = DecoderTrainConfig(steps=20, frames=128, val_frames=32)
    dec, record = train_decoder(model, data, tiny_ckpt, cfg)
    res = imagine(model, dec, data, record, horizon=2, episodes=5)
    C = model.history
    assert res["episodes_from"] == "heldout" and res["context"] == C
    for key in ("rollout_mse", "copy_last_mse", "decoded_encoding_mse"):
        assert len(res[key]) == 2 and all(v >= 0 for v in res[key])
    # the copy-last baseline is what it says: the last context frame against the real frames
    real = res["_real"].astype(np.float32) / 255
    copy = ((real[:, C - 1 : C] - real[:, C:]) ** 2).mean(axis=(0, 2, 3, 4))
    assert res["copy_last_mse"] == pytest.approx(copy.tolist(), abs=1e-6)
    files = write_imagined(tmp_path, res)
    picture(files["imagined_png"])
    gif = picture(files["imagined_gif"])
    assert gif.shape[0] == C + 2  # one frame per step: the context, then +1, +2


def test_a_decoder_is_refused_for_another_model(tiny_ckpt, tmp_path):
    model = load(tiny_ckpt)
    with torch.no_grad():
        next(model.parameters()).add_(1e-3)
    other = model.save_pretrained(tmp_path / "other")
    record = _record(DecoderConfig(16, 16, 16), sha=model_fingerprint(tiny_ckpt))
    check_decoder_for(record, tiny_ckpt, tmp_path)  # its own model: fine
    with pytest.raises(DecoderError, match="trained for another world model"):
        check_decoder_for(record, other, tmp_path)
