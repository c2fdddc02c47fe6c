"""A real `kedro run -e tiny` killed or interrupted during reconstruction leaves no process behind (no orphaned
engine worker or resource tracker holding memory), and Ctrl-C or SIGTERM end it promptly, mid-job.

Bookkeeping by process group: the run starts in a new session, so every process it spawns shares its group id."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from session import PROJECT_ROOT, run_session

pytestmark = pytest.mark.slow

GONE_WITHIN_S = 10.0  # the bound for the whole process group
STARTUP_TIMEOUT_S = 300.0  # a loaded 2-core machine: Kedro start-up plus the engine worker's imports


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("interrupts")
    run_session(root, pipeline_names=["generation", "overlap"])
    return root


def live_group_members(pgid: int) -> set[int]:
    """PIDs of the processes of group ``pgid`` that are not zombies (a zombie has exited and holds no memory;
    whoever inherited it reaps it)."""
    members = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:  # exited meanwhile
            continue
        state, _ppid, group = stat[stat.rindex(")") + 2 :].split()[:3]
        if int(group) == pgid and state != "Z":
            members.add(int(entry.name))
    return members


def wait_for(condition, timeout: float, what: str, log: Path) -> float:
    """Poll ``condition`` until it is true; return the seconds it took, fail after ``timeout`` with the run's log."""
    start = time.monotonic()
    while not condition():
        if time.monotonic() - start > timeout:
            pytest.fail(
                f"timed out after {timeout:.0f} s waiting for {what}; the run's log ends:\n{log.read_text()[-3000:]}"
            )
        time.sleep(0.05)
    return time.monotonic() - start


@pytest.mark.parametrize(
    "runner", [[], ["--runner=SequentialRunner"]], ids=["EngineRunner", "SequentialRunner"]
)  # kedro run's default here (two jobs at a time), and one job at a time
@pytest.mark.parametrize(
    "signum", [signal.SIGKILL, signal.SIGTERM, signal.SIGINT], ids=["SIGKILL", "SIGTERM", "SIGINT"]
)
def test_run_signalled_mid_job_leaves_no_process_behind(
    generated: Path, tmp_path: Path, signum: int, runner: list[str]
) -> None:
    log = tmp_path / "run.log"
    # A long job that logs every epoch, so the worker's first line proves a job is running when the signal comes.
    params = f"data_root={generated},reconstruction.lsqml.epochs=100000,reconstruction.lsqml.log_every=1"
    with log.open("wb") as out:
        run = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "kedro",
                "run",
                "-e",
                "tiny",
                "--pipeline",
                "reconstruction",
                "--params",
                params,
                *runner,
            ],
            cwd=PROJECT_ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            # Ctrl-C at its default, as in a terminal: a shell that runs this suite in the background (`make test &`)
            # hands its children SIGINT ignored, and an ignored disposition survives exec.
            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
        )
    try:
        wait_for(
            lambda: b"worker] " in log.read_bytes() or run.poll() is not None, STARTUP_TIMEOUT_S, "a job to start", log
        )
        assert run.poll() is None, log.read_text()[-3000:]
        assert len(live_group_members(run.pid)) >= 3  # kedro, an engine worker and the resource tracker
        os.kill(run.pid, signum)  # the kedro process alone, as a scheduler or `kill` would
        if signum != signal.SIGKILL:  # the run stops itself, mid-job
            exited_s = wait_for(lambda: run.poll() is not None, GONE_WITHIN_S, "the run to exit", log)
            print(f"{signal.Signals(signum).name}: kedro exited {exited_s:.2f} s after the signal, rc {run.returncode}")
            assert run.returncode != 0
        run.wait(GONE_WITHIN_S)  # reap it, so that only its descendants can remain in the group
        gone_s = wait_for(
            lambda: not live_group_members(run.pid), GONE_WITHIN_S, "every process of the run to exit", log
        )
        print(f"{signal.Signals(signum).name}: the process group was empty {gone_s:.2f} s after kedro exited")
    finally:
        for pid in live_group_members(run.pid):  # never leave a stray process behind a failed test
            os.kill(pid, signal.SIGKILL)
        run.wait()
