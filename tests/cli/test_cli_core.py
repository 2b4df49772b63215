import json
import subprocess
import sys

import pytest

from lewm.cli.main import main


def test_help_runs_as_console_script():
    out = subprocess.run(
        [sys.executable, "-m", "lewm.cli.main", "--help"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert "train" in out.stdout and "info" in out.stdout


def test_train_and_info(tmp_path, toy_h5, capsys):
    rc = main(
        [
            "train",
            "--data",
            toy_h5,
            "--out",
            str(tmp_path / "run"),
            "--preset",
            "tiny",
            "--no-progress",
            "train.steps=6",
            "train.val_every=0",
        ]
    )
    assert rc == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["steps"] == 6
    assert main(["info", str(tmp_path / "run")]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["action_dim"] == 2 and info["parameters"]["total"] > 0


def test_user_errors_are_one_line(tmp_path, toy_h5, capsys):
    assert main(["train", "--data", str(tmp_path / "none.h5"), "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "does not exist" in err
    assert not (tmp_path / "r").exists()
    assert main(["train", "--data", toy_h5, "--out", str(tmp_path / "r"), "train.lr=0"]) == 2
    assert "train.lr must be > 0" in capsys.readouterr().err


def test_eval_sample_defaults_per_solver():
    from lewm.cli.jobs import eval_config_from_args
    from lewm.cli.main import build_parser

    parse = build_parser().parse_args
    assert eval_config_from_args(parse(["eval", "run"])).num_samples == 300
    assert eval_config_from_args(parse(["eval", "run", "--solver", "adam"])).num_samples == 100
    args = parse(["eval", "run", "--solver", "adam", "--samples", "20"])
    assert eval_config_from_args(args).num_samples == 20


def test_eval_cost_option_reaches_the_config():
    from lewm.cli.jobs import eval_config_from_args
    from lewm.cli.main import build_parser

    parse = build_parser().parse_args
    assert eval_config_from_args(parse(["eval", "run"])).cost == "terminal"
    cfg = eval_config_from_args(parse(["eval", "run", "--cost", "path"]))
    assert cfg.cost == "path"
    with pytest.raises(SystemExit):  # argparse rejects an unknown mode before any work
        parse(["eval", "run", "--cost", "final"])
