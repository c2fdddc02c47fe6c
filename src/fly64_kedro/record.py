"""The in-memory form of every NPZ file the pipelines pass: named arrays plus JSON metadata."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

# A view's selection fields (docs/science.md "Overlap views"), carried by every job record and manifest row.
VIEW_FIELDS = (
    "dose",
    "dose_label",
    "view",
    "split",
    "selection_strategy",
    "acceptance_rate",
    "spacing_threshold",
    "n_accepted",
    "n_rejected",
    "image_overlap",
    "group_overlap",
)
PER_POSITION = ("diffraction", "xcoords", "ycoords", "Y", "scan_index")  # 'ptycho' arrays with one row per position


def _to_json(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"metadata value of type {type(value).__name__} is not JSON-serialisable")


def dump_metadata(meta: Mapping[str, Any]) -> str:
    """Metadata as the JSON text stored in the 0-d unicode `_metadata` array (NaN stays NaN)."""
    return json.dumps(dict(meta), default=_to_json, sort_keys=True)


@dataclass(frozen=True)
class Record(Mapping[str, np.ndarray]):
    """Arrays by key (read-only mapping) and a JSON-able ``meta`` dict; what NPZDataset loads and saves."""

    arrays: Mapping[str, np.ndarray]
    meta: Mapping[str, Any] = field(default_factory=dict)

    def __getitem__(self, key: str) -> np.ndarray:
        return self.arrays[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self.arrays)

    def __len__(self) -> int:
        return len(self.arrays)

    @property
    def status(self) -> str:
        """'ok' unless the metadata says the job was 'failed' or 'skipped'."""
        return str(self.meta.get("status", "ok"))

    def with_meta(self, **updates: Any) -> Record:
        """A copy with metadata keys added or replaced."""
        return Record(self.arrays, {**self.meta, **updates})


def subset(record: Record, keep: np.ndarray, **meta: Any) -> Record:
    """The per-position arrays of a 'ptycho' record restricted to ``keep`` (bool mask or indices), metadata updated."""
    arrays = {k: (v[keep] if k in PER_POSITION else v) for k, v in record.arrays.items()}
    return Record(arrays, {**record.meta, **meta})


def view_meta(view: Record) -> dict[str, Any]:
    """The ``VIEW_FIELDS`` a view's metadata has."""
    return {k: view.meta[k] for k in VIEW_FIELDS if k in view.meta}
