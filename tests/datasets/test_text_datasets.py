"""JSON, CSV, text and figure datasets: round trips, and a crash mid-write keeps the previous file."""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd
import pytest
from matplotlib.figure import Figure

from fly64_kedro.datasets import CSVDataset, FigureDataset, JSONDataset, TextDataset


def test_round_trips(tmp_path: Path) -> None:
    JSONDataset(filepath=str(tmp_path / "a.json")).save({"x": [1, 2], "y": float("nan")})
    loaded = JSONDataset(filepath=str(tmp_path / "a.json")).load()
    assert loaded["x"] == [1, 2] and loaded["y"] != loaded["y"]
    frame = pd.DataFrame({"model": ["a", "b"], "value": [0.5, 0.25]})
    CSVDataset(filepath=str(tmp_path / "t.csv")).save(frame)
    pd.testing.assert_frame_equal(CSVDataset(filepath=str(tmp_path / "t.csv")).load(), frame)
    TextDataset(filepath=str(tmp_path / "r.html")).save("<p>ünïcode</p>")
    assert TextDataset(filepath=str(tmp_path / "r.html")).load() == "<p>ünïcode</p>"
    fig = Figure()
    fig.subplots().plot([0, 1], [1, 0])
    FigureDataset(filepath=str(tmp_path / "f.png")).save(fig)
    assert FigureDataset(filepath=str(tmp_path / "f.png")).load()[:4] == b"\x89PNG"


@pytest.mark.parametrize(
    "dataset,old,new",
    [
        (CSVDataset, pd.DataFrame({"a": [1]}), pd.DataFrame({"a": [2, 3]})),
        (JSONDataset, {"a": 1}, {"a": 2}),
        (TextDataset, "old", "new"),
    ],
    ids=["csv", "json", "text"],
)
def test_crash_before_the_rename_keeps_the_previous_file(tmp_path: Path, monkeypatch, dataset, old, new) -> None:
    path = tmp_path / "out"
    ds = dataset(filepath=str(path))
    ds.save(old)
    before = path.read_bytes()

    def killed(*args, **kwargs):
        raise KeyboardInterrupt("killed after writing the temporary file")

    monkeypatch.setattr(os, "replace", killed)
    with pytest.raises(KeyboardInterrupt):
        ds.save(new)
    assert path.read_bytes() == before and [p.name for p in tmp_path.iterdir()] == ["out"]
