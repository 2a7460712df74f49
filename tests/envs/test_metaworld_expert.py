"""Meta-World scripted experts behind the robotrl expert API succeed through make_env/evaluate_policy."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("metaworld")

from robotrl.envs import evaluate_policy, make_env  # noqa: E402
from robotrl.envs.experts.metaworld import (  # noqa: E402
    MetaWorldExpert,
    make_metaworld_expert,
    policy_class_name,
)


def _run(task: str, n_episodes: int, num_envs: int = 1, **expert_kw):
    experts = [make_metaworld_expert(f"metaworld/{task}", seed=j, **expert_kw) for j in range(num_envs)]

    def policy(obs):
        return np.stack([experts[j].act({"state": obs["state"][j, -1]}) for j in range(num_envs)])[:, None]

    def reset_fn(idx):
        for j in idx:
            experts[j].reset()

    return evaluate_policy(policy, {"id": f"metaworld/{task}"}, n_episodes=n_episodes, num_envs=num_envs,
                           seed=0, progress=False, reset_fn=reset_fn, stop_on_success=True)


def test_pick_place_expert_succeeds():
    res = _run("pick-place-v3", n_episodes=4, num_envs=2)
    assert res["success_rate"] == 1.0, res
    assert max(res["lengths"]) < 500  # it finished early because it succeeded


def test_suboptimal_and_noisy_experts_are_worse_but_still_succeed_sometimes():
    res = _run("push-v3", n_episodes=4, num_envs=2, suboptimal=True)
    opt = _run("push-v3", n_episodes=4, num_envs=2)
    assert res["success_rate"] > 0
    assert np.mean(res["lengths"]) > np.mean(opt["lengths"])  # holds and jerks cost time


def test_expert_reads_state_only_and_is_seeded():
    env = make_env("metaworld/pick-place-v3")
    obs, _ = env.reset(seed=0)
    e = MetaWorldExpert("pick-place-v3", noise=0.2, seed=1)
    a1 = e.act({"state": obs["state"]})
    e.reset(seed=1)
    a2 = e.act({"state": obs["state"]})
    np.testing.assert_array_equal(a1, a2)
    assert a1.dtype == np.float32 and a1.shape == (4,) and np.all(np.abs(a1) <= 1)
    with pytest.raises(KeyError, match="state"):
        e.act({"image": np.zeros((84, 84, 3), np.uint8)})
    with pytest.raises(ValueError, match=r"\(39,\)"):
        e.act({"state": np.zeros(10, np.float32)})
    env.close()


def test_every_task_has_a_policy_class():
    import metaworld.policies as P
    from metaworld.env_dict import ALL_V3_ENVIRONMENTS

    for task in ALL_V3_ENVIRONMENTS:
        assert hasattr(P, policy_class_name(task)), task
    with pytest.raises(ValueError):
        MetaWorldExpert("not-a-task")


def test_make_expert_dispatches_metaworld_ids():
    experts = pytest.importorskip("robotrl.envs.experts")
    if not hasattr(experts, "make_expert"):
        pytest.skip("robotrl.envs.experts.make_expert not written yet")
    e = experts.make_expert("metaworld/button-press-v3", noise=0.0, seed=0)
    assert isinstance(e, MetaWorldExpert) and e.task == "button-press-v3"
