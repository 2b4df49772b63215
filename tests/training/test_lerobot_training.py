"""`lewm train --data` on a LeRobot v3.0 folder (written to the published layout by
tests/data/lerobot_fixture.py): the camera and columns chosen by option are recorded with the run
and the model, and a resumed run reads the same ones."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

pytest.importorskip("av")
pytest.importorskip("pyarrow")

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "data"))
from lerobot_fixture import write_lerobot_dataset  # noqa: E402

from lewm.cli.main import main  # noqa: E402
from lewm.models import load  # noqa: E402


@pytest.fixture(scope="module")
def lerobot_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("lerobot") / "square_bot"
    write_lerobot_dataset(root, lengths=(20, 23, 18, 21))
    return root


def test_train_on_a_lerobot_folder_with_a_chosen_camera(lerobot_root, tmp_path, capsys):
    out = tmp_path / "run"
    args = ["train", "--data", str(lerobot_root), "--out", str(out), "--preset", "tiny"]
    args += ["--camera", "observation.images.side", "--no-progress", "train.steps=2"]
    assert main(args) == 0
    model = load(out)
    assert model.metadata["data_options"] == {"camera": "observation.images.side"}
    assert model.metadata["env"] == "square_bot"
    assert model.action_dim == 2 and model.normalizer is not None
    run = json.loads((out / "run.json").read_text())
    assert run["config"]["data"]["camera"] == "observation.images.side"
    # resuming reads the recorded camera; asking for another one is refused by name
    assert (
        main(
            [
                "train",
                "--data",
                str(lerobot_root),
                "--out",
                str(out),
                "--resume",
                "--no-progress",
                "train.steps=3",
            ]
        )
        == 0
    )
    capsys.readouterr()
    assert (
        main(
            [
                "train",
                "--data",
                str(lerobot_root),
                "--out",
                str(out),
                "--resume",
                "--camera",
                "observation.images.top",
                "--no-progress",
                "train.steps=4",
            ]
        )
        == 2
    )
    assert "data.camera" in capsys.readouterr().err


def test_unknown_camera_and_options_on_an_hdf5_file_are_one_error(lerobot_root, tmp_path, capsys):
    out = tmp_path / "run"
    args = ["train", "--data", str(lerobot_root), "--out", str(out), "--preset", "tiny"]
    assert main([*args, "--camera", "observation.images.front"]) == 2
    err = capsys.readouterr().err
    assert "observation.images.front" in err and err.count("\n") == 1
    assert not out.exists()
    from lewm.data.synthetic import make_toy_dataset

    h5 = make_toy_dataset(tmp_path / "toy.h5", episodes=3, length=20)
    assert (
        main(
            [
                "train",
                "--data",
                h5,
                "--out",
                str(out),
                "--preset",
                "tiny",
                "--state-key",
                "observation.state",
            ]
        )
        == 2
    )
    assert "apply only to LeRobot" in capsys.readouterr().err
