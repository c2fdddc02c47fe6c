"""Device reporting: a GPU the driver has but an engine cannot use is reported loudly, never silently ignored."""

from __future__ import annotations

import logging
import subprocess
import sys
from pathlib import Path

import pytest

from fly64_kedro.engines import accelerators
from fly64_kedro.engines.accelerators import fallback_message, nvidia_gpu_count, warn_if_cpu_fallback


def _driver_dir(tmp_path: Path, n_gpus: int) -> Path:
    """A stand-in for /proc/driver/nvidia/gpus with one entry per GPU (PCI bus ids, as the driver names them)."""
    gpus = tmp_path / "gpus"
    gpus.mkdir()
    for i in range(n_gpus):
        (gpus / f"0000:{i:02x}:00.0").mkdir()
    return gpus


def test_driver_gpu_count_reads_one_entry_per_gpu_and_zero_without_a_driver(tmp_path: Path) -> None:
    empty_dev = tmp_path / "dev"
    empty_dev.mkdir()
    assert nvidia_gpu_count(_driver_dir(tmp_path, 2), empty_dev) == 2
    assert nvidia_gpu_count(tmp_path / "no-driver", empty_dev) == 0


def test_driver_gpu_count_falls_back_to_device_files(tmp_path: Path) -> None:
    # A container may expose /dev/nvidia0.. without /proc/driver/nvidia; nvidiactl and nvidia-uvm are not GPUs.
    for name in ("nvidia0", "nvidia1", "nvidiactl", "nvidia-uvm"):
        (tmp_path / name).touch()
    assert nvidia_gpu_count(tmp_path / "no-proc-entries", tmp_path) == 2


@pytest.mark.parametrize(
    ("framework_gpus", "driver_gpus", "warns"),
    [(0, 0, False), (1, 1, False), (0, 1, True), (0, 8, True)],
    ids=["cpu-machine", "gpu-used", "gpu-unused", "eight-unused"],
)
def test_fallback_message_only_when_the_driver_has_gpus_the_framework_does_not_see(
    framework_gpus: int, driver_gpus: int, warns: bool
) -> None:
    message = fallback_message("tensorflow (PtychoPINN)", framework_gpus, driver_gpus)
    assert (message is not None) == warns
    if warns:
        assert "tensorflow (PtychoPINN)" in message and f"reports {driver_gpus} GPU" in message
        assert "README" in message  # names where the fix is


def test_warning_is_logged_once_per_engine(tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch) -> None:
    monkeypatch.setattr(accelerators, "_warned", set())
    gpus = _driver_dir(tmp_path, 1)
    with caplog.at_level(logging.WARNING, logger=accelerators.__name__):
        warn_if_cpu_fallback("engine-a", 0, gpus, tmp_path)
        warn_if_cpu_fallback("engine-a", 0, gpus, tmp_path)
        warn_if_cpu_fallback("engine-b", 1, gpus, tmp_path)  # sees its GPU: nothing to say
    assert [r.getMessage()[:14] for r in caplog.records] == ["the engine-a e"]


@pytest.mark.slow
def test_device_report_asks_both_engine_workers() -> None:
    """The real command: each engine's worker imports its framework and reports; no GPU here, so both say CPU."""
    result = subprocess.run(
        [sys.executable, "-m", "fly64_kedro.engines.accelerators"], capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr[-3000:]
    lines = result.stdout.splitlines()
    assert lines[0] == f"NVIDIA driver: {nvidia_gpu_count()} GPU(s)"
    assert lines[1].startswith("torch ") and lines[1].endswith("CPU only")
    assert lines[2].startswith("tensorflow ") and "CUDA build 12" in lines[2] and lines[2].endswith("CPU only")
