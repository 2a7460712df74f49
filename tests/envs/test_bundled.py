"""The bundled MuJoCo tasks: spaces, seeding, rewards, success flags, images, bad input."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

import robotrl.envs.bundled as bundled
from robotrl.envs.bundled import BUNDLED_ENVS, sim_assets_dir
from robotrl.envs.bundled.arm_lift import ArmLiftEnv
from robotrl.envs.bundled.push_t import PushTEnv
from robotrl.envs.bundled.two_paths import TwoPathsEnv
from robotrl.envs.experts import make_expert

ENV_IDS = sorted(BUNDLED_ENVS)
DIMS = {  # id -> (state, proprio, action)
    "robotrl/PushT-v0": (15, 4, 2),
    "robotrl/TwoPaths-v0": (8, 4, 2),
    "robotrl/ArmLift-v0": (22, 8, 4),
}


def _make(env_id: str, **kwargs) -> gym.Env:
    return gym.make(env_id, **kwargs)


def test_ids_registered_and_assets_found() -> None:
    assert set(ENV_IDS) == set(DIMS)
    for env_id in ENV_IDS:
        spec = gym.spec(env_id)
        assert spec.max_episode_steps == BUNDLED_ENVS[env_id][1]
    bundled.register_bundled_envs()  # idempotent
    assert (sim_assets_dir() / "push_t.xml").is_file()


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_spaces_and_obs(env_id: str) -> None:
    env = _make(env_id)
    n_state, n_proprio, n_act = DIMS[env_id]
    assert isinstance(env.observation_space, gym.spaces.Dict)
    assert set(env.observation_space.spaces) == {"state", "proprio"}
    assert env.observation_space["state"].shape == (n_state,)
    assert env.observation_space["proprio"].shape == (n_proprio,)
    assert env.action_space.shape == (n_act,)
    assert np.all(env.action_space.low == -1) and np.all(env.action_space.high == 1)
    obs, info = env.reset(seed=0)
    assert info["is_success"] is False
    for _ in range(3):
        assert obs["state"].dtype == np.float32 and obs["state"].shape == (n_state,)
        assert obs["proprio"].dtype == np.float32 and obs["proprio"].shape == (n_proprio,)
        assert env.observation_space.contains(obs)
        # proprio is the leading block of the state in every bundled task
        np.testing.assert_array_equal(obs["proprio"], obs["state"][:n_proprio])
        obs, reward, terminated, truncated, info = env.step(env.action_space.sample())
        assert isinstance(info["is_success"], bool)
        assert isinstance(reward, float)
    env.close()


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_seed_determinism(env_id: str) -> None:
    envs = [_make(env_id), _make(env_id)]
    actions = np.random.default_rng(0).uniform(-1, 1, size=(25, DIMS[env_id][2]))
    trajs = []
    for env in envs:
        obs, _ = env.reset(seed=123)
        traj = [obs["state"]]
        for a in actions:
            obs, *_ = env.step(a)
            traj.append(obs["state"])
        trajs.append(np.stack(traj))
    np.testing.assert_array_equal(trajs[0], trajs[1])
    # the episode is not frozen, and another seed gives another start
    assert not np.allclose(trajs[0][0], trajs[0][-1])
    other, _ = envs[0].reset(seed=124)
    assert not np.allclose(other["state"], trajs[0][0])
    # reseeding the same env reproduces its start
    again, _ = envs[0].reset(seed=123)
    np.testing.assert_array_equal(again["state"], trajs[0][0])


def _run_expert(env: gym.Env, env_id: str, seed: int) -> tuple[list[float], list[bool], bool]:
    expert = make_expert(env_id, seed=seed)
    obs, _ = env.reset(seed=seed)
    rewards, successes = [], []
    while True:
        obs, reward, terminated, truncated, info = env.step(expert.act(obs))
        rewards.append(reward)
        successes.append(info["is_success"])
        if terminated or truncated:
            return rewards, successes, terminated


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_sparse_and_dense_reward(env_id: str) -> None:
    rewards, successes, terminated = _run_expert(_make(env_id, reward_type="sparse"), env_id, 0)
    assert terminated and successes[-1]
    assert rewards == [1.0 if s else 0.0 for s in successes]
    dense, successes_d, _ = _run_expert(_make(env_id, reward_type="dense"), env_id, 0)
    assert successes_d == successes  # same episode, only the reward differs
    assert all(r < 0 for r, s in zip(dense, successes) if not s)
    assert dense[-1] > dense[0]  # shaped: the expert's progress shows in the reward
    assert len(set(np.round(dense, 6))) > 3


def test_terminate_on_success_false_and_internal_time_limit() -> None:
    env_id = "robotrl/TwoPaths-v0"
    env = _make(env_id, terminate_on_success=False, max_episode_steps=-1)  # no TimeLimit wrapper
    expert = make_expert(env_id, seed=0)
    obs, _ = env.reset(seed=0)
    succeeded_at = None
    for t in range(200):
        obs, reward, terminated, truncated, info = env.step(expert.act(obs))
        assert not terminated
        if info["is_success"] and succeeded_at is None:
            succeeded_at = t
        if succeeded_at is not None and t > succeeded_at + 3:
            break
    assert succeeded_at is not None and info["is_success"]

    raw = PushTEnv(max_episode_steps=4)
    raw.reset(seed=0)
    flags = [raw.step(np.zeros(2))[3] for _ in range(4)]
    assert flags == [False, False, False, True]
    limited = _make("robotrl/PushT-v0", max_episode_steps=3)
    limited.reset(seed=0)
    assert [limited.step(np.zeros(2))[3] for _ in range(3)] == [False, False, True]


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_image_obs_and_render(env_id: str) -> None:
    env = _make(env_id, image=True, image_size=24, render_mode="rgb_array", render_size=32)
    assert env.observation_space["image"].shape == (24, 24, 3)
    assert env.observation_space["image"].dtype == np.uint8
    obs, _ = env.reset(seed=0)
    first = obs["image"]
    obs, *_ = env.step(env.action_space.sample() * 0 + 1.0)
    for img in (first, obs["image"]):
        assert img.shape == (24, 24, 3) and img.dtype == np.uint8
        assert img.std() > 5  # a scene, not a blank frame
    assert not np.array_equal(first, obs["image"])  # the agent moved
    frame = env.render()
    assert frame.shape == (32, 32, 3) and frame.dtype == np.uint8
    env.close()


@pytest.mark.parametrize(
    "kwargs, words",
    [
        ({"reward_type": "foo"}, ["reward_type", "sparse", "dense"]),
        ({"render_mode": "human"}, ["render_mode", "rgb_array"]),
        ({"image_size": 0}, ["image_size"]),
    ],
)
def test_bad_kwargs_raise(kwargs: dict, words: list[str]) -> None:
    with pytest.raises(ValueError) as err:
        TwoPathsEnv(**kwargs)
    for w in words:
        assert w in str(err.value)


def test_bad_action_shape_raises() -> None:
    env = ArmLiftEnv()
    env.reset(seed=0)
    with pytest.raises(ValueError, match=r"\(4,\)"):
        env.step(np.zeros(3))
