"""The paper profile's views exist: its positions, split and overlap selection leave enough positions per half
(issue 12: at 464 px the N=128 guard band left 5-7 sparse positions per half and every sparse job was skipped)."""

from __future__ import annotations

import pytest
from kedro.config import OmegaConfigLoader
from session import PROJECT_ROOT

from fly64_kedro.geometry.selection import select_view
from fly64_kedro.pipelines.generation.nodes import draw_scan_positions, object_shape, split_train_test
from fly64_kedro.record import Record
from fly64_kedro.settings import CONFIG_LOADER_ARGS
from fly64_kedro.study import SPLITS, spacing_threshold

MINIMUM = {"dense": 150, "sparse": 25}


def parameters(env: str) -> dict:
    loader = OmegaConfigLoader(conf_source=str(PROJECT_ROOT / "conf"), env=env, **CONFIG_LOADER_ARGS)
    return loader["parameters"]


def view_counts(params: dict, object_shape: tuple[int, int]) -> dict[tuple[str, str], int]:
    """Positions per (view, split) of the profile's scan, without simulating any diffraction."""
    study, generation, overlap = params["study"], params["generation"], params["overlap"]
    n_pix = int(study["N"])
    positions = draw_scan_positions(
        object_shape, n_pix, int(generation["n_positions"]), int(study["seeds"]["simulation"])
    )
    record = Record({"ycoords": positions[:, 0].copy(), "xcoords": positions[:, 1].copy()}, {"N": n_pix})
    halves = dict(zip(SPLITS, split_train_test(record, study, generation)))
    counts = {}
    for split, half in halves.items():
        counts[("full", split)] = len(half["ycoords"])
        for view in MINIMUM:
            threshold = spacing_threshold(study, view)
            counts[(view, split)] = select_view(
                half["ycoords"], half["xcoords"], threshold, float(overlap["min_direct_rate"])
            ).n_accepted
    return counts


def test_paper_profile_keeps_the_upstream_sizes_on_a_1024_px_object() -> None:
    params = parameters("paper")
    assert params["study"]["N"] == 128 and params["generation"]["n_positions"] == 10304
    assert list(params["generation"]["base"]["object_shape"]) == [1024, 1024]
    assert params["study"]["overlap_fractions"] == {"dense": 0.7, "sparse": 0.2}  # S = (1 - f) N unchanged


@pytest.mark.slow
def test_every_dense_and_sparse_view_of_the_paper_profile_has_enough_positions() -> None:
    params = parameters("paper")
    counts = view_counts(params, object_shape(params["generation"]["base"]["object_shape"]))
    for (view, split), n in counts.items():
        if view in MINIMUM:
            assert n >= MINIMUM[view], (view, split, n)
            assert n >= int(params["overlap"]["min_positions"])


@pytest.mark.slow
def test_the_upstream_464_px_object_starves_the_views() -> None:
    """Why the profile departs from upstream (the documented override keeps this geometry reachable)."""
    counts = view_counts(parameters("paper"), object_shape(464))
    assert max(counts[("sparse", s)] for s in SPLITS) < 25 and max(counts[("dense", s)] for s in SPLITS) < 150


def test_object_shape_takes_a_pair_or_one_integer() -> None:
    assert object_shape([464, 400]) == (464, 400) and object_shape(464) == (464, 464)
    for bad in (0, [464], [464, -1], True, "464"):
        with pytest.raises(ValueError, match="object_shape"):
            object_shape(bad)
