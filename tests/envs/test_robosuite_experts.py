"""Waypoint experts for robosuite Lift / PickPlaceCan, on the real robosuite simulation."""

import numpy as np
import pytest

from robotrl.engine.collect import collect_demos, rollout_expert
from robotrl.envs import make_env
from robotrl.envs.experts import make_expert

pytest.importorskip("robosuite")


@pytest.fixture(scope="module")
def lift_env():
    env = make_env({"id": "robosuite/Lift", "max_episode_steps": 100, "kwargs": {"terminate_on_success": True}})
    yield env
    env.close()


def test_lift_expert_solves_and_episode_ends_on_success(lift_env):
    expert = make_expert("robosuite/Lift", seed=0)
    for seed in (0, 1, 2):
        ep, ok = rollout_expert(lift_env, expert, seed=seed)
        assert ok, f"seed {seed}"
        # terminate_on_success: the episode stops on its first success frame, rewarded 1 (sparse)
        assert ep["terminated"][-1] and not ep["truncated"][-1]
        assert not ep["terminated"][:-1].any()
        assert ep["reward"][-1] == pytest.approx(1.0) and np.all(ep["reward"][:-1] == 0)
        assert len(ep["action"]) < 80
        # the cube is above its start (robosuite: success = cube bottom 4 cm over the table)
        assert ep["next_obs/state"][-1, 45] > ep["obs/state"][0, 45] + 0.01


def test_lift_without_terminate_on_success_truncates_at_horizon():
    env = make_env({"id": "robosuite/Lift", "max_episode_steps": 60})
    ep, ok = rollout_expert(env, make_expert("robosuite/Lift", seed=0), seed=0)
    env.close()
    assert ok and len(ep["action"]) == 60
    assert ep["truncated"][-1] and not ep["terminated"].any()


def test_zero_actions_do_not_lift(lift_env):
    """The success check is not trivially true: doing nothing never lifts the cube."""
    lift_env.reset(seed=0)
    ok = False
    for _ in range(40):
        *_, info = lift_env.step(np.zeros(7, np.float32))
        ok = ok or info["is_success"]
    assert not ok


def test_can_expert_places_the_can():
    env = make_env({"id": "robosuite/PickPlaceCan", "max_episode_steps": 250,
                    "kwargs": {"terminate_on_success": True}})
    ep, ok = rollout_expert(env, make_expert("robosuite/PickPlaceCan", seed=0), seed=6)  # a far-edge can
    env.close()
    assert ok and ep["terminated"][-1]


def test_suboptimal_lift_differs_and_noise_is_seeded(lift_env):
    a = make_expert("robosuite/Lift", suboptimal=True, seed=3)
    b = make_expert("robosuite/Lift", suboptimal=True, seed=3)
    assert np.abs(a.offset).max() > 0 and a.close_steps < make_expert("robosuite/Lift").close_steps
    np.testing.assert_array_equal(a.offset, b.offset)
    obs, _ = lift_env.reset(seed=0)
    n1, n2 = make_expert("robosuite/Lift", noise=0.3, seed=1), make_expert("robosuite/Lift", noise=0.3, seed=1)
    np.testing.assert_array_equal(n1.act(obs), n2.act(obs))


def test_wrong_state_size_is_a_clear_error(lift_env):
    obs, _ = lift_env.reset(seed=0)
    can = make_expert("robosuite/PickPlaceCan")
    with pytest.raises(ValueError, match="57-D state of robosuite/PickPlaceCan.*got 53-D"):
        can.act(obs)


def test_collect_demos_writes_lift_dataset(tmp_path):
    from robotrl.data import load_dataset

    env_cfg = {"id": "robosuite/Lift", "max_episode_steps": 100, "kwargs": {"terminate_on_success": True}}
    info = collect_demos(env_cfg, 2, tmp_path / "lift.hdf5", seed=0, progress=False)
    store = load_dataset(tmp_path / "lift.hdf5")
    assert store.num_episodes == 2 and store["obs/state"].shape[1] == 53
    assert info["expert_success_rate"] == 1.0
    assert store["terminated"][store.episode_ends - 1].all()
