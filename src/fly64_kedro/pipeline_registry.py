"""Project pipelines."""

from __future__ import annotations

from kedro.pipeline import Pipeline

from fly64_kedro.pipelines import comparison, generation, overlap, reconstruction


def register_pipelines() -> dict[str, Pipeline]:
    """The four modular pipelines, the whole study as ``__default__``, and ``study_own_base`` (the study
    without the synthetic-base node, for a user's own base NPZ declared as ``base`` in the catalog)."""
    pipelines = {
        "generation": generation.create_pipeline(),
        "overlap": overlap.create_pipeline(),
        "reconstruction": reconstruction.create_pipeline(),
        "comparison": comparison.create_pipeline(),
    }
    default = sum(pipelines.values(), Pipeline([]))
    pipelines["__default__"] = default
    pipelines["study_own_base"] = default.filter(
        node_names=[n.name for n in default.nodes if n.name != generation.pipeline.BASE_NODE]
    )
    return pipelines
