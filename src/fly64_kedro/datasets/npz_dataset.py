"""``NPZDataset``: a versioned Kedro dataset for NPZ files that enforces a data contract on load and save.

Saves are atomic: the contract is checked first, the file is written to a temporary sibling, flushed, and
renamed over the target, so a failed save leaves any previous file byte-identical. Metadata travels as JSON
in a 0-d unicode array ``_metadata`` and is read without pickle.
"""

from __future__ import annotations

import io
import json
import os
import tempfile
import zipfile
from collections.abc import Callable
from copy import deepcopy
from pathlib import PurePosixPath
from typing import Any

import fsspec
import numpy as np
from kedro.io.core import AbstractVersionedDataset, DatasetError, Version, get_filepath_str, get_protocol_and_path

from fly64_kedro.contract import ContractError, get_contract, validate
from fly64_kedro.record import Record, dump_metadata

METADATA_KEY = "_metadata"


def read_npz(stream: Any, source: str, contract: str) -> Record:
    """Parse an NPZ stream into a ``Record`` and check it against ``contract``; ``source`` names the file."""
    try:
        archive = np.load(stream, allow_pickle=False)
    except (zipfile.BadZipFile, OSError, ValueError, EOFError) as exc:
        raise DatasetError(f"{source}: not a readable NPZ file (truncated or corrupted?): {exc}") from exc
    arrays: dict[str, np.ndarray] = {}
    with archive:
        for key in archive.files:
            try:
                arrays[key] = archive[key]
            except ValueError as exc:  # object arrays need pickle, which is never allowed here
                raise ContractError(
                    source, key, "pickled object arrays are not accepted; convert upstream files with "
                    "`fly64-import-upstream` (fly64_kedro.upstream)"
                ) from exc
            except (zipfile.BadZipFile, OSError, EOFError) as exc:
                raise DatasetError(f"{source}: key '{key}' cannot be read (truncated or corrupted?): {exc}") from exc
    meta: dict[str, Any] = {}
    if METADATA_KEY in arrays:
        raw = arrays.pop(METADATA_KEY)
        if raw.ndim != 0 or raw.dtype.kind != "U":
            raise ContractError(source, METADATA_KEY, "must be a 0-d unicode array holding a JSON object")
        try:
            meta = json.loads(str(raw))
        except json.JSONDecodeError as exc:
            raise ContractError(source, METADATA_KEY, f"must hold valid JSON: {exc}") from exc
        if not isinstance(meta, dict):
            raise ContractError(source, METADATA_KEY, "must hold a JSON object")
    validate(arrays, meta, contract, source)
    return Record(arrays, meta)


def check_record(record: Record, source: str, contract: str) -> None:
    """Check ``record`` against ``contract`` before anything is written."""
    if not isinstance(record, Record):
        raise DatasetError(f"{source}: NPZDataset saves a fly64_kedro.record.Record, got {type(record).__name__}")
    if METADATA_KEY in record.arrays:
        raise ContractError(source, METADATA_KEY, "reserved for metadata; pass it as Record.meta")
    validate(record.arrays, record.meta, contract, source)


def write_npz(record: Record, handle: Any, compress: bool) -> None:
    """Serialise ``record`` (arrays plus JSON metadata) as NPZ into an open binary ``handle``."""
    (np.savez_compressed if compress else np.savez)(
        handle, **record.arrays, **{METADATA_KEY: np.array(dump_metadata(record.meta))}
    )


def save_atomic(
    fs: fsspec.AbstractFileSystem, protocol: str, path: str, write: Callable[[Any], None]
) -> None:
    """Call ``write(handle)`` so that readers of ``path`` see the old file or the new one, never a partial one."""
    if protocol != "file":  # object stores commit a single put atomically
        buffer = io.BytesIO()
        write(buffer)
        with fs.open(path, "wb") as handle:
            handle.write(buffer.getvalue())
        return
    directory = os.path.dirname(path) or "."
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


class AtomicFileDataset(AbstractVersionedDataset[Any, Any]):
    """Shared plumbing of the project's file datasets: fsspec, versioning, atomic saves."""

    def __init__(
        self,
        *,
        filepath: str,
        version: Version | None = None,
        credentials: dict[str, Any] | None = None,
        fs_args: dict[str, Any] | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> None:
        _fs_args = deepcopy(fs_args) or {}
        protocol, path = get_protocol_and_path(filepath, version)
        self._protocol = protocol
        if protocol == "file":
            _fs_args.setdefault("auto_mkdir", True)
        self._fs = fsspec.filesystem(protocol, **(deepcopy(credentials) or {}), **_fs_args)
        self.metadata = metadata
        super().__init__(
            filepath=PurePosixPath(path),
            version=version,
            exists_function=self._fs.exists,
            glob_function=self._fs.glob,
        )

    def _describe(self) -> dict[str, Any]:
        return {"filepath": self._filepath, "protocol": self._protocol, "version": self._version}

    def _load_path(self) -> str:
        return get_filepath_str(self._get_load_path(), self._protocol)

    def _write_atomic(self, write: Callable[[Any], None]) -> None:
        save_atomic(self._fs, self._protocol, get_filepath_str(self._get_save_path(), self._protocol), write)
        self._invalidate_cache()

    def _exists(self) -> bool:
        try:
            path = self._load_path()
        except DatasetError:
            return False
        return self._fs.exists(path)

    def _release(self) -> None:
        super()._release()
        self._invalidate_cache()

    def _invalidate_cache(self) -> None:
        self._fs.invalidate_cache(get_filepath_str(self._filepath, self._protocol))


class NPZDataset(AtomicFileDataset):
    """NPZ file <-> ``Record``, checked against a named contract (``ptycho``, ``base``, ``reconstruction``,
    ``model``; see ``fly64_kedro.contract``) on load and on save.

    Example catalog entry::

        d1e3.full.train.ptycho:
          type: fly64_kedro.datasets.NPZDataset
          filepath: data/03_primary/d1e3/full_train.npz
          contract: ptycho
          save_args: {compress: false}
    """

    DEFAULT_SAVE_ARGS: dict[str, Any] = {"compress": False}

    def __init__(
        self,
        *,
        filepath: str,
        contract: str = "ptycho",
        save_args: dict[str, Any] | None = None,
        version: Version | None = None,
        credentials: dict[str, Any] | None = None,
        fs_args: dict[str, Any] | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> None:
        get_contract(contract)  # fail at catalog construction on an unknown contract name
        self._contract = contract
        self._save_args = {**self.DEFAULT_SAVE_ARGS, **(save_args or {})}
        unknown = set(self._save_args) - set(self.DEFAULT_SAVE_ARGS)
        if unknown:
            raise DatasetError(f"{filepath}: unknown NPZDataset save_args {sorted(unknown)}; known: ['compress']")
        super().__init__(filepath=filepath, version=version, credentials=credentials, fs_args=fs_args, metadata=metadata)

    def _describe(self) -> dict[str, Any]:
        return {**super()._describe(), "contract": self._contract, "save_args": self._save_args}

    def load(self) -> Record:
        path = self._load_path()
        with self._fs.open(path, "rb") as handle:
            return read_npz(handle, path, self._contract)

    def save(self, data: Record) -> None:
        check_record(data, get_filepath_str(self._get_save_path(), self._protocol), self._contract)
        self._write_atomic(lambda handle: write_npz(data, handle, **self._save_args))
