"""The explicit import path for upstream PtychoPINN files."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from fly64_kedro.contract import ContractError
from fly64_kedro.datasets import NPZDataset
from fly64_kedro.upstream import main


def write_upstream(path: Path, n: int = 6, n_pix: int = 8, single_patch: bool = False) -> np.ndarray:
    rng = np.random.default_rng(0)
    counts = rng.poisson(20, (n, n_pix, n_pix)).astype(np.uint16)
    y = np.ones((1 if single_patch else n, n_pix, n_pix, 1), np.complex128)
    np.savez(
        path,
        diff3d=counts,
        xcoords=rng.uniform(5, 25, n),
        ycoords=rng.uniform(5, 25, n),
        xcoords_start=np.zeros(n),
        probeGuess=np.ones((n_pix, n_pix), np.complex128),
        objectGuess=np.ones((32, 32), np.complex128),
        Y=y,
        _metadata=np.array([{"photons": 1e4, "nested": {"a": 1}}], dtype=object),
    )
    return counts


def test_upstream_file_is_refused_by_the_dataset_and_converted_by_the_import(tmp_path: Path) -> None:
    src, dst = tmp_path / "up.npz", tmp_path / "ok.npz"
    counts = write_upstream(src)
    with pytest.raises(ContractError):
        NPZDataset(filepath=str(src)).load()
    main([str(src), str(dst)])
    record = NPZDataset(filepath=str(dst)).load()
    np.testing.assert_allclose(record["diffraction"] ** 2, counts, rtol=1e-5)
    assert record["Y"].shape == (6, 8, 8) and record["Y"].dtype == np.complex64
    assert record.meta["upstream_metadata"]["photons"] == 1e4
    assert "xcoords_start" not in record and any("xcoords_start" in n for n in record.meta["conversions"])


def test_single_upstream_patch_is_dropped_with_a_note(tmp_path: Path) -> None:
    src, dst = tmp_path / "up.npz", tmp_path / "ok.npz"
    write_upstream(src, single_patch=True)
    main([str(src), str(dst)])
    record = NPZDataset(filepath=str(dst)).load()
    assert "Y" not in record
    assert any("single patch" in n for n in record.meta["conversions"])


class Payload:
    """What a crafted upstream file pickles: unpickling it calls os.system."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch '{self.marker}'",)


@pytest.mark.parametrize("wrap", [lambda p: p, lambda p: {"photons": 1e4, "nested": [p]}], ids=["bare", "nested"])
def test_crafted_pickle_is_refused_and_its_payload_never_runs(tmp_path: Path, wrap) -> None:
    src, dst, marker = tmp_path / "up.npz", tmp_path / "ok.npz", tmp_path / "payload-ran"
    write_upstream(src)
    with np.load(src, allow_pickle=True) as archive:
        arrays = {k: archive[k] for k in archive.files}
    np.savez(src, **{**arrays, "_metadata": np.array([wrap(Payload(marker))], dtype=object)})
    with pytest.raises(SystemExit, match=r"up.npz: key '_metadata': refused.*global 'posix.system' is not allowed"):
        main([str(src), str(dst)])
    assert not marker.exists() and not dst.exists()


def test_numpy_scalars_and_arrays_in_upstream_metadata_are_accepted(tmp_path: Path) -> None:
    src, dst = tmp_path / "up.npz", tmp_path / "ok.npz"
    write_upstream(src)
    with np.load(src, allow_pickle=True) as archive:
        arrays = {k: archive[k] for k in archive.files}
    meta = {"photons": np.float64(1e4), "shape": (64, 64), "grid": np.arange(3), "label": "fly64"}
    np.savez(src, **{**arrays, "_metadata": np.array([meta], dtype=object)})
    main([str(src), str(dst)])
    upstream = NPZDataset(filepath=str(dst)).load().meta["upstream_metadata"]
    assert upstream["photons"] == 1e4 and upstream["label"] == "fly64"
