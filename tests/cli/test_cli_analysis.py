import json

import pytest

from lewm.cli.main import main


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory, toy_h5):
    run = tmp_path_factory.mktemp("cli") / "run"
    args = ["train", "--data", toy_h5, "--out", str(run), "--preset", "tiny", "--no-progress"]
    assert main([*args, "train.steps=4", "train.val_every=0"]) == 0
    return run


def test_probe_straightness_viz_surprise_commands(tiny_run, tmp_path, capsys):
    capsys.readouterr()
    assert main(["probe", str(tiny_run), "--frames", "200", "--out", str(tmp_path / "p")]) == 0
    out = capsys.readouterr().out
    assert "| state[0] | LeWM (ours)" in out and "random init" in out  # env from the dataset
    assert json.loads((tmp_path / "p" / "probe.json").read_text())["env"] == "toy-square"

    assert main(["straightness", str(tiny_run)]) == 0
    st = json.loads(capsys.readouterr().out)
    assert -1 <= st["straightness"] <= 1 and st["frames"] == 4

    assert main(["viz", str(tiny_run), "--env", "tworoom", "--grid", "5", "--horizon", "2",
                 "--out", str(tmp_path / "v")]) == 0  # fmt: skip
    capsys.readouterr()
    for name in ("latent_map.png", "open_loop.png", "training_curves.png", "viz.json"):
        assert (tmp_path / "v" / name).stat().st_size > 500

    argv = ["surprise", str(tiny_run), "--env", "tworoom", "--trajectories", "3", "--frames", "3"]
    assert main([*argv, "--perturb-frame", "2", "--out", str(tmp_path / "s")]) == 0
    rep = json.loads(capsys.readouterr().out)
    assert set(rep["tests"]) == {"colour", "teleport"}


def test_analysis_user_errors_are_one_line(tiny_run, tmp_path, capsys):
    capsys.readouterr()
    assert main(["surprise", str(tiny_run), "--env", "cube"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "available: pusht, tworoom" in err
    assert main(["probe", str(tmp_path / "missing")]) == 2
    assert "does not exist" in capsys.readouterr().err
