"""bench.d3rlpy_runner's HDF5 reading (no d3rlpy needed) and bench.offline's d3rlpy option."""
import ast
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest

runner = pytest.importorskip("bench.d3rlpy_runner")
offline = pytest.importorskip("bench.offline")


def test_runner_does_not_import_robotrl():
    tree = ast.parse(Path(runner.__file__).read_text())
    names = [a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names]
    names += [n.module or "" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)]
    assert not any(n.split(".")[0] in ("robotrl", "bench") for n in names), names


def test_load_d4rl_flags_for_d3rlpy(tmp_path):
    n = 6
    path = tmp_path / "x.hdf5"
    with h5py.File(path, "w") as f:
        f["observations"] = np.arange(n * 2, dtype=np.float64).reshape(n, 2)
        f["actions"] = np.zeros((n, 1))
        f["rewards"] = np.ones(n)
        f["terminals"] = np.array([0, 1, 0, 0, 0, 0], bool)
        f["timeouts"] = np.array([0, 1, 0, 1, 0, 0], bool)  # step 1 both (terminal wins); last step unflagged
        f["metadata/env_id"] = "Hopper-v5"
    data, meta = runner.load_d4rl(str(path))
    assert meta["env_id"] == "Hopper-v5"
    assert data["observations"].dtype == np.float32 and data["rewards"].shape == (n,)
    assert data["terminals"].tolist() == [0, 1, 0, 0, 0, 0]
    assert data["timeouts"].tolist() == [0, 0, 0, 1, 0, 1]
    assert not np.any(data["terminals"] * data["timeouts"])


def test_resolve_d3rlpy(tmp_path):
    assert offline._resolve_d3rlpy("none") is None
    assert offline._resolve_d3rlpy(sys.executable) == sys.executable
    with pytest.raises(SystemExit):
        offline._resolve_d3rlpy(str(tmp_path / "missing" / "python"))
    default = offline._resolve_d3rlpy(None)
    assert default is None or Path(default).exists()
