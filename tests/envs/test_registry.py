"""make_env: id -> suite inference, config forms, clear errors, seeding, lazy imports."""

from __future__ import annotations

import dataclasses
import subprocess
import sys

import gymnasium as gym
import numpy as np
import pytest
from omegaconf import OmegaConf

from robotrl.envs import EnvConfig, EnvConfigError, UnknownEnvError, infer_suite, list_envs, make_env


@pytest.mark.parametrize(
    "env_id, suite",
    [
        ("robotrl/PushT-v0", "bundled"),
        ("metaworld/pick-place-v3", "metaworld"),
        ("robosuite/Lift", "robosuite"),
        ("robosuite/NutAssemblySquare", "robosuite"),
        ("Hopper-v5", "gym_mujoco"),
        ("HalfCheetah-v5", "gym_mujoco"),
        ("Walker2d-v5", "gym_mujoco"),
        ("Ant-v5", "gym_mujoco"),
        ("AdroitHandDoor-v1", "gym_robotics"),
        ("FrankaKitchen-v1", "gym_robotics"),
        ("PointMaze_UMaze-v3", "gym_robotics"),
        ("AntMaze_UMaze-v5", "gym_robotics"),
    ],
)
def test_infer_suite(env_id, suite):
    assert infer_suite(env_id) == suite


def test_unknown_id_names_the_id_lists_suites_and_suggests():
    with pytest.raises(UnknownEnvError) as e:
        make_env({"id": "Hoper-v5"})
    msg = str(e.value)
    assert "'Hoper-v5'" in msg
    assert "Did you mean 'Hopper-v5'" in msg
    for suite in ("bundled", "gym_mujoco", "metaworld", "robosuite", "gym_robotics"):
        assert suite in msg
    assert isinstance(e.value, ValueError)


def test_unknown_suite_is_refused():
    with pytest.raises(UnknownEnvError, match="unknown suite 'nope'"):
        make_env({"id": "Hopper-v5", "suite": "nope"})


def test_unknown_config_key_is_refused_with_hint():
    with pytest.raises(EnvConfigError) as e:
        make_env({"id": "Hopper-v5", "imgae": True})
    assert "'imgae'" in str(e.value) and "did you mean 'image'" in str(e.value)


def test_missing_id_and_bad_reward_type():
    with pytest.raises(EnvConfigError, match="'id'"):
        make_env({"image": False})
    with pytest.raises(EnvConfigError, match="reward_type"):
        make_env({"id": "Hopper-v5", "reward_type": "shaped"})


def _obs_equal(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)


@dataclasses.dataclass
class _MyEnvCfg:
    id: str = "Hopper-v5"
    seed: int = 5


@pytest.mark.parametrize(
    "cfg",
    [
        "Hopper-v5",
        {"id": "Hopper-v5"},
        OmegaConf.create({"id": "Hopper-v5", "kwargs": {}, "_target_": "ignored.by.make_env"}),
        EnvConfig(id="Hopper-v5"),
        _MyEnvCfg(),
    ],
)
def test_config_forms(cfg):
    env = make_env(cfg)
    obs, info = env.reset(seed=0)
    assert isinstance(env.observation_space, gym.spaces.Dict)
    assert obs["state"].dtype == np.float32 and obs["state"].shape == (11,)
    assert info["is_success"] is False
    env.close()


def test_cfg_seed_seeds_first_reset_and_overrides():
    a = make_env({"id": "Hopper-v5", "seed": 3})
    b = make_env("Hopper-v5")
    oa, _ = a.reset()
    ob, _ = b.reset(seed=3)
    assert _obs_equal(oa, ob)
    # the explicit seed wins over cfg.seed
    oc, _ = a.reset(seed=4)
    assert not _obs_equal(oc, ob)
    # override keyword replaces the config value
    c = make_env({"id": "Hopper-v5"}, max_episode_steps=3)
    c.reset(seed=0)
    truncs = [c.step(c.action_space.sample() * 0)[3] for _ in range(3)]
    assert truncs == [False, False, True]
    for e in (a, b, c):
        e.close()


def test_gym_mujoco_keeps_reward_and_names_d4rl():
    env = make_env("Hopper-v5")
    raw = gym.make("Hopper-v5")
    assert env.unwrapped.d4rl_name == "hopper"
    o, _ = env.reset(seed=1)
    ro, _ = raw.reset(seed=1)
    np.testing.assert_allclose(o["state"], ro.astype(np.float32))
    rng = np.random.default_rng(0)
    for _ in range(5):
        a = rng.uniform(-1, 1, size=3).astype(np.float32)
        o, r, *_rest, info = env.step(a)
        ro, rr, *_ = raw.step(a)
        assert r == pytest.approx(rr)
        assert info["is_success"] is False
    with pytest.raises(ValueError, match="reward_type"):
        make_env({"id": "Hopper-v5", "reward_type": "sparse"})
    env.close()
    raw.close()


def test_list_envs():
    ids = list_envs()
    assert "Hopper-v5" in ids and "robosuite/Lift" in ids and "robotrl/PushT-v0" in ids
    assert list_envs("robosuite") == ["robosuite/Lift", "robosuite/PickPlaceCan", "robosuite/NutAssemblySquare"]
    with pytest.raises(UnknownEnvError):
        list_envs("nope")


def test_import_does_not_load_optional_suites():
    code = (
        "import sys, robotrl.envs\n"
        "heavy = [m for m in ('metaworld', 'robosuite', 'gymnasium_robotics') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)
