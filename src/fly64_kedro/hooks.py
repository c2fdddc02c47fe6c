"""Project hooks: validate the parameters when a pipeline starts, before any node runs; note when the run started."""

from __future__ import annotations

import os
from typing import Any

from kedro.config import OmegaConfigLoader
from kedro.framework.hooks import hook_impl

from fly64_kedro.engines.lsqml import validate_settings as validate_lsqml_settings
from fly64_kedro.provenance import RUN_STARTED_ENV, now_utc
from fly64_kedro.study import ParameterError, unknown_parameters, validate_study

# Read by the catalog through the runtime_params resolver (`--params data_root=/dir`), not a parameters.yml key.
RUNTIME_ONLY = {"data_root"}


class ValidateParametersHook:
    """Fail fast, naming the parameter and its rule, when a run's parameters include one the base environment does
    not define (a misspelt or misnested override), or a study or LSQML parameter breaks its rule (spec section 2)."""

    def __init__(self) -> None:
        self._loader: Any = None

    @hook_impl
    def after_context_created(self, context: Any) -> None:
        self._loader = context.config_loader

    @hook_impl
    def before_pipeline_run(self, run_params: dict[str, Any], pipeline: Any, catalog: Any) -> None:
        if isinstance(self._loader, OmegaConfigLoader):
            self._check_known(self._loader, catalog.load("parameters"))
        validate_study(catalog.load("params:study"))
        try:
            validate_lsqml_settings(catalog.load("params:reconstruction")["lsqml"])
        except ValueError as exc:
            raise ParameterError("reconstruction.lsqml", str(exc)) from exc

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


class RunClockHook:
    """Records the run's start time (UTC) in the environment, where the report's provenance block reads it; an
    environment variable, because the report node may run in another process (Dask, ParallelRunner)."""

    @hook_impl
    def before_pipeline_run(self, run_params: dict[str, Any], pipeline: Any, catalog: Any) -> None:
        os.environ[RUN_STARTED_ENV] = now_utc()
