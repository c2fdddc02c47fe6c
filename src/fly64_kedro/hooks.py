"""Project hooks: validate the study design when a pipeline starts."""

from __future__ import annotations

from typing import Any

from kedro.framework.hooks import hook_impl

from fly64_kedro.study import validate_study


class ValidateParametersHook:
    """Fail before any node runs when a study parameter breaks its rule (spec section 2)."""

    @hook_impl
    def before_pipeline_run(self, run_params: dict[str, Any], pipeline: Any, catalog: Any) -> None:
        validate_study(catalog.load("params:study"))
