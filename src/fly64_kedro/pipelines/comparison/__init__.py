"""Comparison pipeline (docs/science.md "Comparison")."""

from fly64_kedro.pipelines.comparison.pipeline import create_pipeline

__all__ = ["create_pipeline"]
