"""Project hooks: validate every parameter when a pipeline starts, before any node runs; note when the run
started; turn SIGTERM into an orderly stop of the run and its engine workers."""

from __future__ import annotations

import logging
import os
import signal
import threading
from pathlib import Path
from typing import Any

from kedro.config import OmegaConfigLoader
from kedro.framework.hooks import hook_impl

from fly64_kedro.engines.pinn.settings import LEVELS
from fly64_kedro.pipelines.generation.pipeline import BASE_NODE
from fly64_kedro.pipelines.reconstruction.nodes import checked_settings, trained_settings
from fly64_kedro.provenance import RUN_STARTED_ENV, now_utc
from fly64_kedro.study import (
    ENGINES,
    ParameterError,
    simulation_peak_bytes,
    unknown_parameters,
    validate_comparison,
    validate_generation,
    validate_overlap,
    validate_study,
)

logger = logging.getLogger(__name__)

# Read by the catalog through the runtime_params resolver (`--params data_root=/dir`), not a parameters.yml key.
RUNTIME_ONLY = {"data_root", "base_path"}
CGROUP_MEMORY_LIMIT = Path("/sys/fs/cgroup/memory.max")


def machine_memory_bytes() -> int:
    """Physical memory (bytes), or the cgroup v2 limit of this process's container where that is lower."""
    total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    try:
        limit = CGROUP_MEMORY_LIMIT.read_text().strip()
    except OSError:
        return total
    return min(total, int(limit)) if limit.isdigit() else total


def check_simulation_memory(generation: dict[str, Any], n_pix: int, available: int) -> int:
    """The simulation's estimated peak (bytes) for one dose; ``ParameterError`` if it exceeds ``available``."""
    needed = simulation_peak_bytes(int(generation["n_positions"]), n_pix, int(generation["chunk_size"]))
    if needed > available:
        raise ParameterError(
            "generation.n_positions",
            f"simulating one dose needs about {needed / 2**30:.1f} GiB at N = {n_pix} "
            "(12 bytes per pattern pixel, twice, during the split), more than this machine's "
            f"{available / 2**30:.1f} GiB",
            generation["n_positions"],
        )
    return needed


def validate_parameters(params: dict[str, Any], available_memory: int) -> None:
    """Check every section of the run's parameters (without importing TensorFlow or torch); raise ``ParameterError``."""
    study, generation = params["study"], params["generation"]
    validate_study(study)
    n_pix = int(study["N"])
    validate_generation(generation, n_pix)
    validate_overlap(params["overlap"])
    validate_comparison(params["comparison"])
    if n_pix % 2**LEVELS:
        rule = f"must be a multiple of {2**LEVELS}: the PINN encoder pools {LEVELS} times"
        raise ParameterError("study.N", rule, n_pix)
    reconstruction = params["reconstruction"]
    for engine in ENGINES:
        settings = reconstruction[engine.settings]
        if engine.trained:
            trained_settings(engine, settings, study)
        else:
            checked_settings(engine, settings)
    needed = check_simulation_memory(generation, n_pix, available_memory)
    logger.info(
        "simulation of one dose needs about %.2f GiB (this machine: %.1f GiB)", needed / 2**30, available_memory / 2**30
    )


class ValidateParametersHook:
    """Fail fast, naming the parameter and its rule, when a run's parameters include one the base environment does
    not define (a misspelt or misnested override), or any parameter breaks its rule (docs/science.md)."""

    def __init__(self) -> None:
        self._loader: Any = None

    @hook_impl
    def after_context_created(self, context: Any) -> None:
        self._loader = context.config_loader

    @hook_impl
    def before_pipeline_run(self, run_params: dict[str, Any], pipeline: Any, catalog: Any) -> None:
        parameters = catalog.load("parameters")
        if isinstance(self._loader, OmegaConfigLoader):
            self._check_known(self._loader, parameters)
        if "base_path" in (run_params.get("runtime_params") or {}) and BASE_NODE in {n.name for n in pipeline.nodes}:
            raise ParameterError(
                "base_path",
                "names your own base file: run it with --pipeline study_own_base, whose pipeline "
                f"lacks the {BASE_NODE} node that would overwrite it",
            )
        validate_parameters(parameters, machine_memory_bytes())

    @staticmethod
    def _check_known(loader: OmegaConfigLoader, parameters: dict[str, Any]) -> None:
        """``parameters`` (the run's, environment and --params merged) against the base environment's alone."""
        base = OmegaConfigLoader(
            conf_source=loader.conf_source,
            env=loader.base_env,
            base_env=loader.base_env,
            default_run_env=loader.base_env,
            config_patterns=loader.config_patterns,
            merge_strategy=loader.merge_strategy,
        )["parameters"]
        given = {k: v for k, v in parameters.items() if k not in RUNTIME_ONLY}
        unknown = unknown_parameters(base, given)
        if unknown:
            env = loader.env or loader.default_run_env
            raise ParameterError(
                ", ".join(unknown),
                f"not defined in conf/{loader.base_env}; environment '{env}' and --params may only override "
                f"parameters defined there (check the spelling and the nesting)",
            )


def _exit_on_sigterm(signum: int, frame: Any) -> None:
    logger.warning("SIGTERM: stopping the run and its engine workers")
    raise SystemExit(128 + signum)


class StopOnSigtermHook:
    """During a run, SIGTERM (what schedulers and ``timeout`` send) raises ``SystemExit`` in the main thread, so the
    run unwinds as on Ctrl-C: the busy engine worker is killed, idle ones are shut down at exit. The default
    action would end the process without running any finalizer, leaving the workers behind."""

    def __init__(self) -> None:
        self._previous: Any = None

    @hook_impl(trylast=True)  # after the parameter check, which may refuse the run before it starts
    def before_pipeline_run(self) -> None:
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGTERM, _exit_on_sigterm)

    @hook_impl
    def after_pipeline_run(self) -> None:
        self._restore()

    @hook_impl
    def on_pipeline_error(self) -> None:
        self._restore()

    def _restore(self) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGTERM, self._previous)
            self._previous = None


class RunClockHook:
    """Records the run's start time (UTC) in the environment, where the report's provenance block reads it; an
    environment variable, because the report node may run in another process (Dask, ParallelRunner)."""

    @hook_impl
    def before_pipeline_run(self, run_params: dict[str, Any], pipeline: Any, catalog: Any) -> None:
        os.environ[RUN_STARTED_ENV] = now_utc()
