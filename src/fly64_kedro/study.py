"""The study matrix (labels, fixed in code because Kedro builds pipelines before reading config) and the
validation of the study design parameters (docs/science.md "Study design")."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

DOSES: tuple[str, ...] = ("d1e3", "d1e4", "d1e5")
SPLITS: tuple[str, ...] = ("train", "test")
DERIVED_VIEWS: tuple[str, ...] = ("dense", "sparse")
VIEWS: tuple[str, ...] = ("full", *DERIVED_VIEWS)


@dataclass(frozen=True)
class Engine:
    """One reconstruction method of the study. The reconstruction and comparison pipelines, the manifests, the
    tables and the deltas all derive from ``ENGINES`` (docs/architecture.md, "Where to change what").

    A direct engine reconstructs every split of its views with ``target``; a trained engine learns on a view's
    train split with ``train`` and applies the model to its test split with ``target``. Both are
    "module:function" run in the ``worker`` process. ``settings`` names its ``reconstruction.<settings>``
    parameters, checked before the run by ``validate`` ("module:function" importing neither torch nor TensorFlow).
    """

    label: str  # catalog label and the records' "method"
    name: str  # canonical model name in tables and figures
    worker: str
    target: str
    settings: str
    validate: str
    train: str | None = None
    views: tuple[str, ...] = VIEWS
    gridsize: int | None = None  # trained engines: patterns per group
    only_views_reason: str = ""  # why it runs on ``views`` only (a table footnote)
    teacher: str | None = None  # trained engines: the engine whose model of the same view its training may start from

    @property
    def trained(self) -> bool:
        return self.train is not None

    @property
    def splits(self) -> tuple[str, ...]:
        """The splits it writes reconstructions for."""
        return ("test",) if self.trained else SPLITS


_PINN = {
    "worker": "tensorflow",
    "target": "fly64_kedro.engines.pinn.inference:reconstruct",
    "train": "fly64_kedro.engines.pinn.training:train",
    "settings": "pinn",
    "validate": "fly64_kedro.engines.pinn.settings:validate_settings",
}
ENGINES: tuple[Engine, ...] = (
    Engine(
        "lsqml",
        "pty-chi LSQML",
        worker="torch",
        target="fly64_kedro.engines.lsqml:reconstruct",
        settings="lsqml",
        validate="fly64_kedro.engines.lsqml:validate_settings",
    ),
    Engine("pinn_gs1", "PtychoPINN-gs1", gridsize=1, **_PINN),
    # gridsize 2 starts from the same view's gridsize-1 model (``warm_start``, docs/science.md "Warm start")
    Engine("pinn_gs2", "PtychoPINN", gridsize=2, teacher="pinn_gs1", **_PINN),
)
REFERENCE = "lsqml"  # the engine the deltas are taken against
ENGINES_BY_LABEL: dict[str, Engine] = {engine.label: engine for engine in ENGINES}
MODEL_NAMES: dict[str, str] = {engine.label: engine.name for engine in ENGINES}


def reconstructions(view: str, split: str) -> tuple[Engine, ...]:
    """The engines that write a reconstruction of ``view``/``split``."""
    return tuple(engine for engine in ENGINES if view in engine.views and split in engine.splits)


class ParameterError(ValueError):
    """A parameter breaks its rule; the message names the parameter and the rule."""

    def __init__(self, name: str, rule: str, value: Any = ...):
        super().__init__(f"parameter '{name}'" + ("" if value is ... else f" = {value!r}") + f": {rule}")
        self.name, self.rule = name, rule


def _require(ok: bool, name: str, rule: str, value: Any) -> None:
    if not ok:
        raise ParameterError(name, rule, value)


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _seed(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def unknown_parameters(known: Mapping[str, Any], given: Mapping[str, Any], prefix: str = "") -> list[str]:
    """Dotted paths of ``given`` that ``known`` (the base environment's parameters) does not define.

    An environment may only override parameters: a misspelt or misnested key would otherwise be ignored in
    silence. A key whose base value is not a mapping accepts any value (e.g. ``n_groups: null`` -> 512).
    """
    unknown = []
    for key, value in given.items():
        path = f"{prefix}{key}"
        if key not in known:
            unknown.append(path)
        elif isinstance(known[key], Mapping) and isinstance(value, Mapping):
            unknown += unknown_parameters(known[key], value, f"{path}.")
    return unknown


def validate_study(study: Mapping[str, Any]) -> None:
    """Check the study design (docs/science.md "Study design"); raise ``ParameterError`` naming the parameter and
    the rule."""
    doses = study.get("doses")
    _require(isinstance(doses, Mapping) and len(doses) > 0, "study.doses", "must be a non-empty mapping", doses)
    _require(
        set(doses) == set(DOSES),
        "study.doses",
        f"must define exactly the study's dose labels {list(DOSES)}",
        sorted(doses),
    )
    for label, dose in doses.items():
        _require(_number(dose) and dose > 0, f"study.doses.{label}", "must be a number > 0 (photons per pattern)", dose)
    n_pix = study.get("N")
    _require(isinstance(n_pix, int) and n_pix >= 8 and n_pix % 2 == 0, "study.N", "must be an even integer >= 8", n_pix)
    fractions = study.get("overlap_fractions")
    _require(
        isinstance(fractions, Mapping) and set(fractions) == set(DERIVED_VIEWS),
        "study.overlap_fractions",
        f"must define exactly the views {list(DERIVED_VIEWS)}",
        fractions,
    )
    for view, frac in fractions.items():
        _require(_number(frac) and 0 <= frac < 1, f"study.overlap_fractions.{view}", "must satisfy 0 <= f < 1", frac)
        _require((1 - frac) * n_pix > 0, f"study.overlap_fractions.{view}", "spacing S = (1 - f) N must be > 0", frac)
    gridsizes = study.get("gridsizes")
    _require(
        list(gridsizes or []) == [1, 2], "study.gridsizes", "must be [1, 2] (the study's PINN variants)", gridsizes
    )
    pool = study.get("neighbour_pool")
    group = max(gridsizes) ** 2
    _require(
        isinstance(pool, int) and pool >= group,
        "study.neighbour_pool",
        f"K must be an integer >= C = gridsize^2 = {group}",
        pool,
    )
    _require(study.get("split_axis") == "y", "study.split_axis", "must be 'y'", study.get("split_axis"))
    seeds = study.get("seeds")
    _require(isinstance(seeds, Mapping), "study.seeds", "must be a mapping of named seeds", seeds)
    for name in ("simulation", "grouping", "subsampling"):
        _require(_seed(seeds.get(name)), f"study.seeds.{name}", "must be an integer >= 0", seeds.get(name))


def spacing(fraction: float, n_pix: int) -> float:
    """The minimum spacing S = (1 - f) N in pixels for overlap fraction f and probe size N."""
    return (1.0 - float(fraction)) * int(n_pix)


def spacing_threshold(study: Mapping[str, Any], view: str) -> float:
    """S = (1 - f) N in pixels for a derived view."""
    return spacing(study["overlap_fractions"][view], study["N"])


def _integer(value: Any, minimum: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= minimum


def validate_generation(generation: Mapping[str, Any], n_pix: int) -> None:
    """Check the generation parameters (docs/science.md "Generation") for a probe of ``n_pix`` px; raise
    ``ParameterError``."""
    for name in ("n_positions", "chunk_size"):
        value = generation.get(name)
        _require(_integer(value, 1), f"generation.{name}", "must be an integer >= 1", value)
    band = generation.get("guard_band")
    _require(
        band is None or (_number(band) and math.isfinite(band) and band >= n_pix),
        "generation.guard_band",
        f"must be null (= N) or a number of px >= N = {n_pix} (the probe diameter)",
        band,
    )
    noise = generation.get("poisson_noise")
    _require(isinstance(noise, bool), "generation.poisson_noise", "must be true or false", noise)
    base = generation.get("base") or {}
    aperture, defocus = base.get("aperture_fraction"), base.get("defocus_waves")
    _require(
        _number(aperture) and 0 < aperture <= 0.5,
        "generation.base.aperture_fraction",
        "must be a number in (0, 0.5] (pupil radius / N)",
        aperture,
    )
    _require(
        _number(defocus) and math.isfinite(defocus), "generation.base.defocus_waves", "must be a finite number", defocus
    )


def validate_overlap(overlap: Mapping[str, Any]) -> None:
    """Check the overlap-view parameters (docs/science.md "Overlap views"); raise ``ParameterError``."""
    rate, minimum = overlap.get("min_direct_rate"), overlap.get("min_positions")
    _require(_number(rate) and 0 <= rate <= 1, "overlap.min_direct_rate", "must be a number in [0, 1]", rate)
    _require(_integer(minimum, 1), "overlap.min_positions", "must be an integer >= 1", minimum)


def validate_comparison(comparison: Mapping[str, Any]) -> None:
    """Check the comparison parameters (docs/science.md "Comparison"); raise ``ParameterError``."""
    margin, shift = comparison.get("crop_margin"), comparison.get("max_shift")
    _require(_integer(margin, 0), "comparison.crop_margin", "must be an integer >= 0 (px)", margin)
    _require(_number(shift) and shift >= 0, "comparison.max_shift", "must be a number >= 0 (px)", shift)


# Bytes per pattern pixel of one chunk's temporaries in the simulation: the complex64 exit waves and spectrum, and
# float64 amplitude, intensity, Poisson counts and square root (physics.forward.poisson_amplitude).
_CHUNK_BYTES_PER_PIXEL = 64
# Bytes per pattern pixel of a 'ptycho' record: float32 diffraction plus complex64 ground-truth patch Y.
_RECORD_BYTES_PER_PIXEL = 12


def simulation_peak_bytes(n_positions: int, n_pix: int, chunk_size: int) -> int:
    """Estimated peak memory (bytes) of generating one dose: the simulated record held next to its train/test
    halves during the split (2 records' worth), plus one chunk's FFT temporaries. Measured at paper scale
    (N=128, 10304 positions): 3.5 GB peak for the split; this estimate: 4.3 GB."""
    pixels = n_pix * n_pix
    return (
        2 * _RECORD_BYTES_PER_PIXEL * n_positions * pixels
        + _CHUNK_BYTES_PER_PIXEL * min(chunk_size, n_positions) * pixels
    )
