"""The explicit import path for upstream PtychoPINN NPZ files (docs/science.md "Data contract").

Upstream files carry a pickled ``_metadata`` object array, ``diff3d`` instead of ``diffraction``, uint16 counts
and a 4-D ``Y``. Loading them needs pickle, so it happens only here, on a file the user names:

    fly64-import-upstream upstream.npz converted.npz

Unpickling can run any code a crafted file names, so object arrays are read with a restricted unpickler that
builds only plain containers (dict, list, tuple), strings, numbers and numpy arrays of them; any other global
in the pickle (a function, a class) refuses the file before anything is called.
"""

from __future__ import annotations

import argparse
import json
import pickle
from pathlib import Path
from typing import Any

import numpy as np
from kedro.io.core import DatasetError

from fly64_kedro.contract import ContractError, validate
from fly64_kedro.datasets import NPZDataset
from fly64_kedro.datasets.npz_dataset import read_arrays
from fly64_kedro.record import Record

PER_POSITION = ("diffraction", "xcoords", "ycoords", "Y", "scan_index")

# The only globals a pickled numpy array of plain values needs: numpy's array and scalar reconstructors and the
# dtype (``numpy.core`` in files written by numpy 1.x, ``numpy._core`` by numpy 2.x).
ALLOWED_GLOBALS = frozenset(
    (module, name)
    for module in ("numpy.core.multiarray", "numpy._core.multiarray")
    for name in ("_reconstruct", "scalar")
) | {("numpy", "ndarray"), ("numpy", "dtype")}


class PlainUnpickler(pickle.Unpickler):
    """Builds only what ``ALLOWED_GLOBALS`` and pickle's own opcodes (dict, list, tuple, str, bytes, numbers,
    None, bool) can express."""

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in ALLOWED_GLOBALS:
            raise pickle.UnpicklingError(f"global '{module}.{name}' is not allowed")
        return super().find_class(module, name)


def load_plain_object_array(member: Any, source: str, key: str) -> np.ndarray:
    """Unpickle one object array of plain values from an open .npy member; refuse anything else."""
    try:
        value = PlainUnpickler(member).load()
    except Exception as exc:  # whatever untrusted bytes raise, the answer is a refusal
        raise ContractError(
            source,
            key,
            "refused: pickled data may hold only strings, numbers, lists, dicts and numpy arrays of "
            f"them ({type(exc).__name__}: {exc})",
        ) from exc
    if not isinstance(value, np.ndarray):
        raise ContractError(source, key, f"refused: the pickle holds a {type(value).__name__}, not a numpy array")
    return value


def _json_safe(value: Any) -> Any:
    try:
        json.dumps(value)
        return value
    except TypeError:
        return repr(value)


def convert_upstream(arrays: dict[str, np.ndarray], source: str) -> Record:
    """Upstream arrays (loaded with pickle) -> a DATA-001 'ptycho' record; notes every conversion in metadata."""
    arrays = dict(arrays)
    notes: list[str] = []
    meta: dict[str, Any] = {"imported_from": source}
    raw_meta = arrays.pop("_metadata", None)
    if raw_meta is not None:
        value = raw_meta.item() if raw_meta.ndim == 0 or raw_meta.size == 1 else raw_meta.tolist()
        if isinstance(value, str):
            value = json.loads(value)
        meta["upstream_metadata"] = (
            {str(k): _json_safe(v) for k, v in value.items()} if isinstance(value, dict) else _json_safe(value)
        )
    if "diffraction" not in arrays and "diff3d" in arrays:
        arrays["diffraction"] = arrays.pop("diff3d")
        notes.append("renamed diff3d -> diffraction")
    diffraction = arrays.get("diffraction")
    if diffraction is not None and np.issubdtype(diffraction.dtype, np.integer):
        arrays["diffraction"] = np.sqrt(diffraction.astype(np.float64)).astype(np.float32)
        meta["scale"] = 1.0
        notes.append(f"{diffraction.dtype} counts -> amplitude sqrt(counts) (scale 1)")
    elif diffraction is not None:
        arrays["diffraction"] = diffraction.astype(np.float32)
    n = len(arrays["diffraction"]) if diffraction is not None else None
    y_patches = arrays.get("Y")
    if y_patches is not None:
        if y_patches.ndim == 4 and y_patches.shape[-1] == 1:
            y_patches = y_patches[..., 0]
            notes.append("squeezed 4-D Y (n, N, N, 1) -> (n, N, N)")
        if n is not None and len(y_patches) != n:
            arrays.pop("Y")
            notes.append(f"dropped Y: {len(y_patches)} patch(es) for {n} positions (upstream wrote a single patch)")
        else:
            arrays["Y"] = y_patches.astype(np.complex64)
    for key, dtype in (
        ("xcoords", np.float64),
        ("ycoords", np.float64),
        ("probeGuess", np.complex64),
        ("objectGuess", np.complex64),
        ("scan_index", np.int64),
    ):
        if key in arrays:
            arrays[key] = np.asarray(arrays[key]).astype(dtype)
    known = {"diffraction", "xcoords", "ycoords", "probeGuess", "objectGuess", "Y", "scan_index"}
    dropped = sorted(set(arrays) - known)
    for key in dropped:
        arrays.pop(key)
    if dropped:
        notes.append(f"dropped keys not in DATA-001: {dropped}")
    meta["conversions"] = notes
    record = Record(arrays, meta)
    validate(record.arrays, record.meta, "ptycho" if "diffraction" in arrays else "base", source)
    return record


def main(argv: list[str] | None = None) -> None:
    """CLI: convert one upstream NPZ file into a contract-checked one."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("source", type=Path, help="upstream NPZ (its pickled metadata is read restrictively)")
    parser.add_argument("target", type=Path, help="converted NPZ to write")
    args = parser.parse_args(argv)
    try:
        with args.source.open("rb") as handle:
            arrays = read_arrays(handle, str(args.source), load_object=load_plain_object_array)
        record = convert_upstream(arrays, str(args.source))
    except (OSError, DatasetError) as exc:
        raise SystemExit(f"fly64-import-upstream: {exc}") from exc
    contract = "ptycho" if "diffraction" in record else "base"
    NPZDataset(filepath=str(args.target), contract=contract).save(record)
    print(f"wrote {args.target} ({contract} contract): " + "; ".join(record.meta["conversions"]))


if __name__ == "__main__":
    main()
