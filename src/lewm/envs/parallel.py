"""Collection in worker processes, shared by every collector (``lewm collect ENV --workers N``).

A collector splits its work into jobs whose data depend only on (seed, job): Push-T and Reacher
one episode each, Two-Room a block of episodes simulated at once, every episode drawing from its
own generator seeded with (seed, episode index). :func:`ordered_map` runs a picklable function
over the jobs in ``workers`` processes and hands back the results in job order, so the collector
writes episodes in order as they arrive and a seed gives the same arrays for any worker count.

>>> with ordered_map(functools.partial(collect_episode, seed), range(episodes), workers) as eps:
...     for columns in eps:
...         writer.add_episode(**columns)

Processes are started with ``spawn`` (no state copied from the parent, safe with threads and
OpenGL); they ignore Ctrl-C (the parent catches it, cancels what is queued and ends them) and
exit when the parent dies. At most
``2 * workers`` results are in flight, so memory stays bounded when the writer is the slower side.
A worker process that dies (a signal, out of memory, a crash in native code) stops the collection
with one :class:`ChildProcessError`; an exception raised by the function is raised again in the
parent as it was. Either way the collector's :class:`~lewm.data.hdf5.EpisodeWriter` removes its
temporary file and an existing output file is left as it was.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from contextlib import contextmanager
from typing import Any

MAX_WORKERS = 256


def check_workers(workers: Any) -> int:
    """``workers`` as an int, or a ValueError naming ``--workers`` unless it is in [1, 256]."""
    try:
        ok = (
            not isinstance(workers, bool)
            and int(workers) == workers
            and 1 <= workers <= MAX_WORKERS
        )
    except (TypeError, ValueError, OverflowError):
        ok = False
    if not ok:
        raise ValueError(
            f"workers (--workers) must be an integer in [1, {MAX_WORKERS}], got {workers!r}"
        )
    return int(workers)


def _exit_with_parent() -> None:
    """Wait for the parent process to end, then end this worker: a parent killed outright
    (SIGKILL, out of memory) leaves no worker waiting for jobs forever."""
    parent = multiprocessing.parent_process()
    if parent is not None:
        parent.join()
        os._exit(1)


def _init_worker() -> None:
    """Worker initializer: Ctrl-C is the parent's to handle (it ends the workers), and the
    worker does not outlive the parent."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    threading.Thread(target=_exit_with_parent, name="lewm-parent-watch", daemon=True).start()


def _stop(pool: ProcessPoolExecutor) -> None:
    """End the workers now: queued jobs are cancelled and running ones are not waited for.

    Returns once every worker has been reaped, so no child process is reported alive after it.
    (The pool's manager thread reaps the workers too; a process it is reaping in that instant
    still looks alive to us, so we also wait for that thread to finish.)"""
    terminate = getattr(pool, "terminate_workers", None)  # Python >= 3.14
    manager = getattr(pool, "_executor_manager_thread", None)
    processes = list((getattr(pool, "_processes", None) or {}).values())
    if terminate is not None:
        terminate()
    else:
        pool.shutdown(wait=False, cancel_futures=True)
        for p in processes:
            if p.is_alive():
                p.terminate()
    deadline = time.monotonic() + 10.0
    for p in processes:
        p.join(timeout=max(0.0, deadline - time.monotonic()))
        if p.is_alive():  # pragma: no cover - terminate is not enough only if the worker hangs
            p.kill()
    if manager is not None:
        manager.join(timeout=10.0)
    for p in processes:
        p.join(timeout=1.0)


def _results(
    pool: ProcessPoolExecutor, fn: Callable[[Any], Any], jobs: Iterable[Any], window: int
) -> Iterator[Any]:
    todo = iter(jobs)
    running: deque[Future] = deque()

    def submit() -> None:
        for job in todo:
            running.append(pool.submit(fn, job))
            return

    index = 0  # jobs whose result came back
    try:
        for _ in range(window):
            submit()
        while running:
            future = running.popleft()
            try:
                result = future.result()
            except Exception as e:
                if not isinstance(e, BrokenProcessPool) and hasattr(e, "add_note"):
                    e.add_note(f"(raised in a collection worker process, job {index})")
                raise
            index += 1
            submit()  # before handing the result over: the workers keep busy while it is written
            yield result
    except BrokenProcessPool:
        # from a result, or from a submit after a worker died between two results (a race:
        # the pool can break once the last result is already in)
        raise ChildProcessError(
            f"a collection worker process died unexpectedly (killed by a signal, out of "
            f"memory, or a crash in native code) after {index} job(s) had finished; the "
            f"collection stopped and wrote no file (an existing file is left as it was)"
        ) from None


@contextmanager
def ordered_map(
    fn: Callable[[Any], Any], jobs: Iterable[Any], workers: int = 1
) -> Iterator[Iterator[Any]]:
    """An iterator over ``fn(job)`` for every job of ``jobs``, in that order, computed by
    ``workers`` spawned processes (1: in this process, lazily, with no process started).

    ``fn`` and the jobs must be picklable (a module-level function, or a ``functools.partial``
    of one); ``jobs`` is read lazily. Leaving the ``with`` block with an error (Ctrl-C
    included) ends the workers at once; otherwise queued jobs are cancelled, running ones
    finish and the workers exit.
    """
    workers = check_workers(workers)
    if workers == 1:
        yield map(fn, jobs)
        return
    pool = ProcessPoolExecutor(
        workers, mp_context=multiprocessing.get_context("spawn"), initializer=_init_worker
    )
    finished = False
    try:
        yield _results(pool, fn, jobs, window=2 * workers)
        finished = True
    finally:
        if finished:
            pool.shutdown(wait=True, cancel_futures=True)
        else:
            _stop(pool)


def write_episodes(
    out: Any,
    fn: Callable[[Any], dict[str, Any]],
    jobs: Iterable[Any],
    *,
    episodes: int,
    workers: int,
    attrs: dict[str, Any],
    name: str,
    overwrite: bool = False,
    progress: bool | None = None,
) -> tuple[list[Any], dict[str, Any]]:
    """The loop every one-episode-per-job collector shares: ``fn(job)`` -> the columns of one
    episode (a dict with ``pixels``, ``action``, ``state``, ...), run over ``jobs`` in
    ``workers`` processes (:func:`ordered_map`) and written in job order to the episode HDF5
    file ``out`` (with ``attrs``; an existing file is replaced only with ``overwrite``, and
    a failure leaves it as it was), with a progress bar named after env ``name``.

    Returns the ``state`` column of every episode (for the collector's motion statistics) and
    the common stats: episodes, steps (rows = frames), mean_length, workers, seconds,
    steps_per_s (frames simulated, rendered and written per second)."""
    from lewm.data.hdf5 import EpisodeWriter
    from lewm.utils.progress import progress_bar

    t0 = time.perf_counter()
    states, rows = [], 0
    with (
        EpisodeWriter(out, overwrite=overwrite, attrs=attrs) as writer,
        progress_bar(episodes, f"collect {name}", progress, unit="ep") as bar,
        ordered_map(fn, jobs, workers) as results,
    ):
        for columns in results:  # in job order
            writer.add_episode(**columns)
            states.append(columns["state"])
            rows += len(columns["state"])
            bar.update(1)
    seconds = time.perf_counter() - t0
    return states, {
        "episodes": episodes,
        "steps": rows,
        "mean_length": rows / max(episodes, 1),
        "workers": workers,
        "seconds": round(seconds, 2),
        "steps_per_s": round(rows / seconds, 1),
    }
