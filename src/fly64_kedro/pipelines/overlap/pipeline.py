"""Overlap: dense and sparse views of every dose's train and test split, and one overlap manifest."""

from functools import partial, update_wrapper

from kedro.pipeline import Pipeline, node

from fly64_kedro.pipelines.namespacing import instantiate
from fly64_kedro.pipelines.overlap.nodes import build_overlap_manifest, full_view_summary, select_overlap_view
from fly64_kedro.study import DERIVED_VIEWS, DOSES, SPLITS, VIEWS


def dose_template() -> Pipeline:
    """The views of one dose; reused under every dose namespace."""
    nodes = []
    for split in SPLITS:
        nodes.append(
            node(
                full_view_summary,
                [f"full__{split}__ptycho", "params:study"],
                f"full__{split}__view_summary",
                name=f"summarise_full_{split}",
            )
        )
        for view in DERIVED_VIEWS:
            select = update_wrapper(partial(select_overlap_view, view=view), select_overlap_view)
            nodes.append(
                node(
                    select,
                    [f"full__{split}__ptycho", f"params:fraction_{view}", "params:study", "params:overlap"],
                    [f"{view}__{split}__ptycho", f"{view}__{split}__view_summary"],
                    name=f"select_{view}_{split}",
                )
            )
    return Pipeline(nodes)


def create_pipeline(**kwargs) -> Pipeline:
    """``kedro run --pipeline overlap``: per-dose views, then the study's overlap manifest."""
    per_dose = [
        instantiate(
            dose_template(),
            dose,
            parameters={
                **{f"params:fraction_{v}": f"params:study.overlap_fractions.{v}" for v in DERIVED_VIEWS},
                "params:study": "params:study",
                "params:overlap": "params:overlap",
            },
        )
        for dose in DOSES
    ]
    summaries = [f"{d}.{v}.{s}.view_summary" for d in DOSES for v in VIEWS for s in SPLITS]
    manifest = node(build_overlap_manifest, summaries, "overlap_manifest", name="build_overlap_manifest")
    return Pipeline([*per_dose, manifest], tags="overlap")
