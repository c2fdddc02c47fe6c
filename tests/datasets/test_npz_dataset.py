"""NPZDataset: the DATA-001 contract on load and save, atomic writes, metadata without pickle, versioning."""

from __future__ import annotations

import hashlib
import io
import json
import os
import pickle
import socket
import stat
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest
from kedro.io import DatasetError, Version

from fly64_kedro.contract import ContractError
from fly64_kedro.datasets import NPZDataset
from fly64_kedro.datasets.npz_dataset import STALE_TEMP_AGE_S
from fly64_kedro.record import Record


def ptycho_record(n: int = 5, n_pix: int = 8, size: int = 32) -> Record:
    rng = np.random.default_rng(0)
    arrays = {
        "diffraction": rng.random((n, n_pix, n_pix)).astype(np.float32),
        "xcoords": rng.uniform(4, size - 5, n),
        "ycoords": rng.uniform(4, size - 5, n),
        "probeGuess": np.ones((n_pix, n_pix), np.complex64),
        "objectGuess": np.ones((size, size), np.complex64),
        "Y": np.ones((n, n_pix, n_pix), np.complex64),
        "scan_index": np.arange(n, dtype=np.int64),
    }
    return Record(arrays, {"dose": 1e3, "note": "ünïcode"})


def replace(record: Record, **arrays: np.ndarray | None) -> Record:
    merged = {**record.arrays, **arrays}
    return Record({k: v for k, v in merged.items() if v is not None}, record.meta)


def raw_npz(path: Path, **arrays: np.ndarray) -> None:
    np.savez(path, **arrays)


# Each rule: (name, how to break a valid record, key named in the error, words of the rule)
BROKEN = [
    ("missing key", lambda r: replace(r, diffraction=None), "diffraction", "missing"),
    ("wrong dtype", lambda r: replace(r, diffraction=r["diffraction"].astype(np.float64)), "diffraction", "dtype"),
    ("wrong coord dtype", lambda r: replace(r, xcoords=r["xcoords"].astype(np.float32)), "xcoords", "dtype"),
    (
        "NaN",
        lambda r: replace(r, diffraction=np.where(np.arange(8) == 3, np.nan, r["diffraction"]).astype(np.float32)),
        "diffraction",
        "finite",
    ),
    (
        "Inf in object",
        lambda r: replace(r, objectGuess=np.full((32, 32), np.inf, np.complex64)),
        "objectGuess",
        "finite",
    ),
    ("negative amplitude", lambda r: replace(r, diffraction=-r["diffraction"]), "diffraction", ">= 0"),
    ("length mismatch", lambda r: replace(r, xcoords=r["xcoords"][:-1]), "xcoords", "lengths must agree"),
    ("coords outside the object", lambda r: replace(r, ycoords=r["ycoords"] + 100), "ycoords", "inside the object"),
    ("wrong rank", lambda r: replace(r, Y=r["Y"][..., None]), "Y", "shape"),
    ("unknown key", lambda r: replace(r, diff3d=r["diffraction"]), "diff3d", "not part of"),
]


@pytest.mark.parametrize("name,breaker,key,rule", BROKEN, ids=[b[0] for b in BROKEN])
def test_contract_rule_enforced_on_save(tmp_path: Path, name, breaker, key, rule) -> None:
    path = tmp_path / "bad.npz"
    with pytest.raises(ContractError) as info:
        NPZDataset(filepath=str(path)).save(breaker(ptycho_record()))
    message = str(info.value)
    assert str(path) in message and f"'{key}'" in message and rule in message
    assert not path.exists(), "nothing may be written when the contract fails"


@pytest.mark.parametrize("name,breaker,key,rule", BROKEN, ids=[b[0] for b in BROKEN])
def test_contract_rule_enforced_on_load(tmp_path: Path, name, breaker, key, rule) -> None:
    path = tmp_path / "bad.npz"
    raw_npz(path, **breaker(ptycho_record()).arrays)
    with pytest.raises(ContractError) as info:
        NPZDataset(filepath=str(path)).load()
    message = str(info.value)
    assert str(path) in message and f"'{key}'" in message and rule in message


def test_round_trip_keeps_arrays_dtypes_and_metadata(tmp_path: Path) -> None:
    record = ptycho_record()
    ds = NPZDataset(filepath=str(tmp_path / "ok.npz"))
    ds.save(record)
    loaded = ds.load()
    assert set(loaded) == set(record)
    for key in record:
        assert loaded[key].dtype == record[key].dtype
        np.testing.assert_array_equal(loaded[key], record[key])
    assert loaded.meta == record.meta
    assert ds.exists()


def test_metadata_is_json_in_a_0d_unicode_array_readable_without_pickle(tmp_path: Path) -> None:
    path = tmp_path / "ok.npz"
    NPZDataset(filepath=str(path)).save(ptycho_record())
    with np.load(path, allow_pickle=False) as archive:
        raw = archive["_metadata"]
    assert raw.ndim == 0 and raw.dtype.kind == "U"
    assert '"dose": 1000.0' in str(raw)


def test_failed_save_leaves_previous_file_byte_identical(tmp_path: Path) -> None:
    path = tmp_path / "ok.npz"
    ds = NPZDataset(filepath=str(path))
    ds.save(ptycho_record())
    before = hashlib.sha256(path.read_bytes()).hexdigest()
    with pytest.raises(ContractError):
        ds.save(replace(ptycho_record(), diffraction=None))
    assert hashlib.sha256(path.read_bytes()).hexdigest() == before


def test_interrupted_write_keeps_old_file_and_leaves_no_temp(tmp_path: Path, monkeypatch) -> None:
    """A crash in the middle of writing (simulated by a failing serialiser) never touches the target."""
    path = tmp_path / "ok.npz"
    ds = NPZDataset(filepath=str(path))
    ds.save(ptycho_record())
    before = path.read_bytes()

    def crash(handle, *args, **kwargs):
        handle.write(b"PK\x03\x04partial")
        raise KeyboardInterrupt("killed mid-write")

    monkeypatch.setattr(np, "savez", crash)
    with pytest.raises(KeyboardInterrupt):
        ds.save(ptycho_record(n=7))
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["ok.npz"]


def test_truncated_file_gives_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "trunc.npz"
    NPZDataset(filepath=str(path)).save(ptycho_record())
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(DatasetError, match="trunc.npz"):
        NPZDataset(filepath=str(path)).load()


def test_pickled_object_array_is_refused_with_pointer_to_import(tmp_path: Path) -> None:
    path = tmp_path / "upstream.npz"
    arrays = dict(ptycho_record().arrays)
    np.savez(path, **arrays, _metadata=np.array([{"a": 1}], dtype=object))
    with pytest.raises(ContractError, match="_metadata.*fly64-import-upstream"):
        NPZDataset(filepath=str(path)).load()


def test_corrupted_member_gives_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "corrupt.npz"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("diffraction.npy", b"not an npy header at all")
    with pytest.raises((DatasetError, ContractError), match="corrupt.npz"):
        NPZDataset(filepath=str(path)).load()


def test_unknown_contract_fails_at_construction(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown NPZ contract"):
        NPZDataset(filepath=str(tmp_path / "x.npz"), contract="nope")


def test_base_contract_rejects_object_smaller_than_probe(tmp_path: Path) -> None:
    record = Record({"objectGuess": np.ones((16, 16), np.complex64), "probeGuess": np.ones((32, 32), np.complex64)})
    with pytest.raises(ContractError, match="objectGuess.*at least as large as the probe"):
        NPZDataset(filepath=str(tmp_path / "b.npz"), contract="base").save(record)


def test_reconstruction_contract_requires_reason_for_failed_jobs(tmp_path: Path) -> None:
    ds = NPZDataset(filepath=str(tmp_path / "r.npz"), contract="reconstruction")
    with pytest.raises(ContractError, match="reason"):
        ds.save(Record({}, {"status": "failed"}))
    ds.save(Record({}, {"status": "failed", "reason": "RuntimeError: boom"}))
    assert ds.load().status == "failed"


def test_model_contract_detects_corrupted_weights(tmp_path: Path) -> None:
    from fly64_kedro.contract import weights_digest

    weights = {"weight_000": np.ones((3, 3), np.float32)}
    path = tmp_path / "m.npz"
    ds = NPZDataset(filepath=str(path), contract="model")
    ds.save(Record(weights, {"status": "ok", "weights_sha256": weights_digest(weights)}))
    assert ds.load().meta["weights_sha256"] == weights_digest(weights)
    tampered = {"weight_000": np.full((3, 3), 2, np.float32)}
    np.savez(
        path, **tampered, _metadata=np.array(json.dumps({"status": "ok", "weights_sha256": weights_digest(weights)}))
    )
    with pytest.raises(ContractError, match="weights_sha256"):
        ds.load()


def test_versioning_saves_new_versions_and_loads_latest(tmp_path: Path) -> None:
    path = str(tmp_path / "v.npz")
    NPZDataset(filepath=path, version=Version(None, "2026-01-01T00.00.00.000Z")).save(ptycho_record(n=3))
    NPZDataset(filepath=path, version=Version(None, "2026-01-02T00.00.00.000Z")).save(ptycho_record(n=4))
    assert len(NPZDataset(filepath=path, version=Version(None, None)).load()["xcoords"]) == 4
    first = NPZDataset(filepath=path, version=Version("2026-01-01T00.00.00.000Z", None)).load()
    assert len(first["xcoords"]) == 3


def test_dataset_pickles_and_describes(tmp_path: Path) -> None:
    ds = NPZDataset(filepath=str(tmp_path / "p.npz"), contract="base")
    clone = pickle.loads(pickle.dumps(ds))
    assert "contract='base'" in str(clone)
    assert not clone.exists()
    ds.release()


def npy_member(header: dict, payload: bytes) -> bytes:
    buffer = io.BytesIO()
    np.lib.format.write_array_header_1_0(buffer, header)
    return buffer.getvalue() + payload


def test_member_cut_short_is_called_truncated_not_pickled(tmp_path: Path) -> None:
    path = tmp_path / "short.npz"
    full = io.BytesIO()
    np.lib.format.write_array(full, np.ones((5, 8, 8), np.float32))
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("diffraction.npy", full.getvalue()[:-100])
    with pytest.raises(ContractError) as info:
        NPZDataset(filepath=str(path)).load()
    message = str(info.value)
    assert f"{path}: key 'diffraction': declares shape (5, 8, 8) of float32 (1280 bytes) but holds 1180" in message
    assert "pickle" not in message


def test_huge_declared_shape_is_refused_before_allocation(tmp_path: Path) -> None:
    """1.16 TiB declared, 64 bytes held: refused from the header, naming the key (no MemoryError)."""
    path = tmp_path / "huge.npz"
    header = {"descr": "<c8", "fortran_order": False, "shape": (151_000, 1024, 1024)}
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("objectGuess.npy", npy_member(header, bytes(64)))
    with pytest.raises(
        ContractError,
        match=r"key 'objectGuess': declares shape \(151000, 1024, 1024\) of complex64 "
        r"\(1266679808000 bytes\) but holds 64 bytes",
    ):
        NPZDataset(filepath=str(path), contract="base").load()


def test_random_bytes_are_called_not_an_npz_without_pickle_advice(tmp_path: Path) -> None:
    path = tmp_path / "noise.npz"
    path.write_bytes(np.random.default_rng(1).bytes(4096))
    with pytest.raises(DatasetError) as info:
        NPZDataset(filepath=str(path)).load()
    message = str(info.value)
    assert f"{path}: not an NPZ (zip) archive" in message
    assert "pickle" not in message and "unsafe" not in message


def test_fortran_order_member_loads_correctly(tmp_path: Path) -> None:
    path = tmp_path / "fortran.npz"
    record = ptycho_record()
    arrays = {
        **record.arrays,
        "objectGuess": np.asfortranarray(np.arange(32 * 32).reshape(32, 32).astype(np.complex64)),
    }
    raw_npz(path, **arrays)
    np.testing.assert_array_equal(NPZDataset(filepath=str(path)).load()["objectGuess"], arrays["objectGuess"])


@pytest.mark.parametrize("key", ["probeGuess", "objectGuess"])
def test_all_zero_base_probe_or_object_is_refused_naming_file_and_key(tmp_path: Path, key: str) -> None:
    path = tmp_path / "base.npz"
    arrays = {"objectGuess": np.ones((32, 32), np.complex64), "probeGuess": np.ones((8, 8), np.complex64)}
    raw_npz(path, **{**arrays, key: np.zeros_like(arrays[key])})
    with pytest.raises(ContractError, match=rf"{path}: key '{key}': the (probe|object) is all zero"):
        NPZDataset(filepath=str(path), contract="base").load()


@pytest.mark.parametrize("umask", [0o022, 0o027, 0o002], ids=["022", "027", "002"])
def test_written_files_honour_the_umask(tmp_path: Path, umask: int) -> None:
    from matplotlib.figure import Figure

    from fly64_kedro.datasets import FigureDataset, JSONDataset, TextDataset

    previous = os.umask(umask)
    try:
        NPZDataset(filepath=str(tmp_path / "a.npz")).save(ptycho_record())
        JSONDataset(filepath=str(tmp_path / "b.json")).save({"a": 1})
        TextDataset(filepath=str(tmp_path / "report.html")).save("<p>report</p>")
        FigureDataset(filepath=str(tmp_path / "c.png")).save(Figure())
    finally:
        os.umask(previous)
    for path in tmp_path.iterdir():
        assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~umask, path.name


KILLED_SAVE = """
import sys, time
sys.path.insert(0, sys.argv[2])
import fsspec
from fly64_kedro.datasets.npz_dataset import save_atomic

def write(handle):
    handle.write(b"PK" + bytes(1 << 20))
    handle.flush()
    print("writing", flush=True)
    time.sleep(600)

save_atomic(fsspec.filesystem("file"), "file", sys.argv[1], write)
"""


def test_temp_file_of_a_killed_save_is_removed_by_the_next_save(tmp_path: Path) -> None:
    path = tmp_path / "ok.npz"
    src = Path(__file__).resolve().parents[2] / "src"
    saver = subprocess.Popen(
        [sys.executable, "-c", KILLED_SAVE, str(path), str(src)], stdout=subprocess.PIPE, text=True
    )
    assert saver.stdout.readline().strip() == "writing"
    saver.kill()
    saver.wait()
    leftovers = list(tmp_path.glob(".ok.npz.*.tmp"))
    assert len(leftovers) == 1 and leftovers[0].stat().st_size >= 1 << 20
    old = tmp_path / ".ok.npz.x1y2z3w4.tmp"  # an older naming, or another host's: removed by age only
    young = tmp_path / ".ok.npz.a1b2c3d4.tmp"
    live = tmp_path / f".ok.npz.{os.getpid()}@{socket.gethostname()}.q9w8e7r6.tmp"  # a concurrent save's
    for extra in (old, young, live):
        extra.write_bytes(b"partial")
    os.utime(old, (time.time() - 2 * STALE_TEMP_AGE_S,) * 2)
    NPZDataset(filepath=str(path)).save(ptycho_record())
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["ok.npz", young.name, live.name])
