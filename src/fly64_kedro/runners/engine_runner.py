"""``EngineRunner``: the default runner of ``kedro run`` (see fly64_kedro/cli.py): independent nodes in threads,
each engine (torch, TensorFlow) with as many worker processes as the runner has threads.

    kedro run                                              # 2 jobs at a time
    kedro run --runner=fly64_kedro.runners.EngineRunner --runner-params=max_workers=4
    kedro run --runner=SequentialRunner                    # one job at a time

Why: on the default profile every job sets its engine to one thread (reconstruction.*.threads), and two
one-thread jobs side by side use 2 cores better than one two-thread job: measured on 2 shared cores, a gridsize-2
PINN epoch took 8.3 s with one thread and 4.3-10 s with two (the two threads stall each other whenever the host
takes a core), while two one-thread jobs at once kept 8.4 s each. A job's numbers do not depend on the runner:
each job seeds itself and runs with its own thread setting in its engine's worker.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

from kedro.runner import ThreadRunner

from fly64_kedro.engines import workers


class _InterruptibleExecutor(ThreadPoolExecutor):
    """Leaving the runner's ``with executor`` block on an exception (Ctrl-C, SIGTERM, a failed node) kills the engine
    workers and drops the queued nodes: a plain executor would wait there for every job in flight to finish."""

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> bool:
        if exc_type is None:
            return super().__exit__(exc_type, exc, tb)
        workers.stop_all()  # the node threads' jobs end at once with JobInterrupted, and nothing is recorded for them
        self.shutdown(wait=True, cancel_futures=True)
        return False


class EngineRunner(ThreadRunner):
    """ThreadRunner with ``max_workers`` (default 2) node threads and as many worker processes per engine."""

    def __init__(self, max_workers: int = 2, is_async: bool = False) -> None:
        super().__init__(max_workers=max_workers, is_async=is_async)
        self.processes_per_engine = max_workers

    def _get_executor(self, max_workers: int) -> ThreadPoolExecutor:
        return _InterruptibleExecutor(max_workers=max_workers)

    def _run(self, *args: Any, **kwargs: Any) -> None:
        workers.set_processes_per_engine(self.processes_per_engine)
        try:
            super()._run(*args, **kwargs)
        finally:
            workers.accept_jobs()
            workers.set_processes_per_engine(1)
