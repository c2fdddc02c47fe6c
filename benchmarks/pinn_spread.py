"""How far one PINN cell's test phase R2 moves across training seeds and threads per op (issue 11's "spread").

    python benchmarks/pinn_spread.py DATA_ROOT [--dose d1e5] [--view full] [--label pinn_gs2] [--seeds 7 8 9]
        [--threads 1 2] [--set loss=amplitude --set gradient_clip=4] [--jobs 2]

DATA_ROOT is a finished study's data root (its 01_raw base and 03_primary views; `make study` writes data/). Each (seed,
threads) pair trains the cell's model with that many threads per TensorFlow op (``intra_op_threads``: the count that
moves the numbers; ``threads``, ops side by side, moves none) on the train view with the project's own nodes and
parameters (conf/base plus --set; a warm-started gridsize 2 trains its gridsize-1 teacher first, as the study does),
applies it to the test view and scores it with bar_r2.py's code (phase R2 against the base object; a flat image scores
0). One pair of 1-thread gridsize-2 jobs takes 7-30 minutes on 2 cores (by the epochs they run and the machine).
Prints one row per run and the spread (max - min) per thread count and over all, and writes
benchmarks/results/pinn_spread.json (--out; each run's R2, epochs, stop reason, rollback epochs and per-epoch loss
history). A single run of a configuration says little when this spread is large.
"""

from __future__ import annotations

import json
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from itertools import product
from pathlib import Path

import numpy as np

from fly64_kedro.engines import workers
from fly64_kedro.pipelines.reconstruction.nodes import apply_model, train_model
from fly64_kedro.study import ENGINES_BY_LABEL

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from bar_r2 import compared_region, r2_scores  # noqa: E402  (the bar's scoring, not the comparison pipeline's)
from pinn_cell import cell_parser, parameters, views  # noqa: E402


def main() -> int:
    parser = cell_parser(__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[7, 8, 9])
    parser.add_argument("--threads", type=int, nargs="+", default=[1], help="threads per op (intra_op_threads)")
    parser.add_argument("--jobs", type=int, default=2, help="runs at once (one worker process each)")
    parser.add_argument("--out", type=Path, default=HERE / "results" / "pinn_spread.json")
    args = parser.parse_args()
    study, pinn = parameters(args)
    engine = ENGINES_BY_LABEL[args.label]
    train, test = views(args)
    truth = test["objectGuess"]
    mask = compared_region(test["ycoords"], test["xcoords"], test["probeGuess"], truth.shape)

    def run(seed: int, threads: int) -> dict:
        settings = {**pinn, "training_seed": seed, "intra_op_threads": threads}
        started = time.perf_counter()
        teacher = None
        if engine.teacher and settings.get("warm_start"):  # as the study: gridsize 2 starts from gridsize 1
            teacher = train_model(train, settings, study, engine.teacher)
        model = train_model(train, settings, study, args.label, teacher)
        record = apply_model(model, test, settings, study, args.label)
        if record.meta["status"] != "ok":
            return {"seed": seed, "threads": threads, "status": record.meta["status"], "reason": record.meta["reason"]}
        amp, phase = r2_scores(record["object"], truth, mask)
        row = {"seed": seed, "threads": threads, "status": "ok", "amplitude_r2": amp, "phase_r2": phase}
        row |= {"epochs_run": model.meta["epochs_run"], "best_val_loss": min(model.meta["history"]["val_loss"])}
        row |= {"stop_reason": model.meta["stop_reason"], "rollback_epochs": model.meta["rollback_epochs"]}
        row["history"] = model.meta["history"]
        row["wall_s"] = time.perf_counter() - started
        print(
            f"seed {seed:3d} threads {threads}: phase R2 {phase:6.3f}  amplitude R2 {amp:6.3f}  "
            f"best val_loss {row['best_val_loss']:.5g}  epochs {row['epochs_run']}  "
            f"rollbacks {row['rollback_epochs'] or 'none'}  {row['wall_s']:.0f} s",
            flush=True,
        )
        return row

    workers.set_processes_per_engine(args.jobs)
    try:
        with ThreadPoolExecutor(args.jobs) as pool:
            rows = list(pool.map(lambda pair: run(*pair), product(args.seeds, args.threads)))
    finally:
        workers.shutdown()
    ok = [row for row in rows if row["status"] == "ok"]
    groups = {f"threads {t}": [r["phase_r2"] for r in ok if r["threads"] == t] for t in args.threads}
    groups["all"] = [r["phase_r2"] for r in ok]
    print(f"{args.dose} {args.view} {args.label} {' '.join(args.set)}: phase R2 over seeds x threads")
    summary = {}
    for name, values in groups.items():
        if values:
            low, high = min(values), max(values)
            stats = summary[name] = {"mean": float(np.mean(values)), "min": low, "max": high, "spread": high - low}
            print(
                f"  {name:10} mean {stats['mean']:6.3f}  min {low:6.3f}  max {high:6.3f}  "
                f"spread {stats['spread']:.3f}  (n={len(values)})"
            )
    for row in rows:
        if row["status"] != "ok":
            print(f"  seed {row['seed']} threads {row['threads']}: {row['status']} ({row['reason']})")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    cell = {"dose": args.dose, "view": args.view, "label": args.label, "set": args.set}
    args.out.write_text(json.dumps({**cell, "rows": rows, "summary": summary}, indent=1))
    return 0 if len(ok) == len(rows) else 1


if __name__ == "__main__":
    sys.exit(main())
