"""Run each compute engine in its own long-lived, spawned worker process.

Why: tensorflow imported before torchvision segfaults the interpreter, and pty-chi changes torch's global
default device and dtype. Keeping torch/pty-chi in one worker and TensorFlow in another means the two
frameworks never share an interpreter, and no engine leaks global state into Kedro's process. Workers are
spawned (never forked: a forked torch/TF runtime can hang) and reused across jobs so the import cost
(pty-chi: ~10 s) is paid once per engine per process. A worker that dies (segfault, OOM) raises
``WorkerCrashed``; the next job gets a fresh worker.
"""

from __future__ import annotations

import importlib
import logging
import multiprocessing
import multiprocessing.util
import os
import threading
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any

logger = logging.getLogger(__name__)

_pools: dict[str, ProcessPoolExecutor] = {}
_lock = threading.Lock()


class WorkerCrashed(RuntimeError):
    """The engine's worker process died while running a job."""


def _init_worker(engine: str) -> None:
    # The project's progress lines go to stderr with the engine's name: Kedro's handlers live in the parent, and
    # a handler on the package logger survives kedro re-configuring the root logger when it is imported here.
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter(f"%(asctime)s [{engine} worker] %(name)s: %(message)s"))
    package_logger = logging.getLogger("fly64_kedro")
    package_logger.addHandler(handler)
    package_logger.setLevel(logging.INFO)
    package_logger.propagate = False
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def _call(target: str, args: tuple, kwargs: dict) -> Any:
    module_name, func_name = target.split(":")
    return getattr(importlib.import_module(module_name), func_name)(*args, **kwargs)


def _pool(engine: str) -> ProcessPoolExecutor:
    with _lock:
        pool = _pools.get(engine)
        if pool is None:
            pool = ProcessPoolExecutor(
                max_workers=1,
                mp_context=multiprocessing.get_context("spawn"),
                initializer=_init_worker,
                initargs=(engine,),
            )
            _pools[engine] = pool
        return pool


def run_in_worker(engine: str, target: str, *args: Any, **kwargs: Any) -> Any:
    """Call ``target`` ("module:function") with the arguments in ``engine``'s worker process; return its result.

    Exceptions raised by the target propagate unchanged; a dead worker raises ``WorkerCrashed``.
    """
    try:
        return _pool(engine).submit(_call, target, args, kwargs).result()
    except BrokenProcessPool as exc:
        shutdown(engine)
        raise WorkerCrashed(f"the {engine} worker process died while running {target}") from exc


def shutdown(engine: str | None = None) -> None:
    """Stop one engine's worker (or all of them)."""
    with _lock:
        names = list(_pools) if engine is None else [engine]
        for name in names:
            pool = _pools.pop(name, None)
            if pool is not None:
                pool.shutdown(wait=True, cancel_futures=True)


# A multiprocessing finalizer, not atexit: a process that is itself a multiprocessing child (ParallelRunner's or
# Dask's worker) skips atexit and joins its live children at exit, which would wait forever on idle engine workers.
multiprocessing.util.Finalize(None, shutdown, exitpriority=100)
