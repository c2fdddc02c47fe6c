"""The NPZ data contracts (docs/science.md "Data contract", DATA-001, and the project's own record kinds).

A contract names each key's shape (symbols bind across keys, so lengths must agree), exact dtype, and
value rules. ``validate`` raises ``ContractError`` naming the file, the key and the rule.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from kedro.io.core import DatasetError

STATUSES = ("ok", "failed", "skipped")


class ContractError(DatasetError, ValueError):
    """An NPZ file or record breaks its contract; the message names file, key and rule.

    A ``DatasetError`` so Kedro passes it through unwrapped on load and save."""

    def __init__(self, source: str, key: str, rule: str):
        super().__init__(f"{source}: key '{key}': {rule}")
        self.source, self.key, self.rule = source, key, rule


@dataclass(frozen=True)
class Field:
    """One array: shape symbols (str binds across keys, int is exact), exact dtype, value rules."""

    shape: tuple[str | int, ...]
    dtype: str
    required: bool = True
    finite: bool = True
    nonnegative: bool = False


@dataclass(frozen=True)
class Contract:
    """A named set of fields; ``extra_keys`` says whether undeclared arrays are allowed."""

    name: str
    fields: Mapping[str, Field]
    extra_keys: bool = False
    checks: tuple[Callable[[str, Mapping[str, np.ndarray], Mapping[str, Any]], None], ...] = field(default=())


def _coords_inside_object(source: str, arrays: Mapping[str, np.ndarray], meta: Mapping[str, Any]) -> None:
    if "objectGuess" not in arrays:
        return
    height, width = arrays["objectGuess"].shape
    for key, size in (("xcoords", width), ("ycoords", height)):
        coords = arrays.get(key)
        if coords is not None and coords.size and (coords.min() < 0 or coords.max() > size - 1):
            raise ContractError(
                source,
                key,
                f"scan centres must lie inside the object, 0 <= {key} <= {size - 1} "
                f"(found {coords.min():.2f}..{coords.max():.2f})",
            )


def _object_not_smaller_than_probe(source: str, arrays: Mapping[str, np.ndarray], meta: Mapping[str, Any]) -> None:
    obj, probe = arrays.get("objectGuess"), arrays.get("probeGuess")
    if obj is not None and probe is not None and (obj.shape[0] < probe.shape[0] or obj.shape[1] < probe.shape[1]):
        raise ContractError(
            source, "objectGuess", f"the object {obj.shape} must be at least as large as the probe {probe.shape}"
        )


def _square_probe(source: str, arrays: Mapping[str, np.ndarray], meta: Mapping[str, Any]) -> None:
    for key in ("probeGuess", "probe"):
        probe = arrays.get(key)
        if probe is not None and probe.shape[-1] != probe.shape[-2]:
            raise ContractError(source, key, f"the probe must be square, got {probe.shape}")


def _probe_illuminates(source: str, arrays: Mapping[str, np.ndarray], meta: Mapping[str, Any]) -> None:
    probe = arrays.get("probeGuess")
    if probe is not None and probe.size and not np.any(probe):
        raise ContractError(
            source, "probeGuess", "the probe is all zero: it illuminates nothing, so no dose can be set"
        )


def _object_not_empty(source: str, arrays: Mapping[str, np.ndarray], meta: Mapping[str, Any]) -> None:
    obj = arrays.get("objectGuess")
    if obj is not None and obj.size and not np.any(obj):
        raise ContractError(
            source, "objectGuess", "the object is all zero: it transmits nothing, so no dose can be set"
        )


def _status_rules(source: str, arrays: Mapping[str, np.ndarray], meta: Mapping[str, Any]) -> None:
    status = meta.get("status")
    if status not in STATUSES:
        raise ContractError(source, "_metadata", f"'status' must be one of {STATUSES}, got {status!r}")
    if status == "ok" and "object" not in arrays:
        raise ContractError(source, "object", "a job with status 'ok' must carry its reconstructed object")
    if status != "ok" and not meta.get("reason"):
        raise ContractError(source, "_metadata", f"a job with status '{status}' must give its 'reason'")


PTYCHO = Contract(
    "ptycho",
    {
        "diffraction": Field(("n", "N", "N"), "float32", nonnegative=True),
        "xcoords": Field(("n",), "float64"),
        "ycoords": Field(("n",), "float64"),
        "probeGuess": Field(("N", "N"), "complex64"),
        "objectGuess": Field(("H", "W"), "complex64"),
        "Y": Field(("n", "N", "N"), "complex64", required=False),
        "scan_index": Field(("n",), "int64", required=False),
    },
    checks=(_square_probe, _object_not_smaller_than_probe, _probe_illuminates, _coords_inside_object),
)

BASE = Contract(
    "base",
    {
        "objectGuess": Field(("H", "W"), "complex64"),
        "probeGuess": Field(("N", "N"), "complex64"),
    },
    extra_keys=True,  # a user's upstream-layout base file may carry more; only these two are read
    checks=(_square_probe, _object_not_smaller_than_probe, _probe_illuminates, _object_not_empty),
)

RECONSTRUCTION = Contract(
    "reconstruction",
    {
        "object": Field(("H", "W"), "complex64", required=False),
        "probe": Field(("N", "N"), "complex64", required=False),
        "xcoords": Field(("n",), "float64", required=False),
        "ycoords": Field(("n",), "float64", required=False),
        "loss": Field(("epochs",), "float64", required=False, finite=False),
    },
    checks=(_status_rules,),
)


def weights_digest(arrays: Mapping[str, np.ndarray]) -> str:
    """SHA-256 over the arrays' names, dtypes, shapes and bytes, in sorted key order."""
    digest = hashlib.sha256()
    for key in sorted(arrays):
        arr = np.ascontiguousarray(arrays[key])
        digest.update(f"{key}|{arr.dtype.str}|{arr.shape}|".encode())
        digest.update(arr.tobytes())
    return digest.hexdigest()


def _model_rules(source: str, arrays: Mapping[str, np.ndarray], meta: Mapping[str, Any]) -> None:
    status = meta.get("status")
    if status not in STATUSES:
        raise ContractError(source, "_metadata", f"'status' must be one of {STATUSES}, got {status!r}")
    if status != "ok":
        if not meta.get("reason"):
            raise ContractError(source, "_metadata", f"a model with status '{status}' must give its 'reason'")
        return
    for key, arr in arrays.items():
        if arr.dtype != np.float32 or not np.all(np.isfinite(arr)):
            raise ContractError(source, key, "model weights must be finite float32")
    expected = meta.get("weights_sha256")
    if expected != weights_digest(arrays):
        raise ContractError(
            source, "_metadata", "'weights_sha256' does not match the stored weights (corrupted model?)"
        )


MODEL = Contract("model", {}, extra_keys=True, checks=(_model_rules,))

CONTRACTS: dict[str, Contract] = {c.name: c for c in (PTYCHO, BASE, RECONSTRUCTION, MODEL)}


def get_contract(name: str) -> Contract:
    """Look a contract up by name, with a clear error for an unknown one."""
    try:
        return CONTRACTS[name]
    except KeyError:
        raise ValueError(f"unknown NPZ contract {name!r}; known: {sorted(CONTRACTS)}") from None


def validate(arrays: Mapping[str, np.ndarray], meta: Mapping[str, Any], contract: Contract | str, source: str) -> None:
    """Raise ``ContractError`` for the first rule ``arrays``/``meta`` break; ``source`` names the file."""
    contract = get_contract(contract) if isinstance(contract, str) else contract
    for key, spec in contract.fields.items():
        if spec.required and key not in arrays:
            raise ContractError(source, key, f"required by the '{contract.name}' contract but missing")
    if not contract.extra_keys:
        extra = sorted(set(arrays) - set(contract.fields))
        if extra:
            raise ContractError(
                source, extra[0], f"not part of the '{contract.name}' contract {sorted(contract.fields)}"
            )
    bound: dict[str, tuple[int, str]] = {}
    for key, spec in contract.fields.items():
        if key not in arrays:
            continue
        arr = arrays[key]
        if not isinstance(arr, np.ndarray):
            raise ContractError(source, key, f"must be a numpy array, got {type(arr).__name__}")
        if arr.dtype != np.dtype(spec.dtype):
            raise ContractError(source, key, f"dtype must be exactly {spec.dtype}, got {arr.dtype}")
        if arr.ndim != len(spec.shape):
            raise ContractError(source, key, f"must have shape {spec.shape} ({len(spec.shape)}-D), got {arr.shape}")
        for axis, (symbol, size) in enumerate(zip(spec.shape, arr.shape)):
            if isinstance(symbol, int):
                if size != symbol:
                    raise ContractError(source, key, f"axis {axis} must have size {symbol}, got {size}")
            elif symbol in bound and bound[symbol][0] != size:
                other_size, other_key = bound[symbol]
                raise ContractError(
                    source,
                    key,
                    f"axis {axis} ({symbol}) has length {size} but '{other_key}' has {other_size}: lengths must agree",
                )
            else:
                bound.setdefault(symbol, (size, key))
        if spec.finite and arr.size and not np.all(np.isfinite(arr)):
            raise ContractError(source, key, "must be finite (found NaN or Inf)")
        if spec.nonnegative and arr.size and np.min(arr) < 0:
            raise ContractError(source, key, f"must be >= 0 (amplitude, not a signed value); min is {np.min(arr)}")
    for check in contract.checks:
        check(source, arrays, meta)
