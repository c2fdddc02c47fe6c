"""PINN speed: training seconds per epoch at N = 64 and N = 128, and inference throughput (patterns/s).

Runs the real engine API (training.train / inference.reconstruct) in the "tensorflow" worker, on small simulated
datasets (the project's forward model, dose 1e4): gridsize 1, gridsize 2 from scratch (the group's patterns as
channels) and gridsize 2 warm-started from that gridsize-1 model (one network per member, the study's default).
Prints a table and writes benchmarks/results/pinn.json.
``python benchmarks/bench_pinn.py`` takes 3-7 minutes on 2 CPU cores (by the machine).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path
from typing import Any

import numpy as np

from fly64_kedro.engines.workers import run_in_worker, shutdown
from fly64_kedro.physics import forward, synthetic_object

RESULTS = Path(__file__).resolve().parent / "results" / "pinn.json"
TRAINING = "fly64_kedro.engines.pinn.training"
INFERENCE = "fly64_kedro.engines.pinn.inference"
# (N, training positions, test positions): small enough for a CPU, large enough for several batches.
CASES = ((64, 256, 512), (128, 128, 256))
LSQML_SETTINGS = {"epochs": 50, "batch_size": 96, "noise_model": "gaussian", "refine_probe": False, "log_every": 50}


def simulate(n_pix: int, n_pos: int, seed: int, dose: float = 1e4) -> dict[str, Any]:
    """Poisson far-field data of the synthetic fly on a (4N, 4N) object, as the simulator stores it."""
    rng = np.random.default_rng(seed)
    shape = (4 * n_pix, 4 * n_pix)
    obj, probe = synthetic_object.synthetic_fly_object(shape, 42), synthetic_object.focused_probe(n_pix)
    y = rng.uniform(n_pix / 2, shape[0] - n_pix / 2, n_pos)
    x = rng.uniform(n_pix / 2, shape[1] - n_pix / 2, n_pos)
    diffraction, scale = forward.simulate_patterns(forward.extract_patches(obj, y, x, n_pix), probe, dose, rng)
    return {
        "diffraction": diffraction,
        "y": y,
        "x": x,
        "probe": probe,
        "scale": scale,
        "shape": shape,
    }


def bench_case(
    n_pix: int, n_train: int, n_test: int, gridsize: int, settings: dict[str, Any], teacher: dict | None = None
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Train for settings['epochs'] epochs (from ``teacher``, a gridsize-1 model, with ``warm_start``), then
    reconstruct a test set; the row (timings in seconds) and the model ({"weights", "config"})."""
    train, test = simulate(n_pix, n_train, seed=1), simulate(n_pix, n_test, seed=2)
    variant = "warm" if gridsize > 1 and settings.get("warm_start") else "scratch"
    job = f"bench N={n_pix} gs={gridsize} {variant}"
    result = run_in_worker(
        "tensorflow",
        f"{TRAINING}:train",
        train["diffraction"],
        train["y"],
        train["x"],
        train["probe"],
        train["scale"],
        gridsize,
        settings,
        job=job,
        teacher=teacher,
    )
    recon = run_in_worker(
        "tensorflow",
        f"{INFERENCE}:reconstruct",
        result["weights"],
        result["config"],
        test["diffraction"],
        test["y"],
        test["x"],
        test["probe"],
        test["scale"],
        test["shape"],
        settings,
        job=job,
    )
    # The iterative baseline on the SAME test patterns, in the same run (quick-profile LSQML settings).
    lsqml = run_in_worker(
        "torch",
        "fly64_kedro.engines.lsqml:reconstruct",
        test["diffraction"],
        test["y"],
        test["x"],
        test["probe"],
        test["shape"],
        LSQML_SETTINGS,
        job=job,
    )
    epoch_s = result["history"]["epoch_s"]
    steady = float(np.mean(epoch_s[1:]))  # the first epoch also traces the training and validation steps
    row = {
        "N": n_pix,
        "gridsize": gridsize,
        "start": variant,
        "filters": settings["filters"],
        "batch_size": result["batch_size"],
        "train_groups": result["n_train_groups"],
        "epochs": len(epoch_s),
        "first_epoch_s": epoch_s[0],
        "epoch_s": steady,
        "ms_per_group": 1e3 * steady / result["n_train_groups"],
        "train_wall_s": result["wall_time_s"],
        "loss_first": result["history"]["loss"][0],
        "loss_last": result["history"]["loss"][-1],
        "test_patterns": n_test,
        "inference_s": recon["inference_s"],
        "patterns_per_s": recon["patterns_per_s"],
        "lsqml_s": lsqml["wall_time_s"],
        "speedup_inference_vs_lsqml": lsqml["wall_time_s"] / recon["inference_s"],
        "speedup_inference_plus_training_vs_lsqml": lsqml["wall_time_s"]
        / (recon["inference_s"] + result["wall_time_s"]),
    }
    return row, {"weights": result["weights"], "config": result["config"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--filters", type=int, default=16)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--threads", type=int, default=None, help="TensorFlow inter-op threads (default: its own)")
    parser.add_argument("--intra-op-threads", type=int, default=1, help="TensorFlow threads per op (the study's: 1)")
    args = parser.parse_args()
    if args.epochs < 2:
        parser.error("--epochs must be >= 2 (the first epoch includes tracing)")
    settings = {
        "epochs": args.epochs,
        "batch_size": args.batch_size,
        "learning_rate": 1e-3,
        "plateau_patience": 2,
        "early_stopping_patience": args.epochs,  # never stop early: every epoch is timed
        "validation_fraction": 0.1,
        "n_groups": None,
        "filters": args.filters,
        "neighbour_pool": 7,
        "grouping_seed": 123,
        "subsampling_seed": 456,
        "training_seed": 7,
        "threads": args.threads,
        "intra_op_threads": args.intra_op_threads,
        "inference_batch_size": 64,
    }
    started = time.perf_counter()
    rows = []
    for case in CASES:
        single, model = bench_case(*case, 1, settings)
        warm = {**settings, "warm_start": True, "warm_start_epochs": args.epochs}
        rows += [single, bench_case(*case, 2, settings)[0], bench_case(*case, 2, warm, teacher=model)[0]]
    shutdown()

    print(
        f"{'N':>4} {'gs':>3} {'start':>7} {'groups':>6} {'1st ep s':>9} {'epoch s':>8} {'ms/group':>9} "
        f"{'loss 1st->last':>21} {'patt/s':>8} {'LSQML s':>8} {'speed-up':>9}"
    )
    for r in rows:
        print(
            f"{r['N']:>4} {r['gridsize']:>3} {r['start']:>7} {r['train_groups']:>6} "
            f"{r['first_epoch_s']:>9.2f} {r['epoch_s']:>8.2f} "
            f"{r['ms_per_group']:>9.1f} {r['loss_first']:>10.4g}->{r['loss_last']:<10.4g} "
            f"{r['patterns_per_s']:>8.0f} {r['lsqml_s']:>8.1f} {r['speedup_inference_vs_lsqml']:>8.0f}x"
        )
    report = {
        "benchmark": "pinn",
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version()},
        "settings": settings,
        "total_s": time.perf_counter() - started,
        "rows": rows,
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(report, indent=2))
    print(f"wrote {RESULTS} ({report['total_s']:.0f} s)")


if __name__ == "__main__":
    main()
