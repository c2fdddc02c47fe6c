"""`fly64-verify` on a real data root: corrupt, failed and missing datasets are listed with the command that redoes
exactly those (and what depends on them), and after that command the data root verifies clean."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from session import PROJECT_ROOT, run_session

from fly64_kedro.datasets import NPZDataset
from fly64_kedro.record import Record
from fly64_kedro.verify import check_dataset, main

pytestmark = pytest.mark.slow


def verify(root: Path, pipeline: str) -> int:
    return main(["--data-root", str(root), "-e", "tiny", "--pipeline", pipeline, "--project-dir", str(PROJECT_ROOT)])


def test_verify_reports_bad_files_and_its_command_redoes_exactly_them(tmp_path: Path, capsys) -> None:
    run_session(tmp_path, pipeline_names=["generation", "overlap"])
    assert verify(tmp_path, "overlap") == 0
    truncated, scrambled = tmp_path / "03_primary/d1e4/dense_train.npz", tmp_path / "03_primary/d1e5/sparse_test.npz"
    truncated.write_bytes(truncated.read_bytes()[:5000])
    scrambled.write_bytes(np.random.default_rng(0).bytes(3000))
    (tmp_path / "03_primary/d1e3/full_test_summary.json").unlink()
    leftover = tmp_path / "03_primary/d1e4/.dense_train.npz.k3j2h1g0.tmp"
    leftover.write_bytes(b"PK")
    untouched = tmp_path / "03_primary/d1e3/dense_train.npz"
    stamp = untouched.stat().st_mtime_ns
    capsys.readouterr()

    assert verify(tmp_path, "overlap") == 1
    out = capsys.readouterr().out
    assert re.search(r"corrupt +d1e4\.dense\.train\.ptycho .*dense_train\.npz\n +DatasetError: .*not an NPZ", out)
    assert re.search(r"corrupt +d1e5\.sparse\.test\.ptycho", out)
    assert re.search(r"missing +d1e3\.full\.test\.view_summary", out)
    assert str(leftover) in out
    nodes = re.search(r"--nodes=(\S+)", out).group(1).split(",")
    assert set(nodes) == {
        "d1e4.select_dense_train",
        "d1e5.select_sparse_test",
        "d1e3.summarise_full_test",
        "build_overlap_manifest",
    }

    run_session(tmp_path, node_names=nodes)
    assert verify(tmp_path, "overlap") == 0
    assert untouched.stat().st_mtime_ns == stamp


def test_failed_and_skipped_job_records_are_told_apart(tmp_path: Path) -> None:
    failed = NPZDataset(filepath=str(tmp_path / "f.npz"), contract="reconstruction")
    failed.save(Record({}, {"status": "failed", "reason": "RuntimeError: boom"}))
    skipped = NPZDataset(filepath=str(tmp_path / "s.npz"), contract="reconstruction")
    skipped.save(Record({}, {"status": "skipped", "reason": "too few positions"}))
    assert check_dataset("a", failed).state == "failed" and "boom" in check_dataset("a", failed).detail
    assert check_dataset("b", skipped).state == "skipped"
    assert check_dataset("c", NPZDataset(filepath=str(tmp_path / "none.npz"))).state == "missing"
