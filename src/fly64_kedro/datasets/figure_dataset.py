"""``FigureDataset``: saves a matplotlib Figure as PNG (atomically) and loads the PNG back as bytes, so a
report node can embed figures that other nodes drew (kedro-datasets' MatplotlibDataset cannot load)."""

from __future__ import annotations

from typing import Any

from matplotlib.figure import Figure

from fly64_kedro.datasets.npz_dataset import AtomicFileDataset


class FigureDataset(AtomicFileDataset):
    """Figure -> PNG file; PNG file -> bytes. ``save_args`` go to ``Figure.savefig`` (e.g. ``dpi``)."""

    def __init__(self, *, filepath: str, save_args: dict[str, Any] | None = None, **kwargs: Any) -> None:
        self._save_args = {"dpi": 90, **(save_args or {}), "format": "png"}
        super().__init__(filepath=filepath, **kwargs)

    def load(self) -> bytes:
        with self._fs.open(self._load_path(), "rb") as handle:
            return handle.read()

    def save(self, data: Figure) -> None:
        self._write_atomic(lambda handle: data.savefig(handle, **self._save_args))
