"""Nothing lost, nothing silent: writes are atomic and durable, and a read-only folder, a full
disk or a path of the wrong kind is one clear error naming it, leaving no partial file and the
previous file byte for byte as it was."""

from __future__ import annotations

import errno
import hashlib
import os
import shutil
import tempfile
from collections import namedtuple
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
from safetensors import SafetensorError

import lewm.utils.io as io_mod
from lewm.data.hdf5 import DataError, EpisodeDataset, EpisodeWriter
from lewm.models import checkpoint as ckpt_mod
from lewm.models import load
from lewm.models.lewm import LeWM, tiny_config
from lewm.utils.io import (
    atomic_path,
    check_writable,
    clean_stale_temps,
    ensure_output_dir,
    ensure_output_file,
    fsync_dir,
    replace_dir,
    write_json,
)

Usage = namedtuple("Usage", "total used free")


def _digest(path: Path) -> dict[str, str]:
    """Relative path -> sha256 of every file under ``path`` (or of the file itself)."""
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    return {
        str(f.relative_to(path.parent)): hashlib.sha256(f.read_bytes()).hexdigest() for f in files
    }


def _names(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def _episode(L=6, res=8, seed=0):
    rng = np.random.default_rng(seed)
    act = rng.normal(size=(L, 2)).astype(np.float32)
    act[-1] = np.nan
    return {"pixels": rng.integers(0, 255, (L, res, res, 3), dtype=np.uint8), "action": act}


def _dataset(path: Path, n=2) -> Path:
    with EpisodeWriter(path) as w:
        for i in range(n):
            w.add_episode(**_episode(seed=i))
    return path


def _read_only(monkeypatch, code=errno.EROFS):
    """Make every new temporary file or folder fail as on a read-only file system."""

    def refuse(*args, **kwargs):
        raise OSError(code, os.strerror(code))

    monkeypatch.setattr(io_mod.tempfile, "mkstemp", refuse)
    monkeypatch.setattr(io_mod.tempfile, "mkdtemp", refuse)


# -- utils.io: atomic, durable files ----------------------------------------------------------


def test_atomic_path_syncs_the_file_before_the_rename_and_the_folder_after(tmp_path, monkeypatch):
    events = []
    real_replace = os.replace
    monkeypatch.setattr(io_mod, "fsync_file", lambda p: events.append(("file", Path(p).name)))
    monkeypatch.setattr(io_mod, "fsync_dir", lambda p: events.append(("dir", Path(p))))
    monkeypatch.setattr(
        io_mod.os,
        "replace",
        lambda a, b: (events.append(("replace", Path(b).name)), real_replace(a, b)),
    )
    write_json(tmp_path / "a.json", {"x": 1})
    assert [e[0] for e in events] == ["file", "replace", "dir"]
    assert events[0][1].startswith(".a.json.") and events[0][1].endswith(".tmp")
    assert events[2][1] == tmp_path
    assert _names(tmp_path) == ["a.json"]


def test_a_failed_write_leaves_the_previous_file_and_no_temporary(tmp_path):
    target = tmp_path / "a.json"
    write_json(target, {"v": 1})
    before = target.read_bytes()
    with pytest.raises(RuntimeError, match="boom"):
        with atomic_path(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("boom")
    with pytest.raises(TypeError):
        write_json(target, {"v": object()})  # not serialisable: fails before any write
    assert target.read_bytes() == before and _names(tmp_path) == ["a.json"]


def test_a_full_disk_during_a_write_is_one_clear_error(tmp_path):
    target = tmp_path / "eval.json"
    write_json(target, {"v": 1})
    before = target.read_bytes()
    with pytest.raises(OSError, match="no space left on device") as info:
        with atomic_path(target) as tmp:
            tmp.write_text("partial")
            raise OSError(errno.ENOSPC, "No space left on device")
    msg = str(info.value)
    assert info.value.errno == errno.ENOSPC and str(target) in msg and "[Errno" not in msg
    assert "partial file was removed" in msg and "free some space" in msg
    assert target.read_bytes() == before and _names(tmp_path) == ["eval.json"]


def test_write_json_to_a_read_only_folder_names_it(tmp_path, monkeypatch):
    _read_only(monkeypatch)
    with pytest.raises(OSError, match="read-only file system; choose another --out") as info:
        write_json(tmp_path / "out.json", {})
    assert str(tmp_path / "out.json") in str(info.value)
    assert _names(tmp_path) == []


def test_fsync_dir_syncs_a_folder(tmp_path):
    fsync_dir(tmp_path)  # no error on a real folder
    with pytest.raises(FileNotFoundError):
        fsync_dir(tmp_path / "missing")


# -- utils.io: checks before long work ----------------------------------------------------------


def test_check_writable_creates_the_folder_and_leaves_no_probe(tmp_path):
    out = check_writable(tmp_path / "a" / "b")
    assert out.is_dir() and list(out.iterdir()) == []


def test_check_writable_on_a_read_only_file_system_names_the_folder(tmp_path, monkeypatch):
    _read_only(monkeypatch)
    with pytest.raises(OSError, match="read-only file system; choose another --out") as info:
        check_writable(tmp_path / "new" / "run")
    assert str(tmp_path / "new" / "run") in str(info.value)
    assert info.value.errno == errno.EROFS
    assert _names(tmp_path) == []  # the folders it created are gone again


def test_check_writable_without_permission_is_a_permission_error(tmp_path, monkeypatch):
    _read_only(monkeypatch, errno.EACCES)
    with pytest.raises(PermissionError, match=f"cannot write to {tmp_path}: permission denied"):
        check_writable(tmp_path)


def test_check_writable_on_a_really_read_only_folder(tmp_path):
    folder = tmp_path / "ro"
    folder.mkdir()
    os.chmod(folder, 0o500)
    try:
        if os.access(folder, os.W_OK):
            pytest.skip("running as root: a 0o500 folder is still writable")
        with pytest.raises(PermissionError, match=f"cannot write to {folder}"):
            check_writable(folder)
        with pytest.raises(PermissionError, match=str(folder)):
            EpisodeWriter(folder / "d.h5")
    finally:
        os.chmod(folder, 0o700)
    assert _names(folder) == []


def test_paths_of_the_wrong_kind_are_named(tmp_path):
    (tmp_path / "file").write_text("x")
    (tmp_path / "folder").mkdir()
    with pytest.raises(NotADirectoryError, match=f"{tmp_path / 'file'} is a file, but a folder"):
        ensure_output_dir(tmp_path / "file")
    with pytest.raises(NotADirectoryError, match=f"{tmp_path / 'file'} is a file"):
        ensure_output_dir(tmp_path / "file" / "sub" / "run")
    with pytest.raises(NotADirectoryError, match="is a file"):
        check_writable(tmp_path / "file")
    with pytest.raises(IsADirectoryError, match=f"{tmp_path / 'folder'} is a folder, but a file"):
        ensure_output_file(tmp_path / "folder")
    with pytest.raises(IsADirectoryError, match="is a folder"):
        write_json(tmp_path / "folder", {})
    assert ensure_output_file(tmp_path / "new" / "x.json").parent.is_dir()
    assert (tmp_path / "file").read_text() == "x"


# -- utils.io: folders replaced, stale temporaries ----------------------------------------------


def test_replace_dir_swaps_folders_and_restores_the_old_one_on_failure(tmp_path, monkeypatch):
    dst = tmp_path / "ckpt"
    dst.mkdir()
    (dst / "w").write_text("old")
    new = tmp_path / ".ckpt.abcdefgh"
    new.mkdir()
    (new / "w").write_text("new")
    real_replace = os.replace
    calls = []

    def second_fails(a, b):
        calls.append(b)
        if len(calls) == 2:
            raise OSError(errno.EIO, "I/O error")
        real_replace(a, b)

    monkeypatch.setattr(io_mod.os, "replace", second_fails)
    with pytest.raises(OSError):
        replace_dir(new, dst)
    assert (dst / "w").read_text() == "old"  # restored
    monkeypatch.setattr(io_mod.os, "replace", real_replace)
    replace_dir(new, dst)
    assert (dst / "w").read_text() == "new" and _names(tmp_path) == ["ckpt"]


def test_clean_stale_temps_touches_only_lewms_own_temporaries(tmp_path):
    ck = tmp_path / "checkpoints"
    ck.mkdir()
    (ck / "step_0000010").mkdir()
    (ck / "step_0000010" / "model.safetensors").write_text("w10")
    # left by killed writers
    (ck / ".step_0000020.k3j_9x2a").mkdir()  # mkdtemp of a checkpoint folder
    (ck / ".step_0000020.k3j_9x2a" / "model.safetensors").write_text("partial")
    (ck / ".step_0000010.old").mkdir()  # replaced, step_0000010 exists: leftover
    (ck / ".step_0000030.old").mkdir()  # replaced, the new one never arrived: restore it
    (ck / ".step_0000030.old" / "model.safetensors").write_text("w30")
    (ck / ".step_0000040.ab12cd34.tmp").write_text("partial file")
    # the user's: never touched
    keep = [
        ".step_notes",  # no random part
        ".step_0000050.abc.tmp",  # random part of the wrong length
        ".step_0000060.ABCDEFGH",  # upper case: not tempfile's alphabet
        "step_0000070.abcdefgh.tmp",  # no leading dot
        ".other.abcdefgh",  # a target that is not step_*
        ".other.old",
        "notes.tmp",
    ]
    for name in keep:
        (ck / name).write_text("mine")
    os.symlink(ck / "step_0000010", ck / ".step_0000080.abcdefgh")  # links are never followed
    acted = clean_stale_temps(ck, "step_*")
    assert sorted(p.name for p in acted) == sorted(
        [
            ".step_0000020.k3j_9x2a",
            ".step_0000010.old",
            ".step_0000030.old",
            ".step_0000040.ab12cd34.tmp",
        ]
    )
    assert _names(ck) == sorted([*keep, "step_0000010", "step_0000030", ".step_0000080.abcdefgh"])
    assert (ck / "step_0000030" / "model.safetensors").read_text() == "w30"
    assert (ck / "step_0000010" / "model.safetensors").read_text() == "w10"
    assert clean_stale_temps(ck, "step_*") == [] and clean_stale_temps(tmp_path / "none", "*") == []


def test_clean_stale_temps_finds_what_a_killed_writer_of_each_kind_leaves(tmp_path):
    # the real temporary names of atomic_path, EpisodeWriter and checkpoint.save; each writer
    # removes its own on failure, so the file is put back as a killed process would leave it
    left = []
    with pytest.raises(RuntimeError):
        with atomic_path(tmp_path / "metrics.json") as tmp:
            left.append(tmp)
            raise RuntimeError
    w = EpisodeWriter(tmp_path / "d.h5")
    w.add_episode(**_episode())
    w.abort()
    left.append(w._tmp)
    for f in left:
        f.write_bytes(b"partial")
    left.append(Path(tempfile.mkdtemp(prefix=".step_0000100.", dir=tmp_path)))  # as save() does
    assert sorted(clean_stale_temps(tmp_path, "*")) == sorted(left)
    assert _names(tmp_path) == []


# -- EpisodeWriter: full disk, write errors, durability -------------------------------------------


def test_a_full_disk_stops_the_writer_before_hdf5_fails(tmp_path, monkeypatch):
    path = _dataset(tmp_path / "d.h5")
    before = _digest(path)
    calls = []

    def almost_full(folder):
        calls.append(Path(folder))
        return Usage(10**9, 10**9 - 5 * 10**6, 5 * 10**6)  # 5 MB free

    import lewm.data.hdf5 as hdf5_mod

    monkeypatch.setattr(hdf5_mod.shutil, "disk_usage", almost_full)
    with pytest.raises(OSError, match=r"disk full: 5 MB free in .*the episode needs ~") as info:
        with EpisodeWriter(path, overwrite=True) as w:
            w.add_episode(**_episode())
    msg = str(info.value)
    assert info.value.errno == errno.ENOSPC and str(tmp_path) in msg
    assert "partial file was removed" in msg and "--out" in msg
    assert calls and calls[0] == tmp_path
    assert _digest(path) == before and _names(tmp_path) == ["d.h5"]


def test_enough_space_is_checked_per_episode_with_a_margin(tmp_path, monkeypatch):
    import lewm.data.hdf5 as hdf5_mod

    free = [hdf5_mod.DISK_MARGIN + 10**6, hdf5_mod.DISK_MARGIN + 10]  # 1st episode fits, 2nd not
    monkeypatch.setattr(hdf5_mod.shutil, "disk_usage", lambda folder: Usage(10**10, 0, free.pop(0)))
    w = EpisodeWriter(tmp_path / "d.h5")
    w.add_episode(**_episode())
    with pytest.raises(OSError, match=r"after 1 episode\(s\)"):
        w.add_episode(**_episode())
    assert _names(tmp_path) == []
    with pytest.raises(DataError, match="closed"):
        w.add_episode(**_episode())  # the writer said why it stopped; it does not go on


@pytest.mark.parametrize("where", ["write", "flush", "close"])
def test_an_hdf5_write_error_is_one_clear_error_and_leaves_nothing(tmp_path, monkeypatch, where):
    path = _dataset(tmp_path / "d.h5")
    before = _digest(path)

    def enospc(*args, **kwargs):
        raise OSError(errno.ENOSPC, "Can't write data (file write failed: errno = 28)")

    w = EpisodeWriter(path, overwrite=True)
    w.add_episode(**_episode())
    if where == "write":
        monkeypatch.setattr(h5py.Dataset, "__setitem__", enospc)
        with pytest.raises(OSError, match="cannot write .*d.h5: no space left") as info:
            w.add_episode(**_episode(seed=1))
    elif where == "flush":
        monkeypatch.setattr(h5py.File, "flush", enospc)
        with pytest.raises(OSError, match="no space left") as info:
            w.add_episode(**_episode(seed=1))
    else:
        monkeypatch.setattr(h5py.File, "flush", enospc)
        with pytest.raises(OSError, match="no space left") as info:
            w.close()
    msg = str(info.value)
    assert info.value.errno == errno.ENOSPC and "partial file was removed" in msg
    assert "[Errno" not in msg and "free some space" in msg
    assert _digest(path) == before and _names(tmp_path) == ["d.h5"]


def test_a_runtime_error_from_hdf5_while_writing_is_cleaned_up(tmp_path, monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("Unable to synchronously flush file (file write failed: errno = 5)")

    w = EpisodeWriter(tmp_path / "d.h5")
    monkeypatch.setattr(h5py.File, "flush", broken)
    with pytest.raises(OSError, match="cannot write") as info:
        w.add_episode(**_episode())
    assert info.value.errno == errno.EIO
    assert _names(tmp_path) == []


def test_the_writer_checks_the_folder_before_any_work(tmp_path, monkeypatch):
    _read_only(monkeypatch)
    with pytest.raises(OSError, match=f"cannot write to {tmp_path}: read-only file system"):
        EpisodeWriter(tmp_path / "d.h5")
    assert _names(tmp_path) == []
    monkeypatch.undo()
    (tmp_path / "d.h5").mkdir()
    with pytest.raises(IsADirectoryError, match="is a folder, but a file is needed"):
        EpisodeWriter(tmp_path / "d.h5", overwrite=True)
    (tmp_path / "f").write_text("x")
    with pytest.raises(NotADirectoryError, match="is a file"):
        EpisodeWriter(tmp_path / "f" / "d.h5")


def test_unstorable_attributes_fail_at_construction_and_leave_nothing(tmp_path):
    with pytest.raises(TypeError):
        EpisodeWriter(tmp_path / "d.h5", attrs={"bad": {"a": 1}})
    assert _names(tmp_path) == []


def test_the_finished_file_is_synced_before_the_rename_and_the_folder_after(tmp_path, monkeypatch):
    import lewm.data.hdf5 as hdf5_mod

    events = []
    monkeypatch.setattr(hdf5_mod, "fsync_file", lambda p: events.append(("file", Path(p))))
    monkeypatch.setattr(hdf5_mod, "fsync_dir", lambda p: events.append(("dir", Path(p))))
    w = EpisodeWriter(tmp_path / "d.h5")
    w.add_episode(**_episode())
    tmp = w._tmp
    w.close()
    assert events == [("file", tmp), ("dir", tmp_path)]
    assert EpisodeDataset(tmp_path / "d.h5").num_episodes == 1
    assert oct((tmp_path / "d.h5").stat().st_mode & 0o777) == oct(0o644)


# -- the collectors: refuse first, then write; a failure leaves nothing --------------------------


def test_tworoom_collection_on_a_full_disk_leaves_nothing(tmp_path, monkeypatch):
    import lewm.data.hdf5 as hdf5_mod
    from lewm.envs.tworoom.collect import collect_tworoom

    monkeypatch.setattr(hdf5_mod.shutil, "disk_usage", lambda f: Usage(10**9, 10**9, 1000))
    with pytest.raises(OSError, match="disk full"):
        collect_tworoom(tmp_path / "tr.h5", 3, resolution=16, max_steps=5, progress=False)
    assert _names(tmp_path) == []


def test_tworoom_collection_into_a_read_only_folder_fails_before_simulating(tmp_path, monkeypatch):
    import lewm.envs.tworoom.collect as tr

    _read_only(monkeypatch)
    monkeypatch.setattr(tr, "_tasks", lambda *a: pytest.fail("simulated before checking"))
    with pytest.raises(OSError, match="read-only file system"):
        tr.collect_tworoom(tmp_path / "tr.h5", 3, resolution=16, max_steps=5, progress=False)
    assert _names(tmp_path) == []


def test_pusht_collection_on_a_full_disk_leaves_nothing(tmp_path, monkeypatch):
    pytest.importorskip("pymunk")
    import lewm.data.hdf5 as hdf5_mod
    from lewm.envs.pusht.collect import collect_pusht

    monkeypatch.setattr(hdf5_mod.shutil, "disk_usage", lambda f: Usage(10**9, 10**9, 1000))
    with pytest.raises(OSError, match="disk full"):
        collect_pusht(tmp_path / "p.h5", 2, resolution=16, max_steps=3, progress=False)
    assert _names(tmp_path) == []


# -- checkpoint folders: durable, atomic, clear on failure -------------------------------------


@pytest.fixture
def model():
    return LeWM(tiny_config()).eval()


def test_save_syncs_every_file_the_temp_folder_and_then_the_parent(tmp_path, model, monkeypatch):
    events = []
    # every folder write goes through lewm.utils.io.publish_dir: files, the temp folder, the parent
    monkeypatch.setattr(io_mod, "fsync_file", lambda p: events.append(("file", Path(p).name)))
    monkeypatch.setattr(
        io_mod,
        "fsync_dir",
        lambda p: events.append(("parent" if Path(p) == tmp_path else "dir", Path(p))),
    )
    path = model.save_pretrained(tmp_path / "ckpt", extra_files={"training_state.pt": b"s"})
    files = sorted(e[1] for e in events if e[0] == "file")
    assert files == ["config.json", "model.safetensors", "training_state.pt"]
    kinds = [e[0] for e in events]
    assert kinds.index("dir") > max(i for i, k in enumerate(kinds) if k == "file")
    assert events[kinds.index("dir")][1].name.startswith(".ckpt.")  # the temporary folder
    assert events[-1] == ("parent", tmp_path)  # after the rename
    assert _names(tmp_path) == ["ckpt"] and load(path).config == model.config


@pytest.mark.parametrize(
    "error",
    [
        OSError(errno.ENOSPC, "No space left on device"),
        SafetensorError(
            "Error while serializing: I/O error: No space left on device (os error 28)"
        ),
    ],
)
def test_a_full_disk_while_saving_keeps_the_previous_checkpoint(
    tmp_path, model, monkeypatch, error
):
    path = model.save_pretrained(tmp_path / "ckpt")
    before = _digest(path)

    def full(*args, **kwargs):
        raise error

    monkeypatch.setattr(ckpt_mod, "save_file", full)
    with torch.no_grad():
        model.predictor.pos_embedding.add_(1.0)
    with pytest.raises(OSError, match=f"cannot write checkpoint {path}: no space left") as info:
        model.save_pretrained(path, overwrite=True)
    msg = str(info.value)
    assert info.value.errno == errno.ENOSPC and "unchanged" in msg and "free some space" in msg
    assert _digest(path) == before and _names(tmp_path) == ["ckpt"]


def test_a_failure_after_the_weights_keeps_the_previous_checkpoint(tmp_path, model, monkeypatch):
    path = model.save_pretrained(tmp_path / "ckpt")
    before = _digest(path)

    def eio(p):
        raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(io_mod, "fsync_file", eio)
    with pytest.raises(OSError, match="input/output error"):
        model.save_pretrained(path, overwrite=True)
    assert _digest(path) == before and _names(tmp_path) == ["ckpt"]


def test_saving_into_a_read_only_folder_names_the_checkpoint(tmp_path, model, monkeypatch):
    _read_only(monkeypatch, errno.EACCES)
    with pytest.raises(PermissionError, match=f"cannot write checkpoint {tmp_path / 'c'}"):
        model.save_pretrained(tmp_path / "c")
    assert _names(tmp_path) == []


def test_a_checkpoint_killed_mid_replacement_is_restored_by_the_cleanup(tmp_path, model):
    ck = tmp_path / "checkpoints"
    path = model.save_pretrained(ck / "step_0000010")
    before = _digest(path)
    # killed between the two renames of an overwrite: the old folder is parked, the new one
    # still has its temporary name
    os.replace(path, ck / ".step_0000010.old")
    shutil.copytree(ck / ".step_0000010.old", ck / ".step_0000010.x1y2z3w4")
    clean_stale_temps(ck, "step_*")
    assert _names(ck) == ["step_0000010"] and _digest(path) == before
    assert load(path).config == model.config
