"""Study design validation (spec section 2): each rule gives an error naming the parameter and the rule."""

from __future__ import annotations

import copy

import pytest
from omegaconf import OmegaConf
from session import PROJECT_ROOT

from fly64_kedro.study import ParameterError, validate_study


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
    ("overlap fraction negative", ["overlap_fractions", "sparse"], -0.1, "study.overlap_fractions.sparse", "0 <= f < 1"),
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
