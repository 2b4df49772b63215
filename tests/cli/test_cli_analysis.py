import json

import pytest

from lewm.cli.main import main


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory, toy_h5):
    run = tmp_path_factory.mktemp("cli") / "run"
    args = ["train", "--data", toy_h5, "--out", str(run), "--preset", "tiny", "--no-progress"]
    assert main([*args, "train.steps=4", "train.val_every=0"]) == 0
    return run


def test_probe_straightness_viz_surprise_commands(tiny_run, toy_h5, tmp_path, capsys, picture):
    from lewm.analysis.geometry import dataset_straightness
    from lewm.data.hdf5 import EpisodeDataset
    from lewm.models import load

    capsys.readouterr()
    assert main(["probe", str(tiny_run), "--frames", "200", "--out", str(tmp_path / "p")]) == 0
    out = capsys.readouterr().out
    assert "| state[0] | LeWM (ours)" in out and "random init" in out  # env from the dataset
    report = json.loads((tmp_path / "p" / "probe.json").read_text())
    assert report["env"] == "toy-square" and set(report["trained"]) == {"state[0]", "state[1]"}
    table = (tmp_path / "p" / "probe.md").read_text()
    assert f"{report['trained']['state[0]']['linear']['r']:.3f}" in table
    picture(tmp_path / "p" / "probe_scatter.png")

    # the command computes what the library computes for the run's model and dataset
    assert main(["straightness", str(tiny_run)]) == 0
    st = json.loads(capsys.readouterr().out)
    direct = dataset_straightness(load(tiny_run), EpisodeDataset(toy_h5), seed=0)
    assert st["frames"] == 4 and st["straightness"] == pytest.approx(direct["straightness"])

    # the toy model was not trained on Two-Room: refused by default, allowed with --any-env
    argv = ["viz", str(tiny_run), "--env", "tworoom", "--grid", "5", "--horizon", "2"]
    assert main([*argv, "--out", str(tmp_path / "refused")]) == 2
    assert "trained on 'toy-square' data, not 'tworoom'" in capsys.readouterr().err
    assert not (tmp_path / "refused").exists()
    assert main([*argv, "--any-env", "--out", str(tmp_path / "v")]) == 0
    printed = json.loads(capsys.readouterr().out)
    for name in ("latent_map.png", "open_loop.png", "training_curves.png"):
        picture(tmp_path / "v" / name)
    saved = json.loads((tmp_path / "v" / "viz.json").read_text())
    assert saved["open_loop"] == printed["open_loop"]
    assert len(printed["open_loop"]["rollout_error_mean"]) == 2

    argv = ["surprise", str(tiny_run), "--env", "tworoom", "--any-env", "--trajectories", "3"]
    argv += ["--frames", "3"]
    assert main([*argv, "--perturb-frame", "2", "--out", str(tmp_path / "s")]) == 0
    rep = json.loads(capsys.readouterr().out)
    assert set(rep["tests"]) == {"colour", "teleport"}
    assert all(t["n"] == 3 for t in rep["tests"].values())
    saved = json.loads((tmp_path / "s" / "surprise.json").read_text())
    assert saved["tests"] == rep["tests"]
    assert len(saved["curves_from_frame_1"]["none"]["mean"]) == 3
    picture(tmp_path / "s" / "surprise.png")


def test_analysis_user_errors_are_one_line(tiny_run, tmp_path, capsys):
    capsys.readouterr()
    assert main(["surprise", str(tiny_run), "--env", "maze"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "available: cube, pusht, reacher, tworoom" in err
    assert main(["probe", str(tmp_path / "missing")]) == 2
    assert "does not exist" in capsys.readouterr().err


@pytest.mark.parametrize("command", ["probe", "surprise", "viz"])
def test_analyses_refuse_a_gym_env_with_the_reason(tiny_run, command, capsys):
    capsys.readouterr()
    args = [command, str(tiny_run), "--env", "gym:gym_pusht/PushT-v0", "--any-env"]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "registered with lewm" in err and "EnvSpec" in err


def test_analysis_device_option(tiny_run, capsys):
    import torch

    capsys.readouterr()
    assert main(["straightness", str(tiny_run)]) == 0
    on_cpu = json.loads(capsys.readouterr().out)
    assert main(["straightness", str(tiny_run), "--device", "auto"]) == 0  # CPU here: the same
    assert json.loads(capsys.readouterr().out)["straightness"] == pytest.approx(
        on_cpu["straightness"], rel=1e-4
    )
    if torch.cuda.is_available():
        return
    assert main(["probe", str(tiny_run), "--device", "cuda"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "CUDA is not available" in err and "--device cpu" in err


def test_calibrate_writes_fresh_batchnorm_statistics_into_a_new_folder(
    tiny_run, toy_h5, tmp_path, capsys
):
    import hashlib

    import torch

    from lewm.models import load

    stale = tmp_path / "stale"  # a model whose running averages lag far behind its weights
    model = load(tiny_run / "model")
    bns = [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    for m in bns:
        m.running_mean.add_(50.0)
    model.save_pretrained(stale)
    digest = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in stale.iterdir()}

    out = tmp_path / "calibrated"
    assert (
        main(["calibrate", str(stale), "--data", toy_h5, "--out", str(out), "--clips", "64"]) == 0
    )
    summary = json.loads(capsys.readouterr().out)
    assert summary["clips"] == 64 and summary["layers"] == len(bns) > 0
    assert summary["mean_shift_in_std_median_max"] > 1.0  # the lag it removed, reported
    fresh = load(out)
    for (k, v), (_, w) in zip(
        fresh.named_buffers(), load(tiny_run / "model").named_buffers(), strict=True
    ):
        if k.endswith("running_mean"):  # recomputed, not the stale +50
            assert (v - w).abs().max() < 10.0, k
    assert fresh.metadata["dataset"] == model.metadata["dataset"]  # still plans/evaluates
    assert {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in stale.iterdir()} == digest

    # the input is never the output; an existing folder needs --overwrite
    assert main(["calibrate", str(stale), "--out", str(stale)]) == 2
    assert "the input is kept" in capsys.readouterr().err
    assert main(["calibrate", str(stale), "--data", toy_h5, "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "exist" in err
    argv = ["calibrate", str(stale), "--data", toy_h5, "--out", str(out), "--overwrite"]
    assert main(argv) == 0
    precious = tmp_path / "notes"  # --overwrite never deletes what is not a model folder
    precious.mkdir()
    (precious / "notes.txt").write_text("keep")
    assert (
        main(["calibrate", str(stale), "--data", toy_h5, "--out", str(precious), "--overwrite"])
        == 2
    )
    assert "replaces only a model folder" in capsys.readouterr().err
    assert (precious / "notes.txt").read_text() == "keep"
