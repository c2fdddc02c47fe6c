"""Score a finished study's reconstructions against the base object, independently of the comparison pipeline.

    python benchmarks/bar_r2.py [DATA_ROOT]      # default: data (after `make study`); a few seconds

Reads the reconstruction records (07_model_output/<dose>/<view>_<split>_<method>.npz), the test views
(03_primary) and the base object with numpy and json only: no project code, so the numbers hold even if the
comparison code changes. For each record, over the compared region (the scanned box, restricted to pixels the
probe lights: summed |P|^2 at the scan positions >= 0.1 of its maximum):
- amplitude R2 = 1 - mean((c |o| - |t|)^2) / var(|t|), c the least-squares amplitude scale (a learnt intensity
  scale fixes the PINN's amplitude only up to a constant; the comparison fits it too);
- phase R2 = 1 - mean(r^2) / var(angle(t)), r = angle(o conj(t)) minus its least-squares offset (wrap-aware:
  a 2 pi jump scores nothing). A flat object (mean amplitude, zero phase) scores 0 on both, the truth 1.
No registration is applied: every method reconstructs in the truth's pixel frame.
Prints one table row per record, checks the issue's bar, and writes benchmarks/results/bar_r2.json.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
LIT_FRACTION = 0.1


def load(path: Path) -> tuple[dict[str, np.ndarray], dict]:
    with np.load(path, allow_pickle=False) as archive:
        arrays = {key: archive[key] for key in archive.files}
    return arrays, json.loads(str(arrays.pop("_metadata", np.array("{}"))))


def compared_region(ycoords: np.ndarray, xcoords: np.ndarray, probe: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Scanned box ∩ lit pixels; nearest-pixel placement is enough for a mask."""
    n_pix = probe.shape[0]
    weight = np.abs(probe) ** 2
    summed = np.zeros(shape)
    for y, x in zip(np.rint(ycoords - n_pix / 2).astype(int), np.rint(xcoords - n_pix / 2).astype(int)):
        summed[y : y + n_pix, x : x + n_pix] += weight
    box = np.zeros(shape, bool)
    box[
        int(ycoords.min() - n_pix / 2) : int(np.ceil(ycoords.max() + n_pix / 2)),
        int(xcoords.min() - n_pix / 2) : int(np.ceil(xcoords.max() + n_pix / 2)),
    ] = True
    return box & (summed >= LIT_FRACTION * summed.max())


def r2_scores(obj: np.ndarray, truth: np.ndarray, mask: np.ndarray) -> tuple[float, float]:
    """(amplitude R2, wrap-aware phase R2) over ``mask``."""
    o, t = obj[mask].astype(np.complex128), truth[mask].astype(np.complex128)
    scale = float(np.abs(o) @ np.abs(t)) / max(float(np.abs(o) @ np.abs(o)), np.finfo(float).tiny)
    amp = 1 - np.mean((scale * np.abs(o) - np.abs(t)) ** 2) / np.var(np.abs(t))
    residual = np.angle(o * np.conj(t))
    residual = np.angle(np.exp(1j * (residual - np.angle(np.mean(np.exp(1j * residual))))))  # centre the wrap
    residual -= residual.mean()
    return float(amp), float(1 - np.mean(residual**2) / np.var(np.angle(t)))


def main(root: Path) -> int:
    base, _ = load(root / "01_raw" / "synthetic_base.npz")
    truth = base["objectGuess"]
    rows = []
    for path in sorted((root / "07_model_output").glob("*/*_test_*.npz")):
        arrays, meta = load(path)
        if meta.get("status") != "ok" or "object" not in arrays:
            rows.append(
                {"record": str(path.relative_to(root)), "status": meta.get("status"), "reason": meta.get("reason")}
            )
            continue
        dose, view = path.parent.name, path.name.split("_")[0]
        test, _ = load(root / "03_primary" / dose / f"{view}_test.npz")
        mask = compared_region(test["ycoords"], test["xcoords"], test["probeGuess"], truth.shape)
        flat = np.full(truth.shape, np.abs(truth[mask]).mean(), np.complex64)
        amp, phase = r2_scores(arrays["object"], truth, mask)
        rows.append(
            {
                "record": str(path.relative_to(root)),
                "dose": dose,
                "view": view,
                "method": meta.get("method"),
                "amplitude_r2": amp,
                "phase_r2": phase,
                "flat_phase_r2": r2_scores(flat, truth, mask)[1],
                "epochs_run": meta.get("epochs_run"),
                "stop_reason": meta.get("stop_reason"),
            }
        )
    print(f"{'dose':5} {'view':6} {'method':9} {'amp R2':>7} {'phase R2':>8} {'flat':>6}  epochs  stop")
    for row in rows:
        if "phase_r2" in row:
            print(
                f"{row['dose']:5} {row['view']:6} {row['method']:9} {row['amplitude_r2']:7.3f} {row['phase_r2']:8.3f} "
                f"{row['flat_phase_r2']:6.3f}  {row['epochs_run']!s:6}  {row['stop_reason']}"
            )
        else:
            print(f"{row['record']}: {row['status']} ({row['reason']})")
    score = {(r["dose"], r["view"], r["method"]): r["phase_r2"] for r in rows if "phase_r2" in r}
    checks = {
        "pinn_gs2 >= 0.6 at 1e5": score.get(("d1e5", "full", "pinn_gs2"), -np.inf) >= 0.6,
        "pinn_gs2 rises with dose": score.get(("d1e3", "full", "pinn_gs2"), np.inf)
        < score.get(("d1e4", "full", "pinn_gs2"), -np.inf)
        < score.get(("d1e5", "full", "pinn_gs2"), -np.inf),
        "pinn_gs2 at 1e3 >= lsqml - 0.15": score.get(("d1e3", "full", "pinn_gs2"), -np.inf)
        >= score.get(("d1e3", "full", "lsqml"), np.inf) - 0.15,
        "lsqml >= 0.8 at 1e5": score.get(("d1e5", "full", "lsqml"), -np.inf) >= 0.8,
    }
    for name, ok in checks.items():
        print(f"bar: {name}: {'PASS' if ok else 'FAIL'}")
    (HERE / "results").mkdir(exist_ok=True)
    (HERE / "results" / "bar_r2.json").write_text(json.dumps({"rows": rows, "bar": checks}, indent=1))
    return 0 if all(checks.values()) else 1


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1] if len(sys.argv) > 1 else "data")))
