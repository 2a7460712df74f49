"""Shared fixtures for the data-layer tests: small random episode stores."""
from __future__ import annotations

import numpy as np
import pytest

from robotrl.data.episode_store import EpisodeStore


def make_episode(rng: np.random.Generator, length: int, image: bool = True, terminal: bool = True) -> dict:
    ep = {
        "obs/state": rng.standard_normal((length, 5)).astype(np.float32),
        "action": rng.uniform(-1, 1, (length, 3)).astype(np.float32),
        "reward": rng.standard_normal(length),
        "terminated": np.zeros(length, bool),
        "states": rng.standard_normal((length, 7)),
    }
    ep["terminated"][-1] = terminal
    if image:
        ep["obs/image"] = rng.integers(0, 256, (length, 8, 8, 3), dtype=np.uint8)
    return ep


@pytest.fixture
def data_rng() -> np.random.Generator:
    return np.random.default_rng(1234)


@pytest.fixture
def small_store(data_rng) -> EpisodeStore:
    """4 episodes (lengths 5, 3, 9, 1) with state, uint8 image, action, reward, terminated, states."""
    return EpisodeStore.from_episodes([make_episode(data_rng, n) for n in (5, 3, 9, 1)])


def _assert_stores_equal(a: EpisodeStore, b: EpisodeStore, attrs: bool = True) -> None:
    assert a.num_episodes == b.num_episodes
    np.testing.assert_array_equal(a.episode_ends, b.episode_ends)
    assert sorted(a.keys()) == sorted(b.keys())
    for k in a.keys():
        assert a[k].dtype == b[k].dtype, (k, a[k].dtype, b[k].dtype)
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)
    if attrs:
        assert a.attrs == b.attrs


@pytest.fixture
def assert_stores_equal():
    """``fn(a, b, attrs=True)``: same episodes, keys, dtypes, values (and attrs)."""
    return _assert_stores_equal


@pytest.fixture
def episode_factory():
    """``fn(rng, length, image=True, terminal=True) -> dict`` of one random episode."""
    return make_episode
