"""Overlap pipeline (docs/science.md "Overlap views")."""

from fly64_kedro.pipelines.overlap.pipeline import create_pipeline

__all__ = ["create_pipeline"]
