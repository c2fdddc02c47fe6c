"""LSQML overhead and throughput: the project's call vs a bare pty-chi call, and seconds per epoch per 1000 patterns.

    python benchmarks/bench_lsqml.py [--quick]

1. Overhead. The same job (N=64, 200 random positions at 1e5 photons, settings below) runs through the project's
   Kedro node,
   ``reconstruct_lsqml(view, settings)`` (its engine worker warm), timed end to end in this
   process (transfer, validation, unit conversion, chunked logging, build, run, readout), and as a bare pty-chi call
   in a separately spawned warm process, timing only the task build, ``task.run()`` and the readout. Rounds alternate
   project/bare. Both run with ONE torch thread: on a shared 2-core machine a 2-thread job's wall time swings
   several-fold with other load and its threads spin while they wait for each other, so neither its wall nor its CPU
   time compares two code paths; one thread's CPU time does. Recorded per call: wall time, and CPU time (the engine
   process's user + system time from /proc plus this process's own, i.e. transfer included). Headline: the median
   over rounds of project/bare CPU time; goal <= 1.05.
2. Throughput. Seconds per epoch per 1000 patterns at N=64 and N=128 (build included): the project's wall_time_s
   with the default threads (best of 3), and the CPU time of a one-thread run.

Writes benchmarks/results/lsqml.json. torch is only imported in the spawned processes, never here.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import platform
import statistics
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from fly64_kedro.engines.workers import run_in_worker, shutdown
from fly64_kedro.physics.forward import extract_patches, simulate_patterns
from fly64_kedro.physics.synthetic_object import focused_probe, synthetic_fly_object
from fly64_kedro.pipelines.reconstruction.nodes import reconstruct_lsqml
from fly64_kedro.record import Record

RESULTS = Path(__file__).resolve().parent / "results" / "lsqml.json"
OBJECT_SHAPES = {64: (384, 384), 128: (464, 464)}  # the default and paper-scale profiles
N_POSITIONS = 200
DOSE = 1e5


def simulate(n_pix: int, n_positions: int = N_POSITIONS, seed: int = 42) -> dict[str, Any]:
    """Uniform random scan (spec 3.2) with Poisson counts; stored amplitude sqrt(counts)/s as in the project."""
    rng = np.random.default_rng(seed)
    shape = OBJECT_SHAPES[n_pix]
    obj = synthetic_fly_object(shape, seed)
    probe = focused_probe(n_pix)
    y = rng.uniform(n_pix / 2, shape[0] - n_pix / 2, n_positions)
    x = rng.uniform(n_pix / 2, shape[1] - n_pix / 2, n_positions)
    diffraction, _ = simulate_patterns(extract_patches(obj, y, x, n_pix), probe, DOSE, rng)
    return {"diffraction": diffraction, "y": y, "x": x, "probe": probe, "shape": shape}


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of process ``pid``, all its threads (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def project_call(data: dict[str, Any], settings: dict[str, Any]) -> dict[str, float]:
    """The project's Kedro node on a view record: wall seconds as Kedro sees them, the engine's own wall_time_s,
    and CPU seconds (both processes)."""
    height, width = data["shape"]
    view = Record(
        {
            "diffraction": data["diffraction"],
            "ycoords": data["y"],
            "xcoords": data["x"],
            "probeGuess": data["probe"],
            "objectGuess": np.ones((height, width), np.complex64),
        },
        {"dose": 1e4, "view": "full", "split": "test", "N": data["diffraction"].shape[-1]},
    )
    pid = run_in_worker("torch", "os:getpid")
    cpu0, own0, start = cpu_seconds(pid), time.process_time(), time.perf_counter()
    out = reconstruct_lsqml(view, settings)
    wall = time.perf_counter() - start
    cpu = cpu_seconds(pid) - cpu0 + time.process_time() - own0
    if out.status != "ok":
        raise RuntimeError(f"benchmark job {out.status}: {out.meta.get('reason')}")
    return {"wall_s": wall, "engine_wall_s": out.meta["wall_time_s"], "cpu_s": cpu}


def bare_inputs(data: dict[str, Any]) -> dict[str, Any]:
    """What a pty-chi user passes: intensities in pty-chi's FFT units and zero-centred positions (see lsqml.py)."""
    n_pix = data["diffraction"].shape[-1]
    height, width = data["shape"]
    return {
        "diffraction_data": data["diffraction"].astype(np.float32) ** 2 * np.float32(n_pix * n_pix),
        "object_data": np.ones((1, height, width), dtype=np.complex64),
        "probe_data": data["probe"].astype(np.complex64)[None, None],
        "probe_position_x_px": data["x"] - np.round(width / 2),
        "probe_position_y_px": data["y"] - np.round(height / 2),
    }


def bare_call(inputs: dict[str, Any], settings: dict[str, Any]) -> float:
    """Run in a spawned process: build and run the same LSQML task straight through pty-chi; seconds."""
    import torch
    from ptychi import api
    from ptychi.api.task import PtychographyTask

    cuda = settings["device"] == "cuda" or (settings["device"] == "auto" and torch.cuda.is_available())
    options = api.LSQMLOptions()
    options.data_options.save_data_on_device = cuda
    rec = options.reconstructor_options
    rec.num_epochs = settings["epochs"]
    rec.batch_size = settings["batch_size"]
    rec.noise_model = api.NoiseModels(settings["noise_model"])
    rec.default_device = api.Devices.GPU if cuda else api.Devices.CPU
    rec.rescale_probe_intensity_in_first_epoch = False
    options.object_options.remove_object_probe_ambiguity.enabled = False
    options.probe_options.optimizable = settings["refine_probe"]
    if settings["torch_threads"] is not None:
        torch.set_num_threads(settings["torch_threads"])
    start = time.perf_counter()
    with PtychographyTask(options, **inputs) as task:
        task.run()
        task.get_data_to_cpu("object", as_numpy=True)
        task.get_data_to_cpu("probe", as_numpy=True)
    return time.perf_counter() - start


def overhead(settings: dict[str, Any], rounds: int) -> dict[str, Any]:
    """Alternating warm rounds of the project's call and the bare call on the same data, one torch thread each."""
    settings = {**settings, "torch_threads": 1}
    data = simulate(64)
    inputs = bare_inputs(data)
    project, bare = [], []
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
        project_call(data, settings)  # warm-up: worker start, imports, first-call allocations
        pool.submit(bare_call, inputs, settings).result()
        bare_pid = pool.submit(os.getpid).result()
        for _ in range(rounds):
            project.append(project_call(data, settings))
            cpu0, own0 = cpu_seconds(bare_pid), time.process_time()
            timed = pool.submit(bare_call, inputs, settings).result()
            bare.append({"timed_s": timed, "cpu_s": cpu_seconds(bare_pid) - cpu0 + time.process_time() - own0})
    return {
        "n_pix": 64,
        "n_positions": N_POSITIONS,
        "project": project,
        "bare": bare,
        "torch_threads": 1,
        "cpu_ratio_median": statistics.median(p["cpu_s"] / b["cpu_s"] for p, b in zip(project, bare)),
        "wall_ratio_median": statistics.median(p["wall_s"] / b["timed_s"] for p, b in zip(project, bare)),
        "goal": 1.05,
    }


def throughput(settings: dict[str, Any], epochs: int) -> list[dict[str, Any]]:
    """Seconds per epoch per 1000 patterns (build included), warm worker: the engine's wall_time_s with the default
    threads (best of 3), and the CPU time of a one-thread run (the figure that other load barely moves)."""
    rows = []
    for n_pix in (64, 128):
        data = simulate(n_pix)
        run = {**settings, "epochs": epochs, "log_every": epochs}
        project_call(data, {**run, "epochs": 1})  # warm-up at this size
        walls = [project_call(data, run)["engine_wall_s"] for _ in range(3)]
        one_thread = project_call(data, {**run, "torch_threads": 1})
        per = epochs * N_POSITIONS / 1000
        rows.append(
            {
                "n_pix": n_pix,
                "object_shape": list(data["shape"]),
                "n_positions": N_POSITIONS,
                "epochs": epochs,
                "wall_time_s": walls,
                "s_per_epoch_per_1000": min(walls) / per,
                "one_thread_cpu_s_per_epoch_per_1000": one_thread["cpu_s"] / per,
            }
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="3 rounds of 5 epochs, 2-epoch throughput runs")
    args = parser.parse_args()
    # Many short alternating rounds: load swings last seconds, so short pairs see similar load.
    rounds, epochs, tp_epochs = (3, 5, 2) if args.quick else (9, 10, 5)
    settings = {
        "epochs": epochs,
        "batch_size": 50,
        "noise_model": "gaussian",
        "refine_probe": False,
        "device": "auto",
        "torch_threads": None,
        "log_every": 10,
    }
    load_before = os.getloadavg()
    try:
        over = overhead(settings, rounds)
        rates = throughput(settings, tp_epochs)
    finally:
        shutdown()
    result = {
        "settings": settings,
        "overhead": over,
        "throughput": rates,
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version()},
        "loadavg_before_after": [load_before, os.getloadavg()],
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2))

    print(f"\nLSQML overhead, N=64, {N_POSITIONS} positions, {epochs} epochs, batch {settings['batch_size']}, 1 thread")
    print(
        f"{'round':>5} {'project wall s':>14} {'(engine s)':>10} {'bare wall s':>11}"
        f" {'project cpu s':>13} {'bare cpu s':>10}"
    )
    for k, (p, b) in enumerate(zip(over["project"], over["bare"])):
        print(
            f"{k:>5} {p['wall_s']:>14.3f} {p['engine_wall_s']:>10.3f} {b['timed_s']:>11.3f}"
            f" {p['cpu_s']:>13.2f} {b['cpu_s']:>10.2f}"
        )
    print(
        f"project/bare, median of rounds: CPU time {over['cpu_ratio_median']:.3f}, "
        f"wall time {over['wall_ratio_median']:.3f}; goal <= 1.05"
    )
    print(f"\nthroughput, s per epoch per 1000 patterns ({tp_epochs} epochs, build included)")
    print(f"{'N':>4} {'object':>9} {'wall, default threads':>22} {'CPU, 1 thread':>14}")
    for row in rates:
        shape = "x".join(map(str, row["object_shape"]))
        wall, cpu = row["s_per_epoch_per_1000"], row["one_thread_cpu_s_per_epoch_per_1000"]
        print(f"{row['n_pix']:>4} {shape:>9} {wall:>22.3f} {cpu:>14.3f}")
    print(f"\nload average before/after: {load_before[0]:.2f} / {os.getloadavg()[0]:.2f}; wrote {RESULTS}")


if __name__ == "__main__":
    main()
