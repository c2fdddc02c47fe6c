"""Generation benchmark: simulation throughput vs the FFT floor (same FFT count, size, dtype) in the same run,
and the peak memory of one paper-scale dose (N=128, 464x464 object, 10304 positions, chunked).

    python benchmarks/bench_generation.py [--quick]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from functools import partial
from pathlib import Path

import numpy as np

from fly64_kedro.pipelines.generation.nodes import make_synthetic_base, simulate_diffraction
from fly64_kedro.pipelines.overlap.nodes import select_overlap_view
from fly64_kedro.record import Record

RESULTS = Path(__file__).parent / "results"
STUDY = {"split_axis": "y", "seeds": {"simulation": 42, "grouping": 123, "subsampling": 456}}


def best_of(repeats: int, func) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        func()
        times.append(time.perf_counter() - start)
    return min(times)


def throughput_row(n_pix: int, n_positions: int, chunk: int) -> dict:
    study = {**STUDY, "N": n_pix}
    base = make_synthetic_base(
        {"object_shape": [4 * n_pix, 4 * n_pix], "aperture_fraction": 0.25, "defocus_waves": 4.0}, study
    )
    gen = {"n_positions": n_positions, "chunk_size": chunk, "poisson_noise": True, "guard_band": None}
    sim_s = best_of(3, lambda: simulate_diffraction(base, 1e4, study, gen))
    waves = (np.random.default_rng(0).standard_normal((chunk, n_pix, n_pix)) * (1 + 1j)).astype(np.complex64)

    def fft_floor() -> None:
        for start in range(0, n_positions, chunk):
            np.fft.fft2(waves[: min(chunk, n_positions - start)], norm="ortho")

    fft_s = best_of(3, fft_floor)
    return {
        "N": n_pix,
        "patterns": n_positions,
        "simulation_patterns_per_s": n_positions / sim_s,
        "fft_floor_patterns_per_s": n_positions / fft_s,
        "simulation_over_fft_time": sim_s / fft_s,
    }


def overlap_rows() -> list[dict]:
    """Seconds per view of the overlap node (selection, spacing statistics, overlap metrics) at paper scale:
    one split of 5000 positions, N=128, 336 x 168 px scan region."""
    rng = np.random.default_rng(0)
    n, n_pix = 5000, 128
    y, x = rng.uniform(64, 232, n), rng.uniform(64, 400, n)
    arrays = {
        "diffraction": np.zeros((n, 1, 1), np.float32),
        "xcoords": x,
        "ycoords": y,
        "probeGuess": np.ones((1, 1), np.complex64),
        "objectGuess": np.ones((464, 464), np.complex64),
    }
    full = Record(arrays, {"dose": 1e4, "split": "train", "view": "full"})
    study = {**STUDY, "N": n_pix, "gridsizes": [1, 2], "neighbour_pool": 7}
    rows = []
    overlap = {"min_direct_rate": 0.1, "min_positions": 8}
    for view, fraction in (("dense", 0.7), ("sparse", 0.2)):
        run = partial(select_overlap_view, full, fraction, study, overlap, view)
        seconds = best_of(3, run)
        kept = run()[0]
        rows.append({"view": view, "positions": n, "kept": len(kept["xcoords"]), "seconds": seconds})
    return rows


def paper_peak_memory() -> dict:
    """One paper-scale dose in a fresh process: simulate + split, peak resident memory."""
    code = (
        "import resource, time\n"
        "from fly64_kedro.pipelines.generation.nodes import (\n"
        "    make_synthetic_base, simulate_diffraction, split_train_test)\n"
        f"study = {{**{STUDY!r}, 'N': 128}}\n"
        "gen = {'n_positions': 10304, 'chunk_size': 512, 'poisson_noise': True, 'guard_band': None}\n"
        "t = time.perf_counter()\n"
        "shape = {'object_shape': [464, 464], 'aperture_fraction': 0.25, 'defocus_waves': 4.0}\n"
        "base = make_synthetic_base(shape, study)\n"
        "sim = simulate_diffraction(base, 1e4, study, gen)\n"
        "train, test = split_train_test(sim, study, gen)\n"
        "print(time.perf_counter() - t, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20,"
        " (sim['diffraction'].nbytes + sim['Y'].nbytes) / 2**30)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    seconds, peak_gib, dataset_gib = map(float, out[-3:])
    return {
        "seconds": seconds,
        "peak_rss_gib": peak_gib,
        "dataset_gib": dataset_gib,
        "peak_over_dataset": peak_gib / dataset_gib,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="skip the paper-scale memory run")
    args = parser.parse_args()
    rows = [throughput_row(64, 2048, 256), throughput_row(128, 1024, 256)]
    print(f"{'N':>4} {'patterns':>8} {'sim pat/s':>10} {'FFT pat/s':>10} {'sim/FFT time':>13}")
    for r in rows:
        print(
            f"{r['N']:>4} {r['patterns']:>8} {r['simulation_patterns_per_s']:>10.0f} "
            f"{r['fft_floor_patterns_per_s']:>10.0f} {r['simulation_over_fft_time']:>13.2f}"
        )
    views = overlap_rows()
    for r in views:
        print(
            f"overlap view {r['view']:>6} at paper scale: {r['positions']} -> {r['kept']} positions "
            f"in {r['seconds']:.3f} s"
        )
    result = {"throughput": rows, "overlap_views": views}
    if not args.quick:
        mem = paper_peak_memory()
        result["paper_dose"] = mem
        print(
            f"paper-scale dose (N=128, 10304 positions): {mem['seconds']:.1f} s, "
            f"peak RSS {mem['peak_rss_gib']:.2f} GiB "
            f"for a {mem['dataset_gib']:.2f} GiB dataset (x{mem['peak_over_dataset']:.2f})"
        )
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "generation.json").write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
