"""Instantiate a per-dose template pipeline under its namespace.

Template nodes name datasets with ``__`` where the catalog name has a dot (``dense__train__ptycho``), because
dotted names written in a Node are reserved for namespacing; the Pipeline-level mapping turns them into the
catalog's ``d1e3.dense.train.ptycho``. Names in ``shared`` (e.g. ``base``) stay outside the namespace.
"""

from __future__ import annotations

from collections.abc import Iterable

from kedro.pipeline import Pipeline


def dotted(name: str) -> str:
    """Catalog spelling of a template dataset name."""
    return name.replace("__", ".")


def instantiate(template: Pipeline, namespace: str, parameters: dict[str, str], shared: Iterable[str] = ()) -> Pipeline:
    """``template`` under ``namespace`` with every dataset mapped to its dotted catalog name."""
    shared = set(shared)
    inputs = {
        name: name if name in shared else f"{namespace}.{dotted(name)}"
        for name in template.inputs()
        if not name.startswith("params:")
    }
    outputs = {name: f"{namespace}.{dotted(name)}" for name in template.all_outputs()}
    return Pipeline(template, namespace=namespace, inputs=inputs, outputs=outputs, parameters=parameters)
