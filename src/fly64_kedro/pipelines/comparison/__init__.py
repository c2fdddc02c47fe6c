"""Comparison pipeline (spec section 7)."""

from fly64_kedro.pipelines.comparison.pipeline import create_pipeline

__all__ = ["create_pipeline"]
