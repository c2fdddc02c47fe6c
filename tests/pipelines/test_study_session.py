"""The whole default study (tiny profile) through one KedroSession: manifests, metrics table, figures, report."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from session import run_session

from fly64_kedro.study import DOSES, LSQML_NAME, PINN_VARIANTS, SPLITS, VIEWS

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def study(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("whole_study")
    run_session(root)
    return root / "08_reporting"


def test_every_job_is_in_the_manifest_and_none_failed(study: Path) -> None:
    manifest = pd.read_csv(study / "reconstruction_manifest.csv")
    pinn_jobs = sum(2 * len(v.views) for v in PINN_VARIANTS)  # training + test reconstruction
    assert len(manifest) == len(DOSES) * (len(VIEWS) * len(SPLITS) + pinn_jobs)
    assert set(manifest["status"]) <= {"ok", "skipped"}, manifest[manifest.status == "failed"][["job", "reason"]]
    assert manifest["duration_s"].gt(0).all()
    # Every job that ran says where (no GPU here); skipped ones ran nowhere.
    ran = manifest[manifest.status == "ok"]
    assert set(ran["device"]) == {"cpu"} and manifest.loc[manifest.status != "ok", "device"].isna().all()


def test_metrics_table_covers_every_model_dose_view_and_split(study: Path) -> None:
    table = pd.read_csv(study / "metrics.csv")
    assert list(table.columns[:7]) == ["model", "dose", "view", "split", "metric", "amplitude", "phase"]
    lsqml = table[table.model == LSQML_NAME]
    assert len(lsqml.groupby(["dose", "view", "split"])) == len(DOSES) * len(VIEWS) * len(SPLITS)
    test_rows = table[table.split == "test"]
    assert set(test_rows.model) == {LSQML_NAME, *(v.name for v in PINN_VARIANTS)}
    assert set(table["device"]) == {"cpu"}  # timings are only comparable with their device
    ms_ssim = table[table.metric == "ms_ssim"]
    assert ms_ssim["amplitude"].between(-1, 1).all() and ms_ssim["phase"].between(-1, 1).all()
    # More photons help the iterative solver on the full view (the study's most basic expectation).
    full = lsqml[(lsqml.metric == "ms_ssim") & (lsqml.view == "full") & (lsqml.split == "test")].sort_values("dose")
    assert full["amplitude"].iloc[-1] > full["amplitude"].iloc[0]
    deltas = pd.read_csv(study / "metrics_deltas_pinn_minus_lsqml.csv")
    assert set(deltas.model) == {v.name for v in PINN_VARIANTS} and len(deltas) > 0


def test_figures_and_report_are_written(study: Path) -> None:
    for dose in DOSES:
        for view in VIEWS:
            for split in SPLITS:
                assert (study / dose / f"{view}_{split}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    report = (study / "report.html").read_text()
    assert report.count("data:image/png;base64,") == 2 + len(DOSES) * len(VIEWS) * len(SPLITS)
    assert "MS-SSIM" in report and LSQML_NAME in report and "PtychoPINN" in report
