"""Long commands show a progress bar on a terminal, and ``--no-progress`` turns it off."""

import sys

import pytest

from lewm.cli.main import main


@pytest.fixture(scope="module")
def tworoom(tmp_path_factory):
    d = tmp_path_factory.mktemp("progress")
    data = str(d / "tr.h5")
    assert main(["collect", "tworoom", "--episodes", "30", "--out", data, "--resolution", "16",
                 "--no-progress"]) == 0  # fmt: skip
    run = str(d / "run")
    overrides = ["model.predictor.history=1", "train.steps=2", "train.val_every=0"]
    argv = ["train", "--data", data, "--out", run, "--preset", "tiny", "--no-progress"]
    assert main([*argv, *overrides]) == 0
    return d, data, run


def _commands(d, data, run):
    small_eval = ["--episodes", "2", "--samples", "8", "--elites", "2", "--iterations", "1"]
    return {
        "collect tworoom": ["collect", "tworoom", "--episodes", "2", "--resolution", "16",
                            "--out", str(d / "c.h5"), "--overwrite"],
        "train": ["train", "--data", data, "--out", str(d / "r2"), "--preset", "tiny",
                  "--overwrite", "model.predictor.history=1", "train.steps=2",
                  "train.val_every=0"],
        "eval tworoom": ["eval", run, "--split", "all", "--out", str(d / "ev"), "--overwrite",
                         *small_eval],
        "probes": ["probe", run, "--frames", "120", "--out", str(d / "p")],
        "surprise": ["surprise", run, "--env", "tworoom", "--trajectories", "3", "--frames", "3",
                     "--perturb-frame", "2", "--out", str(d / "s")],
        "straightness": ["straightness", run, "--frames", "3"],
        "decoder": ["decoder", run, "--steps", "3", "--frames", "32", "--out", str(d / "dec"),
                    "--overwrite"],
    }  # fmt: skip


@pytest.mark.parametrize(
    "bar",
    ["collect tworoom", "train", "eval tworoom", "probes", "surprise", "straightness", "decoder"],
)
def test_progress_bar_on_a_terminal_and_no_progress_turns_it_off(bar, tworoom, capsys, monkeypatch):
    argv = _commands(*tworoom)[bar]
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)  # as if run in a terminal
    capsys.readouterr()
    assert main(argv) == 0
    err = capsys.readouterr().err
    assert f"{bar}:" in err or f"{bar} " in err, err[-500:]
    assert main([*argv, "--no-progress"]) == 0
    err = capsys.readouterr().err
    assert bar not in err, err[-500:]
