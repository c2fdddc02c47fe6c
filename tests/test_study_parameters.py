"""Study design validation (docs/science.md "Study design"): each rule gives an error naming the parameter and the
rule."""

from __future__ import annotations

import copy

import pytest
from omegaconf import OmegaConf
from session import PROJECT_ROOT, load_parameters

from fly64_kedro.study import ParameterError, unknown_parameters, validate_study


def base_study() -> dict:
    # OmegaConf, as Kedro reads it (plain YAML would read 1.0e3 as a string)
    return OmegaConf.to_container(OmegaConf.load(PROJECT_ROOT / "conf/base/parameters.yml"))["study"]


def test_shipped_study_is_valid() -> None:
    validate_study(base_study())


CASES = [
    ("doses empty", ["doses"], {}, "study.doses", "non-empty"),
    ("dose zero", ["doses", "d1e3"], 0.0, "study.doses.d1e3", "> 0"),
    ("dose negative", ["doses", "d1e4"], -1e4, "study.doses.d1e4", "> 0"),
    ("unknown dose label", ["doses"], {"d1e3": 1e3, "d1e4": 1e4, "d2": 2.0}, "study.doses", "exactly"),
    ("overlap fraction 1", ["overlap_fractions", "dense"], 1.0, "study.overlap_fractions.dense", "0 <= f < 1"),
    (
        "overlap fraction negative",
        ["overlap_fractions", "sparse"],
        -0.1,
        "study.overlap_fractions.sparse",
        "0 <= f < 1",
    ),
    ("K < C", ["neighbour_pool"], 3, "study.neighbour_pool", "K must be an integer >= C"),
    ("odd N", ["N"], 63, "study.N", "even integer"),
    ("split axis", ["split_axis"], "x", "study.split_axis", "'y'"),
    ("negative seed", ["seeds", "grouping"], -5, "study.seeds.grouping", "integer >= 0"),
    ("missing seed", ["seeds"], {"simulation": 42, "grouping": 123}, "study.seeds.subsampling", "integer >= 0"),
    ("gridsizes", ["gridsizes"], [1], "study.gridsizes", "[1, 2]"),
]


@pytest.mark.parametrize("case,path,value,name,rule", CASES, ids=[c[0] for c in CASES])
def test_each_rule_names_parameter_and_rule(case, path, value, name, rule) -> None:
    study = copy.deepcopy(base_study())
    target = study
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    with pytest.raises(ParameterError) as info:
        validate_study(study)
    assert info.value.name == name
    assert rule in str(info.value)


def test_unknown_parameters_lists_every_path_the_base_lacks() -> None:
    known = {"a": {"b": 1, "c": None, "d": {"e": 2}}, "f": 3}
    assert unknown_parameters(known, {"a": {"b": 5, "c": {"any": "value"}, "d": {"e": 1}}, "f": 0}) == []
    given = {"a": {"x": 1, "d": {"e": 1, "y": 2}}, "g": {"h": 1}}
    assert unknown_parameters(known, given) == ["a.x", "a.d.y", "g"]


@pytest.mark.parametrize("env", ["tiny", "paper"])
def test_every_shipped_environment_only_overrides_base_parameters(env: str) -> None:
    assert unknown_parameters(load_parameters("base"), load_parameters(env)) == []


def test_paper_profile_resolves_to_upstream_sizes_and_convergence_rules() -> None:
    params = load_parameters("paper")
    pinn, lsqml = params["reconstruction"]["pinn"], params["reconstruction"]["lsqml"]
    assert (pinn["batch_size"], pinn["n_groups"], pinn["learning_rate"]) == (16, 512, 1e-3)  # upstream's
    assert (lsqml["batch_size"], params["study"]["N"]) == (96, 128)
    # Stopping on convergence, not a cut: budgets above upstream's, the base's patience and floor kept (soft merge).
    assert pinn["epochs"] >= 50 and lsqml["epochs"] >= 200
    assert pinn["early_stopping_patience"] >= 10 and pinn["min_learning_rate"] == 1e-4
