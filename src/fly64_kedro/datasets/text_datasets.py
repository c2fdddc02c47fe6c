"""Atomic JSON, CSV and text datasets for the manifests, metrics and report (kedro-datasets' versions write
in place, so a crash mid-write would leave a truncated file)."""

from __future__ import annotations

import io
import json
from typing import Any

import pandas as pd

from fly64_kedro.datasets.npz_dataset import AtomicFileDataset


class JSONDataset(AtomicFileDataset):
    """JSON-able data <-> a JSON file (NaN written as NaN, as Python's json module does)."""

    def load(self) -> Any:
        with self._fs.open(self._load_path(), "r", encoding="utf-8") as handle:
            return json.load(handle)

    def save(self, data: Any) -> None:
        payload = json.dumps(data, indent=2).encode()
        self._write_atomic(lambda handle: handle.write(payload))


class CSVDataset(AtomicFileDataset):
    """pandas DataFrame <-> a CSV file without the index."""

    def load(self) -> pd.DataFrame:
        with self._fs.open(self._load_path(), "rb") as handle:
            return pd.read_csv(handle)

    def save(self, data: pd.DataFrame) -> None:
        buffer = io.StringIO()
        data.to_csv(buffer, index=False)
        payload = buffer.getvalue().encode()
        self._write_atomic(lambda handle: handle.write(payload))


class TextDataset(AtomicFileDataset):
    """str <-> a UTF-8 text file (the HTML report)."""

    def load(self) -> str:
        with self._fs.open(self._load_path(), "r", encoding="utf-8") as handle:
            return handle.read()

    def save(self, data: str) -> None:
        payload = data.encode()
        self._write_atomic(lambda handle: handle.write(payload))
