"""Reconstruction: every dose x view x split with pty-chi LSQML; each PINN variant trained on its train views
and applied to the matching test split; one manifest of every job."""

from functools import partial, update_wrapper

from kedro.pipeline import Pipeline, node

from fly64_kedro.pipelines.namespacing import instantiate
from fly64_kedro.pipelines.reconstruction.nodes import (
    apply_model,
    build_reconstruction_manifest,
    reconstruct_direct,
    train_model,
)
from fly64_kedro.study import DOSES, ENGINES, SPLITS


def _bind(func, **kwargs):
    return update_wrapper(partial(func, **kwargs), func)


def dose_template() -> Pipeline:
    """All jobs of one dose, one set per engine of ``study.ENGINES``; reused under every dose namespace."""
    nodes = []
    for engine in ENGINES:
        settings = f"params:{engine.settings}"
        if not engine.trained:
            nodes += [
                node(
                    _bind(reconstruct_direct, label=engine.label),
                    [f"{view}__{split}__ptycho", settings],
                    f"{view}__{split}__{engine.label}",
                    name=f"{engine.label}_{view}_{split}",
                    tags=engine.settings,
                )
                for view in engine.views
                for split in SPLITS
            ]
            continue
        for view in engine.views:
            nodes += [
                node(
                    _bind(train_model, label=engine.label),
                    {
                        "train_view": f"{view}__train__ptycho",
                        "settings": settings,
                        "study": "params:study",
                        **({"teacher": f"{view}__{engine.teacher}__model"} if engine.teacher else {}),
                    },
                    f"{view}__{engine.label}__model",
                    name=f"train_{engine.label}_{view}",
                    tags=engine.settings,
                ),
                node(
                    _bind(apply_model, label=engine.label),
                    [f"{view}__{engine.label}__model", f"{view}__test__ptycho", settings, "params:study"],
                    f"{view}__test__{engine.label}",
                    name=f"{engine.label}_{view}_test",
                    tags=engine.settings,
                ),
            ]
    return Pipeline(nodes)


def job_outputs(dose: str) -> list[str]:
    """Every job record of one dose (reconstructions and trained models)."""
    names = []
    for engine in ENGINES:
        if engine.trained:
            names += [f"{dose}.{view}.{engine.label}.model" for view in engine.views]
        names += [f"{dose}.{view}.{split}.{engine.label}" for view in engine.views for split in engine.splits]
    return names


def create_pipeline(**kwargs) -> Pipeline:
    """``kedro run --pipeline reconstruction``."""
    parameters = {f"params:{e.settings}": f"params:reconstruction.{e.settings}" for e in ENGINES}
    per_dose = [
        instantiate(dose_template(), dose, parameters={**parameters, "params:study": "params:study"}) for dose in DOSES
    ]
    manifest = node(
        build_reconstruction_manifest,
        [name for dose in DOSES for name in job_outputs(dose)],
        "reconstruction_manifest",
        name="build_reconstruction_manifest",
    )
    return Pipeline([*per_dose, manifest], tags="reconstruction")
