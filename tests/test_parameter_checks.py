"""Every parameter is checked before any node runs (fly64_kedro.hooks.validate_parameters), without TensorFlow or
torch, and the simulation's memory need is estimated and refused when it exceeds the machine's memory."""

from __future__ import annotations

import copy
import subprocess
import sys
import textwrap

import pytest
from session import PROJECT_ROOT, load_parameters

from fly64_kedro.hooks import check_simulation_memory, machine_memory_bytes, validate_parameters
from fly64_kedro.study import ParameterError, simulation_peak_bytes

MEMORY = 64 * 2**30  # a 64 GiB machine: the shipped profiles fit, so only the rule under test can fail


def parameters(env: str = "tiny") -> dict:
    return load_parameters(env)


@pytest.mark.parametrize("env", ["base", "tiny", "paper"])
def test_shipped_profiles_pass_every_check(env: str) -> None:
    validate_parameters(parameters(env), MEMORY)


# (case, dotted path, bad value, parameter named in the error, words of the rule); values as `--params` gives them
CASES = [
    ("pinn epochs 0", "reconstruction.pinn.epochs", 0, "reconstruction.pinn", "epochs must be an integer >= 1"),
    ("pinn batch_size 0", "reconstruction.pinn.batch_size", 0, "reconstruction.pinn", "batch_size must be an integer"),
    ("pinn learning_rate text", "reconstruction.pinn.learning_rate", "fast", "reconstruction.pinn", "learning_rate"),
    ("N not a multiple of 16", "study.N", 40, "study.N", "multiple of 16"),
    ("n_positions 0", "generation.n_positions", 0, "generation.n_positions", "integer >= 1"),
    ("n_positions negative", "generation.n_positions", -5, "generation.n_positions", "integer >= 1"),
    ("n_positions text", "generation.n_positions", "abc", "generation.n_positions", "integer >= 1"),
    ("chunk_size 0", "generation.chunk_size", 0, "generation.chunk_size", "integer >= 1"),
    ("guard band below N", "generation.guard_band", 10, "generation.guard_band", ">= N = 32"),
    ("poisson_noise text", "generation.poisson_noise", "yes", "generation.poisson_noise", "true or false"),
    ("aperture 0", "generation.base.aperture_fraction", 0.0, "generation.base.aperture_fraction", "(0, 0.5]"),
    ("min_positions 0", "overlap.min_positions", 0, "overlap.min_positions", "integer >= 1"),
    ("min_direct_rate 2", "overlap.min_direct_rate", 2, "overlap.min_direct_rate", "[0, 1]"),
    ("crop_margin negative", "comparison.crop_margin", -1, "comparison.crop_margin", "integer >= 0"),
    ("lsqml epochs 0", "reconstruction.lsqml.epochs", 0, "reconstruction.lsqml", "epochs"),
]


@pytest.mark.parametrize("case,path,value,name,rule", CASES, ids=[c[0] for c in CASES])
def test_each_bad_parameter_is_refused_naming_it_and_its_rule(case, path, value, name, rule) -> None:
    params = copy.deepcopy(parameters())
    *parents, key = path.split(".")
    target = params
    for parent in parents:
        target = target[parent]
    target[key] = value
    with pytest.raises(ParameterError) as info:
        validate_parameters(params, MEMORY)
    assert info.value.name == name
    assert rule in str(info.value)


def test_simulation_that_cannot_fit_is_refused_with_the_estimate() -> None:
    params = copy.deepcopy(parameters("base"))
    params["generation"]["n_positions"] = 100_000_000
    with pytest.raises(ParameterError, match=r"generation\.n_positions.*needs about 9155\.3 GiB at N = 64.*64\.0 GiB"):
        validate_parameters(params, MEMORY)


def test_memory_estimate_covers_the_measured_paper_scale_peak() -> None:
    """README: generating and splitting one paper-scale dose (N=128, 10304 positions) peaked at 3.5 GB."""
    estimate = simulation_peak_bytes(10304, 128, 256)
    assert 3.5e9 <= estimate <= 1.5 * 3.5e9
    assert check_simulation_memory({"n_positions": 10304, "chunk_size": 256}, 128, 8 * 2**30) == estimate
    with pytest.raises(ParameterError, match="4.0 GiB"):
        check_simulation_memory({"n_positions": 10304, "chunk_size": 256}, 128, 2 * 2**30)
    assert 2**30 < machine_memory_bytes() < 2**50


def test_checks_import_neither_tensorflow_nor_torch() -> None:
    """A real session refused by the last check (memory) has run every check; the frameworks stay unimported."""
    script = textwrap.dedent(
        """
        import sys, tempfile
        sys.path.insert(0, sys.argv[1])
        from session import run_session
        from fly64_kedro.study import ParameterError
        try:
            run_session(tempfile.mkdtemp(prefix="wt13-"), params={"generation": {"n_positions": 10**12}})
        except ParameterError as exc:
            assert "GiB" in str(exc), exc
        else:
            raise SystemExit("the run was not refused")
        print(sorted({m.split(".")[0] for m in sys.modules} & {"tensorflow", "torch", "keras", "ptychi"}))
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", script, str(PROJECT_ROOT / "tests/pipelines")],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip().splitlines()[-1] == "[]"
