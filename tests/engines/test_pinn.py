"""PINN engine (docs/science.md "Reconstruction"): physics layer, bilinear translation, canvas merge, training,
reload, inference.

TensorFlow runs only in the project's "tensorflow" worker: the ``_worker_*`` helpers below execute there (the
spawned worker imports this module by name, from the directory pytest's default "prepend" import mode puts on
sys.path) and return plain numpy/python values. Stitching is tested in tests/physics/test_stitching.py.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from fly64_kedro.engines.workers import run_in_worker, shutdown
from fly64_kedro.physics import forward, synthetic_object

N = 32
SETTINGS = {
    "epochs": 4,
    "batch_size": 8,
    "learning_rate": 1e-3,
    "plateau_patience": 2,
    "early_stopping_patience": 10,
    "validation_fraction": 0.15,
    "n_groups": None,
    "filters": 8,
    "neighbour_pool": 7,
    "grouping_seed": 123,
    "subsampling_seed": 456,
    "training_seed": 7,
    "threads": None,
    "intra_op_threads": None,  # TensorFlow's default: the fastest tests; the thread test starts its own workers
}


def in_tf(helper: str, *args: Any) -> Any:
    return run_in_worker("tensorflow", f"{__name__}:{helper}", *args)


@pytest.fixture(scope="module", autouse=True)
def tf_worker() -> Iterator[None]:
    yield
    shutdown("tensorflow")


def simulate(n_pos: int, seed: int, shape: tuple[int, int] = (128, 128), dose: float = 1e4) -> dict[str, Any]:
    """A tiny dataset made with the project's forward model (docs/science.md "Generation")."""
    rng = np.random.default_rng(seed)
    obj = synthetic_object.synthetic_fly_object(shape, 0)
    probe = synthetic_object.focused_probe(N)
    y = rng.uniform(N / 2, shape[0] - N / 2, n_pos)
    x = rng.uniform(N / 2, shape[1] - N / 2, n_pos)
    diffraction, scale = forward.simulate_patterns(forward.extract_patches(obj, y, x, N), probe, dose, rng)
    return {"diffraction": diffraction, "y": y, "x": x, "probe": probe, "scale": scale, "object": obj}


# ---------------------------------------------------------------- helpers run in the TensorFlow worker


def _worker_far_field(real: np.ndarray, imag: np.ndarray, probe: np.ndarray, scale: float) -> np.ndarray:
    from fly64_kedro.engines.pinn.physics import FarFieldLayer

    return np.asarray(FarFieldLayer(probe.shape[0], scale, probe)([real, imag]))


def _worker_losses(counts: np.ndarray, amplitudes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Both training losses of ``counts`` (1, N, N, 1) for each uniform predicted amplitude in ``amplitudes``."""
    from fly64_kedro.engines.pinn.physics import amplitude_mse, poisson_nll

    predicted = np.ones((len(amplitudes), *counts.shape[1:]), np.float32) * amplitudes[:, None, None, None]
    stacked = np.repeat(counts, len(amplitudes), axis=0)
    return np.asarray(poisson_nll(stacked, predicted)), np.asarray(amplitude_mse(stacked, predicted))


def _worker_translate(
    images: np.ndarray, y: np.ndarray, x: np.ndarray, patches: np.ndarray, out_shape: tuple[int, int]
) -> tuple[np.ndarray, np.ndarray]:
    from fly64_kedro.engines.pinn.physics import extract_patches, place_patches

    y, x = y.astype(np.float32), x.astype(np.float32)
    return (
        extract_patches(images, y, x, patches.shape[1]).numpy(),
        place_patches(patches, y, x, out_shape).numpy(),
    )


def _worker_canvas(
    patches: np.ndarray, y: np.ndarray, x: np.ndarray, groups: np.ndarray, radius: int
) -> tuple[np.ndarray, np.ndarray]:
    """Merge (g, C) groups of complex patches on the canvas; returns the (g, N, N, C) input and output."""
    from fly64_kedro.engines.pinn.data import grouped
    from fly64_kedro.engines.pinn.model import CanvasMerge

    real, offsets = grouped(patches.real, y, x, groups)  # the training code's own stacking and offsets
    imag = grouped(patches.imag, y, x, groups)[0]
    probe = synthetic_object.focused_probe(patches.shape[1])
    merged_real, merged_imag = CanvasMerge(patches.shape[1], radius, probe)([real, imag, offsets])
    return real + 1j * imag, np.asarray(merged_real) + 1j * np.asarray(merged_imag)


def _worker_fit(data: dict[str, Any], gridsize: int, settings: dict[str, Any]) -> tuple[dict[str, Any], np.ndarray]:
    """Train; return the result and the in-memory model's predictions on the first 8 patterns."""
    from fly64_kedro.engines.pinn.training import fit

    models, result = fit(
        data["diffraction"], data["y"], data["x"], data["probe"], data["scale"], gridsize, settings, job="test"
    )
    inputs = np.repeat(data["diffraction"][:8, :, :, None], gridsize**2, axis=-1)
    return result, np.stack(models.inference.predict(inputs, verbose=0))


def _worker_learnt_scale(data: dict[str, Any], brighter: float, epochs: int) -> float:
    """Train only the intensity scale towards counts ``brighter``^2 times the untrained model's prediction (the
    network frozen, exact intensities); return the learnt scale over the initial one (ideal: ``brighter``)."""
    import keras

    from fly64_kedro.engines.pinn.model import build_models
    from fly64_kedro.engines.pinn.physics import SCALE_RATE, poisson_nll

    keras.utils.set_random_seed(0)
    config = {
        "N": N,
        "gridsize": 1,
        "filters": 8,
        "input_scale": 1.0,
        "intensity_scale": data["scale"],
        "trainable_scale": True,
        "output": "cartesian",
        "amplitude_range": 1.0,
    }
    training = build_models({**config, "canvas_radius": 0}, data["probe"]).training
    inputs = data["diffraction"][:, :, :, None].astype(np.float32)
    counts = (brighter * training.predict(inputs, verbose=0)) ** 2
    for layer in training.layers:
        layer.trainable = layer.name == "physics"
    training.compile(optimizer=keras.optimizers.Adam(1e-3), loss=poisson_nll)
    training.fit(inputs, counts, batch_size=16, epochs=epochs, shuffle=False, verbose=0)
    learnt = np.exp(SCALE_RATE * training.get_layer("physics").log_scale_over_rate.numpy())
    return float(learnt / data["scale"])


def _worker_untrained_object(output: str, amplitude_range: float = 1.0, bias: float | None = None) -> np.ndarray:
    """The (real, imag) object patches an untrained model predicts from random diffraction; ``bias`` overrides the
    last bias of the polar amplitude or the cartesian real-part decoder (a large one drives it to its bound)."""
    import keras

    from fly64_kedro.engines.pinn.model import build_models

    keras.utils.set_random_seed(0)
    config = {"N": N, "gridsize": 1, "filters": 8, "input_scale": 1.0, "intensity_scale": 1.0}
    config.update(trainable_scale=True, output=output, canvas_radius=0, amplitude_range=amplitude_range)
    models = build_models(config)
    if bias is not None:
        layer = "amplitude_out" if output == "polar" else "real_out"
        models.inference.get_layer(layer).bias.assign(np.full(1, bias, dtype=np.float32))
    inputs = np.random.default_rng(0).uniform(0, 1, (4, N, N, 1)).astype(np.float32)
    real, imag = models.merged.predict(inputs, verbose=0)
    return real + 1j * imag


def _worker_mapped_predictions(output: str, average: bool, diffraction: np.ndarray, probe: np.ndarray) -> list:
    """An untrained gridsize-1 model's patches for ``diffraction`` and for it mapped by each symmetry of the square,
    the latter mapped back: [(symmetry, plain patches, mapped-back patches)]."""
    import keras

    from fly64_kedro.engines.pinn import symmetry
    from fly64_kedro.engines.pinn.inference import predict_patches
    from fly64_kedro.engines.pinn.model import build_models
    from fly64_kedro.engines.pinn.settings import validate_settings

    keras.utils.set_random_seed(0)
    config = {"N": N, "gridsize": 1, "filters": 8, "input_scale": 1.0, "intensity_scale": 1.0}
    config.update(trainable_scale=True, output=output, canvas_radius=0, amplitude_range=1.0)
    models = build_models(config, probe)
    for layer in models.inference.layers:  # an untrained network is nearly constant: make its output vary
        if layer.name.endswith("_out"):
            layer.kernel.assign(layer.kernel * 300.0)
    opts = validate_settings({**SETTINGS, "average_symmetries": average})
    position = np.zeros(len(diffraction))

    def predict(patterns: np.ndarray) -> np.ndarray:
        return predict_patches(models, config, patterns, position, position, probe, opts)[0]

    plain = predict(diffraction)
    return [(sym, plain, symmetry.invert(sym, predict(symmetry.apply(sym, diffraction)))) for sym in symmetry.ALL]


def _worker_predict(weights: dict[str, np.ndarray], config: dict[str, Any], diffraction: np.ndarray) -> np.ndarray:
    from fly64_kedro.engines.pinn.inference import load_models

    inputs = np.repeat(diffraction[:8, :, :, None], config["gridsize"] ** 2, axis=-1)
    return np.stack(load_models(weights, config).inference.predict(inputs, verbose=0))


# ---------------------------------------------------------------- physics layer and translation


def test_physics_layer_reproduces_the_simulator_far_field() -> None:
    rng = np.random.default_rng(0)
    obj, probe = synthetic_object.synthetic_fly_object((128, 128), 1), synthetic_object.focused_probe(N)
    y, x = rng.uniform(N / 2, 128 - N / 2, 12), rng.uniform(N / 2, 128 - N / 2, 12)
    patches = forward.extract_patches(obj, y, x, N)
    expected = forward.far_field_amplitude(patches * probe)
    # gridsize-2 layout: 3 samples of C = 4 channels, channel c of sample b is patch 4b + c.
    stack = np.transpose(patches.reshape(3, 4, N, N), (0, 2, 3, 1))
    got = np.transpose(in_tf("_worker_far_field", stack.real, stack.imag, probe, 1.0), (0, 3, 1, 2)).reshape(12, N, N)
    assert np.abs(got - expected).max() / expected.max() < 1e-4
    scaled = in_tf("_worker_far_field", stack.real, stack.imag, probe, 3.0)
    np.testing.assert_allclose(scaled, 3.0 * np.transpose(got.reshape(3, 4, N, N), (0, 2, 3, 1)), rtol=1e-5)


def test_both_losses_are_minimised_at_the_true_amplitude_of_poisson_counts() -> None:
    """Counts ~ Poisson(400): the NLL's minimum is at the mean count, the amplitude loss's at E[sqrt(k)], within
    1/(8 sqrt(400)) of sqrt(400) = 20, where the amplitude loss is var(sqrt(k)) ~ 1/4; a zero prediction costs the mean
    count."""
    counts = np.random.default_rng(0).poisson(400.0, (1, 64, 64, 1)).astype(np.float32)
    amplitudes = np.linspace(19.0, 21.0, 401).astype(np.float32)
    nll, mse = in_tf("_worker_losses", counts, amplitudes)
    assert amplitudes[np.argmin(nll)] == pytest.approx(np.sqrt(counts.mean()), abs=0.01)
    assert amplitudes[np.argmin(mse)] == pytest.approx(np.sqrt(counts).mean(), abs=0.01)
    assert abs(amplitudes[np.argmin(mse)] - 20.0) < 0.05
    assert mse.min() == pytest.approx(np.var(np.sqrt(counts)), rel=0.01) and 0.2 < mse.min() < 0.3
    exact = in_tf("_worker_losses", counts, np.array([0.0], np.float32))[1]  # amplitude 0 vs counts
    assert exact[0] == pytest.approx(counts.mean(), rel=1e-5)


def test_tf_bilinear_translation_matches_extract_patches_and_its_adjoint() -> None:
    rng = np.random.default_rng(1)
    obj = synthetic_object.synthetic_fly_object((96, 96), 2)
    y, x = rng.uniform(N / 2, 96 - N / 2, 10), rng.uniform(N / 2, 96 - N / 2, 10)
    y[:3], x[:3] = [N / 2, 96 - N / 2, 40.0], [N / 2, 96 - N / 2, 51.0]  # both edges and an integer position
    images = np.repeat(np.stack([obj.real, obj.imag], axis=-1)[None], len(y), axis=0)
    probes = rng.standard_normal((len(y), N, N, 2)).astype(np.float32)
    extracted, placed = in_tf("_worker_translate", images, y, x, probes, obj.shape)
    expected = forward.extract_patches(obj, y, x, N)
    assert np.abs(extracted[..., 0] + 1j * extracted[..., 1] - expected).max() < 1e-4
    # place_patches is the transpose of extract_patches: <E o, p> == <o, E^T p>.
    lhs, rhs = float(np.sum(extracted * probes)), float(np.sum(images * placed))
    assert abs(lhs - rhs) < 1e-5 * np.sum(np.abs(extracted * probes))


def test_canvas_merge_averages_overlaps_and_leaves_far_members_alone() -> None:
    obj = synthetic_object.synthetic_fly_object((128, 128), 3)
    # Integer positions: the canvas grid is the object grid, so consistent patches come back exactly.
    y = np.array([60.0, 64.0, 71.0, 57.0, 64.0, 64.0, 64.0, 110.0])
    x = np.array([60.0, 70.0, 58.0, 66.0, 64.0, 64.0, 50.0, 100.0])
    groups = np.array([[0, 1, 2, 3], [4, 5, 6, 7]])
    patches = forward.extract_patches(obj, y, x, N)
    noise = np.random.default_rng(4).standard_normal((N, N)).astype(np.float32)
    patches[4] += noise  # members 4 and 5 share a position: the canvas must average them
    patches[5] -= noise
    patches[7] = noise  # offset (34, 30) px from its group's reference, beyond the radius: passed through
    stack, merged = in_tf("_worker_canvas", patches, y, x, groups, 20)
    # The canvas is |P|^2-weighted: exact where a member's probe is bright, fading to 0 far out in the dark
    # (weight / (weight + MERGE_FLOOR)); every lit pixel is within 1 % of its value.
    intensity = np.abs(synthetic_object.focused_probe(N)) ** 2
    lit = intensity >= 0.1 * intensity.max()
    for c in range(4):
        np.testing.assert_allclose(merged[0, :, :, c][lit], stack[0, :, :, c][lit], atol=1e-2)
    truth = forward.extract_patches(obj, y[4:6], x[4:6], N)
    np.testing.assert_allclose(merged[1, :, :, 0][lit], truth[0][lit], atol=1e-2)
    np.testing.assert_allclose(merged[1, :, :, 1][lit], truth[0][lit], atol=1e-2)
    assert np.abs(merged[1, :, :, 0] - truth[0])[lit].max() < 0.1 * np.abs(stack[1, :, :, 0] - truth[0])[lit].max()
    np.testing.assert_array_equal(merged[1, :, :, 3], stack[1, :, :, 3])


def test_intensity_scale_is_learnt_within_tens_of_steps() -> None:
    # Adam moves each weight by about the learning rate (1e-3) per step: a plain log-scale weight could change the
    # scale by only ~10 % in these 100 steps, so the amplitude sigmoid would have to make up a 2x brighter source
    # (and saturates, see physics.SCALE_RATE). With the rate the scale itself gets there.
    ratio = in_tf("_worker_learnt_scale", simulate(64, seed=3), 2.0, 25)
    assert ratio == pytest.approx(2.0, rel=0.05)


def test_cartesian_network_starts_at_half_transmission_and_polar_at_zero_phase() -> None:
    """From a zero start the cartesian network sends no photons out and training stalls (measured: the validation
    loss stayed at its first value for 20 epochs); its real part therefore starts at 0.5."""
    cartesian = in_tf("_worker_untrained_object", "cartesian")
    assert np.abs(cartesian).mean() == pytest.approx(0.5, abs=0.1) and np.abs(np.angle(cartesian)).mean() < 0.3
    polar = in_tf("_worker_untrained_object", "polar")
    assert np.abs(polar).mean() == pytest.approx(0.5, abs=0.1) and np.abs(np.angle(polar)).mean() < 0.3


@pytest.mark.parametrize("output", ["polar", "cartesian"])
@pytest.mark.parametrize("width", [1.0, 2.0])
def test_amplitude_range_moves_the_bound_not_the_start(output: str, width: float) -> None:
    """amplitude_range r: the polar amplitude r * sigmoid and the cartesian real part r * tanh start at 0.5 for every
    r (the start's photon deficit is what first trains the decoders) and tend to r, not 1, as they saturate."""
    start = in_tf("_worker_untrained_object", output, width)
    assert np.abs(start).mean() == pytest.approx(0.5, abs=0.1)
    saturated = in_tf("_worker_untrained_object", output, width, 30.0)
    bounded = np.abs(saturated) if output == "polar" else saturated.real
    np.testing.assert_allclose(bounded, width, rtol=1e-5)


@pytest.mark.parametrize("output", ["polar", "cartesian"])
def test_symmetry_averaged_inference_is_equivariant(output: str) -> None:
    """average_symmetries makes any network, even an untrained one, exactly equivariant under the probe's
    symmetries: the patterns mapped by T give the plain patches (up to each patch's global phase, which a single
    pattern cannot know). Without it the same network is not, so the test sees the averaging."""
    data = simulate(6, seed=3)
    weight = np.abs(data["probe"]) ** 2

    def worst(pairs: list) -> float:
        """The largest |P|^2-weighted relative misfit, after the best global phase, over patches and symmetries."""
        misfits = []
        for _, plain, mapped in pairs:
            turn = np.exp(1j * np.angle(np.sum(weight * mapped * np.conj(plain), axis=(1, 2))))[:, None, None]
            misfit = np.sum(weight * np.abs(mapped * np.conj(turn) - plain) ** 2, axis=(1, 2))
            misfits.append(np.max(misfit / np.sum(weight * np.abs(plain) ** 2, axis=(1, 2))))
        return float(max(misfits))

    averaged = in_tf("_worker_mapped_predictions", output, True, data["diffraction"], data["probe"])
    plain = in_tf("_worker_mapped_predictions", output, False, data["diffraction"], data["probe"])
    assert worst(averaged) < 1e-7  # measured 4e-11 (polar), 4e-10 (cartesian): float32 rounding
    assert worst(plain) > 1e-3  # measured 7e-3, 1.4e-2


# ---------------------------------------------------------------- training, reload, reconstruction


@pytest.fixture(
    scope="module",
    params=[(1, "auto"), (2, "auto"), (2, "polar")],
    ids=["gridsize1", "gridsize2", "gridsize2-polar"],
)
def trained(request: pytest.FixtureRequest) -> dict[str, Any]:
    data = simulate(64, seed=5)
    gridsize, output = request.param
    settings = {**SETTINGS, "output": output}
    result, predictions = in_tf("_worker_fit", data, gridsize, settings)
    return {"data": data, "gridsize": gridsize, "settings": settings, "result": result, "predictions": predictions}


@pytest.mark.slow
def test_training_lowers_the_loss_and_reports_its_history(trained: dict[str, Any]) -> None:
    result = trained["result"]
    history = result["history"]
    assert {len(values) for values in history.values()} == {SETTINGS["epochs"]}
    assert set(history) == {"loss", "val_loss", "lr", "epoch_s"} and min(history["epoch_s"]) > 0
    assert history["loss"][-1] < history["loss"][0]
    assert history["lr"][0] == pytest.approx(SETTINGS["learning_rate"])
    assert result["epochs_run"] == SETTINGS["epochs"] and result["stop_reason"].startswith("epoch budget (4) spent")
    assert result["n_symmetries"] == 8  # the focused probe is symmetric under the whole square group
    assert result["config"]["gridsize"] == trained["gridsize"] and result["wall_time_s"] > 0
    # auto: polar at gridsize 1, cartesian at gridsize 2 (the model records what it is)
    expected = {(1, "auto"): "polar", (2, "auto"): "cartesian", (2, "polar"): "polar"}
    assert result["config"]["output"] == expected[trained["gridsize"], trained["settings"]["output"]]
    assert result["device"] == "cpu"  # this machine has no GPU; a GPU machine records "gpu"
    assert all(isinstance(v, np.ndarray) and v.dtype == np.float32 for v in result["weights"].values())
    assert "physics/log_scale_over_rate" in result["weights"] and "physics/probe_real" in result["weights"]


def _worker_refine(model: dict[str, Any], data: dict[str, Any], settings: dict[str, Any]) -> dict[str, Any]:
    from fly64_kedro.engines.pinn.training import refine

    args = (data["diffraction"], data["y"], data["x"], data["probe"], data["scale"])
    return refine(model["weights"], model["config"], *args, settings, job="test")


@pytest.mark.slow
def test_refinement_starts_from_the_trained_model_and_trains_it_on_new_data(trained: dict[str, Any]) -> None:
    result, other = trained["result"], simulate(64, seed=6)  # other positions, as a test split's
    model = {"weights": result["weights"], "config": result["config"]}
    # At a vanishing rate the refined weights are the trained ones (a fresh network would differ by its init).
    vanishing = {"epochs": 1, "learning_rate": 1e-12, "min_learning_rate": 1e-12}
    still = in_tf("_worker_refine", model, other, {**trained["settings"], **vanishing})
    assert still["config"] == result["config"]
    assert max(np.abs(still["weights"][k] - v).max() for k, v in result["weights"].items()) < 1e-6
    refined = in_tf("_worker_refine", model, other, trained["settings"])
    assert refined["history"]["loss"][-1] < refined["history"]["loss"][0]
    assert max(np.abs(refined["weights"][k] - v).max() for k, v in result["weights"].items()) > 1e-4
    with pytest.raises(ValueError, match="the initial PINN model is gridsize"):
        in_tf("_worker_refine", {**model, "config": {**model["config"], "N": 2 * N}}, other, trained["settings"])


def _worker_shared_members(diffraction: np.ndarray, probe: np.ndarray) -> tuple[np.ndarray, np.ndarray, list, list]:
    """An untrained gridsize-1 polar network and the gridsize-2 shared-member network set from its weights: their
    predictions (gridsize 1 on 4 patterns, gridsize 2 on the 4 as one group) and their weight names."""
    from fly64_kedro.engines.pinn.inference import set_weights
    from fly64_kedro.engines.pinn.model import build_models

    config = {"N": N, "gridsize": 1, "filters": 4, "output": "polar", "amplitude_range": 1.0, "input_scale": 0.3}
    config |= {"intensity_scale": 10.0, "trainable_scale": True}
    single = build_models(config, probe)
    for variable in single.training.trainable_weights:  # away from the init, so every layer matters
        variable.assign(np.random.default_rng(0).normal(0, 0.3, variable.shape).astype(np.float32))
    weights = {v.path: v.numpy() for v in single.training.weights}
    shared = build_models({**config, "gridsize": 2, "members": "shared", "canvas_radius": 4}, probe)
    set_weights(shared, weights, complete=False)
    alone = np.stack(single.inference.predict(diffraction[:4, :, :, None], verbose=0))[..., 0]
    group = np.stack(shared.inference.predict(diffraction[None, :4].transpose(0, 2, 3, 1), verbose=0))[:, 0]
    return alone, group.transpose(0, 3, 1, 2), sorted(weights), sorted(v.path for v in shared.training.weights)


def test_shared_members_network_is_the_gridsize_1_network_on_each_member() -> None:
    """A warm start's gridsize-2 network runs the gridsize-1 layers on each member of a group: with the gridsize-1
    weights it predicts, member by member, what gridsize 1 predicts for that pattern alone."""
    data = simulate(8, seed=3)
    alone, group, single_names, shared_names = in_tf("_worker_shared_members", data["diffraction"], data["probe"])
    assert np.std(alone[0], axis=(1, 2)).min() > 1e-3  # distinct patches, not a constant
    np.testing.assert_allclose(group, alone, atol=1e-5)  # (amplitude | phase, member, N, N)
    assert sorted(set(shared_names) - set(single_names)) == ["canvas/probe_weight"]


def _worker_warm_start(
    data: dict[str, Any], teacher: dict[str, Any] | None, gridsize: int, settings: dict[str, Any]
) -> dict[str, Any]:
    from fly64_kedro.engines.pinn.training import train

    args = (data["diffraction"], data["y"], data["x"], data["probe"], data["scale"], gridsize, settings)
    return train(*args, job="test", teacher=teacher)


@pytest.mark.slow
def test_warm_start_begins_at_the_gridsize_1_model_and_fine_tunes_it_through_the_canvas() -> None:
    data = simulate(64, seed=5)
    single, _ = in_tf("_worker_fit", data, 1, SETTINGS)
    teacher = {"weights": single["weights"], "config": single["config"]}
    warm = {**SETTINGS, "warm_start": True, "warm_start_epochs": 1, "warm_start_learning_rate": 1e-12}
    still = in_tf("_worker_warm_start", data, teacher, 2, {**warm, "min_learning_rate": 1e-12})
    assert still["warm_start"] and still["config"]["members"] == "shared" and still["config"]["gridsize"] == 2
    assert still["config"]["output"] == "polar" and still["config"]["input_scale"] == single["config"]["input_scale"]
    assert len(still["history"]["loss"]) == 1  # warm_start_epochs, not epochs
    # At a vanishing rate the weights are the teacher's (a fresh network would differ by its init).
    assert max(np.abs(still["weights"][k] - v).max() for k, v in single["weights"].items()) < 1e-6
    tuned = in_tf(
        "_worker_warm_start", data, teacher, 2, {**warm, "warm_start_epochs": 3, "warm_start_learning_rate": 1e-3}
    )
    assert len(tuned["history"]["loss"]) == 3 and tuned["history"]["lr"][0] == pytest.approx(1e-3)
    assert tuned["history"]["loss"][-1] < tuned["history"]["loss"][0]
    assert max(np.abs(tuned["weights"][k] - v).max() for k, v in single["weights"].items()) > 1e-4
    # gridsize 1 has nothing to start from: the teacher is ignored
    assert not in_tf("_worker_warm_start", data, teacher, 1, {**warm, "epochs": 1})["warm_start"]
    with pytest.raises(ValueError, match="needs the view's trained gridsize-1 model"):
        in_tf("_worker_warm_start", data, None, 2, warm)
    with pytest.raises(ValueError, match="must be a gridsize-1 model"):
        in_tf("_worker_warm_start", data, {**teacher, "config": {**teacher["config"], "gridsize": 2}}, 2, warm)


@pytest.mark.slow
def test_xla_training_of_the_gpu_path_matches_the_default_graph(trained: dict[str, Any]) -> None:
    """jit_compile "auto" turns XLA on only on a GPU, so force it here: the same seeds must give the same losses
    (measured: relative differences ~1e-4 after 4 epochs), so a GPU run does not train a different model."""
    if trained["gridsize"] == 1:
        pytest.skip("gridsize 2 runs every op of gridsize 1 plus the canvas merge")
    xla, _ = in_tf("_worker_fit", trained["data"], 2, {**trained["settings"], "jit_compile": True})
    for key in ("loss", "val_loss"):
        np.testing.assert_allclose(xla["history"][key], trained["result"]["history"][key], rtol=1e-3)
    with pytest.raises(ValueError, match="jit_compile"):
        in_tf("_worker_fit", trained["data"], 2, {**trained["settings"], "jit_compile": "yes"})


@pytest.mark.slow
def test_same_settings_train_the_same_weights(trained: dict[str, Any]) -> None:
    """Seeded weights, shuffles and symmetry draws, and TensorFlow's deterministic kernels: bit-identical reruns."""
    if trained["gridsize"] == 1:
        pytest.skip("gridsize 2 runs every op of gridsize 1 plus the canvas merge")
    again, _ = in_tf("_worker_fit", trained["data"], 2, trained["settings"])
    assert again["history"]["loss"] == trained["result"]["history"]["loss"]
    for name, value in trained["result"]["weights"].items():
        np.testing.assert_array_equal(again["weights"][name], value, err_msg=name)
    other, _ = in_tf("_worker_fit", trained["data"], 2, {**trained["settings"], "training_seed": 8})
    assert other["history"]["loss"] != trained["result"]["history"]["loss"]  # the seed is what fixes them


@pytest.mark.slow
def test_threads_leave_the_weights_bit_identical_and_intra_op_threads_do_not() -> None:
    """``threads`` runs independent ops side by side (the two decoders), each op on one thread: 1 or 2 give the same
    weights. Two threads per op split the kernels' sums differently, and the training amplifies that (the control:
    it shows the data are sensitive enough for the first check to mean something)."""
    data = simulate(64, seed=5)
    runs = {}
    for threads, intra in ((1, 1), (2, 1), (1, 2)):
        shutdown("tensorflow")  # a worker's threads are fixed at its first op
        settings = {**SETTINGS, "epochs": 2, "threads": threads, "intra_op_threads": intra}
        result, _ = in_tf("_worker_fit", data, 2, settings)
        assert result["tf_threads"] == {"intra_op": intra, "inter_op": threads}
        runs[threads, intra] = result["weights"]
    shutdown("tensorflow")
    for name, value in runs[1, 1].items():
        np.testing.assert_array_equal(runs[2, 1][name], value, err_msg=name)
    assert any(not np.array_equal(runs[1, 2][name], value) for name, value in runs[1, 1].items())


@pytest.mark.slow
def test_gradient_clip_is_given_per_mean_count_and_takes_effect() -> None:
    """The clip scales with the dose (one setting serves 1e3 and 1e5), and a clipped training differs from a free one
    (Adam rescales a constant factor away, but not a clip that cuts some steps and not others)."""
    settings = {**SETTINGS, "epochs": 2}
    norms = {}
    for dose in (1e4, 1e5):
        data = simulate(64, seed=5, dose=dose)
        free, _ = in_tf("_worker_fit", data, 1, settings)
        clipped, _ = in_tf("_worker_fit", data, 1, {**settings, "gradient_clip": 0.01})
        assert free["gradient_clip_norm"] is None
        assert clipped["history"]["loss"] != free["history"]["loss"]
        mean_counts = np.mean(np.rint((data["diffraction"].astype(np.float64) * data["scale"]) ** 2))
        norms[dose] = clipped["gradient_clip_norm"]
        assert norms[dose] == pytest.approx(0.01 * mean_counts, rel=0.1)  # the training split's mean, not all
    assert norms[1e5] / norms[1e4] == pytest.approx(10, rel=0.1)


@pytest.mark.slow
def test_warmup_ramps_the_learning_rate_then_leaves_it_to_the_schedule() -> None:
    """Over warmup_epochs' steps the rate climbs linearly to learning_rate (history: the rate of each epoch's last
    step); without warmup the first epoch already runs at the full rate."""
    data = simulate(64, seed=5)
    settings = {**SETTINGS, "epochs": 3, "plateau_patience": 5}
    warm, _ = in_tf("_worker_fit", data, 1, {**settings, "warmup_epochs": 2})
    rate = SETTINGS["learning_rate"]
    np.testing.assert_allclose(warm["history"]["lr"], [rate / 2, rate, rate], rtol=1e-6)
    cold, _ = in_tf("_worker_fit", data, 1, settings)
    np.testing.assert_allclose(cold["history"]["lr"], [rate] * 3, rtol=1e-6)
    assert warm["history"]["loss"] != cold["history"]["loss"]


@pytest.mark.slow
def test_adam_beta_2_and_amplitude_range_change_the_training_and_are_recorded() -> None:
    data = simulate(64, seed=5)
    settings = {**SETTINGS, "epochs": 2}
    default, _ = in_tf("_worker_fit", data, 1, settings)
    assert default["config"]["amplitude_range"] == 1.0
    for name, value in (("adam_beta_2", 0.99), ("amplitude_range", 2)):
        other, _ = in_tf("_worker_fit", data, 1, {**settings, name: value})
        assert other["history"]["loss"] != default["history"]["loss"], name
    assert other["config"]["amplitude_range"] == 2.0


@pytest.mark.slow
def test_rollback_restores_the_best_weights_and_halves_the_rate_when_the_val_loss_jumps() -> None:
    """rollback f: an epoch whose val loss ends more than f x (first - best) above its best restores the best
    epoch's weights and halves the rate; the steps before the first rollback are those of a run without it."""
    data = simulate(64, seed=5)
    settings = {**SETTINGS, "epochs": 6, "learning_rate": 0.02, "plateau_patience": 100}  # a rate that overshoots
    plain, _ = in_tf("_worker_fit", data, 1, settings)
    rolled, _ = in_tf("_worker_fit", data, 1, {**settings, "rollback": 1e-6})
    assert plain["rollback_epochs"] == []
    epochs = rolled["rollback_epochs"]
    assert epochs, "no rollback: the rate no longer makes the val loss rise"
    first = epochs[0]  # 1-based
    val, rate = rolled["history"]["val_loss"], rolled["history"]["lr"]
    assert val[first - 1] > min(val[: first - 1])
    assert rolled["history"]["loss"][:first] == plain["history"]["loss"][:first]
    assert rolled["history"]["loss"][first] != plain["history"]["loss"][first]
    if first < len(rate):
        assert rate[first] == pytest.approx(rate[first - 1] / 2)


@pytest.mark.slow
def test_weight_average_is_validated_and_kept_without_touching_the_training() -> None:
    """average_epochs: the val loss is the average's, the training steps are the raw weights' (swapped back exactly),
    and a long time constant holds the average near the first step's weights while the raw ones learn."""
    data = simulate(64, seed=5)
    settings = {**SETTINGS, "epochs": 4, "plateau_patience": 10}  # no rate cut: raw and averaged runs step alike
    raw, _ = in_tf("_worker_fit", data, 1, settings)
    averaged, _ = in_tf("_worker_fit", data, 1, {**settings, "average_epochs": 1})
    assert raw["average_momentum"] is None
    assert averaged["average_momentum"] == pytest.approx(1 - 1 / np.ceil(raw["n_train_groups"] / 8))
    assert averaged["history"]["loss"] == raw["history"]["loss"]
    assert averaged["history"]["val_loss"] != raw["history"]["val_loss"]
    frozen, _ = in_tf("_worker_fit", data, 1, {**settings, "average_epochs": 1e6})
    assert frozen["history"]["loss"] == raw["history"]["loss"]
    val = np.array(frozen["history"]["val_loss"])
    assert np.ptp(val) < 1e-3 * np.ptp(raw["history"]["val_loss"])  # the average has barely moved
    assert np.ptp(raw["history"]["val_loss"]) > 0


@pytest.mark.slow
def test_amplitude_loss_trains() -> None:
    result, _ = in_tf("_worker_fit", simulate(64, seed=5), 1, {**SETTINGS, "epochs": 3, "loss": "amplitude"})
    losses = result["history"]["loss"]
    assert min(losses) > 0 and losses[-1] < losses[0]  # a squared error in counts, falling


@pytest.mark.slow
@pytest.mark.parametrize("gridsize", [1, 2])
def test_auto_batch_size_is_chosen_by_gridsize_and_recorded(gridsize: int) -> None:
    data = simulate(64, seed=5)
    result, _ = in_tf("_worker_fit", data, gridsize, {**SETTINGS, "epochs": 1, "batch_size": "auto"})
    assert result["batch_size"] == {1: 8, 2: 16}[gridsize]
    fixed, _ = in_tf("_worker_fit", data, gridsize, {**SETTINGS, "epochs": 1, "batch_size": 3})
    assert fixed["batch_size"] == 3


@pytest.mark.slow
def test_saved_model_reloads_and_predicts_identically(trained: dict[str, Any], tmp_path: Path) -> None:
    result = trained["result"]
    np.savez(tmp_path / "weights.npz", **result["weights"])
    (tmp_path / "config.json").write_text(json.dumps(result["config"]))
    with np.load(tmp_path / "weights.npz") as saved:
        weights = dict(saved)
    config = json.loads((tmp_path / "config.json").read_text())
    reloaded = in_tf("_worker_predict", weights, config, trained["data"]["diffraction"])
    assert np.abs(reloaded - trained["predictions"]).max() < 1e-6
    weights.pop("physics/log_scale_over_rate")
    with pytest.raises(ValueError, match="physics/log_scale_over_rate"):
        in_tf("_worker_predict", weights, config, trained["data"]["diffraction"])


def reconstruct(result: dict[str, Any], test: dict[str, Any], settings: dict[str, Any]) -> dict[str, Any]:
    """Apply a trained result to a simulated test set in the TensorFlow worker."""
    return run_in_worker(
        "tensorflow",
        "fly64_kedro.engines.pinn.inference:reconstruct",
        result["weights"],
        result["config"],
        test["diffraction"],
        test["y"],
        test["x"],
        test["probe"],
        test["scale"],
        test["object"].shape,
        settings,
        job="test",
    )


@pytest.mark.slow
def test_reconstruct_stitches_the_test_positions(trained: dict[str, Any]) -> None:
    test = simulate(40, seed=6)
    result = trained["result"]
    out = reconstruct(result, test, SETTINGS)
    obj, coverage = out["object"], out["coverage"]
    assert obj.shape == test["object"].shape and obj.dtype == np.complex64 and np.all(np.isfinite(obj))
    covered = coverage > 0
    assert covered[np.round(test["y"]).astype(int), np.round(test["x"]).astype(int)].all()
    # amplitude: a sigmoid (polar) or the modulus of two tanh outputs (cartesian)
    bound = 1.0 if result["config"]["output"] == "polar" else np.sqrt(2.0)
    assert np.all(obj[~covered] == 0) and np.all(np.abs(obj[covered]) <= bound + 1e-6)
    assert out["inference_s"] > 0 and out["patterns_per_s"] == pytest.approx(40 / out["inference_s"])
    assert out["device"] == "cpu"


@pytest.mark.slow
def test_stitch_setting_picks_the_decoders_patch_or_the_canvas_average(trained: dict[str, Any]) -> None:
    """gridsize 1 has no canvas, so both choices stitch the same patches; at gridsize 2 they differ."""
    test = simulate(40, seed=6)
    result = trained["result"]
    objects = {}
    for stitch in ("raw", "merged"):
        objects[stitch] = reconstruct(result, test, {**trained["settings"], "stitch": stitch})["object"]
    difference = np.abs(objects["raw"] - objects["merged"]).max()
    if trained["gridsize"] == 1:
        assert difference < 1e-5
    else:
        assert difference > 1e-3


# ---------------------------------------------------------------- settings


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("epochs", 0),
        ("batch_size", 2.5),
        ("batch_size", "large"),
        ("learning_rate", -1e-3),
        ("validation_fraction", 1.0),
        ("n_groups", 0),
        ("filters", True),
        ("threads", 0),
        ("intra_op_threads", 0),
        ("intra_op_threads", 1.5),
        ("training_seed", None),
        ("min_learning_rate", 1.0),  # above learning_rate
        ("augment", "yes"),
        ("trainable_scale", 1),
        ("output", "spherical"),
        ("stitch", "canvas"),
        ("gradient_clip", 0),
        ("gradient_clip", "tight"),
        ("gradient_clip", True),
        ("loss", "l2"),
        ("warmup_epochs", -1),
        ("warmup_epochs", 1.5),
        ("average_epochs", -1),
        ("average_epochs", "long"),
        ("average_epochs", True),
        ("amplitude_range", 0.5),
        ("amplitude_range", "wide"),
        ("amplitude_range", True),
        ("adam_beta_2", 1.0),
        ("adam_beta_2", 0),
        ("adam_beta_2", "fast"),
        ("average_symmetries", "yes"),
        ("rollback", 0),
        ("rollback", "soon"),
        ("warm_start", "yes"),
        ("warm_start_epochs", 0),
        ("warm_start_learning_rate", 0),
    ],
)
def test_bad_settings_raise_naming_the_setting(name: str, value: Any) -> None:
    with pytest.raises(ValueError, match=name):
        run_in_worker("tensorflow", "fly64_kedro.engines.pinn.settings:validate_settings", {**SETTINGS, name: value})


def test_missing_setting_and_too_small_pool_are_named() -> None:
    target = "fly64_kedro.engines.pinn.training:train"
    settings = {k: v for k, v in SETTINGS.items() if k != "filters"}
    data = simulate(16, seed=7)
    args = (data["diffraction"], data["y"], data["x"], data["probe"], data["scale"])
    with pytest.raises(ValueError, match="filters"):
        run_in_worker("tensorflow", target, *args, 1, settings)
    with pytest.raises(ValueError, match="neighbour_pool"):
        run_in_worker("tensorflow", target, *args, 2, {**SETTINGS, "neighbour_pool": 3})
    with pytest.raises(ValueError, match="gridsize"):
        run_in_worker("tensorflow", target, *args, 3, SETTINGS)
    # A zero probe predicts no photons and gives zero gradients: training would "succeed" on nothing.
    with pytest.raises(ValueError, match="probe must be finite and not all zero"):
        run_in_worker(
            "tensorflow",
            target,
            data["diffraction"],
            data["y"],
            data["x"],
            0 * data["probe"],
            data["scale"],
            1,
            SETTINGS,
        )
