"""Generation pipeline (spec section 3)."""

from fly64_kedro.pipelines.generation.pipeline import create_pipeline

__all__ = ["create_pipeline"]
