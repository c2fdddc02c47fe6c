"""Comparison: per dose x view x split, every model aligned and scored the same way; then the study's tables,
figures and report."""

from kedro.pipeline import Pipeline, node

from fly64_kedro.pipelines.comparison.nodes import (
    build_metrics_table,
    compare_job,
    compute_deltas,
    plot_frc_curves,
    plot_metrics_vs_dose,
    render_report,
)
from fly64_kedro.pipelines.namespacing import instantiate
from fly64_kedro.study import DOSES, SPLITS, VIEWS, reconstructions


def job_results(view: str, split: str) -> list[str]:
    """The reconstructions that exist for one view and split (``study.reconstructions``), followed by the trained
    models they came from (their loss history feeds the convergence plots)."""
    engines = reconstructions(view, split)
    return [f"{view}__{split}__{e.label}" for e in engines] + [
        f"{view}__{e.label}__model" for e in engines if e.trained
    ]


def dose_template() -> Pipeline:
    """Scores and figures of one dose; reused under every dose namespace."""
    return Pipeline(
        [
            node(
                compare_job,
                ["base", f"{view}__{split}__ptycho", "params:comparison", *job_results(view, split)],
                [f"{view}__{split}__metrics", f"{view}__{split}__figure", f"{view}__{split}__convergence"],
                name=f"compare_{view}_{split}",
            )
            for view in VIEWS
            for split in SPLITS
        ]
    )


def create_pipeline(**kwargs) -> Pipeline:
    """``kedro run --pipeline comparison``."""
    per_dose = [
        instantiate(dose_template(), dose, parameters={"params:comparison": "params:comparison"}, shared={"base"})
        for dose in DOSES
    ]
    metrics = [f"{d}.{v}.{s}.metrics" for d in DOSES for v in VIEWS for s in SPLITS]
    figures = [f"{d}.{v}.{s}.figure" for d in DOSES for v in VIEWS for s in SPLITS]
    convergence = [f"{d}.{v}.{s}.convergence" for d in DOSES for v in VIEWS for s in SPLITS]
    study = Pipeline(
        [
            node(build_metrics_table, metrics, "metrics_table", name="build_metrics_table"),
            node(compute_deltas, "metrics_table", "metrics_deltas", name="compute_deltas"),
            node(plot_metrics_vs_dose, "metrics_table", "metrics_vs_dose_figure", name="plot_metrics_vs_dose"),
            node(plot_frc_curves, metrics, "frc_figure", name="plot_frc_curves"),
            node(
                render_report,
                [
                    "metrics_table",
                    "metrics_deltas",
                    "overlap_manifest",
                    "reconstruction_manifest",
                    "parameters",
                    "metrics_vs_dose_figure",
                    "frc_figure",
                    *metrics,
                    *figures,
                    *convergence,
                ],
                "study_report",
                name="render_report",
            ),
        ]
    )
    return Pipeline([*per_dose, study], tags="comparison")
