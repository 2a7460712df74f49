"""D4RL HDF5: episode splitting, round trips, qlearning_dataset, normalised scores."""
from __future__ import annotations

import h5py
import numpy as np
import pytest

from robotrl.data import EpisodeStore, load_dataset, normalized_score, qlearning_dataset, save_dataset
from robotrl.data.errors import DataKeyError, DataShapeError, NonFiniteError

# 4 episodes: ends at 3 (terminal), 7 (timeout), 8 (terminal and timeout), then a trailing
# partial episode of 3 steps with no flag.
N = 11
TERMINALS = np.zeros(N, bool)
TIMEOUTS = np.zeros(N, bool)
TERMINALS[[2, 7]] = True
TIMEOUTS[[6, 7]] = True


def _write_native(path, next_obs=False, rng=None):
    rng = rng or np.random.default_rng(0)
    d = {
        "observations": rng.standard_normal((N, 4)).astype(np.float32),
        "actions": rng.uniform(-1, 1, (N, 2)).astype(np.float32),
        "rewards": rng.standard_normal(N).astype(np.float32),
        "terminals": TERMINALS,
        "timeouts": TIMEOUTS,
        "infos/qpos": rng.standard_normal((N, 3)),
        "infos/qvel": rng.standard_normal((N, 3)),
    }
    if next_obs:
        d["next_observations"] = rng.standard_normal((N, 4)).astype(np.float32)
    with h5py.File(path, "w") as f:
        for k, v in d.items():
            f.create_dataset(k, data=v)
        f.create_dataset("metadata/algorithm", data="SAC")
        f.create_dataset("metadata/policy/nonlinearity", data="relu")
    return d


def test_episode_split_on_terminals_or_timeouts(tmp_path):
    path = tmp_path / "hopper-medium-v2.hdf5"
    d = _write_native(path)
    store = load_dataset(path)
    np.testing.assert_array_equal(store.episode_ends, [3, 7, 8, 11])  # trailing partial kept
    np.testing.assert_array_equal(store["obs/state"], d["observations"])
    np.testing.assert_array_equal(store["action"], d["actions"])
    np.testing.assert_array_equal(store["terminated"], TERMINALS)
    np.testing.assert_array_equal(store["truncated"], TIMEOUTS)
    np.testing.assert_array_equal(store["infos/qpos"], d["infos/qpos"])
    assert store.attrs["metadata"] == {"algorithm": "SAC", "policy/nonlinearity": "relu"}


def test_round_trips(tmp_path, assert_stores_equal):
    src = tmp_path / "src.hdf5"
    _write_native(src, next_obs=True)
    first = load_dataset(src, format="d4rl")
    assert "next_obs/state" in first
    first.attrs["env_name"] = "hopper-medium-v2"
    dst = tmp_path / "dst.hdf5"
    save_dataset(first, dst, "d4rl")
    second = load_dataset(dst)
    assert_stores_equal(first, second)
    with h5py.File(src) as a, h5py.File(dst) as b:
        for k in ("observations", "actions", "rewards", "terminals", "timeouts", "next_observations", "infos/qpos"):
            np.testing.assert_array_equal(a[k][()], b[k][()], err_msg=k)


def test_store_with_images_round_trips_and_unmarked_ends_become_timeouts(tmp_path, data_rng, episode_factory, assert_stores_equal):
    eps = [episode_factory(data_rng, n, terminal=t) for n, t in ((4, True), (2, False), (5, False))]
    for e in eps:
        e["truncated"] = np.zeros(len(e["reward"]), bool)
        e["infos/qpos"] = data_rng.standard_normal((len(e["reward"]), 2))
    store = EpisodeStore.from_episodes(eps, attrs={"env_args": {"a": 1}})
    path = tmp_path / "img.hdf5"
    save_dataset(store, path, "d4rl")
    back = load_dataset(path)
    np.testing.assert_array_equal(back.episode_ends, store.episode_ends)
    # episode 1 ended unflagged -> written as a timeout; the trailing episode stays unflagged
    expected_trunc = store["truncated"].copy()
    expected_trunc[5] = True
    np.testing.assert_array_equal(back["truncated"], expected_trunc)
    back["truncated"] = store["truncated"]
    assert_stores_equal(store, back)
    assert back["obs/image"].dtype == np.uint8


def test_mid_episode_flag_cannot_be_written(tmp_path, small_store):
    small_store["terminated"][1] = True
    with pytest.raises(DataShapeError, match=r"episode 0 has terminated/truncated set at index 1"):
        save_dataset(small_store, tmp_path / "x.hdf5", "d4rl")


def test_qlearning_next_obs_never_cross_boundary(tmp_path):
    path = tmp_path / "q.hdf5"
    _write_native(path)
    store = load_dataset(path)
    q = qlearning_dataset(store)
    obs = store["obs/state"]
    # kept rows: all non-last steps, plus terminal last steps (2 and 7); 6 (timeout) and 10 (partial) dropped
    rows = np.array([0, 1, 2, 3, 4, 5, 7, 8, 9])
    np.testing.assert_array_equal(q["observations"], obs[rows])
    np.testing.assert_array_equal(q["actions"], store["action"][rows])
    np.testing.assert_array_equal(q["rewards"], store["reward"][rows])
    np.testing.assert_array_equal(q["terminals"], TERMINALS[rows].astype(np.float32))
    ep_of = np.searchsorted(store.episode_ends, np.arange(N), side="right")
    for j, r in enumerate(rows):
        match = np.flatnonzero((obs == q["next_observations"][j]).all(axis=1))
        assert match.size == 1 and ep_of[match[0]] == ep_of[r]  # same episode
        assert match[0] == (r + 1 if not TERMINALS[r] else r)
    q2 = qlearning_dataset(store, keep_terminal_last=False)
    assert len(q2["observations"]) == 7 and not q2["terminals"].any()


def test_qlearning_uses_stored_next_observations(tmp_path):
    path = tmp_path / "q.hdf5"
    d = _write_native(path, next_obs=True)
    q = qlearning_dataset(load_dataset(path))
    assert len(q["observations"]) == N
    np.testing.assert_array_equal(q["next_observations"], d["next_observations"])


def test_normalized_score():
    assert normalized_score("hopper-medium-v2", 3234.3) == pytest.approx(100.0)
    assert normalized_score("Hopper-v5", -20.272305) == pytest.approx(0.0)
    assert normalized_score("hopper", 1607.0138475) == pytest.approx(50.0)
    assert normalized_score("halfcheetah-expert-v2", 12135.0) == pytest.approx(100.0)
    assert normalized_score("HalfCheetah-v5", 0.0) == pytest.approx(100 * 280.178953 / (12135.0 + 280.178953))
    assert normalized_score("walker2d-medium-replay-v2", 1.629008) == pytest.approx(0.0)
    assert normalized_score("Ant-v5", 3879.7) == pytest.approx(100.0)
    out = normalized_score("walker2d", [1.629008, 4592.3])
    np.testing.assert_allclose(out, [0.0, 100.0])
    with pytest.raises(KeyError, match="antmaze"):
        normalized_score("antmaze-umaze-v2", 1.0)


def test_missing_key_and_nan(tmp_path):
    path = tmp_path / "m.hdf5"
    _write_native(path)
    with h5py.File(path, "a") as f:
        del f["rewards"]
    with pytest.raises(DataKeyError, match=r"m\.hdf5.*'rewards'"):
        load_dataset(path)
    path2 = tmp_path / "n.hdf5"
    _write_native(path2)
    with h5py.File(path2, "a") as f:
        f["actions"][5, 1] = np.inf
    with pytest.raises(NonFiniteError, match=r"n\.hdf5.*'action' contains inf at index 5 \(episode 1, step 2\)"):
        load_dataset(path2)
    path3 = tmp_path / "l.hdf5"
    _write_native(path3)
    with h5py.File(path3, "a") as f:
        del f["infos/qpos"]
        f.create_dataset("infos/qpos", data=np.zeros((N - 1, 3)))
    with pytest.raises(DataShapeError, match=r"'observations' \(11\).*'infos/qpos': 10"):
        load_dataset(path3)
