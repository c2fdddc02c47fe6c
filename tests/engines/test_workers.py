"""Engine worker processes: results and exceptions come back, a dead worker is reported and replaced."""

from __future__ import annotations

import os

import pytest

from fly64_kedro.engines.workers import WorkerCrashed, run_in_worker, shutdown


def test_result_and_exception_come_back_and_worker_is_reused() -> None:
    first = run_in_worker("plain", "os:getpid")
    assert first != os.getpid()
    assert run_in_worker("plain", "os:getpid") == first  # long-lived: imports are paid once
    with pytest.raises(ValueError, match="math domain error"):
        run_in_worker("plain", "math:sqrt", -1.0)
    shutdown("plain")


def test_dead_worker_raises_worker_crashed_and_is_replaced() -> None:
    before = run_in_worker("crashy", "os:getpid")
    with pytest.raises(WorkerCrashed, match="crashy worker process died"):
        run_in_worker("crashy", "os:_exit", 3)
    after = run_in_worker("crashy", "os:getpid")
    assert after != before
    shutdown("crashy")
