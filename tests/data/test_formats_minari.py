"""Minari: datasets made with minari's own API (offline, tmp root) read without the hub."""
from __future__ import annotations

import warnings

import h5py
import numpy as np
import pytest

from robotrl.data import detect_format, load_dataset, save_dataset
from robotrl.data.errors import DataKeyError

minari = pytest.importorskip("minari")
gym = pytest.importorskip("gymnasium")
from minari.data_collector import EpisodeBuffer  # noqa: E402


def _create(dataset_id, dict_obs=True, jpeg=False, lengths=(5, 3, 7), seed=0):
    rng = np.random.default_rng(seed)
    if dict_obs:
        obs_space = gym.spaces.Dict(
            {
                "state": gym.spaces.Box(-10, 10, (3,), np.float32),
                "image": gym.spaces.Box(0, 255, (32, 32, 3), np.uint8),
            }
        )
    else:
        obs_space = gym.spaces.Box(-10, 10, (4,), np.float32)
    act_space = gym.spaces.Box(-1, 1, (2,), np.float32)
    buffers = []
    for e, n in enumerate(lengths):
        if dict_obs:
            obs = {
                "state": rng.standard_normal((n + 1, 3)).astype(np.float32),
                "image": rng.integers(0, 256, (n + 1, 32, 32, 3), dtype=np.uint8),
            }
        else:
            obs = rng.standard_normal((n + 1, 4)).astype(np.float32)
        buffers.append(
            EpisodeBuffer(
                id=e,
                seed=100 + e,
                observations=obs,
                actions=rng.uniform(-1, 1, (n, 2)).astype(np.float32),
                rewards=rng.standard_normal(n),
                terminations=np.r_[np.zeros(n - 1, bool), e % 2 == 0],
                truncations=np.r_[np.zeros(n - 1, bool), e % 2 == 1],
                infos={"qpos": rng.standard_normal((n + 1, 2)), "success": np.zeros(n + 1, bool)},
            )
        )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        minari.create_dataset_from_buffers(
            dataset_id,
            buffers,
            observation_space=obs_space,
            action_space=act_space,
            algorithm_name="random",
            data_format="hdf5",
            jpeg_encoding=jpeg,
        )
    return minari.load_dataset(dataset_id)


@pytest.fixture
def minari_root(tmp_path, monkeypatch):
    root = tmp_path / "minari_root"
    root.mkdir()
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(root))
    return root


@pytest.mark.parametrize("jpeg", [False, True])
def test_read_dict_obs_matches_minari(minari_root, jpeg):
    ref = _create("test/tiny-v0", jpeg=jpeg)
    with h5py.File(minari_root / "test/tiny-v0/data/main_data.hdf5") as f:  # the case is real
        assert (h5py.check_vlen_dtype(f["episode_0/observations/image"].dtype) is not None) == jpeg
    assert detect_format("test/tiny-v0") == "minari"
    for source in ("test/tiny-v0", minari_root / "test/tiny-v0", minari_root / "test/tiny-v0/data"):
        store = load_dataset(source)
        np.testing.assert_array_equal(store.lengths, [5, 3, 7])
    assert store["obs/image"].dtype == np.uint8
    assert store.attrs["minari"]["dataset_id"] == "test/tiny-v0"
    assert [a["seed"] for a in store.attrs["episode_attrs"]] == [100, 101, 102]
    for i, ep in enumerate(ref.iterate_episodes()):
        mine = store.episode(i)
        for k in ("state", "image"):  # images compared after minari's own JPEG decode
            np.testing.assert_array_equal(mine[f"obs/{k}"], ep.observations[k][:-1])
            np.testing.assert_array_equal(mine[f"next_obs/{k}"], ep.observations[k][1:])
        np.testing.assert_array_equal(mine["action"], ep.actions)
        np.testing.assert_array_equal(mine["reward"], ep.rewards)
        np.testing.assert_array_equal(mine["terminated"], ep.terminations)
        np.testing.assert_array_equal(mine["truncated"], ep.truncations)
        np.testing.assert_array_equal(mine["infos/qpos"], ep.infos["qpos"][:-1])


def test_read_box_obs_and_errors(minari_root, tmp_path):
    ref = _create("test/box-v0", dict_obs=False, lengths=(4, 6))
    store = load_dataset(minari_root / "test/box-v0", format="minari")
    assert "obs/state" in store and "next_obs/state" in store
    ep = next(iter(ref.iterate_episodes()))
    np.testing.assert_array_equal(store.episode(0)["obs/state"], ep.observations[:-1])
    with pytest.raises(ValueError, match="read-only"):
        save_dataset(store, tmp_path / "x", "minari")
    with pytest.raises(FileNotFoundError, match="test/nothing-v0"):
        load_dataset("test/nothing-v0")
    with h5py.File(minari_root / "test/box-v0/data/main_data.hdf5", "a") as f:
        del f["episode_1/rewards"]
    with pytest.raises(DataKeyError, match=r"main_data\.hdf5.*episode_1.*'rewards'"):
        load_dataset("test/box-v0")
