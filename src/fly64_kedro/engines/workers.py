"""Run each compute engine in its own long-lived, spawned worker process.

Why: tensorflow imported before torchvision segfaults the interpreter, and pty-chi changes torch's global
default device and dtype. Keeping torch/pty-chi in one worker and TensorFlow in another means the two
frameworks never share an interpreter, and no engine leaks global state into Kedro's process. Workers are
spawned (never forked: a forked torch/TF runtime can hang) and reused across jobs so the import cost
(pty-chi: ~10 s) is paid once per engine per process. A worker that dies (segfault, OOM) raises
``WorkerCrashed``; the next job gets a fresh worker.

Workers never outlive the process that started them: on Linux the kernel kills a worker when the thread that
spawned it ends (``PR_SET_PDEATHSIG``, armed only for workers spawned by the main thread, since another thread
may end before the process does), and a watchdog thread in every worker exits once its parent process is gone
(SIGKILL of the parent runs no finalizer). An interrupt (Ctrl-C, or SIGTERM turned into ``SystemExit`` by the
project's hook) while a job runs kills that engine's worker at once instead of waiting for the job.
"""

from __future__ import annotations

import ctypes
import importlib
import logging
import multiprocessing
import multiprocessing.util
import os
import signal
import sys
import threading
import time
from concurrent.futures import CancelledError, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any

logger = logging.getLogger(__name__)

_pools: dict[str, ProcessPoolExecutor] = {}
_lock = threading.Lock()
_processes_per_engine = 1  # set_processes_per_engine: >1 lets a concurrent runner run jobs of one engine side by side
_stopping = threading.Event()  # set by stop_all: jobs submitted from now on are refused, not started


PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>
WATCHDOG_PERIOD_S = 0.5  # how often a worker checks that its parent process is alive


class WorkerCrashed(RuntimeError):
    """The engine's worker process died while running a job."""


class JobInterrupted(BaseException):
    """The job's worker was killed on purpose (``kill``: the run is being interrupted). A BaseException, like
    KeyboardInterrupt, so a node's job-failure handling does not record it as a failed job."""


def _set_parent_death_signal() -> None:
    """Ask the kernel to SIGKILL this process when the thread that spawned it ends (Linux only)."""
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


def _watch_parent(parent_pid: int) -> None:
    """Exit the worker once ``parent_pid`` is no longer its parent (the parent died; the worker was re-parented)."""
    while os.getppid() == parent_pid:
        time.sleep(WATCHDOG_PERIOD_S)
    os._exit(1)


def _init_worker(engine: str, parent_pid: int, spawned_by_main_thread: bool) -> None:
    if spawned_by_main_thread:
        _set_parent_death_signal()
    threading.Thread(target=_watch_parent, args=(parent_pid,), name="parent-watchdog", daemon=True).start()
    # The parent decides what an interrupt means: it kills a busy worker itself (a terminal's Ctrl-C reaches the
    # whole process group, and an idle worker should not die with a traceback).
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # The project's progress lines go to stderr with the engine's name: Kedro's handlers live in the parent, and
    # a handler on the package logger survives kedro re-configuring the root logger when it is imported here.
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter(f"%(asctime)s [{engine} worker] %(name)s: %(message)s"))
    package_logger = logging.getLogger("fly64_kedro")
    package_logger.addHandler(handler)
    package_logger.setLevel(logging.INFO)
    package_logger.propagate = False
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    # TensorFlow's default CPU allocator hands freed tensors back to the OS, so every training step page-faults its
    # activations in afresh (a third of a PINN epoch in the kernel on a 2-core VM); its BFC pool keeps and reuses
    # them: the same weights, 1.9x faster there (docs/operations.md "Choices worth knowing"). Read at its first use.
    os.environ.setdefault("TF_CPU_ALLOCATOR_USE_BFC", "true")
    # Left to itself, TensorFlow turns its oneDNN kernels on only for some CPUs; on the 2-core AVX2 VM it ran the
    # convolutions in Eigen; oneDNN trains the PINN 1.4-1.6x faster there alone and 1.1-1.25x with two jobs at once,
    # deterministically (docs/operations.md "Choices worth knowing"). On, every x86 CPU takes the same code path. Read
    # when TensorFlow is imported.
    os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")


def _call(target: str, args: tuple, kwargs: dict) -> Any:
    module_name, func_name = target.split(":")
    return getattr(importlib.import_module(module_name), func_name)(*args, **kwargs)


def _pool(engine: str) -> ProcessPoolExecutor | None:
    """The engine's pool, started on first use; None while ``stop_all`` is in force (checked under the lock that
    ``stop_all`` takes, so no pool can start after it has killed the others)."""
    with _lock:
        if _stopping.is_set():
            return None
        pool = _pools.get(engine)
        if pool is None:
            pool = ProcessPoolExecutor(
                max_workers=_processes_per_engine,
                mp_context=multiprocessing.get_context("spawn"),
                initializer=_init_worker,
                # ProcessPoolExecutor spawns its worker in the thread that first submits, i.e. this one.
                initargs=(engine, os.getpid(), threading.current_thread() is threading.main_thread()),
            )
            _pools[engine] = pool
        return pool


def run_in_worker(engine: str, target: str, *args: Any, **kwargs: Any) -> Any:
    """Call ``target`` ("module:function") with the arguments in ``engine``'s worker process; return its result.

    Exceptions raised by the target propagate unchanged; a dead worker raises ``WorkerCrashed``. An interrupt
    while waiting (KeyboardInterrupt, SystemExit) kills the worker, then propagates.
    """
    pool = _pool(engine)
    if pool is None:
        raise JobInterrupted(f"the run is stopping: {target} was not started")
    try:
        future = pool.submit(_call, target, args, kwargs)
        return future.result()
    except (BrokenProcessPool, CancelledError, RuntimeError) as exc:
        # stop_all may kill the pool between _pool and submit (RuntimeError: shut down) or cancel the queued job
        if getattr(pool, "killed", False):
            raise JobInterrupted(f"the {engine} worker was stopped while running {target}") from exc
        if not isinstance(exc, BrokenProcessPool):
            raise  # the target's own exception, unchanged
        shutdown(engine)
        raise WorkerCrashed(f"the {engine} worker process died while running {target}") from exc
    except (KeyboardInterrupt, SystemExit):
        kill(engine)
        raise


def set_processes_per_engine(count: int) -> None:
    """Give every engine ``count`` worker processes (default 1), so ``count`` jobs of one engine can run at once.

    Pools already started with another size are shut down first (after their running jobs), so the next job
    starts a pool of the new size.
    """
    global _processes_per_engine
    if isinstance(count, bool) or not isinstance(count, int) or count < 1:
        raise ValueError(f"processes per engine must be an integer >= 1, got {count!r}")
    if count != _processes_per_engine:
        shutdown()
        _processes_per_engine = count


def stop_all() -> None:
    """Kill every worker and refuse new jobs until ``accept_jobs``: what a concurrent runner does on an interrupt, so
    a node thread that was still loading its inputs cannot start a fresh worker afterwards."""
    with _lock:
        _stopping.set()
    kill()


def accept_jobs() -> None:
    """Undo ``stop_all``."""
    _stopping.clear()


def kill(engine: str | None = None) -> None:
    """Kill one engine's worker (or all of them) now, even in the middle of a job."""
    with _lock:
        pools = [_pools.pop(name) for name in (list(_pools) if engine is None else [engine]) if name in _pools]
    for pool in pools:
        pool.killed = True  # run_in_worker then raises JobInterrupted, not WorkerCrashed
        # ProcessPoolExecutor has no public way to stop a running job; its process table is the only handle.
        for process in list((pool._processes or {}).values()):
            process.kill()
        pool.shutdown(wait=True, cancel_futures=True)


def shutdown(engine: str | None = None) -> None:
    """Stop one engine's worker (or all of them) once its current job ends."""
    with _lock:
        names = list(_pools) if engine is None else [engine]
        for name in names:
            pool = _pools.pop(name, None)
            if pool is not None:
                pool.shutdown(wait=True, cancel_futures=True)


# A multiprocessing finalizer, not atexit: a process that is itself a multiprocessing child (ParallelRunner's or
# Dask's worker) skips atexit and joins its live children at exit, which would wait forever on idle engine workers.
multiprocessing.util.Finalize(None, shutdown, exitpriority=100)
