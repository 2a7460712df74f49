"""Scripted experts of the bundled tasks: success rates, suboptimal mode, multimodality, dispatch."""

from __future__ import annotations

import sys
import types

import gymnasium as gym
import numpy as np
import pytest

import robotrl.envs.bundled  # noqa: F401  (registers the ids)
from robotrl.envs.experts import BUNDLED_EXPERTS, make_expert

ENV_IDS = sorted(BUNDLED_EXPERTS)
N_EPISODES = 20


def _success_rate(env_id: str, n: int = N_EPISODES, **expert_kwargs) -> float:
    env = gym.make(env_id)
    expert = make_expert(env_id, seed=0, **expert_kwargs)
    wins = 0
    for ep in range(n):
        obs, _ = env.reset(seed=ep)
        expert.reset(seed=10_000 + ep)
        while True:
            obs, _, terminated, truncated, info = env.step(expert.act(obs))
            if terminated or truncated:
                break
        wins += bool(info["is_success"])
    env.close()
    return wins / n


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_expert_solves_task(env_id: str) -> None:
    assert _success_rate(env_id) >= 0.95


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_suboptimal_expert_is_worse_but_partly_successful(env_id: str) -> None:
    sub = _success_rate(env_id, suboptimal=True)
    assert 0.1 <= sub <= 0.85
    assert sub < _success_rate(env_id)


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_expert_actions_valid_seeded_and_noisy(env_id: str) -> None:
    env = gym.make(env_id)
    obs, _ = env.reset(seed=0)
    clean = make_expert(env_id, seed=1).act(obs)
    assert clean.dtype == np.float32 and clean.shape == env.action_space.shape
    assert np.all(np.abs(clean) <= 1.0)
    a1 = make_expert(env_id, noise=0.1, seed=5).act(obs)
    a2 = make_expert(env_id, noise=0.1, seed=5).act(obs)
    np.testing.assert_array_equal(a1, a2)  # the expert's RNG is seeded
    assert not np.allclose(a1, clean)
    assert np.all(np.abs(a1) <= 1.0)
    with pytest.raises(KeyError, match="state"):
        make_expert(env_id).act({"proprio": obs["proprio"]})


def test_two_paths_is_bimodal_and_the_mean_action_fails() -> None:
    env_id = "robotrl/TwoPaths-v0"
    env = gym.make(env_id)
    sides_x = []
    for ep in range(N_EPISODES):
        expert = make_expert(env_id, seed=ep)
        obs, _ = env.reset(seed=ep)
        xs = []
        while True:
            obs, _, terminated, truncated, info = env.step(expert.act(obs))
            if abs(obs["state"][1]) < 0.05:  # beside the obstacle
                xs.append(obs["state"][0])
            if terminated or truncated:
                break
        assert info["is_success"]
        sides_x.append(np.mean(xs))
    sides_x = np.array(sides_x)
    assert np.all(np.abs(sides_x) > 0.15)  # never through the middle
    assert 4 <= np.sum(sides_x < 0) <= N_EPISODES - 4  # both modes, roughly balanced

    # averaging LEFT and RIGHT (what a mean-regressing policy learns) drives into the obstacle
    left, right = make_expert(env_id), make_expert(env_id)
    wins = 0
    for ep in range(5):
        obs, _ = env.reset(seed=ep)
        left.reset(), right.reset()
        left.side, right.side = -1.0, 1.0
        while True:
            action = 0.5 * (left.act(obs) + right.act(obs))
            obs, _, terminated, truncated, info = env.step(action)
            if terminated or truncated:
                break
        wins += info["is_success"]
    assert wins == 0


def test_make_expert_dispatch_and_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ValueError, match="robotrl/PushT-v0"):
        make_expert("robotrl/Nope-v0")
    with pytest.raises(ValueError, match="noise"):
        make_expert("robotrl/PushT-v0", noise=-1.0)

    calls = []
    fake = types.ModuleType("robotrl.envs.experts.metaworld")
    fake.make_metaworld_expert = lambda *args: calls.append(args) or "mw-expert"
    monkeypatch.setitem(sys.modules, "robotrl.envs.experts.metaworld", fake)
    assert make_expert("metaworld/reach-v3", noise=0.2, suboptimal=True, seed=3) == "mw-expert"
    assert calls == [("metaworld/reach-v3", 0.2, True, 3)]
