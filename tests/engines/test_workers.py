"""Engine worker processes: results and exceptions come back, a dead worker is reported and replaced."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from fly64_kedro.engines.workers import (
    JobInterrupted,
    WorkerCrashed,
    accept_jobs,
    run_in_worker,
    set_processes_per_engine,
    shutdown,
    stop_all,
)


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


def test_worker_spawned_by_a_thread_outlives_that_thread() -> None:
    """The parent-death signal fires when the spawning thread ends, so it is armed only for the main thread's
    workers: a worker first used from a runner's thread must stay alive for the next job."""
    pids: list[int] = []
    thread = threading.Thread(target=lambda: pids.append(run_in_worker("threaded", "os:getpid")))
    thread.start()
    thread.join()
    assert run_in_worker("threaded", "os:getpid") == pids[0]
    shutdown("threaded")


def busy_interval(seconds: float) -> tuple[int, float, float]:
    """Runs in a worker (imported by name there): its pid and the wall-clock interval it was busy."""
    start = time.time()
    time.sleep(seconds)
    return os.getpid(), start, time.time()


def tensorflow_cpu_allocator_stats() -> dict[str, int]:
    """Runs in a worker: TensorFlow's CPU allocator statistics, which only its BFC pool keeps (ValueError else)."""
    import tensorflow as tf

    tf.ones((256, 256))
    return tf.config.experimental.get_memory_info("CPU:0")


def test_tensorflow_in_a_worker_allocates_from_its_bfc_pool() -> None:
    # TensorFlow's default CPU allocator keeps no statistics; its BFC pool does, and counts the tensor just made.
    assert run_in_worker("allocator", "test_workers:tensorflow_cpu_allocator_stats")["peak"] >= 256 * 256 * 4
    shutdown("allocator")


def tensorflow_onednn() -> tuple[bool, bool]:
    """Runs in a worker: (is this CPU x86, are TensorFlow's oneDNN kernels on)."""
    from tensorflow.python.util import _pywrap_util_port  # no public API tells whether oneDNN is on

    return _pywrap_util_port.IsX86Available(), _pywrap_util_port.IsMklEnabled()


def test_tensorflow_in_a_worker_runs_onednn_on_any_x86_cpu() -> None:
    # Left to itself TensorFlow turned oneDNN off on an AVX2 VM (Eigen convolutions, 1.4-1.6x slower training).
    x86, onednn = run_in_worker("onednn", "test_workers:tensorflow_onednn")
    shutdown("onednn")
    if not x86:
        pytest.skip("oneDNN's default is only decided by the workers on x86")
    assert onednn


def test_two_processes_per_engine_run_two_jobs_at_once() -> None:
    set_processes_per_engine(2)
    try:
        results: list[tuple[int, float, float]] = []
        run = lambda: results.append(run_in_worker("pair", "test_workers:busy_interval", 1.0))  # noqa: E731
        threads = [threading.Thread(target=run) for _ in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        (pid_a, start_a, end_a), (pid_b, start_b, end_b) = results
        assert pid_a != pid_b
        assert start_a < end_b and start_b < end_a  # the two jobs overlapped in time
    finally:
        set_processes_per_engine(1)
    with pytest.raises(ValueError, match="processes per engine must be an integer >= 1, got 0"):
        set_processes_per_engine(0)


def test_stopping_interrupts_running_jobs_and_refuses_new_ones_until_accepted() -> None:
    """What a concurrent runner does on Ctrl-C: the job in flight ends with JobInterrupted (not WorkerCrashed, which
    a node would record as a failed job), and a job submitted afterwards is not started."""
    errors: list[BaseException] = []

    def job() -> None:
        try:
            run_in_worker("stoppable", "time:sleep", 60.0)
        except BaseException as exc:  # noqa: BLE001 - the test inspects it
            errors.append(exc)

    assert run_in_worker("stoppable", "os:getpid") > 0  # the worker is up before the long job starts
    thread = threading.Thread(target=job)
    thread.start()
    time.sleep(0.5)
    try:
        stop_all()
        thread.join(10)
        assert not thread.is_alive() and len(errors) == 1 and isinstance(errors[0], JobInterrupted)
        with pytest.raises(JobInterrupted, match="not started"):
            run_in_worker("stoppable", "os:getpid")
    finally:
        accept_jobs()
    assert run_in_worker("stoppable", "os:getpid") > 0
    shutdown("stoppable")


PARENT = """
import sys, threading, time
sys.path.insert(0, sys.argv[1])
from fly64_kedro.engines.workers import run_in_worker
if __name__ == "__main__":
    pids = []
    # from a thread, so only the watchdog (not the parent-death signal) can notice the parent's death
    thread = threading.Thread(target=lambda: pids.append(run_in_worker("orphan", "os:getpid")))
    thread.start()
    thread.join()
    print(pids[0], flush=True)
    time.sleep(600)
"""


def test_worker_exits_when_its_parent_is_killed() -> None:
    parent = subprocess.Popen(
        [sys.executable, "-c", PARENT, str(Path(__file__).resolve().parents[2] / "src")],
        stdout=subprocess.PIPE,
        text=True,
    )
    worker = int(parent.stdout.readline())
    os.kill(worker, 0)  # alive
    parent.kill()
    parent.wait()
    deadline = time.monotonic() + 10
    while running(worker):
        assert time.monotonic() < deadline, "the worker outlived its killed parent by 10 s"
        time.sleep(0.05)


def running(pid: int) -> bool:
    """True while ``pid`` exists and is not a zombie (exited, waiting to be reaped)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False
