"""EpisodeStore: layout, validation, per-episode access, subset, derived next_obs."""
from __future__ import annotations

import numpy as np
import pytest

from robotrl.data import EpisodeStore
from robotrl.data.errors import DataKeyError, DataShapeError, NonFiniteError


def test_concatenated_layout(small_store, data_rng, episode_factory):
    s = small_store
    assert s.num_episodes == 4 and s.num_steps == 18
    assert s.episode_ends.dtype == np.int64
    np.testing.assert_array_equal(s.episode_ends, [5, 8, 17, 18])
    np.testing.assert_array_equal(s.lengths, [5, 3, 9, 1])
    np.testing.assert_array_equal(s.episode_starts, [0, 5, 8, 17])
    assert set(s.keys()) == {"obs/state", "obs/image", "action", "reward", "terminated", "states"}
    assert "obs/image" in s and "nope" not in s
    assert s["obs/image"].shape == (18, 8, 8, 3) and s["obs/image"].dtype == np.uint8
    assert s.episode_slice(2) == slice(8, 17)
    assert s.episode_slice(-1) == slice(17, 18)
    ep = s.episode(1)
    np.testing.assert_array_equal(ep["action"], s["action"][5:8])
    with pytest.raises(IndexError):
        s.episode(4)
    # add_episode after reads keeps everything consistent
    new = episode_factory(data_rng, 4)
    s.add_episode(new)
    np.testing.assert_array_equal(s.episode_ends, [5, 8, 17, 18, 22])
    np.testing.assert_array_equal(s.episode(4)["obs/state"], new["obs/state"])
    with pytest.raises(DataKeyError, match="nope"):
        s["nope"]


def test_from_episodes_matches_add_episode(data_rng, episode_factory):
    eps = [episode_factory(data_rng, n) for n in (2, 6, 1)]
    a = EpisodeStore.from_episodes(eps)
    b = EpisodeStore()
    for e in eps:
        b.add_episode(e)
    for k in a.keys():
        np.testing.assert_array_equal(a[k], b[k])
        np.testing.assert_array_equal(a[k], np.concatenate([e[k] for e in eps]))
    for i, e in enumerate(eps):
        for k in e:
            np.testing.assert_array_equal(a.episode(i)[k], e[k])


def test_add_episode_validation_names_key_and_shapes(data_rng, episode_factory):
    s = EpisodeStore()
    with pytest.raises(DataShapeError, match=r"'action': 4.*'obs/state': 5|'obs/state': 5.*'action': 4"):
        s.add_episode({"obs/state": np.zeros((5, 2)), "action": np.zeros((4, 1))})
    s.add_episode({"obs/state": np.zeros((5, 2)), "action": np.zeros((5, 1))})
    with pytest.raises(DataShapeError, match=r"'obs/state'.*\(3,\).*\(2,\)"):
        s.add_episode({"obs/state": np.zeros((2, 3)), "action": np.zeros((2, 1))})
    with pytest.raises(DataKeyError, match="missing"):
        s.add_episode({"obs/state": np.zeros((2, 2))})
    with pytest.raises(DataShapeError, match="empty"):
        s.add_episode({"obs/state": np.zeros((0, 2)), "action": np.zeros((0, 1))})
    with pytest.raises(DataShapeError, match="cannot cast"):
        s.add_episode({"obs/state": np.zeros((2, 2), dtype=complex), "action": np.zeros((2, 1))})
    assert s.num_episodes == 1  # failed adds leave the store unchanged


def test_constructor_validation():
    with pytest.raises(DataShapeError, match=r"'b': 4"):
        EpisodeStore({"a": np.zeros(6), "b": np.zeros(4)}, [2, 6])
    with pytest.raises(DataShapeError, match="strictly increasing"):
        EpisodeStore({"a": np.zeros(6)}, [3, 3, 6])
    with pytest.raises(DataShapeError, match="> 0"):
        EpisodeStore({"a": np.zeros(6)}, [0, 6])
    with pytest.raises(DataShapeError, match="episode_ends is required"):
        EpisodeStore({"a": np.zeros(6)})
    with pytest.raises(DataShapeError, match="integer"):
        EpisodeStore({"a": np.zeros(6)}, [2.0, 6.0])
    empty = EpisodeStore()
    assert empty.num_episodes == 0 and empty.num_steps == 0 and empty.lengths.size == 0


def test_setitem_checks_length(small_store):
    small_store["extra"] = np.arange(18)
    assert "extra" in small_store
    with pytest.raises(DataShapeError, match="'bad'.*17 rows"):
        small_store["bad"] = np.arange(17)
    del small_store["extra"]
    assert "extra" not in small_store


def test_subset_filters_arrays_and_attrs(small_store):
    s = small_store
    s.attrs.update(
        masks={"train": [0, 2, 3], "valid": [1]},
        episode_names=["demo_0", "demo_1", "demo_2", "demo_3"],
        env_args={"env_name": "Lift"},
    )
    sub = s.subset([2, 0])
    np.testing.assert_array_equal(sub.lengths, [9, 5])
    np.testing.assert_array_equal(sub["action"], np.concatenate([s["action"][8:17], s["action"][0:5]]))
    assert sub.attrs["masks"] == {"train": [1, 0], "valid": []}  # mask order kept
    assert sub.attrs["episode_names"] == ["demo_2", "demo_0"]
    assert sub.attrs["env_args"] == {"env_name": "Lift"}
    np.testing.assert_array_equal(s.subset(np.array([False, True, False, True])).lengths, [3, 1])
    np.testing.assert_array_equal(s.subset(s.mask("valid")).lengths, [3])
    with pytest.raises(ValueError, match="duplicate"):
        s.subset([1, 1])
    with pytest.raises(IndexError):
        s.subset([7])


def test_with_next_obs_never_crosses_boundary(small_store):
    s = small_store.with_next_obs()
    assert "next_obs/state" in s and "next_obs/image" in s and "next_obs/state" not in small_store
    for i in range(s.num_episodes):
        ep = s.episode(i)
        np.testing.assert_array_equal(ep["next_obs/state"][:-1], ep["obs/state"][1:])
        np.testing.assert_array_equal(ep["next_obs/state"][-1], ep["obs/state"][-1])
        np.testing.assert_array_equal(ep["next_obs/image"][:-1], ep["obs/image"][1:])


def test_check_finite_names_key_and_index(small_store):
    small_store.check_finite()
    small_store["action"][6, 1] = np.inf
    with pytest.raises(NonFiniteError, match=r"f\.hdf5: key 'action' contains inf at index 6 \(episode 1, step 1\)"):
        small_store.check_finite(source="f.hdf5")
    small_store["action"][6, 1] = 0.0
    small_store["reward"][2] = np.nan
    with pytest.raises(ValueError, match=r"'reward' contains NaN at index 2"):
        small_store.check_finite()
