"""Kedro runners of fly64-kedro."""

from fly64_kedro.runners.dask_runner import DaskRunner
from fly64_kedro.runners.engine_runner import EngineRunner

__all__ = ["DaskRunner", "EngineRunner"]
