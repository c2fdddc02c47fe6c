"""The whole default study (tiny profile) through one KedroSession: manifests, metrics table, figures, report."""

from __future__ import annotations

from html.parser import HTMLParser
from pathlib import Path

import pandas as pd
import pytest
from session import run_session

from fly64_kedro.study import DOSES, ENGINES, MODEL_NAMES, SPLITS, VIEWS

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def study(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("whole_study")
    run_session(root)
    return root / "08_reporting"


def test_every_job_is_in_the_manifest_and_none_failed(study: Path) -> None:
    manifest = pd.read_csv(study / "reconstruction_manifest.csv")
    pinn_jobs = sum(2 * len(e.views) for e in ENGINES if e.trained)  # training + test reconstruction
    assert len(manifest) == len(DOSES) * (len(VIEWS) * len(SPLITS) + pinn_jobs)
    assert set(manifest["status"]) <= {"ok", "skipped"}, manifest[manifest.status == "failed"][["job", "reason"]]
    assert manifest["duration_s"].gt(0).all()
    # Every job that ran says where (no GPU here); skipped ones ran nowhere.
    ran = manifest[manifest.status == "ok"]
    assert set(ran["device"]) == {"cpu"} and manifest.loc[manifest.status != "ok", "device"].isna().all()


def test_metrics_table_covers_every_model_dose_view_and_split(study: Path) -> None:
    table = pd.read_csv(study / "metrics.csv")
    assert list(table.columns[:7]) == ["model", "dose", "view", "split", "metric", "amplitude", "phase"]
    lsqml = table[table.model == MODEL_NAMES["lsqml"]]
    assert len(lsqml.groupby(["dose", "view", "split"])) == len(DOSES) * len(VIEWS) * len(SPLITS)
    test_rows = table[table.split == "test"]
    assert set(test_rows.model) == {
        MODEL_NAMES["lsqml"],
        *(e.name for e in ENGINES if e.trained),
        "flat",
        "truth patches stitched",
    }
    assert set(table.loc[table.kind == "model", "device"]) == {"cpu"}  # timings are only comparable with their device
    ms_ssim = table[table.metric == "ms_ssim"]
    assert ms_ssim["amplitude"].between(-1, 1).all() and ms_ssim["phase"].between(-1, 1).all()
    # More photons help the iterative solver on the full view (the study's most basic expectation).
    full = lsqml[(lsqml.metric == "ms_ssim") & (lsqml.view == "full") & (lsqml.split == "test")].sort_values("dose")
    assert full["amplitude"].iloc[-1] > full["amplitude"].iloc[0]
    deltas = pd.read_csv(study / "metrics_deltas_pinn_minus_lsqml.csv")
    assert set(deltas.model) == {e.name for e in ENGINES if e.trained} and len(deltas) > 0


def test_figures_and_report_are_written(study: Path) -> None:
    for dose in DOSES:
        for view in VIEWS:
            for split in SPLITS:
                assert (study / dose / f"{view}_{split}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
            assert (study / dose / f"{view}_{split}_convergence.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    report = (study / "report.html").read_text()
    # two study figures, one image grid per dose, one convergence plot per job
    assert report.count("data:image/png;base64,") == 2 + len(DOSES) + len(DOSES) * len(VIEWS) * len(SPLITS)
    assert "MS-SSIM" in report and MODEL_NAMES["lsqml"] in report and "PtychoPINN" in report


class ReportParser(HTMLParser):
    """Collects the report's image classes, the provenance block's text and the headline table's cells."""

    def __init__(self) -> None:
        super().__init__()
        self.images: list[str] = []
        self.provenance: list[str] = []
        self.headline: list[str] = []
        self._open: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        if tag == "img":
            self.images.append(attributes.get("class") or "")
            return
        mark = (
            "provenance"
            if attributes.get("id") == "provenance"
            else "headline"
            if "headline" in (attributes.get("class") or "")
            else ""
        )
        self._open.append(mark or (self._open[-1] if self._open else ""))

    def handle_endtag(self, tag: str) -> None:
        if tag != "img" and self._open:
            self._open.pop()

    def handle_data(self, data: str) -> None:
        if self._open and self._open[-1]:
            getattr(self, self._open[-1]).append(data.strip())


def test_report_has_provenance_convergence_plots_and_floors(study: Path) -> None:
    parser = ReportParser()
    parser.feed((study / "report.html").read_text())
    jobs = len(DOSES) * len(VIEWS) * len(SPLITS)
    assert parser.images.count("convergence") == jobs and parser.images.count("grid") == len(DOSES)  # one grid per dose
    provenance = " ".join(parser.provenance)
    for needed in (
        "git commit",
        "run started",
        "report written",
        "seeds",
        "numpy",
        "tensorflow",
        "ptychi",
        '"simulation": 42',
    ):
        assert needed in provenance, needed
    headline = [cell for cell in parser.headline if cell]
    assert {"flat", "truth patches stitched", "R2", "MS-SSIM", "1e3", "1e4", "1e5"} <= set(headline)
    assert not any("nan" in cell.lower() for cell in headline)
    # The flat floor scores R2 = 0 on amplitude and phase in every row of the headline table.
    table = pd.read_csv(study / "metrics.csv")
    flat_r2 = table[(table.model == "flat") & (table.metric == "r2")]
    assert len(flat_r2) > 0 and flat_r2[["amplitude", "phase"]].abs().max().max() < 1e-6
    stitched = table[(table.model == "truth patches stitched") & (table.metric == "ms_ssim") & (table.view == "full")]
    assert (stitched["phase"] > 0.95).all(), stitched
