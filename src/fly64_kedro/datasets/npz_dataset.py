"""``NPZDataset``: a versioned Kedro dataset for NPZ files that enforces a data contract on load and save.

Saves are atomic: the contract is checked first, the file is written to a temporary sibling, flushed, and
renamed over the target, so a failed save leaves any previous file byte-identical. A save first removes the
temporary siblings that killed saves left. Loads read each member's header first and check its declared shape
against the member's size before allocating anything. Metadata travels as JSON
in a 0-d unicode array ``_metadata`` and is read without pickle.
"""

from __future__ import annotations

import glob
import io
import json
import logging
import math
import os
import re
import socket
import tempfile
import time
import zipfile
import zlib
from collections.abc import Callable
from copy import deepcopy
from pathlib import Path, PurePosixPath
from typing import Any

import fsspec
import numpy as np
from kedro.io.core import AbstractVersionedDataset, DatasetError, Version, get_filepath_str, get_protocol_and_path

from fly64_kedro.contract import ContractError, get_contract, validate
from fly64_kedro.record import Record, dump_metadata

logger = logging.getLogger(__name__)

METADATA_KEY = "_metadata"
STALE_TEMP_AGE_S = 24 * 3600.0  # a temp file this old is a killed save's, whichever host wrote it
_HOST = socket.gethostname()

# Reads one pickled (object) array from an open .npy member positioned after its header: (member, source, key).
ObjectLoader = Callable[[Any, str, str], np.ndarray]


def _read_member(member: Any, size: int, source: str, key: str, load_object: ObjectLoader | None) -> np.ndarray:
    """One ``.npy`` member of ``size`` bytes; its declared shape is checked against ``size`` before any allocation."""
    try:
        version = np.lib.format.read_magic(member)
        if version not in ((1, 0), (2, 0)):
            raise ValueError(f"unsupported .npy format version {version}")
        read_header = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
        shape, fortran, dtype = read_header(member)
    except ValueError as exc:
        raise ContractError(source, key, f"not a .npy array (truncated or corrupted header?): {exc}") from exc
    if dtype.hasobject:
        if load_object is None:
            raise ContractError(
                source,
                key,
                "pickled object arrays are not accepted; convert upstream files with "
                "`fly64-import-upstream` (fly64_kedro.upstream)",
            )
        return load_object(member, source, key)
    needed, held = math.prod(shape) * dtype.itemsize, size - member.tell()
    if needed != held:
        raise ContractError(
            source,
            key,
            f"declares shape {shape} of {dtype} ({needed} bytes) but holds {held} bytes of data "
            "(truncated or corrupted)",
        )
    array = np.empty(math.prod(shape), dtype)
    if member.readinto(array.view(np.uint8)) != needed:
        raise ContractError(source, key, f"holds fewer than the {needed} bytes its header declares (truncated)")
    return array.reshape(shape[::-1]).T if fortran else array.reshape(shape)


def read_arrays(stream: Any, source: str, load_object: ObjectLoader | None = None) -> dict[str, np.ndarray]:
    """The arrays of an NPZ stream by key. Object (pickled) arrays go to ``load_object(member, source, key)``, and
    are refused when it is None; every other failure names ``source``, the key and what is wrong."""
    try:
        archive = zipfile.ZipFile(stream)
    except (zipfile.BadZipFile, OSError, EOFError) as exc:
        raise DatasetError(
            f"{source}: not an NPZ (zip) archive: truncated, corrupted or another format ({exc})"
        ) from exc
    arrays: dict[str, np.ndarray] = {}
    with archive:
        for info in archive.infolist():
            key = info.filename.removesuffix(".npy")
            try:
                with archive.open(info) as member:
                    arrays[key] = _read_member(member, info.file_size, source, key, load_object)
            except (zipfile.BadZipFile, OSError, EOFError, zlib.error) as exc:
                raise DatasetError(f"{source}: key '{key}' cannot be read (truncated or corrupted?): {exc}") from exc
    return arrays


def read_npz(stream: Any, source: str, contract: str) -> Record:
    """Parse an NPZ stream into a ``Record`` and check it against ``contract``; ``source`` names the file."""
    arrays = read_arrays(stream, source)
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


def current_umask() -> int:
    """The process's umask. Linux reports it in /proc; elsewhere os.umask can only read it by setting it, which
    briefly changes the mode of files other threads create."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except OSError:
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        pass
    return True


def remove_stale_temps(path: str, max_age_s: float = STALE_TEMP_AGE_S) -> list[str]:
    """Remove the temporary siblings of ``path`` that killed saves left (``.<name>.<pid>@<host>.XXXX.tmp``): those
    of a dead process on this host, and any older than ``max_age_s`` (another host's, or an older naming).
    A concurrent save's live temp file is kept. Returns the removed paths."""
    directory, name = os.path.split(path)
    pattern = re.compile(rf"^\.{re.escape(name)}\.(?:(\d+)@(.+)\.)?[^.]+\.tmp$")
    removed = []
    for candidate in glob.glob(os.path.join(glob.escape(directory or "."), f".{glob.escape(name)}.*.tmp")):
        match = pattern.match(os.path.basename(candidate))
        if match is None:
            continue
        pid, host = match.groups()
        try:
            if (host != _HOST or _alive(int(pid))) and time.time() - os.path.getmtime(candidate) <= max_age_s:
                continue
            os.remove(candidate)
        except FileNotFoundError:  # removed meanwhile by a concurrent save
            continue
        logger.warning("removed %s, a temporary file left by a killed save", candidate)
        removed.append(candidate)
    return removed


def save_atomic(fs: fsspec.AbstractFileSystem, protocol: str, path: str, write: Callable[[Any], None]) -> None:
    """Call ``write(handle)`` so that readers of ``path`` see the old file or the new one, never a partial one.
    The file gets the mode a plain ``open`` would give it (0666 & ~umask), not mkstemp's 0600."""
    if protocol != "file":  # object stores commit a single put atomically
        buffer = io.BytesIO()
        write(buffer)
        with fs.open(path, "wb") as handle:
            handle.write(buffer.getvalue())
        return
    directory = os.path.dirname(path) or "."
    os.makedirs(directory, exist_ok=True)
    remove_stale_temps(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.{os.getpid()}@{_HOST}.", suffix=".tmp", dir=directory)
    try:
        os.fchmod(fd, 0o666 & ~current_umask())
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

    @property
    def path(self) -> str:
        """The file's path (for a versioned dataset, its folder of versions)."""
        return get_filepath_str(self._filepath, self._protocol)

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
        super().__init__(
            filepath=filepath, version=version, credentials=credentials, fs_args=fs_args, metadata=metadata
        )

    def _describe(self) -> dict[str, Any]:
        return {**super()._describe(), "contract": self._contract, "save_args": self._save_args}

    def load(self) -> Record:
        path = self._load_path()
        with self._fs.open(path, "rb") as handle:
            return read_npz(handle, path, self._contract)

    def save(self, data: Record) -> None:
        check_record(data, get_filepath_str(self._get_save_path(), self._protocol), self._contract)
        self._write_atomic(lambda handle: write_npz(data, handle, **self._save_args))
