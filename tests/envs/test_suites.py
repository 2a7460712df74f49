"""Every suite returns the robotrl observation/success convention (real MuJoCo, a few steps each)."""

from __future__ import annotations

import numpy as np
import pytest
from gymnasium import spaces

from robotrl.envs import make_env


def check_convention(env, image_key: str | None = None, image_size: int = 84, steps: int = 5, seed: int = 0):
    """Assert the dict-obs / is_success convention on reset and a few random steps."""
    space = env.observation_space
    assert isinstance(space, spaces.Dict)
    assert space["state"].dtype == np.float32 and len(space["state"].shape) == 1
    image_keys = [k for k in space.spaces if k.endswith("image")]
    assert image_keys == ([image_key] if image_key else [])
    obs, info = env.reset(seed=seed)
    assert isinstance(info["is_success"], bool)
    env.action_space.seed(seed)
    for t in range(steps + 1):
        assert obs.keys() == space.spaces.keys()
        assert space.contains(obs), {k: (v.dtype, v.shape) for k, v in obs.items()}
        assert obs["state"].dtype == np.float32 and obs["state"].ndim == 1
        if "proprio" in obs:
            assert obs["proprio"].dtype == np.float32 and obs["proprio"].ndim == 1
        if image_key:
            img = obs[image_key]
            assert img.dtype == np.uint8 and img.shape == (image_size, image_size, 3)
            assert img.std() > 0  # a rendered scene, not a blank buffer
        if t == steps:
            break
        obs, reward, terminated, truncated, info = env.step(env.action_space.sample())
        assert isinstance(info["is_success"], bool)
        assert np.isfinite(reward)
        if terminated or truncated:
            obs, info = env.reset()
    return obs


# --- bundled -------------------------------------------------------------------------------


@pytest.mark.parametrize("env_id", ["robotrl/PushT-v0", "robotrl/TwoPaths-v0", "robotrl/ArmLift-v0"])
def test_bundled(env_id):
    env = make_env({"id": env_id})
    check_convention(env)
    assert env.action_space.low.min() == -1.0 and env.action_space.high.max() == 1.0
    env.close()


def test_bundled_image():
    env = make_env({"id": "robotrl/PushT-v0", "image": True, "image_size": 32})
    check_convention(env, "image", 32, steps=2)
    assert env.observation_space["image"].shape == (32, 32, 3)
    env.close()


# --- gym_mujoco ----------------------------------------------------------------------------


@pytest.mark.parametrize("env_id, dim", [("Hopper-v5", 11), ("HalfCheetah-v5", 17), ("Walker2d-v5", 17), ("Ant-v5", 105)])
def test_gym_mujoco(env_id, dim):
    env = make_env(env_id)
    obs = check_convention(env, steps=10)
    assert obs["state"].shape == (dim,)
    env.close()


def test_gym_mujoco_image():
    env = make_env({"id": "Hopper-v5", "image": True, "image_size": 32})
    check_convention(env, "image", 32, steps=2)
    assert env.render().shape == (32, 32, 3)
    env.close()


# --- metaworld -----------------------------------------------------------------------------


def test_metaworld():
    pytest.importorskip("metaworld")
    env = make_env("metaworld/pick-place-v3")
    obs = check_convention(env, steps=10)
    assert obs["state"].shape == (39,) and obs["proprio"].shape == (4,)
    np.testing.assert_array_equal(obs["proprio"], obs["state"][:4])
    # positions vary with the reset seed, and a seed fixes them
    a, _ = env.reset(seed=1)
    c, _ = env.reset(seed=1)
    np.testing.assert_array_equal(a["state"], c["state"])
    layouts = {tuple(env.reset(seed=s)[0]["state"][4:7].round(4)) for s in range(6)}  # object xyz
    assert len(layouts) > 1
    env.close()


def test_metaworld_image_sparse_and_limit():
    pytest.importorskip("metaworld")
    env = make_env({"id": "metaworld/push-v3", "image": True, "image_size": 32, "reward_type": "sparse", "max_episode_steps": 4})
    check_convention(env, "image", 32, steps=2)
    env.reset(seed=0)
    for t in range(4):
        _, r, term, trunc, info = env.step(np.zeros(4, np.float32))
        assert r == float(info["is_success"])
    assert trunc and not term
    env.close()


def test_metaworld_unknown_task():
    pytest.importorskip("metaworld")
    with pytest.raises(ValueError, match="Did you mean 'metaworld/pick-place-v3'"):
        make_env("metaworld/pick-plac-v3")


# --- robosuite -----------------------------------------------------------------------------


def test_robosuite_lift():
    pytest.importorskip("robosuite")
    env = make_env({"id": "robosuite/Lift", "max_episode_steps": 20})
    obs = check_convention(env, steps=3)
    assert obs["proprio"].shape == (43,)
    np.testing.assert_array_equal(obs["state"][:43], obs["proprio"])
    assert obs["state"].shape == (43 + 10,)
    # seeded placement, and the global numpy RNG is left alone
    g = np.random.get_state()[1].copy()
    a, _ = env.reset(seed=7)
    b, _ = env.reset(seed=8)
    c, _ = env.reset(seed=7)
    np.testing.assert_array_equal(np.random.get_state()[1], g)
    np.testing.assert_array_equal(a["state"], c["state"])
    assert not np.array_equal(a["state"][43:46], b["state"][43:46])  # cube position
    env.close()


def test_robosuite_seeded_episode_replays_in_a_new_instance():
    """Lift draws its cube size when the model is built; two instances must still replay a seeded
    episode exactly (the residual benchmark's base evaluations differed without this)."""
    pytest.importorskip("robosuite")

    def rollout(model_seed: int) -> np.ndarray:
        np.random.seed(None)  # whatever the global RNG holds must not matter
        env = make_env({"id": "robosuite/Lift", "max_episode_steps": 20, "kwargs": {"model_seed": model_seed}})
        env.reset(seed=3)
        env.step(np.zeros(7, np.float32))
        env.reset(seed=4)  # a second episode in the same instance, as an evaluation runs them
        qpos = [env.unwrapped._env.sim.data.qpos.copy()]
        for _ in range(5):
            env.step(np.full(7, 0.3, np.float32))
            qpos.append(env.unwrapped._env.sim.data.qpos.copy())
        env.close()
        return np.stack(qpos)

    np.testing.assert_array_equal(rollout(0), rollout(0))
    assert not np.array_equal(rollout(0)[0, 11], rollout(1)[0, 11])  # another model seed: another cube height

def test_robosuite_image():
    pytest.importorskip("robosuite")
    env = make_env({"id": "robosuite/PickPlaceCan", "image": True, "image_size": 32})
    obs = check_convention(env, "agentview_image", 32, steps=2)
    assert obs["state"].shape == (43 + 14,)
    env.close()


def test_robosuite_unknown_task():
    pytest.importorskip("robosuite")
    with pytest.raises(ValueError, match="Did you mean 'robosuite/Lift'"):
        make_env("robosuite/Lfit")


# --- gym_robotics --------------------------------------------------------------------------


@pytest.mark.parametrize("env_id", ["AdroitHandDoor-v1", "AdroitHandPen-v1"])
def test_adroit(env_id):
    pytest.importorskip("gymnasium_robotics")
    env = make_env(env_id)
    obs = check_convention(env, steps=5)
    assert obs["proprio"].shape == env.action_space.shape  # hand joints
    env.close()


def test_kitchen():
    pytest.importorskip("gymnasium_robotics")
    from robotrl.envs.suites.gym_robotics import _kitchen_success

    env = make_env({"id": "FrankaKitchen-v1", "max_episode_steps": 10})
    obs = check_convention(env, steps=3)
    assert obs["proprio"].shape == (18,)
    assert obs["state"].shape[0] > 59  # observation plus flattened goals
    assert _kitchen_success(None, {"tasks_to_complete": []}) is True
    assert _kitchen_success(None, {"tasks_to_complete": ["kettle"]}) is False
    env.close()


@pytest.mark.parametrize("env_id, obs_dim", [("PointMaze_UMaze-v3", 4), ("AntMaze_UMaze-v5", 105)])
def test_mazes_goal_in_state(env_id, obs_dim):
    pytest.importorskip("gymnasium_robotics")
    env = make_env(env_id)
    obs = check_convention(env, steps=5)
    assert obs["state"].shape == (obs_dim + 2,)
    np.testing.assert_array_equal(obs["state"][:obs_dim], obs["proprio"])
    goal = env.unwrapped.goal  # desired goal is appended
    np.testing.assert_allclose(obs["state"][obs_dim:], goal.astype(np.float32))
    env.close()


def test_maze_image_and_reward_type():
    pytest.importorskip("gymnasium_robotics")
    env = make_env({"id": "PointMaze_UMaze-v3", "image": True, "image_size": 32, "reward_type": "dense"})
    check_convention(env, "image", 32, steps=2)
    assert env.unwrapped.reward_type == "dense"
    env.close()


def _noise_level(img: np.ndarray) -> float:
    """Mean absolute difference of horizontal neighbours: ~1-5 for a scene, ~60-80 for garbage."""
    return float(np.abs(np.diff(img.astype(np.int16), axis=1)).mean())


def test_robosuite_renders_after_another_renderer_was_closed():
    """Regression: a closed gymnasium renderer freed at GC used to wipe robosuite's framebuffer."""
    pytest.importorskip("robosuite")
    env = make_env({"id": "Hopper-v5", "image": True, "image_size": 32})
    env.reset(seed=0)
    env.step(env.action_space.sample())
    env.close()
    env = make_env({"id": "robosuite/Lift", "image": True, "image_size": 32, "max_episode_steps": 5})
    obs, _ = env.reset(seed=0)
    obs, *_ = env.step(np.zeros(7, np.float32))
    assert _noise_level(obs["agentview_image"]) < 20
    env.close()
