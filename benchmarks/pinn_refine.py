"""Test-time refinement of a study's trained PINN: fine-tune it without labels on the test view's own diffraction
(the data LSQML sees) and score it before and after (issue 11, item 4; its own row, never the study's PINN row).

    python benchmarks/pinn_refine.py DATA_ROOT [--dose d1e5] [--view full] [--label pinn_gs2]
        [--set epochs=20 --set learning_rate=1e-4] [--env ENV] [--out benchmarks/results/pinn_refine.json]

DATA_ROOT is a finished study's data root: its trained model (07_model_output/<dose>/<view>_<label>_model.npz) and
test view (03_primary). The refinement is ``training.refine``: the project's training (Poisson loss, the probe's
symmetries, validation on a tenth of the groups, early stopping and rollback) started from the trained weights, with
the PINN settings from conf plus --set and, unless --set says otherwise, REFINE_DEFAULTS (Adam moves every weight by
about the rate per step, so the training's 1e-3 wipes a trained model out in one epoch: phase R2 0.45 -> 0.03 at
1e5). Scores with bar_r2.py's code (a flat image scores 0). A full view took about 10 minutes (20 epochs) with
three other jobs on 2 CPU cores.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from fly64_kedro.datasets.npz_dataset import read_npz
from fly64_kedro.engines import workers
from fly64_kedro.pipelines.reconstruction.nodes import model_weights, trained_settings
from fly64_kedro.study import ENGINES_BY_LABEL

HERE = Path(__file__).resolve().parent
REFINE_DEFAULTS = {"epochs": 20, "learning_rate": 1.0e-4, "min_learning_rate": 1.0e-4}
KEYS = ("diffraction", "ycoords", "xcoords", "probeGuess", "scale")
sys.path.insert(0, str(HERE))
from bar_r2 import compared_region, r2_scores  # noqa: E402  (the bar's scoring, not the comparison pipeline's)
from pinn_cell import cell_parser, parameters, views  # noqa: E402


def refine_and_score(model: dict[str, Any], test: dict[str, Any], settings: dict[str, Any]) -> dict[str, Any]:
    """Runs in the "tensorflow" worker: the test view's (amplitude, phase) R2 before and after refinement, and the
    refinement's record less its weights."""
    from fly64_kedro.engines.pinn.inference import reconstruct
    from fly64_kedro.engines.pinn.training import refine

    truth = test["objectGuess"]
    mask = compared_region(test["ycoords"], test["xcoords"], test["probeGuess"], truth.shape)

    def score(weights: dict[str, Any], job: str) -> tuple[float, float]:
        stitched = reconstruct(weights, model["config"], *(test[k] for k in KEYS), truth.shape, settings, job=job)
        return r2_scores(stitched["object"], truth, mask)

    result = refine(model["weights"], model["config"], *(test[k] for k in KEYS), settings, job="refine")
    after = score(result.pop("weights"), "after")
    return {**result, "before": score(model["weights"], "before"), "after": after}


def main() -> int:
    parser = cell_parser(__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=HERE / "results" / "pinn_refine.json")
    args = parser.parse_args()
    given = {item.partition("=")[0] for item in args.set}
    study, pinn = parameters(args)
    pinn.update({key: value for key, value in REFINE_DEFAULTS.items() if key not in given})
    engine = ENGINES_BY_LABEL[args.label]
    settings = trained_settings(engine, pinn, study)
    path = args.root / "07_model_output" / args.dose / f"{args.view}_{args.label}_model.npz"
    record = read_npz(str(path), str(path), "model")
    model = {"weights": model_weights(record), "config": record.meta["config"]}
    view = views(args)[1]
    test = {key: view[key] for key in (*KEYS[:-1], "objectGuess")} | {"scale": float(view.meta["scale"])}
    try:
        result = workers.run_in_worker(engine.worker, "pinn_refine:refine_and_score", model, test, settings)
    finally:
        workers.shutdown()
    (amp0, phase0), (amp1, phase1) = result["before"], result["after"]
    print(
        f"{args.dose} {args.view} {args.label} {' '.join(args.set)}: before refinement phase R2 {phase0:.3f} "
        f"(amplitude {amp0:.3f}), after {phase1:.3f} ({amp1:.3f}); {result['stop_reason']}, "
        f"{result['wall_time_s']:.0f} s"
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    cell = {"dose": args.dose, "view": args.view, "label": args.label, "set": args.set, "settings": settings}
    args.out.write_text(json.dumps({**cell, **result}, indent=1, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
