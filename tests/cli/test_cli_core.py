import json
import subprocess
import sys

import pytest

from lewm.cli.main import main
from lewm.config import preset
from lewm.utils.config import ConfigError


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


def test_eval_flags_are_aliases_of_the_eval_config_keys():
    from lewm.cli.jobs import eval_config_from_args
    from lewm.cli.main import build_parser

    def parse(argv):  # as main() does: overrides may follow options
        args, extra = build_parser().parse_known_args(argv)
        args.overrides = [*args.overrides, *extra]
        return args

    cfg = eval_config_from_args(parse(["eval", "run"]))
    assert cfg == preset("paper").eval  # no flag given: the defaults, written once
    assert cfg.solver.kind == "cem" and cfg.solver.num_samples == 300
    # each solver's own default: gradient restarts are each a backward pass (reference: 100)
    assert (
        eval_config_from_args(parse(["eval", "run", "--solver", "adam"])).solver.num_samples == 100
    )
    args = parse(["eval", "run", "--solver", "adam", "--samples", "20", "--iterations", "7"])
    adam = eval_config_from_args(args).solver
    assert (adam.kind, adam.num_samples, adam.steps) == ("adam", 20, 7)  # iterations -> steps
    # flags and key=value overrides reach the same fields
    via_keys = parse(
        ["eval", "run", "eval.episodes=7", "eval.solver.kind=icem", "eval.solver.noise_beta=1"]
    )
    via_flags = parse(
        ["eval", "run", "--episodes", "7", "--solver", "icem", "eval.solver.noise_beta=1"]
    )
    a, b = eval_config_from_args(via_keys), eval_config_from_args(via_flags)
    assert a == b and a.episodes == 7 and a.solver.noise_beta == 1.0
    assert eval_config_from_args(parse(["eval", "run", "--preset", "tworoom-quick"])).episodes == 10


def test_eval_flags_and_overrides_are_checked(capsys):
    from lewm.cli.jobs import eval_config_from_args
    from lewm.cli.main import build_parser

    parse = build_parser().parse_args
    with pytest.raises(
        ConfigError, match=r"--elites \(num_elites\) is not a setting of solver 'adam'"
    ):
        eval_config_from_args(parse(["eval", "run", "--solver", "adam", "--elites", "5"]))
    with pytest.raises(ConfigError, match="'train.lr' is not an evaluation setting"):
        eval_config_from_args(parse(["eval", "run", "train.lr=1"]))
    with pytest.raises(ConfigError, match=r"eval.solver.num_samples must be in \[1, .*got 0"):
        eval_config_from_args(parse(["eval", "run", "--samples", "0"]))
    with pytest.raises(ConfigError, match=r"unknown solver 'cma'"):
        eval_config_from_args(parse(["eval", "run", "--solver", "cma"]))


def test_presets_and_config_commands(capsys):
    assert main(["presets"]) == 0
    listed = capsys.readouterr().out
    for name in ("paper", "cpu", "tiny", "tworoom-cpu", "pusht-cpu", "reacher-cpu", "cube-cpu"):
        assert f"\n{name} " in "\n" + listed
    assert main(["config", "--preset", "pusht-cpu", "train.lr=3e-4"]) == 0
    tree = json.loads(capsys.readouterr().out)
    assert tree["train"]["lr"] == 3e-4 and tree["train"]["steps"] == 13000
    assert tree["model"]["kind"] == "lewm" and tree["model"]["predictor"]["depth"] == 4
    assert tree["eval"]["solver"]["kind"] == "cem"
    assert main(["config", "model.predictor.depht=2"]) == 2
    assert "unknown config key 'model.predictor.depht'" in capsys.readouterr().err


def test_eval_cost_option_reaches_the_config():
    from lewm.cli.jobs import eval_config_from_args
    from lewm.cli.main import build_parser

    parse = build_parser().parse_args
    assert eval_config_from_args(parse(["eval", "run"])).cost == "terminal"
    cfg = eval_config_from_args(parse(["eval", "run", "--cost", "path"]))
    assert cfg.cost == "path"
    with pytest.raises(SystemExit):  # argparse rejects an unknown mode before any work
        parse(["eval", "run", "--cost", "final"])


def test_reacher_preset_plans_with_our_planner_and_flags_still_win():
    from dataclasses import asdict

    from lewm.cli.jobs import eval_config_from_args
    from lewm.cli.main import build_parser

    parse = build_parser().parse_args
    flags = ["--solver", "icem", "--context", "3", "--cost", "path"]
    by_preset = eval_config_from_args(parse(["eval", "run", "--preset", "reacher-cpu"]))
    by_flags = eval_config_from_args(parse(["eval", "run", *flags]))
    assert asdict(by_preset) == asdict(by_flags)  # the same settings, so the same evaluation
    assert by_preset.solver.num_samples == 300 and by_preset.solver.iterations == 30
    paper = eval_config_from_args(
        parse(["eval", "run", "--preset", "reacher-cpu", "--solver", "cem"])
    )
    assert paper.solver.kind == "cem" and paper.context == 3  # a flag overrides the preset


def test_demo_overwrite_deletes_only_a_demo_folder(tmp_path, capsys):
    from lewm.demo import _is_demo_dir, _is_demo_entry
    from lewm.training.rundir import check_owned

    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "thesis.tex").write_text("years of work")
    assert main(["demo", "--out", str(mine), "--overwrite"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "only replaces a demo folder lewm wrote" in err
    assert (mine / "thesis.tex").read_text() == "years of work"
    # a folder the demo wrote (its marker and its entries) may be replaced, not with extras
    demo = tmp_path / "demo"
    (demo / "run").mkdir(parents=True)
    (demo / "demo.json").write_text('{"format": "lewm-demo"}')
    (demo / "tworoom_train.h5").write_bytes(b"")
    check_owned(demo, owned=_is_demo_dir(demo), entry_ok=_is_demo_entry, what="demo folder")
    (demo / "thesis.tex").write_text("x")
    with pytest.raises(FileExistsError, match="thesis.tex"):
        check_owned(demo, owned=_is_demo_dir(demo), entry_ok=_is_demo_entry, what="demo folder")


def test_eval_defaults_to_the_environment_of_the_models_data(tmp_path, toy_h5, capsys):
    pytest.importorskip("pymunk")
    data, run = str(tmp_path / "p.h5"), str(tmp_path / "run")
    collect = ["collect", "pusht", "--episodes", "2", "--max-steps", "40", "--out", data]
    assert main([*collect, "--resolution", "16", "--no-progress"]) == 0
    train = ["train", "--data", data, "--out", run, "--preset", "tiny", "--no-progress"]
    assert main([*train, "train.steps=2", "train.val_every=0"]) == 0
    capsys.readouterr()
    ev = ["eval", run, "--policy", "random", "--episodes", "1", "--split", "all", "--gifs", "0"]
    assert main([*ev, "--goal-offset", "5", "--budget", "5", "--no-progress"]) == 0  # no --env
    assert json.loads(capsys.readouterr().out)["success_rate"] in (0.0, 1.0)
    assert len(list((tmp_path / "run").glob("eval_pusht_random*/eval.json"))) == 1
    # a model of data from no registered environment: named, not silently run on Two-Room
    toy = str(tmp_path / "toy")
    assert (
        main(
            [
                "train",
                "--data",
                toy_h5,
                "--out",
                toy,
                "--preset",
                "tiny",
                "--no-progress",
                "train.steps=1",
                "train.val_every=0",
            ]
        )
        == 0
    )
    capsys.readouterr()
    assert main(["eval", toy, "--policy", "random", "--episodes", "1", "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "'toy-square', which lewm cannot simulate" in err


def test_eval_plans_on_the_device_asked_for(tmp_path, toy_h5, capsys, monkeypatch):
    import types

    import torch

    import lewm.planning.evaluate as ev_mod

    run = str(tmp_path / "run")
    train = ["train", "--data", toy_h5, "--out", run, "--preset", "tiny", "--no-progress"]
    assert main([*train, "train.steps=1", "train.val_every=0"]) == 0
    seen = []

    def fake_evaluate(model, env, data, cfg, **kw):
        seen.append(kw["device"])
        return types.SimpleNamespace(
            success_rate=0.0,
            successes=[],
            plan_seconds_mean=None,
            plans=0,
            clipped_steps=0,
            wall_seconds=0.0,
        )

    monkeypatch.setattr(ev_mod, "evaluate", fake_evaluate)
    ev = ["eval", run, "--env", "tworoom", "--any-env", "--episodes", "1", "--no-progress"]
    assert main(ev) == 0  # default: auto, the GPU when there is one
    assert main([*ev, "--device", "cpu"]) == 0
    auto = torch.device("cuda") if torch.cuda.is_available() else torch.device("cpu")
    assert [torch.device(d).type for d in seen] == [auto.type, "cpu"]
    if not torch.cuda.is_available():
        capsys.readouterr()
        assert main([*ev, "--device", "cuda"]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "CUDA is not available" in err and "--device cpu" in err
        assert len(seen) == 2  # refused before any work


def test_collect_look_choices_are_the_cube_renderers_looks():
    """`lewm collect --look` spells its choices out (building the parser must not import the
    environments); they must stay the renderer's."""
    import argparse

    from lewm.cli.main import build_parser
    from lewm.envs.cube.render import LOOKS

    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    collect = sub.choices["collect"]
    look = next(a for a in collect._actions if "--look" in a.option_strings)
    assert tuple(look.choices) == LOOKS
