"""Pretrained encoders from local Hugging Face folders (lewm.models.pretrained): lewm's own
DINOv2 / ViT code gives what transformers gave for small saved models (tests/fixtures/hf_vit/,
written by tests/fixtures/make_hf_vit.py with transformers 4.57.1), and every broken folder is
one clear error."""

import json
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from lewm.models.checkpoint import CheckpointError
from lewm.models.pretrained import load_hf_vit, read_hf_config

FIXTURES = Path(__file__).parents[1] / "fixtures" / "hf_vit"


@pytest.mark.parametrize("kind", ["dinov2", "vit"])
def test_outputs_match_what_transformers_computed(kind):
    model = load_hf_vit(FIXTURES / kind)
    expected = load_file(str(FIXTURES / kind / "expected.safetensors"))
    with torch.no_grad():
        out = model(expected["native_input"])  # (3, 1 + 9, 16)
        assert out.shape == expected["native_output"].shape == (3, 10, 16)
        torch.testing.assert_close(out, expected["native_output"], atol=1e-5, rtol=1e-5)
        model.interpolate = True  # a 5x4 patch grid: bicubic position embeddings, as transformers
        out = model(expected["other_input"])
        torch.testing.assert_close(out, expected["other_output"], atol=1e-5, rtol=1e-5)


def test_the_architecture_and_normalisation_come_from_the_folder():
    dino, vit = read_hf_config(FIXTURES / "dinov2"), read_hf_config(FIXTURES / "vit")
    assert (dino.model_type, dino.hidden_size, dino.intermediate_size, dino.grid) == (
        "dinov2",
        16,
        48,  # hidden 16 x mlp_ratio 3
        3,
    )
    assert dino.image_mean == (0.5, 0.4, 0.3) and dino.image_std == (0.2, 0.25, 0.3)
    assert (vit.model_type, vit.intermediate_size, vit.layer_norm_eps) == ("vit", 40, 1e-12)
    assert vit.image_mean == (0.485, 0.456, 0.406)  # no preprocessor_config.json: ImageNet's


def test_vit_refuses_another_size_unless_asked_to_interpolate():
    model = load_hf_vit(FIXTURES / "vit")
    with pytest.raises(ValueError, match="takes 24x24 images"):
        model(torch.zeros(1, 3, 32, 32))


def _copy(tmp_path, kind="dinov2") -> Path:
    dst = tmp_path / kind
    shutil.copytree(FIXTURES / kind, dst)
    (dst / "expected.safetensors").unlink()
    return dst


def _rewrite(folder: Path, edit) -> None:
    weights = load_file(str(folder / "model.safetensors"))
    save_file(edit(weights), str(folder / "model.safetensors"))


def test_a_prefixed_classification_checkpoint_loads(tmp_path):
    folder = _copy(tmp_path)
    _rewrite(
        folder,
        lambda w: (
            {f"dinov2.{k}": v for k, v in w.items()} | {"classifier.weight": torch.zeros(5, 32)}
        ),
    )
    ref = load_hf_vit(FIXTURES / "dinov2")
    got = load_hf_vit(folder)
    for (k, a), (_, b) in zip(ref.state_dict().items(), got.state_dict().items(), strict=True):
        assert torch.equal(a, b), k


def _drop_one(w):
    w.pop("encoder.layer.1.mlp.fc2.bias")
    return w


def _wrong_shape(w):
    w["layernorm.weight"] = torch.ones(17)
    return w


def _nan(w):
    w["encoder.layer.0.norm1.weight"][0] = float("nan")
    return w


@pytest.mark.parametrize(
    ("break_it", "message"),
    [
        (lambda f: shutil.rmtree(f), "does not exist"),
        (lambda f: (f / "config.json").unlink(), "has no config.json"),
        (lambda f: (f / "config.json").write_text("{oops"), "is not readable JSON"),
        (
            lambda f: (f / "config.json").write_text(json.dumps({"model_type": "clip"})),
            "model_type 'clip' is not supported",
        ),
        (
            lambda f: (f / "config.json").write_text(
                json.dumps(
                    {**json.loads((FIXTURES / "dinov2/config.json").read_text()), "hidden_size": 0}
                )
            ),
            "'hidden_size' must be a positive integer",
        ),
        (
            lambda f: (f / "model.safetensors").rename(f / "pytorch_model.bin"),
            "pytorch_model.bin is a pickle",
        ),
        (
            lambda f: (f / "model.safetensors").write_bytes(b"\x00" * 20),
            "not a readable safetensors",
        ),
        (lambda f: _rewrite(f, _drop_one), r"missing \['encoder.layer.1.mlp.fc2.bias'\]"),
        (lambda f: _rewrite(f, _wrong_shape), r"layernorm.weight has shape \(17,\)"),
        (lambda f: _rewrite(f, _nan), "norm1.weight holds NaN or inf"),
        (
            lambda f: (f / "preprocessor_config.json").write_text('{"image_std": [0, 1, 1]}'),
            "image_mean/image_std must be 3 numbers",
        ),
    ],
)
def test_a_broken_folder_is_one_clear_error(tmp_path, break_it, message):
    folder = _copy(tmp_path)
    break_it(folder)
    with pytest.raises(CheckpointError, match=message):
        load_hf_vit(folder)
