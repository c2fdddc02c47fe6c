"""Bad input through real Kedro runs: a clear error naming file/key/rule, and no existing output damaged."""

from __future__ import annotations

from pathlib import Path

import pytest
from kedro.io import DatasetError
from session import run_session

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
        run_session(tmp_path, params={"generation": {"base": {"object_shape": [16, 16]}}}, node_names=["make_synthetic_base"])
    assert not (tmp_path / "01_raw/synthetic_base.npz").exists()
