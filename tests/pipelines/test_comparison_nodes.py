"""The comparison nodes without a session: floors next to the models, convergence sources, the headline table's
empty cells and footnotes, dose labels."""

from __future__ import annotations

import io

import numpy as np
import pytest
from matplotlib import image as mpimg

from fly64_kedro.physics.forward import extract_patches
from fly64_kedro.physics.synthetic_object import focused_probe, synthetic_fly_object
from fly64_kedro.pipelines.comparison.nodes import (
    FLAT,
    TRUTH_PATCHES,
    build_metrics_table,
    compare_job,
    dose_grid,
    dose_label,
    headline_table,
)
from fly64_kedro.pipelines.generation.nodes import draw_scan_positions
from fly64_kedro.record import Record

N = 32
COMPARISON = {"crop_margin": 8, "max_shift": 4, "phase_plane": False}


@pytest.fixture(scope="module")
def job():
    """A full test view of the tiny geometry, an LSQML record equal to the truth (with its loss), a PINN record
    without history whose training record has one, and a skipped gs1 record."""
    truth = synthetic_fly_object((160, 160), 42)
    probe = focused_probe(N, defocus_waves=2.0)
    y, x = draw_scan_positions(truth.shape, N, 400, 42).T
    keep = y >= 0.5 * (y.min() + y.max()) + N / 2
    y, x = y[keep], x[keep]
    meta = {"dose": 1e4, "view": "full", "split": "test", "N": N}
    view = Record(
        {"ycoords": y, "xcoords": x, "probeGuess": probe, "objectGuess": truth, "Y": extract_patches(truth, y, x, N)},
        meta,
    )
    lsqml = Record(
        {"object": truth, "ycoords": y, "xcoords": x, "loss": np.array([3.0, 2.0, 1.5])},
        {
            **meta,
            "method": "lsqml",
            "wall_time_s": 2.0,
            "device": "cpu",
            "epochs_run": 3,
            "stop_reason": "epoch budget (3) spent",
        },
    )
    pinn = Record(
        {"object": np.full(truth.shape, 0.5 + 0j, np.complex64), "ycoords": y, "xcoords": x},
        {**meta, "method": "pinn_gs2", "wall_time_s": 1.0, "device": "cpu"},
    )
    training = Record(
        {},
        {
            "method": "pinn_gs2",
            "job": "dose=1e+04 full/train pinn_gs2 training",
            "weight_names": [],
            "history": {"loss": [5.0, 4.0], "val_loss": [5.5, 4.5]},
            "epochs_run": 2,
            "stop_reason": "epoch budget (2) spent",
        },
    )
    skipped = Record({}, {**meta, "method": "pinn_gs1", "status": "failed", "reason": "RuntimeError: boom"})
    return compare_job(Record({"objectGuess": truth}), view, COMPARISON, lsqml, pinn, skipped, training)


def test_models_and_floors_are_scored_side_by_side(job) -> None:
    record, grid, convergence = job
    table = build_metrics_table(record)
    r2 = table[table.metric == "r2"].set_index("model")
    assert set(r2.index) == {"pty-chi LSQML", "PtychoPINN", FLAT, TRUTH_PATCHES}
    assert r2.loc["pty-chi LSQML", "amplitude"] == pytest.approx(1.0) and r2.loc[
        "pty-chi LSQML", "phase"
    ] == pytest.approx(1.0)
    assert abs(r2.loc[FLAT, "amplitude"]) < 1e-6 and abs(r2.loc[FLAT, "phase"]) < 1e-6
    assert r2.loc[TRUTH_PATCHES, "phase"] > 0.95
    assert set(table.kind) == {"model", "floor"} and (table.loc[table.model == FLAT, "kind"] == "floor").all()
    assert record["statuses"]["PtychoPINN-gs1"]["status"] == "failed"
    assert len(grid.axes) > 0 and len(convergence.axes) == 3


def test_convergence_comes_from_the_record_or_its_training_record(job) -> None:
    jobs = {j["model"]: j for j in job[0]["jobs"]}
    assert jobs["pty-chi LSQML"]["curves"] == {"loss": [3.0, 2.0, 1.5]} and jobs["pty-chi LSQML"]["epochs_run"] == 3
    assert jobs["PtychoPINN"]["curves"] == {"loss": [5.0, 4.0], "val_loss": [5.5, 4.5]}
    assert jobs["PtychoPINN"]["epochs_run"] == 2
    assert jobs["PtychoPINN-gs1"]["curves"] == {}


def test_headline_table_leaves_failed_cells_empty_and_says_why(job) -> None:
    record = job[0]
    frame, footnotes = headline_table(build_metrics_table(record), [record])
    row = frame.loc[("1e4", "full")]
    assert row[("PtychoPINN-gs1", "R2")] == "" and row[("flat", "R2")] == "0.000 / 0.000"
    assert list(frame.columns.get_level_values(1)[:2]) == ["R2", "MS-SSIM"]
    assert any("PtychoPINN-gs1" in note and "boom" in note for note in footnotes)
    assert not frame.isna().any().any()


@pytest.mark.parametrize("dose, label", [(1000.0, "1e3"), (1e4, "1e4"), (1e5, "1e5"), (2500.0, "2500")])
def test_dose_label(dose: float, label: str) -> None:
    assert dose_label(dose) == label


def test_dose_grid_stacks_every_job_grid_into_one_image() -> None:
    def png(width: int, value: float) -> bytes:
        buffer = io.BytesIO()
        mpimg.imsave(buffer, np.full((10, width, 3), value), format="png")
        return buffer.getvalue()

    stacked = mpimg.imread(io.BytesIO(dose_grid([png(30, 0.0), png(50, 0.5)])), format="png")
    assert stacked.shape[:2] == (20, 50)  # heights add up, the narrower grid is padded to the widest
    assert stacked[:10, :30, :3].max() == 0 and stacked[:10, 30:, :3].min() == 1  # white padding
    assert np.allclose(stacked[10:, :, :3], 0.5, atol=0.01)
