"""Runs a careless day cannot break: --overwrite deletes only what lewm wrote, resume applies
only safe changes (and says so), falls back past a corrupt checkpoint, one writer per run,
Ctrl-C saves, a diverged run can be continued."""

import hashlib
import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch
from safetensors.torch import load_file

from lewm.cli.main import main
from lewm.config import apply_overrides
from lewm.data.hdf5 import DataError
from lewm.data.synthetic import make_toy_dataset
from lewm.training.rundir import RunLock
from lewm.training.trainer import Trainer, TrainingInterrupted, train
from lewm.utils.config import ConfigError


def _tree(folder):
    """Every file under ``folder`` with its sha256: what 'nothing modified' compares."""
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def _weights(run):
    return load_file(str(run / "model" / "model.safetensors"))


@pytest.fixture
def cfg(tiny_config):
    return apply_overrides(
        tiny_config, ["train.steps=12", "train.ckpt_every=4", "train.val_every=0"]
    )


# -- --overwrite ----------------------------------------------------------------------------------


def test_overwrite_replaces_only_a_folder_lewm_wrote(tmp_path, toy_h5, cfg):
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("precious")
    before = _tree(foreign)
    with pytest.raises(FileExistsError, match="not one .no lewm marker file"):
        Trainer(cfg, toy_h5, foreign, overwrite=True, progress=False)
    assert _tree(foreign) == before

    run = tmp_path / "run"
    train(cfg, toy_h5, run, progress=False, stop_after=4)
    (run / "notes.txt").write_text("mine too")
    before = _tree(run)
    with pytest.raises(FileExistsError, match=r"files lewm did not write \(notes.txt\)"):
        Trainer(cfg, toy_h5, run, overwrite=True, progress=False)
    assert _tree(run) == before
    (run / "notes.txt").unlink()
    res = train(cfg, toy_h5, run, progress=False, overwrite=True)  # a lewm run: replaced
    assert res.steps == 12 and json.loads((run / "run.json").read_text())["format"] == "lewm-run"


def test_overwrite_never_deletes_the_input_data(tmp_path, cfg):
    run = tmp_path / "run"
    data = make_toy_dataset(tmp_path / "toy.h5", episodes=16, length=40)
    train(cfg, data, run, progress=False, stop_after=4)
    inside = run / "checkpoints" / "data.h5"  # a dataset the user keeps inside the run
    inside.write_bytes((tmp_path / "toy.h5").read_bytes())
    before = _tree(run)
    with pytest.raises(FileExistsError, match="holds the input"):
        Trainer(cfg, inside, run, overwrite=True, progress=False)
    assert _tree(run) == before


def test_out_that_is_a_file_is_one_clear_error(tmp_path, toy_h5, capsys):
    out = tmp_path / "file.txt"
    out.write_text("x")
    argv = ["train", "--data", toy_h5, "--out", str(out), "--preset", "tiny", "--no-progress"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "is a file, not a folder" in err
    assert out.read_text() == "x"


# -- resume ----------------------------------------------------------------------------------------


def test_resume_applies_safe_changes_and_records_them(tmp_path, toy_h5, capsys):
    run = str(tmp_path / "run")
    base = ["train", "--data", toy_h5, "--out", run, "--no-progress"]
    assert main([*base, "--preset", "tiny", "train.steps=12", "train.ckpt_every=4",
                 "train.val_every=0", "train.lr=1e-3"]) == 0  # fmt: skip
    capsys.readouterr()
    # unsafe: what is trained
    assert main([*base, "--resume", "model.predictor.depth=2"]) == 2
    err = capsys.readouterr().err
    assert "--resume cannot change what the run trains (model.predictor.depth: run 1, now 2" in err
    assert main([*base, "--resume", "--preset", "cpu"]) == 2
    assert "model.encoder.image_size: run 16, now 64" in capsys.readouterr().err
    # safe: a longer schedule at a lower rate, recorded in run.json
    assert main([*base, "--resume", "train.steps=16", "train.lr=5e-4"]) == 0
    rec = json.loads((tmp_path / "run" / "run.json").read_text())
    assert rec["config"]["train"]["steps"] == 16 and rec["config"]["train"]["lr"] == 5e-4
    assert rec["resumes"][-1]["step"] == 12
    assert rec["resumes"][-1]["changed"] == {"train.lr": [1e-3, 5e-4], "train.steps": [12, 16]}
    metrics = [
        json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().split("\n")[:-1]
    ]
    lrs = {r["step"]: r["train/lr"] for r in metrics if "train/lr" in r}
    assert max(lrs[s] for s in lrs if s > 12) <= 5e-4  # the new peak rate governs the rest


def test_resume_restores_the_newest_intact_checkpoint(tmp_path, toy_h5, cfg, caplog):
    train(cfg, toy_h5, tmp_path / "full", progress=False)
    run = tmp_path / "cut"
    train(cfg, toy_h5, run, progress=False, stop_after=8)  # checkpoints at 4 and 8
    ckpts = sorted((run / "checkpoints").iterdir())
    assert [c.name for c in ckpts] == ["step_0000004", "step_0000008"]
    weights = ckpts[-1] / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])  # corrupt the newest
    # what killed writes leave: a half-written checkpoint and model folder (mkdtemp names)
    (run / "checkpoints" / ".step_0000012.k3j9x_2a").mkdir()
    (run / ".model.a1b2c3d4").mkdir()
    with caplog.at_level("WARNING"):
        res = train(cfg, toy_h5, run, progress=False, resume=True)
    assert res.steps == 12
    assert "step_0000008 is unusable" in caplog.text and "resuming from step_0000004" in caplog.text
    assert not (run / "checkpoints" / ".step_0000012.k3j9x_2a").exists()
    assert not (run / ".model.a1b2c3d4").exists()
    a, b = _weights(tmp_path / "full"), _weights(run)
    assert all(torch.equal(a[k], b[k]) for k in a)  # steps 5..8 recomputed exactly


def test_resume_on_other_data_is_refused_unless_allowed(tmp_path, toy_h5, cfg):
    train(cfg, toy_h5, tmp_path / "run", progress=False, stop_after=4)
    other = make_toy_dataset(tmp_path / "other.h5", episodes=16, length=40, seed=1)
    with pytest.raises(DataError, match="cannot resume on another dataset.*--allow-other-data"):
        Trainer(cfg, other, tmp_path / "run", resume=True, progress=False)
    res = train(cfg, other, tmp_path / "run", resume=True, allow_other_data=True, progress=False)
    assert res.steps == 12
    rec = json.loads((tmp_path / "run" / "run.json").read_text())
    assert rec["resumes"][-1]["data"] == str(other)


def test_one_writer_per_run_directory(tmp_path, toy_h5, cfg):
    train(cfg, toy_h5, tmp_path / "run", progress=False, stop_after=4)
    lock = RunLock(tmp_path / "run")
    lock.acquire()  # another process's training, as far as the trainer can tell
    try:
        with pytest.raises(FileExistsError, match="in use by another lewm process"):
            Trainer(cfg, toy_h5, tmp_path / "run", resume=True, progress=False)
    finally:
        lock.release()
    assert train(cfg, toy_h5, tmp_path / "run", resume=True, progress=False).steps == 12


def test_ctrl_c_saves_a_checkpoint_and_says_how_to_resume(tmp_path, toy_h5, cfg, monkeypatch):
    train(cfg, toy_h5, tmp_path / "full", progress=False)
    trainer = Trainer(cfg, toy_h5, tmp_path / "run", progress=False)
    step = trainer.train_step

    def step_then_ctrl_c(batch=None):
        out = step(batch)
        if trainer.step == 6:
            signal.raise_signal(signal.SIGINT)  # arrives mid-loop; the step finishes first
        return out

    monkeypatch.setattr(trainer, "train_step", step_then_ctrl_c)
    with pytest.raises(TrainingInterrupted, match=r"SIGINT: training stopped at step 6.*--resume"):
        trainer.fit()
    trainer.close()
    assert (tmp_path / "run" / "checkpoints" / "step_0000006").is_dir()
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # handler restored
    train(cfg, toy_h5, tmp_path / "run", resume=True, progress=False)
    a, b = _weights(tmp_path / "full"), _weights(tmp_path / "run")
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_a_diverged_run_can_be_continued_with_a_lower_rate(tmp_path, toy_h5, cfg, capsys):
    run = str(tmp_path / "run")
    base = ["train", "--data", toy_h5, "--out", run, "--no-progress"]
    assert main([*base, "--preset", "tiny", "train.lr=1e12", "train.val_every=0"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "the loss became nan at step" in err
    assert "no checkpoint was written yet" in err and "--resume train.lr=LOWER" in err
    # the folder the diverged run left blocks nothing: --resume starts it again, lower rate
    assert main([*base, "--resume", "train.lr=1e-3"]) == 0
    rec = json.loads((tmp_path / "run" / "run.json").read_text())
    assert rec["config"]["train"]["lr"] == 1e-3 and rec["resumes"][-1]["step"] == 0


def test_resume_and_overwrite_together_are_refused(tmp_path, toy_h5, capsys):
    argv = ["train", "--data", toy_h5, "--out", str(tmp_path / "r"), "--resume", "--overwrite"]
    assert main(argv) == 2
    assert "give one" in capsys.readouterr().err


def test_unknown_device_is_a_config_error():
    from lewm.config import preset

    with pytest.raises(
        ConfigError, match="train.device must be auto, cpu, cuda or cuda:N, got 'tpu'"
    ):
        apply_overrides(preset("tiny"), ["train.device=tpu"])


@pytest.mark.skipif(not hasattr(os, "killpg"), reason="process groups are POSIX")
def test_sigterm_to_the_process_group_of_a_streaming_run_still_checkpoints(tmp_path, toy_h5):
    # `timeout`, Slurm's preemption and `kill -- -PGID` signal every process of the job: the
    # loader processes must not die of it before the trainer has written its checkpoint
    run = tmp_path / "run"
    argv = [
        sys.executable,
        "-m",
        "lewm.cli.main",
        "train",
        "--data",
        toy_h5,
        "--out",
        str(run),
        "--preset",
        "tiny",
        "--no-progress",
        "train.steps=100000",
        "train.ckpt_every=100000",
        "train.val_every=0",
        "train.log_every=1",
        "data.mode=stream",
        "data.workers=2",
        "train.num_threads=1",
    ]
    proc = subprocess.Popen(argv, stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while not (run / "metrics.jsonl").is_file() or not (run / "metrics.jsonl").stat().st_size:
            assert proc.poll() is None and time.monotonic() < deadline, proc.stderr.read()
            time.sleep(0.2)
        os.killpg(proc.pid, signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 130, err
    assert "SIGTERM: training stopped at step" in err and "Traceback" not in err, err
    assert list((run / "checkpoints").glob("step_*")), "no checkpoint written on SIGTERM"
