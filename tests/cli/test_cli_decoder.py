import hashlib
import json
import shutil

import numpy as np
import pytest

from lewm.cli.main import main
from lewm.data.hdf5 import EpisodeWriter
from lewm.data.synthetic import make_toy_dataset

FAST = ["--steps", "5", "--frames", "64", "--no-progress"]


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory, toy_h5):
    run = tmp_path_factory.mktemp("cli_dec") / "run"
    args = ["train", "--data", toy_h5, "--out", str(run), "--preset", "tiny", "--no-progress"]
    assert main([*args, "train.steps=4", "train.val_every=0"]) == 0
    return run


def _digests(folder):
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def test_decoder_then_viz(tiny_run, tmp_path, capsys, picture):
    model_dir = tiny_run / "model"
    before = _digests(model_dir)
    assert main(["decoder", str(tiny_run), *FAST]) == 0
    printed = json.loads(capsys.readouterr().out)
    # the world model's files are byte-identical; the decoder is saved beside them
    after = _digests(model_dir)
    assert {k: v for k, v in after.items() if not k.startswith("decoder/")} == before
    assert {k for k in after if k.startswith("decoder/")} == {
        "decoder/decoder.json",
        "decoder/decoder.safetensors",
    }
    record = json.loads((model_dir / "decoder" / "decoder.json").read_text())
    assert printed["val_mse"] == record["losses"]["val_mse"]
    assert record["training"]["steps"] == 5 and record["data"]["image_shape"] == [16, 16, 3]

    # a second run does not replace it without --overwrite
    saved = _digests(model_dir / "decoder")
    assert main(["decoder", str(tiny_run), *FAST, "--seed", "3"]) == 2
    assert "--overwrite" in capsys.readouterr().err
    assert _digests(model_dir / "decoder") == saved

    # viz finds the checkpoint's decoder by itself
    argv = ["viz", str(tiny_run), "--env", "tworoom", "--any-env", "--grid", "4"]
    argv += ["--method", "pca", "--horizon", "2", "--no-progress"]
    assert main([*argv, "--out", str(tmp_path / "v")]) == 0
    out = json.loads(capsys.readouterr().out)
    saved_json = json.loads((tmp_path / "v" / "viz.json").read_text())
    assert saved_json["imagined"] == out["imagined"]
    assert len(out["imagined"]["rollout_mse"]) == 2 and len(out["imagined"]["copy_last_mse"]) == 2
    picture(tmp_path / "v" / "imagined.png")
    assert picture(tmp_path / "v" / "imagined.gif").shape[0] == 3 + 2  # history 3, horizon 2


def test_decoder_of_another_model_is_refused(tiny_run, tmp_path, capsys):
    assert main(["decoder", str(tiny_run), *FAST, "--out", str(tmp_path / "dec")]) == 0
    other = tmp_path / "other"
    shutil.copytree(tiny_run / "model", other, ignore=shutil.ignore_patterns("decoder"))
    # same architecture, other weights (a retrained model)
    from lewm.models import load

    model = load(other)
    for p in model.parameters():
        p.data.add_(0.01)
    model.save_pretrained(other, overwrite=True)
    capsys.readouterr()
    argv = ["viz", str(other), "--env", "tworoom", "--any-env", "--grid", "4", "--horizon", "2"]
    assert main([*argv, "--decoder", str(tmp_path / "dec"), "--out", str(tmp_path / "v")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "trained for another world model" in err
    assert not (tmp_path / "v").exists()
    # a decoder copied into the other checkpoint is refused the same way
    shutil.copytree(tmp_path / "dec", other / "decoder")
    assert main([*argv, "--out", str(tmp_path / "v")]) == 2
    assert "trained for another world model" in capsys.readouterr().err
    assert not (tmp_path / "v").exists()


def _episodes(path, env="toy-square", resolution=16, action_dim=2):
    rng = np.random.default_rng(0)
    with EpisodeWriter(path, attrs={"env": env}) as w:
        for _ in range(3):
            act = rng.uniform(-1, 1, (20, action_dim)).astype(np.float32)
            px = rng.integers(0, 255, (20, resolution, resolution, 3), dtype=np.uint8)
            w.add_episode(pixels=px, action=act, state=act[:, :2], proprio=act[:, :2])
    return str(path)


def test_decoder_user_errors_are_one_line_and_touch_nothing(tiny_run, tmp_path, capsys):
    capsys.readouterr()
    before = _digests(tiny_run)
    cases = [
        (["--data", _episodes(tmp_path / "env.h5", env="tworoom")], "holds 'tworoom' episodes"),
        (["--data", _episodes(tmp_path / "res.h5", resolution=24)], "trained on 16x16 frames"),
        (["--data", _episodes(tmp_path / "act.h5", action_dim=3)], "actions of 3 values"),
        (["--out", str(tiny_run), "--overwrite"], "replaces only a decoder folder"),
        (["--out", str(tmp_path / "x"), "--lr", "nan"], "--lr"),
        (["--out", str(tmp_path / "x"), "--steps", "0"], "--steps"),
    ]
    for extra, message in cases:
        assert main(["decoder", str(tiny_run), *FAST, *extra]) == 2, extra
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and message in err, (extra, err)
    assert main(["decoder", str(tmp_path / "nowhere"), *FAST]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert _digests(tiny_run) == before
    assert not (tmp_path / "x").exists()


def test_viz_decoder_errors(tiny_run, tmp_path, capsys):
    argv = ["viz", str(tiny_run), "--env", "tworoom", "--any-env", "--grid", "4", "--horizon", "2"]
    assert main([*argv, "--decoder", str(tmp_path / "none"), "--out", str(tmp_path / "v")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no decoder at" in err and "lewm decoder" in err
    # a decoder drawing 16 px frames, data at 24 px (the model itself resizes any resolution)
    assert main(["decoder", str(tiny_run), *FAST, "--out", str(tmp_path / "dec")]) == 0
    capsys.readouterr()
    big = make_toy_dataset(tmp_path / "big.h5", episodes=4, length=30, resolution=24)
    argv += ["--decoder", str(tmp_path / "dec"), "--data", big, "--out", str(tmp_path / "v")]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "draws 16x16 frames" in err
    assert not (tmp_path / "v").exists()
