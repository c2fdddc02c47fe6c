"""Reconstruction pipeline (docs/science.md "Reconstruction")."""

from fly64_kedro.pipelines.reconstruction.pipeline import create_pipeline

__all__ = ["create_pipeline"]
