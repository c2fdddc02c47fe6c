"""The overlap node: view metadata, and the degenerate view recorded as skipped with its reason."""

from __future__ import annotations

import numpy as np
import pytest

from fly64_kedro.pipelines.overlap.nodes import build_overlap_manifest, select_overlap_view
from fly64_kedro.record import Record

STUDY = {
    "N": 32,
    "doses": {"d1e3": 1e3},
    "gridsizes": [1, 2],
    "neighbour_pool": 7,
    "seeds": {"simulation": 42, "grouping": 123, "subsampling": 456},
}
OVERLAP = {"min_direct_rate": 0.10, "min_positions": 8}


def full_view(y: np.ndarray, x: np.ndarray) -> Record:
    n = len(y)
    arrays = {
        "diffraction": np.ones((n, 32, 32), np.float32),
        "xcoords": x.astype(np.float64),
        "ycoords": y.astype(np.float64),
        "probeGuess": np.ones((32, 32), np.complex64),
        "objectGuess": np.ones((200, 200), np.complex64),
        "scan_index": np.arange(n, dtype=np.int64),
    }
    return Record(arrays, {"dose": 1e3, "dose_label": "d1e3", "split": "train", "view": "full"})


def test_view_that_keeps_one_position_is_recorded_as_skipped() -> None:
    rng = np.random.default_rng(0)
    y, x = rng.uniform(90, 110, 50), rng.uniform(90, 110, 50)  # all within S = 25.6 px of each other
    view, summary = select_overlap_view(full_view(y, x), 0.2, STUDY, OVERLAP, view="sparse")
    assert view.meta["n_accepted"] == 1 and view.meta["selection_strategy"] == "greedy"
    assert view.status == "skipped" and "fewer than overlap.min_positions=8" in view.meta["reason"]
    assert summary["status"] == "skipped" and summary["n_positions"] == 1
    manifest = build_overlap_manifest(summary)
    assert manifest.loc[0, "status"] == "skipped" and manifest.loc[0, "dataset"] == "d1e3.sparse.train.ptycho"


def test_regular_grid_is_accepted_directly_with_its_metadata() -> None:
    yy, xx = np.meshgrid(np.arange(20, 181, 30.0), np.arange(20, 181, 30.0), indexing="ij")
    view, _ = select_overlap_view(full_view(yy.ravel(), xx.ravel()), 0.2, STUDY, OVERLAP, view="sparse")
    assert view.meta["selection_strategy"] == "direct" and view.meta["acceptance_rate"] == 1.0
    assert view.meta["spacing_min"] == pytest.approx(30.0)
    assert view.meta["spacing_threshold"] == pytest.approx(25.6)
    assert view.status == "ok" and len(view["xcoords"]) == yy.size
