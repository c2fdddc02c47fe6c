"""Generation pipeline (docs/science.md "Generation")."""

from fly64_kedro.pipelines.generation.pipeline import create_pipeline

__all__ = ["create_pipeline"]
