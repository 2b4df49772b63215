"""How training reads its clips: from memory, or streamed from disk by worker processes.

``data.mode=auto`` (default) keeps the dataset in memory when it fits comfortably (at most
:data:`MEMORY_FRACTION` of the memory this process may use: free RAM, the cgroup limit, the
address-space limit, times the processes on this machine that each load a copy), and streams it
otherwise; ``memory`` and ``stream`` force either. The batches are the same in both modes -- they
depend only on (seed, step) -- so the mode changes the cost of a run, never what it learns, and a
run may resume in the other mode.

Streaming: ``data.workers`` processes (started with ``spawn``: h5py handles and video decoders
do not cross a fork) each open the files again and build whole batches -- frames read and
decompressed off the training thread -- ``data.prefetch`` batches ahead per worker. Under
torchrun each rank's workers read only that rank's share of every batch.
"""

from __future__ import annotations

import contextlib
import logging
import os
import resource
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch

from lewm.data.clips import ClipSampler
from lewm.data.hdf5 import DataError

log = logging.getLogger(__name__)

# in memory when the data take at most this share of the memory this process may use
MEMORY_FRACTION = 0.5


def _meminfo_available() -> tuple[int, str] | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024, "free RAM (MemAvailable)"
    except (OSError, ValueError, IndexError):
        pass
    return None


def _cgroup_room() -> tuple[int, str] | None:
    """Limit minus usage of this process's memory cgroup (v2 or v1), if it has a limit."""
    try:
        lines = Path("/proc/self/cgroup").read_text().splitlines()
    except OSError:
        return None
    candidates = []
    for line in lines:
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        hid, controllers, rel = parts
        rel = rel.lstrip("/")
        if hid == "0" and controllers == "":  # v2
            for base in (Path("/sys/fs/cgroup") / rel, Path("/sys/fs/cgroup")):
                candidates.append((base / "memory.max", base / "memory.current"))
        elif "memory" in controllers.split(","):  # v1
            for base in (Path("/sys/fs/cgroup/memory") / rel, Path("/sys/fs/cgroup/memory")):
                candidates.append((base / "memory.limit_in_bytes", base / "memory.usage_in_bytes"))
    for limit_f, usage_f in candidates:
        try:
            limit_s = limit_f.read_text().strip()
            if limit_s == "max" or int(limit_s) >= 2**60:
                continue
            usage = int(usage_f.read_text().strip())
            return max(0, int(limit_s) - usage), f"the cgroup memory limit ({limit_f})"
        except (OSError, ValueError):
            continue
    return None


def _rlimit_room() -> tuple[int, str] | None:
    """Room left under the address-space / data-segment limits (ulimit -v / -d)."""
    out = []
    for res, name in ((resource.RLIMIT_AS, "ulimit -v"), (resource.RLIMIT_DATA, "ulimit -d")):
        soft, _ = resource.getrlimit(res)
        if soft == resource.RLIM_INFINITY:
            continue
        used = 0
        try:
            key = "VmSize:" if res == resource.RLIMIT_AS else "VmData:"
            for line in Path("/proc/self/status").read_text().splitlines():
                if line.startswith(key):
                    used = int(line.split()[1]) * 1024
        except (OSError, ValueError, IndexError):
            pass
        out.append((max(0, soft - used), f"the address-space limit ({name})"))
    return min(out) if out else None


def memory_room() -> tuple[int, str]:
    """Bytes this process can still take, and what limits it (the tightest of free RAM, the
    cgroup limit and the address-space limits)."""
    found = [r for r in (_meminfo_available(), _cgroup_room(), _rlimit_room()) if r is not None]
    if not found:
        return 2**62, "no known limit"
    return min(found)


def choose_in_memory(mode: str, nbytes: int, copies: int = 1) -> tuple[bool, str]:
    """Whether to hold ``nbytes`` of data in memory (``copies`` processes on this machine each
    load one), and why, for ``data.mode`` = auto | memory | stream."""
    gib = 2**30
    if mode == "stream":
        return False, "data.mode=stream"
    room, what = memory_room()
    need = nbytes * max(1, copies)
    copies_s = f" x {copies} processes" if copies > 1 else ""
    if mode == "memory":
        if need > room:  # loading would be killed part-way: say so before starting
            raise DataError(
                f"data.mode=memory: the dataset's {nbytes / gib:.2f} GiB{copies_s} do not fit in "
                f"the {room / gib:.1f} GiB left under {what}; use data.mode=auto or "
                "data.mode=stream to read it from disk"
            )
        return True, "data.mode=memory"
    if need <= MEMORY_FRACTION * room:
        return True, (
            f"data.mode=auto: {nbytes / gib:.2f} GiB{copies_s} fit in memory "
            f"({room / gib:.1f} GiB left under {what})"
        )
    return False, (
        f"data.mode=auto: {nbytes / gib:.2f} GiB{copies_s} > {MEMORY_FRACTION:.0%} of the "
        f"{room / gib:.1f} GiB left under {what}: streamed from disk"
    )


def auto_workers(copies: int = 1) -> int:
    """Loader processes per training process when streaming: a quarter of this process's share
    of the CPU cores, 1 to 8."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cpus = os.cpu_count() or 1
    return int(min(8, max(1, cpus // max(1, copies) // 4)))


class _Failed:
    """What a loader process returns instead of a batch it could not read: the error travels
    to the training process as it was (a worker's traceback would bury its message)."""

    def __init__(self, error: BaseException) -> None:
        self.error = error


class _StepBatches(torch.utils.data.Dataset):
    """Item ``step`` = the clips of that step's batch (this rank's share of it)."""

    def __init__(self, clips: ClipSampler, batches: Any, shard: slice | None) -> None:
        self.clips, self.batches, self.shard = clips, batches, shard

    def __len__(self) -> int:  # the sampler decides which steps are read
        return 2**62

    def __getitem__(self, step: int) -> tuple[torch.Tensor, torch.Tensor]:
        idx = self.batches(int(step))
        if self.shard is not None:
            idx = idx[self.shard]
        return self.clips.gather(idx)


class _WorkerBatches(_StepBatches):
    def __getitem__(self, step: int) -> Any:
        try:
            return super().__getitem__(step)
        except (DataError, OSError, IndexError) as e:
            return _Failed(e)


_STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def _worker_init(_: int) -> None:
    # Ctrl-C reaches the whole process group, and so does SIGTERM from `timeout`, Slurm's
    # preemption or `kill -- -PGID`: the trainer handles it (finishes the step, writes a
    # checkpoint) and then stops the workers itself. A worker killed by it would instead crash
    # the trainer before its checkpoint; a worker whose trainer is gone exits on its own.
    for sig in _STOP_SIGNALS:
        signal.signal(sig, signal.SIG_IGN)
    # the workers start with these signals blocked (see _stop_signals_blocked): one that came
    # while this interpreter was still importing torch is pending, and is dropped here
    if hasattr(signal, "pthread_sigmask"):
        signal.pthread_sigmask(signal.SIG_UNBLOCK, _STOP_SIGNALS)


@contextlib.contextmanager
def _stop_signals_blocked() -> Iterator[None]:
    """Block SIGINT/SIGTERM in this thread while the loader processes are started.

    A spawned worker takes a second or more to import torch before ``_worker_init`` can ignore
    the stop signals; a group-wide SIGTERM in that window killed it and crashed the trainer
    before its checkpoint. The signal mask is inherited through fork and exec, so the workers
    start with the signals blocked; one sent to this thread stays pending and reaches the
    trainer's handler as soon as the workers exist (none is lost). One sent to the whole process
    may be taken at once by another thread that does not block it; the handler then runs as usual
    (it only records the stop), which is equally safe."""
    if not hasattr(signal, "pthread_sigmask"):  # not POSIX
        yield
        return
    # multiprocessing starts its resource tracker with the first worker and unblocks these two
    # signals when it has: start it first, so that it does not undo the block below
    from multiprocessing import resource_tracker

    resource_tracker.ensure_running()
    old = signal.pthread_sigmask(signal.SIG_BLOCK, _STOP_SIGNALS)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)


class BatchStream:
    """The (pixels, action blocks) of steps ``start .. end-1`` in order: read in this thread
    when asked for (``workers`` = 0), or read ahead by ``workers`` processes."""

    def __init__(
        self,
        clips: ClipSampler,
        batches: Any,
        start: int,
        end: int,
        *,
        shard: slice | None = None,
        workers: int = 0,
        prefetch: int = 2,
        pin_memory: bool = False,
    ) -> None:
        self.workers = workers
        if workers <= 0:
            data = _StepBatches(clips, batches, shard)
            self._it: Iterator[Any] = (data[s] for s in range(start, end))
            return
        loader = torch.utils.data.DataLoader(
            _WorkerBatches(clips, batches, shard),
            batch_size=None,
            sampler=range(start, end),
            num_workers=workers,
            prefetch_factor=prefetch,
            multiprocessing_context="spawn",
            worker_init_fn=_worker_init,
            pin_memory=pin_memory,
            # its own generator: creating the workers must not draw from torch's global one
            # (dropout masks), or a streamed run would train differently
            generator=torch.Generator().manual_seed(0),
        )
        with _stop_signals_blocked():
            self._it = iter(loader)

    def __iter__(self) -> BatchStream:
        return self

    def __next__(self) -> tuple[torch.Tensor, torch.Tensor]:
        item = next(self._it)
        if isinstance(item, _Failed):
            self.close()
            raise item.error
        return item

    def close(self) -> None:
        """Stop the loader processes now (not when the stream is collected)."""
        shutdown = getattr(self._it, "_shutdown_workers", None)  # a DataLoader iterator
        if shutdown is not None:
            shutdown()


__all__ = [
    "BatchStream",
    "MEMORY_FRACTION",
    "auto_workers",
    "choose_in_memory",
    "memory_room",
]
