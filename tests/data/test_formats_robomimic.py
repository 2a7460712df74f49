"""robomimic HDF5: native layout read, round trips, masks, errors, atomic writes."""
from __future__ import annotations

import json
import os

import h5py
import numpy as np
import pytest

from robotrl.data import load_dataset, save_dataset
from robotrl.data.errors import DataKeyError, DataShapeError, NonFiniteError
from robotrl.data.formats import robomimic


def _write_native(path, lengths, names=None, rng=None, nan_at=None):
    """A robomimic file written directly with h5py (as robomimic's scripts lay it out)."""
    rng = rng or np.random.default_rng(0)
    names = names or [f"demo_{i}" for i in range(len(lengths))]
    demos = {}
    with h5py.File(path, "w") as f:
        data = f.create_group("data")
        data.attrs["total"] = sum(lengths)
        data.attrs["env_args"] = json.dumps({"env_name": "Lift", "type": 1, "env_kwargs": {"control_freq": 20}})
        for name, n in zip(names, lengths):
            g = data.create_group(name)
            g.attrs["num_samples"] = n
            g.attrs["model_file"] = f"<mujoco model='{name}'/>"
            d = {
                "actions": rng.uniform(-1, 1, (n, 7)),
                "rewards": rng.standard_normal(n),
                "dones": np.r_[np.zeros(n - 1, np.int64), 1],
                "states": rng.standard_normal((n, 10)),
                "obs/robot0_eef_pos": rng.standard_normal((n, 3)),
                "obs/agentview_image": rng.integers(0, 256, (n, 12, 12, 3), dtype=np.uint8),
                "next_obs/robot0_eef_pos": rng.standard_normal((n, 3)),
            }
            if nan_at is not None and name == names[0]:
                d["actions"][nan_at] = np.nan
            for k, v in d.items():
                g.create_dataset(k, data=v)
            demos[name] = d
        m = f.create_group("mask")
        m.create_dataset("train", data=np.array([names[0].encode(), names[-1].encode()]))
        m.create_dataset("valid", data=np.array([n.encode() for n in names[1:-1]], dtype="S"))
    return demos


def test_read_native_layout_sorted_numerically(tmp_path):
    path = tmp_path / "demo.hdf5"
    names = ["demo_10", "demo_2", "demo_1"]
    demos = _write_native(path, [4, 3, 6], names=names)
    store = load_dataset(path)
    order = ["demo_1", "demo_2", "demo_10"]  # numeric, not lexicographic
    assert store.attrs["episode_names"] == order
    np.testing.assert_array_equal(store.lengths, [6, 3, 4])
    for i, name in enumerate(order):
        ep, d = store.episode(i), demos[name]
        np.testing.assert_array_equal(ep["action"], d["actions"])
        np.testing.assert_array_equal(ep["reward"], d["rewards"])
        np.testing.assert_array_equal(ep["terminated"], d["dones"].astype(bool))
        np.testing.assert_array_equal(ep["states"], d["states"])
        np.testing.assert_array_equal(ep["obs/agentview_image"], d["obs/agentview_image"])
        np.testing.assert_array_equal(ep["next_obs/robot0_eef_pos"], d["next_obs/robot0_eef_pos"])
    assert store["terminated"].dtype == bool
    assert store["obs/agentview_image"].dtype == np.uint8
    assert store.attrs["env_args"]["env_kwargs"] == {"control_freq": 20}
    # mask/train = [demo_10, demo_1] -> episode indices 2, 0
    assert store.attrs["masks"] == {"train": [2, 0], "valid": [1]}
    assert store.attrs["episode_attrs"][2] == {"model_file": "<mujoco model='demo_10'/>"}


def test_file_store_file_round_trip(tmp_path, assert_stores_equal):
    src = tmp_path / "a.hdf5"
    _write_native(src, [4, 3, 6])
    first = load_dataset(src, format="robomimic")
    dst = tmp_path / "b.hdf5"
    save_dataset(first, dst, "robomimic")
    second = load_dataset(dst)
    assert_stores_equal(first, second)
    with h5py.File(src) as a, h5py.File(dst) as b:
        assert int(b["data"].attrs["total"]) == int(a["data"].attrs["total"]) == 13
        assert json.loads(b["data"].attrs["env_args"]) == json.loads(a["data"].attrs["env_args"])
        assert sorted(b["data"].keys()) == sorted(a["data"].keys())
        for name in a["data"]:
            assert int(b["data"][name].attrs["num_samples"]) == int(a["data"][name].attrs["num_samples"])
            np.testing.assert_array_equal(b[f"data/{name}/dones"][()], a[f"data/{name}/dones"][()])
            np.testing.assert_array_equal(b[f"data/{name}/actions"][()], a[f"data/{name}/actions"][()])
        for filt in ("train", "valid"):
            assert list(b["mask"][filt][()]) == list(a["mask"][filt][()])


def test_store_file_store_round_trip(tmp_path, small_store, assert_stores_equal):
    small_store.attrs.update(env_args={"env_name": "Can", "env_kwargs": {"x": [1, 2]}}, masks={"train": [0, 3], "valid": [1, 2]}, note="hi", extra={"a": [1.5, None]})
    path = tmp_path / "r.hdf5"
    save_dataset(small_store, path, "robomimic", compression="gzip")
    back = load_dataset(path)
    expected = dict(small_store.attrs, episode_names=[f"demo_{i}" for i in range(4)])
    assert back.attrs == expected
    assert_stores_equal(small_store, back, attrs=False)
    # the robomimic names on disk
    with h5py.File(path) as f:
        assert set(f["data/demo_0"].keys()) == {"actions", "rewards", "dones", "states", "obs"}
        assert f["data/demo_0/dones"].dtype == np.int64
        assert [x.decode() for x in f["mask/train"][()]] == ["demo_0", "demo_3"]


def test_next_obs_derived_only_when_asked(tmp_path, small_store):
    p1, p2 = tmp_path / "plain.hdf5", tmp_path / "derived.hdf5"
    save_dataset(small_store, p1, "robomimic")
    save_dataset(small_store, p2, "robomimic", derive_next_obs=True)
    with h5py.File(p1) as f:
        assert "next_obs" not in f["data/demo_0"]
    derived = load_dataset(p2)
    ep = derived.episode(2)
    np.testing.assert_array_equal(ep["next_obs/state"][:-1], ep["obs/state"][1:])
    np.testing.assert_array_equal(ep["next_obs/image"][-1], ep["obs/image"][-1])


def test_missing_actions_names_file_and_key(tmp_path):
    path = tmp_path / "bad.hdf5"
    _write_native(path, [3, 3])
    with h5py.File(path, "a") as f:
        del f["data/demo_1/actions"]
    with pytest.raises(KeyError) as err:
        load_dataset(path)
    assert isinstance(err.value, DataKeyError)
    assert str(path) in str(err.value) and "data/demo_1/actions" in str(err.value)


def test_mismatched_lengths_names_keys(tmp_path):
    path = tmp_path / "bad.hdf5"
    _write_native(path, [3, 4])
    with h5py.File(path, "a") as f:
        del f["data/demo_1/rewards"]
        f["data/demo_1"].create_dataset("rewards", data=np.zeros(2))
    with pytest.raises(ValueError, match=r"demo_1.*'actions' \(4\).*'reward': 2") as err:
        load_dataset(path)
    assert isinstance(err.value, DataShapeError) and str(path) in str(err.value)


def test_nan_actions_rejected_on_load_and_save(tmp_path, small_store):
    path = tmp_path / "nan.hdf5"
    _write_native(path, [5, 3], nan_at=(2, 4))
    with pytest.raises(NonFiniteError, match=r"nan\.hdf5.*'action' contains NaN at index 2 \(episode 0, step 2\)"):
        load_dataset(path)
    assert load_dataset(path, check_finite=False).num_episodes == 2
    small_store["action"][9, 0] = np.inf
    out = tmp_path / "out.hdf5"
    with pytest.raises(ValueError, match=r"out\.hdf5.*'action' contains inf at index 9"):
        save_dataset(small_store, out, "robomimic")
    assert not out.exists()


def test_interrupted_save_keeps_previous_file(tmp_path, small_store, monkeypatch):
    path = tmp_path / "keep.hdf5"
    save_dataset(small_store.subset([0, 1]), path, "robomimic")
    before = path.read_bytes()
    calls = {"n": 0}
    real = robomimic._write_demo

    def crashing(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 3:
            raise RuntimeError("disk died")
        return real(*args, **kwargs)

    monkeypatch.setattr(robomimic, "_write_demo", crashing)
    with pytest.raises(RuntimeError, match="disk died"):
        save_dataset(small_store, path, "robomimic")
    assert calls["n"] == 3  # it really crashed midway
    assert path.read_bytes() == before
    assert load_dataset(path).num_episodes == 2
    assert sorted(os.listdir(tmp_path)) == ["keep.hdf5"]  # no temp file left behind
