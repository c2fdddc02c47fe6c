"""Kedro project settings."""

from fly64_kedro.hooks import RunClockHook, StopOnSigtermHook, ValidateParametersHook

HOOKS = (ValidateParametersHook(), RunClockHook(), StopOnSigtermHook())

# "soft" merging lets an environment (tiny, paper) override single nested parameters instead of whole sections.
CONFIG_LOADER_ARGS = {
    "base_env": "base",
    "default_run_env": "local",
    "merge_strategy": {"parameters": "soft"},
}
