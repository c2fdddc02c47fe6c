"""Kedro project settings."""

from fly64_kedro.hooks import ValidateParametersHook

HOOKS = (ValidateParametersHook(),)

CONFIG_LOADER_ARGS = {"base_env": "base", "default_run_env": "local"}
