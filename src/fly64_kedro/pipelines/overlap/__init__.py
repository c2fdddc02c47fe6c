"""Overlap pipeline (spec section 4)."""

from fly64_kedro.pipelines.overlap.pipeline import create_pipeline

__all__ = ["create_pipeline"]
