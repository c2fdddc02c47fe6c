"""Reconstruction: every dose x view x split with pty-chi LSQML; each PINN variant trained on its train views
and applied to the matching test split; one manifest of every job."""

from functools import partial, update_wrapper

from kedro.pipeline import Pipeline, node

from fly64_kedro.pipelines.namespacing import instantiate
from fly64_kedro.pipelines.reconstruction.nodes import (
    build_reconstruction_manifest,
    reconstruct_lsqml,
    reconstruct_pinn,
    train_pinn,
)
from fly64_kedro.study import DOSES, PINN_VARIANTS, SPLITS, VIEWS


def _bind(func, **kwargs):
    return update_wrapper(partial(func, **kwargs), func)


def dose_template() -> Pipeline:
    """All jobs of one dose; reused under every dose namespace."""
    nodes = [
        node(
            reconstruct_lsqml,
            [f"{view}__{split}__ptycho", "params:lsqml"],
            f"{view}__{split}__lsqml",
            name=f"lsqml_{view}_{split}",
            tags="lsqml",
        )
        for view in VIEWS
        for split in SPLITS
    ]
    for variant in PINN_VARIANTS:
        for view in variant.views:
            nodes += [
                node(
                    _bind(train_pinn, label=variant.label, gridsize=variant.gridsize),
                    [f"{view}__train__ptycho", "params:pinn", "params:study"],
                    f"{view}__{variant.label}__model",
                    name=f"train_{variant.label}_{view}",
                    tags="pinn",
                ),
                node(
                    _bind(reconstruct_pinn, label=variant.label),
                    [f"{view}__{variant.label}__model", f"{view}__test__ptycho", "params:pinn", "params:study"],
                    f"{view}__test__{variant.label}",
                    name=f"{variant.label}_{view}_test",
                    tags="pinn",
                ),
            ]
    return Pipeline(nodes)


def job_outputs(dose: str) -> list[str]:
    """Every job record of one dose (reconstructions and trained models)."""
    names = [f"{dose}.{view}.{split}.lsqml" for view in VIEWS for split in SPLITS]
    for variant in PINN_VARIANTS:
        names += [f"{dose}.{view}.{variant.label}.model" for view in variant.views]
        names += [f"{dose}.{view}.test.{variant.label}" for view in variant.views]
    return names


def create_pipeline(**kwargs) -> Pipeline:
    """``kedro run --pipeline reconstruction``."""
    per_dose = [
        instantiate(
            dose_template(),
            dose,
            parameters={
                "params:lsqml": "params:reconstruction.lsqml",
                "params:pinn": "params:reconstruction.pinn",
                "params:study": "params:study",
            },
        )
        for dose in DOSES
    ]
    manifest = node(
        build_reconstruction_manifest,
        [name for dose in DOSES for name in job_outputs(dose)],
        "reconstruction_manifest",
        name="build_reconstruction_manifest",
    )
    return Pipeline([*per_dose, manifest], tags="reconstruction")
