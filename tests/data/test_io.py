"""load_dataset / save_dataset / detect_format: detection and bad-input errors."""
from __future__ import annotations

import h5py
import numpy as np
import pytest

from robotrl.data import detect_format, load_dataset, save_dataset
from robotrl.data.errors import DataFormatError, DataKeyError
from robotrl.data.formats import d4rl


def test_detect_format(tmp_path, small_store):
    save_dataset(small_store, tmp_path / "r.hdf5", "robomimic")
    save_dataset(small_store, tmp_path / "d.h5", "d4rl")
    assert detect_format(tmp_path / "r.hdf5") == "robomimic"
    assert detect_format(tmp_path / "d.h5") == "d4rl"
    # minari dir/id detection is covered in test_formats_minari.py


def test_missing_file_names_path(tmp_path):
    missing = tmp_path / "nope.hdf5"
    for fmt in (None, "robomimic", "d4rl", "minari"):
        with pytest.raises(FileNotFoundError, match="nope.hdf5"):
            load_dataset(missing, format=fmt)


def test_other_format_names_file_and_expected(tmp_path, small_store):
    text = tmp_path / "notes.txt"
    text.write_text("not a dataset")
    with pytest.raises(ValueError, match=r"notes\.txt.*not an HDF5 file"):
        load_dataset(text)
    with pytest.raises(ValueError, match=r"notes\.txt.*robomimic"):
        load_dataset(text, format="robomimic")
    robo = tmp_path / "r.hdf5"
    save_dataset(small_store, robo, "robomimic")
    with pytest.raises(DataFormatError, match=r"r\.hdf5.*not a D4RL HDF5 file.*'observations' and 'actions'"):
        load_dataset(robo, format="d4rl")
    d = tmp_path / "d.hdf5"
    save_dataset(small_store, d, "d4rl")
    with pytest.raises(DataFormatError, match=r"d\.hdf5.*not a robomimic HDF5 file.*'data'"):
        load_dataset(d, format="robomimic")
    other = tmp_path / "other.hdf5"
    with h5py.File(other, "w") as f:
        f.create_dataset("foo", data=np.zeros(3))
    with pytest.raises(DataFormatError, match=r"other\.hdf5.*unknown HDF5 layout.*'foo'"):
        load_dataset(other)
    with pytest.raises(ValueError, match="not a Minari dataset"):
        load_dataset(tmp_path)  # a plain directory
    with pytest.raises(ValueError, match="unknown dataset format"):
        load_dataset(robo, format="parquet")


def test_save_refuses_missing_keys_and_bad_format(tmp_path, small_store):
    del small_store["obs/state"]
    with pytest.raises(DataKeyError, match=r"x\.hdf5.*'obs/state'"):
        save_dataset(small_store, tmp_path / "x.hdf5", "d4rl")
    del small_store["action"]
    with pytest.raises(KeyError, match=r"y\.hdf5.*'action'"):
        save_dataset(small_store, tmp_path / "y.hdf5", "robomimic")
    with pytest.raises(ValueError, match="unknown dataset format"):
        save_dataset(small_store, tmp_path / "z", "zarr")
    with pytest.raises(TypeError):
        save_dataset({"action": np.zeros(3)}, tmp_path / "z", "d4rl")


def test_interrupted_d4rl_save_keeps_previous_file(tmp_path, small_store, monkeypatch):
    path = tmp_path / "keep.hdf5"
    save_dataset(small_store.subset([0]), path, "d4rl")
    before = path.read_bytes()

    class Boom(RuntimeError):
        pass

    real_create = h5py.Group.create_dataset
    count = {"n": 0}

    def create(self, *args, **kwargs):
        count["n"] += 1
        if count["n"] == 4:
            raise Boom("killed mid-write")
        return real_create(self, *args, **kwargs)

    monkeypatch.setattr(h5py.Group, "create_dataset", create)
    with pytest.raises(Boom):
        save_dataset(small_store, path, d4rl.FORMAT)
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert load_dataset(path).num_episodes == 1
    assert [p.name for p in tmp_path.iterdir()] == ["keep.hdf5"]
