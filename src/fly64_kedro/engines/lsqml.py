"""pty-chi LSQML engine (docs/science.md "Reconstruction"): one job's diffraction -> object and probe, in the
project's frame and units.

Runs in the "torch" worker only (``run_in_worker("torch", "fly64_kedro.engines.lsqml:reconstruct", ...)``).
torch and pty-chi are imported inside ``reconstruct``, never at module level: the parent process unpickles the
exceptions raised here, which imports this module, and that must not pull torch in next to TensorFlow.

Conventions of pty-chi 2.2.0 (paths under site-packages/ptychi), and how the project's data are mapped onto them:

- FFT normalisation. The far field is ``FourierPropagator()`` with ``norm=None`` (forward_models.py:570,
  propagate.py:163-169 -> maths.py:438 ``torch.fft.fft2(x, norm=None)``), i.e. the unnormalised "backward" FFT,
  and the predicted intensity is ``|psi_far|^2`` (forward_models.py:873). For an N x N exit wave that is
  N^2 |FFT2_ortho|^2, while the project's amplitude is a = |FFT2_ortho| (noise-free |FFT2(O P)| / N).
  Intensities fed to pty-chi are therefore N^2 a^2; with the known probe in its own units the object comes out
  in the true object's units. pty-chi's own probe rescaling (epoch 0) and object/probe "ambiguity removal"
  (every 10 epochs, normalises the object's mean transmission to 1) would move that scale, so both are off.
  Ambiguity removal is also what turns 1, identical or collinear positions into an all-NaN result without an
  error: it averages over the positions' bounding box (data_structures/object.py:108-116, 571-600), which then
  has zero area. With it off such scans give finite results; a single position (no overlap) is rejected here.
- DC. pty-chi predicts with DC at pixel 0; ``data_options.fft_shift=True`` applies ``torch.fft.fftshift`` to the
  data (io_handles.py:40), which maps the project's centred DC (pixel N/2) to 0 for even N.
- Positions. Buffer index of a position = position + ``pos_origin_coords``, and with the default ``SUPPORT``
  method ``pos_origin_coords = round(H / 2) - 0.5`` (torch.round, half to even; data_structures/object.py:215-216):
  the buffer "centre" is (H - 1) / 2 for even H but round(H / 2) - 0.5 for odd H (64.5 -> 63.5 for H = 129, not 64).
  A patch centred at buffer coordinate p starts at p - (N - 1) / 2 (image_proc.py:226 integer mode with the
  sub-pixel part applied to the probe, forward_models.py:446-447; image_proc.py:338 Fourier mode). The project's
  patch centred at y starts at y - N/2 (physics/forward.py), so p = y - 1/2 and
  ``pty-chi y = project y - round(H / 2)`` (same for x with W), +y down, +x right. Even N is required: for odd N
  the integer patch start round(k - 0.5) is ambiguous (half to even) and the grid would jitter by a pixel.
"""

from __future__ import annotations

import logging
import time
import warnings
from collections.abc import Mapping
from numbers import Integral
from typing import TYPE_CHECKING, Any

import numpy as np

from fly64_kedro.engines.accelerators import warn_if_cpu_fallback

if TYPE_CHECKING:
    from ptychi.api.task import PtychographyTask

logger = logging.getLogger(__name__)

_REQUIRED = ("epochs", "batch_size", "noise_model", "refine_probe")
_DEFAULTS: dict[str, Any] = {
    "probe_update_start": 0,
    "device": "auto",
    "torch_threads": None,
    "log_every": 10,
    "plateau_epochs": 20,
    "plateau_tolerance": 0.005,
}
NOISE_MODELS = ("gaussian", "poisson")
DEVICES = ("auto", "cpu", "cuda")


class ReconstructionFailed(RuntimeError):
    """pty-chi raised while building or running a job (the original type and message are in the text)."""


class NonFiniteReconstruction(ReconstructionFailed):
    """The loss, object or probe became NaN/Inf (pty-chi does not raise for that; e.g. a zero probe)."""


def _check_int(settings: Mapping[str, Any], name: str, minimum: int) -> None:
    value = settings[name]
    if isinstance(value, bool) or not isinstance(value, Integral) or value < minimum:
        raise ValueError(f"LSQML setting '{name}' must be an integer >= {minimum}, got {value!r}")


def validate_settings(settings: Mapping[str, Any]) -> dict[str, Any]:
    """Checked settings with defaults filled in; a bad value raises ValueError naming the setting (torch-free)."""
    unknown = sorted(set(settings) - set(_REQUIRED) - set(_DEFAULTS))
    if unknown:
        raise ValueError(f"unknown LSQML setting(s) {unknown}; allowed: {sorted([*_REQUIRED, *_DEFAULTS])}")
    missing = [name for name in _REQUIRED if name not in settings]
    if missing:
        raise ValueError(f"missing LSQML setting(s) {missing}")
    cfg = {**_DEFAULTS, **settings}
    for name, minimum in (("epochs", 1), ("batch_size", 1), ("probe_update_start", 0), ("log_every", 1)):
        _check_int(cfg, name, minimum)
    if cfg["plateau_epochs"] is not None:
        _check_int(cfg, "plateau_epochs", 1)
    tolerance = cfg["plateau_tolerance"]
    if isinstance(tolerance, bool) or not isinstance(tolerance, (int, float)) or not 0 <= tolerance < 1:
        raise ValueError(f"LSQML setting 'plateau_tolerance' must be a number in [0, 1), got {tolerance!r}")
    if cfg["torch_threads"] is not None:
        _check_int(cfg, "torch_threads", 1)
    if cfg["noise_model"] not in NOISE_MODELS:
        raise ValueError(f"LSQML setting 'noise_model' must be one of {NOISE_MODELS}, got {cfg['noise_model']!r}")
    if not isinstance(cfg["refine_probe"], bool):
        # ValueError like every other bad setting, so callers catch one type for configuration errors.
        message = f"LSQML setting 'refine_probe' must be true or false, got {cfg['refine_probe']!r}"
        raise ValueError(message)  # noqa: TRY004
    if cfg["device"] not in DEVICES:
        raise ValueError(f"LSQML setting 'device' must be one of {DEVICES}, got {cfg['device']!r}")
    return cfg


def to_ptychi_positions(coords: np.ndarray, size: int) -> np.ndarray:
    """Project scan centres (object pixels, one axis) -> pty-chi positions for an object of ``size`` pixels."""
    return np.asarray(coords, dtype=np.float64) - np.round(size / 2)


def _check_inputs(
    diffraction: np.ndarray, ycoords: np.ndarray, xcoords: np.ndarray, probe: np.ndarray, object_shape: Any
) -> tuple[int, int]:
    """Validate shapes, finiteness and that every patch lies inside the object; return (H, W) in pixels."""
    if diffraction.ndim != 3 or diffraction.shape[1] != diffraction.shape[2]:
        raise ValueError(f"diffraction must have shape (n, N, N), got {diffraction.shape}")
    n, n_pix = diffraction.shape[:2]
    if n < 2:
        raise ValueError(f"diffraction: LSQML needs at least 2 scan positions (one pattern has no overlap), got {n}")
    if n_pix % 2:
        raise ValueError(f"diffraction patterns must have an even size N for pty-chi's patch grid, got N={n_pix}")
    if probe.shape != (n_pix, n_pix):
        raise ValueError(f"probe must have shape {(n_pix, n_pix)} like the patterns, got {probe.shape}")
    if ycoords.shape != (n,) or xcoords.shape != (n,):
        raise ValueError(f"ycoords and xcoords must have shape ({n},), got {ycoords.shape} and {xcoords.shape}")
    if len(object_shape) != 2 or any(isinstance(s, bool) or not isinstance(s, Integral) for s in object_shape):
        raise ValueError(f"object_shape must be two integers (H, W), got {object_shape!r}")
    for name, array in (("diffraction", diffraction), ("probe", probe), ("ycoords", ycoords), ("xcoords", xcoords)):
        if not np.isfinite(array).all():
            raise ValueError(f"{name} contains NaN/Inf")
    height, width = int(object_shape[0]), int(object_shape[1])
    for name, coords, size in (("ycoords", ycoords, height), ("xcoords", xcoords, width)):
        if coords.min() < n_pix / 2 or coords.max() > size - n_pix / 2:
            raise ValueError(f"{name} must lie in [N/2, {size} - N/2] = [{n_pix / 2}, {size - n_pix / 2}]")
    return height, width


def _build_options(cfg: dict[str, Any], device: str) -> Any:
    from ptychi import api

    options = api.LSQMLOptions()
    options.data_options.save_data_on_device = device == "cuda"
    rec = options.reconstructor_options
    rec.num_epochs = cfg["epochs"]
    rec.batch_size = cfg["batch_size"]
    rec.noise_model = api.NoiseModels(cfg["noise_model"])
    rec.default_device = api.Devices.GPU if device == "cuda" else api.Devices.CPU
    # The probe is known in absolute units: keep it (and hence the object's scale) as given.
    rec.rescale_probe_intensity_in_first_epoch = False
    options.object_options.remove_object_probe_ambiguity.enabled = False
    options.probe_options.optimizable = cfg["refine_probe"]
    options.probe_options.optimization_plan.start = cfg["probe_update_start"]
    return options


def plateaued(loss: np.ndarray, window: int | None, tolerance: float) -> bool:
    """True once the mean loss of the last ``window`` epochs is less than ``tolerance`` (relative) below the mean
    of the ``window`` before. Means, not end points: the minibatch loss jitters by several % from epoch to epoch."""
    if window is None or len(loss) < 2 * window:
        return False
    before, now = float(np.mean(loss[-2 * window : -window])), float(np.mean(loss[-window:]))
    return before - now <= tolerance * abs(now)


def _run_logged(
    task: PtychographyTask, cfg: dict[str, Any], job: str, intensity_scale: float
) -> tuple[np.ndarray, str]:
    """Run epochs in chunks of ``log_every`` (pty-chi has no epoch callback; ``run`` resumes where it stopped) until
    the loss plateaus (``plateau_epochs``, ``plateau_tolerance``) or the ``epochs`` budget is spent.

    Returns the per-epoch loss in the project's units (mean squared amplitude error) and why it stopped.
    Stops early on NaN/Inf.
    """
    epochs = cfg["epochs"]
    start = time.perf_counter()
    done = 0
    stop_reason = f"epoch budget ({epochs}) spent"
    while done < epochs:
        chunk = min(cfg["log_every"], epochs - done)
        task.run(n_epochs=chunk)
        done += chunk
        loss = task.reconstructor.loss_tracker.table["loss"].to_numpy(dtype=np.float64) / intensity_scale
        elapsed = time.perf_counter() - start
        logger.info(
            "job %s: epoch %d/%d loss=%.4g (elapsed %.1f s, eta <= %.1f s)",
            job,
            done,
            epochs,
            loss[-1],
            elapsed,
            elapsed / done * (epochs - done),
        )
        if not np.isfinite(loss).all():
            raise NonFiniteReconstruction(f"job {job}: LSQML loss became NaN/Inf by epoch {done}/{epochs}")
        if done < epochs and plateaued(loss, cfg["plateau_epochs"], cfg["plateau_tolerance"]):
            stop_reason = (
                f"converged: the mean loss of the last {cfg['plateau_epochs']} epochs fell by < "
                f"{cfg['plateau_tolerance']:g} (relative) from the {cfg['plateau_epochs']} before"
            )
            break
    logger.info("job %s: stopped after %d epochs: %s", job, done, stop_reason)
    return loss, stop_reason


def reconstruct(
    diffraction: np.ndarray,
    ycoords: np.ndarray,
    xcoords: np.ndarray,
    probe: np.ndarray,
    object_shape: tuple[int, int],
    settings: Mapping[str, Any],
    job: str = "",
) -> dict[str, Any]:
    """Reconstruct one job with pty-chi LSQML from a flat object (ones) and the known probe.

    diffraction: (n, N, N) stored amplitude (|FFT2(O P)| / N units, DC centred); ycoords/xcoords: (n,) scan centres
    in object pixels (project convention); probe: (N, N) complex; object_shape: (H, W) pixels of the frame the object
    is returned in. Returns object (H, W) and probe (N, N) complex64, per-epoch loss (mean squared amplitude
    error),
    epochs_run and stop_reason (loss plateau or epoch budget), wall_time_s (task build + run + readout, s), device,
    and the positions used (project convention).
    Raises ValueError for bad settings or inputs, NonFiniteReconstruction for a NaN/Inf result, ReconstructionFailed
    if pty-chi raises.
    """
    cfg = validate_settings(settings)
    diffraction = np.asarray(diffraction)
    ycoords = np.asarray(ycoords, dtype=np.float64)
    xcoords = np.asarray(xcoords, dtype=np.float64)
    probe = np.asarray(probe)
    height, width = _check_inputs(diffraction, ycoords, xcoords, probe, object_shape)
    n_pix = diffraction.shape[-1]
    intensity_scale = float(n_pix * n_pix)  # pty-chi's unnormalised FFT: I = N^2 a^2
    intensities = np.square(diffraction, dtype=np.float32) * np.float32(intensity_scale)

    import torch

    logging.getLogger("ptychi").setLevel(logging.WARNING)  # its per-epoch INFO lines and tqdm bar are ours to give
    # pty-chi reads its loss with .item() on a tensor that requires grad; harmless, and once per epoch chunk.
    warnings.filterwarnings("ignore", message="Converting a tensor with requires_grad=True to a scalar")
    from ptychi.api.task import PtychographyTask

    if cfg["device"] == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
        warn_if_cpu_fallback("torch (pty-chi LSQML)", torch.cuda.device_count())
    elif cfg["device"] == "cuda" and not torch.cuda.is_available():
        raise ValueError("LSQML setting 'device' is 'cuda' but CUDA is not available in the torch worker")
    else:
        device = cfg["device"]

    # pty-chi sets torch's default dtype and device when a task is built; restore them so jobs stay independent.
    saved_dtype, saved_device = torch.get_default_dtype(), torch.get_default_device()
    saved_threads = torch.get_num_threads()
    try:
        if cfg["torch_threads"] is not None:
            torch.set_num_threads(cfg["torch_threads"])
        start = time.perf_counter()
        with PtychographyTask(
            _build_options(cfg, device),
            diffraction_data=intensities,
            object_data=np.ones((1, height, width), dtype=np.complex64),
            probe_data=probe.astype(np.complex64)[None, None],
            probe_position_x_px=to_ptychi_positions(xcoords, width),
            probe_position_y_px=to_ptychi_positions(ycoords, height),
        ) as task:
            loss, stop_reason = _run_logged(task, cfg, job, intensity_scale)
            obj = task.get_data_to_cpu("object", as_numpy=True)[0].astype(np.complex64)
            prb = task.get_data_to_cpu("probe", as_numpy=True)[0, 0].astype(np.complex64)
        wall_time = time.perf_counter() - start
    except ReconstructionFailed:
        raise
    except Exception as exc:
        # Re-raise as a torch-free type: unpickling a torch exception in the parent would import torch there.
        raise ReconstructionFailed(f"job {job}: pty-chi LSQML raised {type(exc).__name__}: {exc}") from exc
    finally:
        torch.set_default_dtype(saved_dtype)
        torch.set_default_device(None if saved_device.type == "cpu" else saved_device)
        torch.set_num_threads(saved_threads)

    if not (np.isfinite(obj).all() and np.isfinite(prb).all()):
        raise NonFiniteReconstruction(f"job {job}: LSQML object or probe contains NaN/Inf ({len(ycoords)} positions)")
    return {
        "object": obj,
        "probe": prb,
        "loss": loss,
        "epochs_run": len(loss),
        "stop_reason": stop_reason,
        "wall_time_s": wall_time,
        "device": device,
        "ycoords": ycoords.copy(),
        "xcoords": xcoords.copy(),
    }
