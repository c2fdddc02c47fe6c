"""Kedro runners of fly64-kedro."""

from fly64_kedro.runners.dask_runner import DaskRunner

__all__ = ["DaskRunner"]
