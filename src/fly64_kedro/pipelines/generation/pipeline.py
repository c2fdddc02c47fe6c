"""Generation: one synthetic base, then one namespace per dose (d1e3, d1e4, d1e5) simulating and splitting."""

from functools import partial, update_wrapper

from kedro.pipeline import Pipeline, node

from fly64_kedro.pipelines.generation.nodes import make_synthetic_base, simulate_diffraction, split_train_test
from fly64_kedro.pipelines.namespacing import instantiate
from fly64_kedro.study import DOSES

BASE_NODE = "make_synthetic_base"


def dose_template(label: str) -> Pipeline:
    """Simulate and split the dose ``label`` (recorded in its metadata); instantiated under its namespace."""
    simulate = update_wrapper(partial(simulate_diffraction, label=label), simulate_diffraction)
    return Pipeline(
        [
            node(
                simulate,
                ["base", "params:dose", "params:study", "params:generation"],
                "simulated__ptycho",
                name="simulate_diffraction",
            ),
            node(
                split_train_test,
                ["simulated__ptycho", "params:study", "params:generation"],
                ["full__train__ptycho", "full__test__ptycho"],
                name="split_train_test",
            ),
        ]
    )


def create_pipeline(**kwargs) -> Pipeline:
    """The synthetic base plus the per-dose simulation (``kedro run --pipeline generation``)."""
    base = Pipeline(
        [node(make_synthetic_base, ["params:generation.base", "params:study"], "base", name=BASE_NODE)],
        tags="synthetic_base",
    )
    per_dose = [
        instantiate(
            dose_template(dose),
            dose,
            parameters={
                "params:dose": f"params:study.doses.{dose}",
                "params:study": "params:study",
                "params:generation": "params:generation",
            },
            shared={"base"},
        )
        for dose in DOSES
    ]
    return Pipeline([base, *per_dose], tags="generation")
