"""One PINN training traced epoch by epoch: the test split's phase and amplitude R2 after every epoch.

    python benchmarks/pinn_trace.py DATA_ROOT [--dose d1e5] [--view full] [--label pinn_gs2] [--seed 7]
        [--set warmup_epochs=2 --set threads=2] [--env ENV] [--out benchmarks/results/pinn_trace.json]

DATA_ROOT is a finished study's data root (its 03_primary views). Trains the cell's model on the train view with the
project's own settings (conf plus --set; a warm-started gridsize 2 trains its gridsize-1 teacher first, untraced) and,
at the end of every epoch, applies the weights early stopping would keep to the test view and scores them with
bar_r2.py's code (a flat image scores 0). The score never steers the training: it only shows what the validation loss
cannot, e.g. how much the test score jumps between adjacent epochs, when the phase starts to be learnt, or that the
object has turned constant (docs/science.md "Seed spread"). Ends by applying the restored weights as the study does;
that score equals the trace's at the best epoch (the symmetry-averaged one with average_symmetries). Costs the
training's time plus a few seconds of inference and stitching per epoch (9 x that with average_symmetries). Writes one
row per epoch (loss, val_loss, lr, epoch_s, SCORE_COLUMNS) with the stop reason and best epoch to --out; the plain
scores are those of a single prediction per pattern, the averaged ones (NaN unless average_symmetries) those of the
symmetry-averaged prediction. amplitude_spread is the predicted amplitude's standard deviation over the test patches,
averaged over pixels (0: the network has turned constant, a dead run); saturated is the fraction of predicted pixels
within 0.01 of their output activation's bound (r the amplitude_range; polar: amplitude <= 0.01 r or >= 0.99 r;
cartesian: |real| or |imag| >= 0.99 r), where the gradient vanishes."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path
from typing import Any

import numpy as np

from fly64_kedro.engines import workers
from fly64_kedro.pipelines.reconstruction.nodes import trained_settings
from fly64_kedro.study import ENGINES_BY_LABEL

HERE = Path(__file__).resolve().parent
SCORE_COLUMNS = (
    "amplitude_r2",
    "phase_r2",
    "amplitude_spread",
    "saturated",
    "averaged_amplitude_r2",
    "averaged_phase_r2",
)
sys.path.insert(0, str(HERE))
from bar_r2 import compared_region, r2_scores  # noqa: E402  (the bar's scoring, not the comparison pipeline's)
from pinn_cell import cell_parser, parameters, views  # noqa: E402


def health(patches: np.ndarray, output: str, amplitude_range: float = 1.0) -> tuple[float, float]:
    """(amplitude spread, saturated fraction) of predicted complex (n, N, N) patches from "polar" or "cartesian"
    decoders: the amplitude's std over the patches averaged over pixels, and the fraction of pixels within 1 % of
    an output activation's bound (r = amplitude_range: r * sigmoid amplitude in (0, r); r * tanh real and imaginary
    parts in (-r, r))."""
    amplitude = np.abs(patches)
    if output == "polar":
        bound = (amplitude <= 0.01 * amplitude_range) | (amplitude >= 0.99 * amplitude_range)
    else:
        bound = np.maximum(np.abs(patches.real), np.abs(patches.imag)) >= 0.99 * amplitude_range
    return float(np.std(amplitude, axis=0).mean()), float(np.mean(bound))


def trace(train: dict[str, Any], test: dict[str, Any], gridsize: int, settings: dict[str, Any]) -> dict[str, Any]:
    """Train with a per-epoch test score (runs in the "tensorflow" worker); train/test hold a view's arrays and
    its exposure scale. Returns the training result less its weights, the per-epoch scores and the final score."""
    import keras

    from fly64_kedro.engines.pinn.inference import predict_patches, reconstruct
    from fly64_kedro.engines.pinn.settings import OUTPUT_AUTO, validate_settings
    from fly64_kedro.engines.pinn.training import fit
    from fly64_kedro.physics.stitching import stitch_patches

    truth = test["objectGuess"]
    mask = compared_region(test["ycoords"], test["xcoords"], test["probeGuess"], truth.shape)
    opts = validate_settings(settings)
    output = OUTPUT_AUTO[gridsize] if opts["output"] == "auto" else opts["output"]
    args = (train["diffraction"], train["ycoords"], train["xcoords"], train["probeGuess"], train["scale"])
    teacher = None
    if gridsize > 1 and opts["warm_start"]:  # the study's gridsize 2 starts from the view's gridsize-1 model
        _, single = fit(*args, 1, settings, job="trace teacher")
        teacher = {"weights": single["weights"], "config": single["config"]}
        output = single["config"]["output"]
    scores: list[tuple[float, float, float, float]] = []
    config = {"gridsize": gridsize, "N": test["diffraction"].shape[1]}  # what predict_patches reads of a model's config

    class TestScore(keras.callbacks.Callback):
        def __init__(self, models: Any) -> None:
            super().__init__()
            self.models = models

        def score(self, settings: dict[str, Any]) -> tuple[tuple[float, float], np.ndarray]:
            position = (test[key] for key in ("diffraction", "ycoords", "xcoords", "probeGuess"))
            patches, _ = predict_patches(self.models, config, *position, settings)
            stitched = stitch_patches(patches, test["ycoords"], test["xcoords"], truth.shape, test["probeGuess"])
            return r2_scores(stitched.object, truth, mask), patches

        def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
            plain, patches = self.score({**opts, "average_symmetries": False})
            spread, saturated = health(patches, output, opts["amplitude_range"])
            averaged = self.score(opts)[0] if opts["average_symmetries"] else (math.nan, math.nan)
            scores.append((*plain, spread, saturated, *averaged))
            print(
                f"epoch {epoch + 1}: phase R2 {plain[1]:6.3f}  amplitude R2 {plain[0]:6.3f}  "
                f"amplitude spread {spread:.4f}  saturated {saturated:.3f}  "
                f"symmetry-averaged phase R2 {averaged[1]:6.3f}  amplitude R2 {averaged[0]:6.3f}",
                flush=True,
            )

    _, result = fit(
        *args, gridsize, settings, job="trace", observers=lambda models: [TestScore(models)], teacher=teacher
    )
    final = reconstruct(
        result.pop("weights"),
        result["config"],
        *(test[key] for key in ("diffraction", "ycoords", "xcoords", "probeGuess", "scale")),
        truth.shape,
        settings,
        job="trace",
    )
    result["final_amplitude_r2"], result["final_phase_r2"] = r2_scores(final["object"], truth, mask)
    result["scores"] = scores
    return result


def main() -> int:
    parser = cell_parser(__doc__.split("\n\n")[0])
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--out", type=Path, default=HERE / "results" / "pinn_trace.json")
    args = parser.parse_args()
    study, pinn = parameters(args)
    engine = ENGINES_BY_LABEL[args.label]
    settings = trained_settings(engine, {**pinn, "training_seed": args.seed}, study)
    keys = ("diffraction", "ycoords", "xcoords", "probeGuess", "objectGuess")
    train, test = ({**{key: view[key] for key in keys}, "scale": float(view.meta["scale"])} for view in views(args))
    try:
        result = workers.run_in_worker(engine.worker, "pinn_trace:trace", train, test, engine.gridsize, settings)
    finally:
        workers.shutdown()
    history = result.pop("history")
    rows = [
        {
            "epoch": i + 1,
            **{key: values[i] for key, values in history.items()},
            **dict(zip(SCORE_COLUMNS, score)),
        }
        for i, score in enumerate(result.pop("scores"))
    ]
    best = rows[result["best_epoch"]]
    column = "averaged_phase_r2" if settings.get("average_symmetries") else "phase_r2"
    print(
        f"{args.dose} {args.view} {args.label} seed {args.seed} {' '.join(args.set)}: {result['stop_reason']}; "
        f"phase R2 at the best epoch {best[column]:.3f}, applied as the study does {result['final_phase_r2']:.3f}"
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    cell = {"dose": args.dose, "view": args.view, "label": args.label, "seed": args.seed, "set": args.set}
    args.out.write_text(json.dumps({**cell, **result, "rows": rows}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
