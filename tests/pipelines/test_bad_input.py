"""Bad input through real Kedro runs: a clear error naming file/key/rule, and no existing output damaged."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from kedro.io import DatasetError
from session import run_session

from fly64_kedro.contract import weights_digest
from fly64_kedro.datasets import NPZDataset
from fly64_kedro.record import Record
from fly64_kedro.study import ParameterError

pytestmark = pytest.mark.slow


@pytest.fixture()
def generated(tmp_path: Path) -> Path:
    run_session(tmp_path, pipeline_names=["generation", "overlap"])
    return tmp_path


def test_truncated_input_stops_with_the_file_named_and_outputs_untouched(generated: Path) -> None:
    victim = generated / "03_primary/d1e3/full_train.npz"
    victim.write_bytes(victim.read_bytes()[:1000])
    output = generated / "03_primary/d1e3/dense_train.npz"
    before = output.read_bytes()
    with pytest.raises(DatasetError, match="full_train.npz"):
        run_session(generated, node_names=["d1e3.select_dense_train"])
    assert output.read_bytes() == before


def test_nan_in_input_is_refused_naming_key_and_rule(generated: Path) -> None:
    import numpy as np

    victim = generated / "03_primary/d1e4/full_test.npz"
    with np.load(victim) as archive:
        arrays = {k: archive[k] for k in archive.files}
    arrays["diffraction"][0, 0, 0] = np.nan
    np.savez(victim, **arrays)
    with pytest.raises(DatasetError, match=r"full_test.npz: key 'diffraction': must be finite"):
        run_session(generated, node_names=["d1e4.select_sparse_test"])


def test_base_object_smaller_than_probe_is_refused(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match=r"synthetic_base.npz: key .objectGuess.*at least as large as the probe"):
        run_session(
            tmp_path, params={"generation": {"base": {"object_shape": [16, 16]}}}, node_names=["make_synthetic_base"]
        )
    assert not (tmp_path / "01_raw/synthetic_base.npz").exists()


@pytest.mark.parametrize("setting,value", [("epochs", 0), ("batch_size", 0), ("learning_rate", "fast")])
def test_bad_pinn_setting_leaves_every_existing_file_byte_identical(generated: Path, setting: str, value) -> None:
    """Before: the run exited 0 and overwrote the good model with a 'failed' record that a resume never retries."""
    weights = {"weight_000": np.ones((3, 3), np.float32)}
    good = Record(weights, {"status": "ok", "weights_sha256": weights_digest(weights)})
    NPZDataset(filepath=str(generated / "07_model_output/d1e5/full_pinn_gs1_model.npz"), contract="model").save(good)
    before = {p: p.read_bytes() for p in generated.rglob("*") if p.is_file()}
    with pytest.raises(ParameterError, match=rf"reconstruction\.pinn.*{setting}"):
        run_session(generated, params={"reconstruction": {"pinn": {setting: value}}})
    assert {p: p.read_bytes() for p in generated.rglob("*") if p.is_file()} == before
