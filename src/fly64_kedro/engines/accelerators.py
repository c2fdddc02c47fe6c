"""Which device each engine computes on, and a loud warning when a GPU is present but an engine cannot use it.

Why: the two engines need different CUDA families. The torch build pinned here is a CUDA 13 build; TensorFlow 2.21
is a CUDA 12 build that looks for CUDA 12 libraries at run time and, finding none, silently runs on the CPU. On a
GPU machine a paper-scale PINN training would then take hours without a word. Every job therefore records its
device, and a worker that finds an NVIDIA driver but no usable GPU says so once, naming the fix (README, "GPU").

``python -m fly64_kedro.engines.accelerators`` asks both engine workers and prints what each sees: run it on a
new machine before a paper-scale study.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

logger = logging.getLogger(__name__)

NVIDIA_GPUS = Path("/proc/driver/nvidia/gpus")  # one entry per GPU the loaded NVIDIA driver manages
DEVICES = Path("/dev")  # nvidia0, nvidia1, ...: containers often expose these without the /proc entries
README_HINT = "see README.md, section 'GPU'"
_warned: set[str] = set()


def nvidia_gpu_count(gpus_dir: Path = NVIDIA_GPUS, dev_dir: Path = DEVICES) -> int:
    """Number of GPUs the NVIDIA kernel driver manages (0 without the driver), whatever any framework sees."""
    try:
        listed = sum(1 for _ in gpus_dir.iterdir())
    except OSError:
        listed = 0
    return listed or sum(1 for _ in dev_dir.glob("nvidia[0-9]*"))


def fallback_message(engine: str, framework_gpus: int, driver_gpus: int) -> str | None:
    """The warning for an engine that sees ``framework_gpus`` of the machine's ``driver_gpus`` GPUs, or None."""
    if driver_gpus == 0 or framework_gpus > 0:
        return None
    return (
        f"the {engine} engine runs on the CPU although the NVIDIA driver reports {driver_gpus} GPU(s): "
        f"its framework finds no usable CUDA libraries ({README_HINT})"
    )


def warn_if_cpu_fallback(
    engine: str, framework_gpus: int, gpus_dir: Path = NVIDIA_GPUS, dev_dir: Path = DEVICES
) -> None:
    """Log ``fallback_message`` at WARNING, once per engine and process."""
    message = fallback_message(engine, framework_gpus, nvidia_gpu_count(gpus_dir, dev_dir))
    if message and engine not in _warned:
        _warned.add(engine)
        logger.warning(message)


def torch_devices() -> dict[str, object]:
    """What torch sees (call in the "torch" worker): version, CUDA build, GPU names; warns on a CPU fallback."""
    import torch

    gpus = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
    warn_if_cpu_fallback("torch (pty-chi LSQML)", len(gpus))
    return {"engine": "torch", "version": torch.__version__, "cuda_build": torch.version.cuda, "gpus": gpus}


def tensorflow_devices() -> dict[str, object]:
    """What TensorFlow sees (call in the "tensorflow" worker): version, CUDA build, GPUs; warns on a CPU fallback."""
    import tensorflow as tf

    gpus = [gpu.name for gpu in tf.config.list_physical_devices("GPU")]
    warn_if_cpu_fallback("tensorflow (PtychoPINN)", len(gpus))
    build = tf.sysconfig.get_build_info()
    return {"engine": "tensorflow", "version": tf.__version__, "cuda_build": build.get("cuda_version"), "gpus": gpus}


def tensorflow_device() -> str:
    """The device TensorFlow places the PINN on ("gpu" or "cpu"); warns on a CPU fallback. TensorFlow worker only."""
    return "gpu" if tensorflow_devices()["gpus"] else "cpu"


def main() -> int:
    """Print each engine worker's view of the machine; exit 1 if the driver has GPUs an engine cannot use."""
    from fly64_kedro.engines.workers import run_in_worker, shutdown

    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(message)s")
    driver_gpus = nvidia_gpu_count()
    print(f"NVIDIA driver: {driver_gpus} GPU(s)")
    status = 0
    try:
        for engine, target in (("torch", "torch_devices"), ("tensorflow", "tensorflow_devices")):
            seen = run_in_worker(engine, f"{__name__}:{target}")
            devices = ", ".join(seen["gpus"]) or "CPU only"
            print(f"{engine} {seen['version']} (CUDA build {seen['cuda_build']}): {devices}")
            status |= fallback_message(engine, len(seen["gpus"]), driver_gpus) is not None
    finally:
        shutdown()
    return status


if __name__ == "__main__":
    sys.exit(main())
