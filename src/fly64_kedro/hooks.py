"""Project hooks: validate the parameters when a pipeline starts, before any node runs."""

from __future__ import annotations

from typing import Any

from kedro.framework.hooks import hook_impl

from fly64_kedro.engines.lsqml import validate_settings as validate_lsqml_settings
from fly64_kedro.study import ParameterError, validate_study


class ValidateParametersHook:
    """Fail fast when a study or LSQML parameter breaks its rule (spec section 2); the message names it."""

    @hook_impl
    def before_pipeline_run(self, run_params: dict[str, Any], pipeline: Any, catalog: Any) -> None:
        validate_study(catalog.load("params:study"))
        try:
            validate_lsqml_settings(catalog.load("params:reconstruction")["lsqml"])
        except ValueError as exc:
            raise ParameterError("reconstruction.lsqml", str(exc)) from exc
