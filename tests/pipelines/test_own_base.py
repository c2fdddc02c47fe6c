"""The own-base recipe works with every profile: `--params base_path=...` with `--pipeline study_own_base` reads the
user's file (conf/local/catalog.yml is not loaded under -e tiny or -e paper), and a run that would overwrite it with
the synthetic base is refused."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from kedro.framework.session import KedroSession
from kedro.framework.startup import bootstrap_project
from session import PROJECT_ROOT, run_session

from fly64_kedro.datasets import NPZDataset
from fly64_kedro.pipelines.generation.nodes import make_synthetic_base
from fly64_kedro.record import Record
from fly64_kedro.study import ParameterError

pytestmark = pytest.mark.slow


@pytest.fixture()
def own_base(tmp_path: Path) -> Path:
    path = tmp_path / "my bases/fly ü.npz"
    synthetic = make_synthetic_base(
        {"object_shape": [160, 160], "aperture_fraction": 0.25, "defocus_waves": 2.0},
        {"N": 32, "seeds": {"simulation": 1}},
    )
    obj = np.conj(synthetic["objectGuess"])  # not the synthetic base, so its use is visible downstream
    NPZDataset(filepath=str(path), contract="base").save(
        Record({**synthetic.arrays, "objectGuess": obj}, {"source": "mine"})
    )
    return path


@pytest.mark.parametrize("env", ["local", "tiny", "paper"])
def test_base_path_points_the_catalog_at_the_own_base_in_every_profile(
    tmp_path: Path, own_base: Path, env: str
) -> None:
    bootstrap_project(PROJECT_ROOT)
    runtime = {"data_root": str(tmp_path / "data"), "base_path": str(own_base)}
    with KedroSession.create(PROJECT_ROOT, env=env, runtime_params=runtime) as session:
        assert session.load_context().catalog["base"].path == str(own_base)


def test_study_own_base_simulates_from_the_own_base(tmp_path: Path, own_base: Path) -> None:
    root = tmp_path / "data"
    run_session(
        root,
        params={"base_path": str(own_base)},
        pipeline_names=["study_own_base"],
        node_names=["d1e3.simulate_diffraction"],
    )
    simulated = NPZDataset(filepath=str(root / "02_intermediate/d1e3/simulated.npz")).load()
    assert simulated.meta["base"] == {"source": "mine"}
    np.testing.assert_array_equal(
        simulated["objectGuess"], NPZDataset(filepath=str(own_base), contract="base").load()["objectGuess"]
    )
    assert not (root / "01_raw").exists()


def test_run_that_would_overwrite_the_own_base_is_refused(tmp_path: Path, own_base: Path) -> None:
    before = own_base.read_bytes()
    with pytest.raises(ParameterError, match="base_path.*study_own_base"):
        run_session(tmp_path / "data", params={"base_path": str(own_base)}, node_names=["make_synthetic_base"])
    assert own_base.read_bytes() == before
