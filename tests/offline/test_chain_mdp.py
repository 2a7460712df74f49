"""Each offline algorithm on a chain MDP with a known optimal value: its critic converges near
Q* and its greedy policy reaches the goal optimally, beating the behaviour data."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from robotrl.offline.common import TransitionSampler

from offline_chain_mdp import GAMMA, N, behaviour_return, critic_error, discounted_return, v_star

H = (64, 64)


def _make(name: str):
    if name == "iql":
        from robotrl.offline.iql import IQL, IQLConfig

        return IQL(N, 1, IQLConfig(hidden_dims=H, gamma=GAMMA, expectile=0.9, beta=3.0, max_steps=3000, tau=0.01)), 3000
    if name == "td3bc":
        from robotrl.offline.td3bc import TD3BC, TD3BCConfig

        return TD3BC(N, 1, TD3BCConfig(hidden_dims=H, gamma=GAMMA, tau=0.01, policy_noise=0.0)), 3000  # see note below
    if name == "cql":
        from robotrl.offline.cql import CQL, CQLConfig

        return CQL(N, 1, CQLConfig(hidden_dims=H, gamma=GAMMA, tau=0.01, cql_alpha=1.0, num_random=4)), 1200
    if name == "a2pr":
        from robotrl.offline.a2pr import A2PR, A2PRConfig

        return A2PR(N, 1, A2PRConfig(actor_hidden_dims=H, critic_hidden_dims=H, value_hidden_dims=H, vae_hidden_dims=H, gamma=GAMMA, tau=0.01, policy_noise=0.0)), 3000
    raise KeyError(name)


@pytest.mark.parametrize("name", ["iql", "td3bc", "a2pr"])
def test_chain_mdp_offline(name, chain_store):
    torch.manual_seed(0)
    algo, steps = _make(name)
    sampler = TransitionSampler.from_store(chain_store, gamma=GAMMA, seed=0)
    for _ in range(steps):
        m = algo.update(sampler.sample(128))
    assert all(np.isfinite(v) for v in m.values())

    def q_fn(o, a):
        with torch.no_grad():
            return algo.critic(algo.normalize_obs(o), a).min(0).values

    # TD3-style critics evaluate their own policy: with target-policy smoothing (noise 0.2 around a
    # policy that BC keeps near the data mean 0) that is a noisy policy, not the optimum, so the
    # tests set policy_noise=0 to compare with Q*.
    err = critic_error(q_fn, 0.8)
    assert err < 0.08, f"{name}: mean |Q - Q*| = {err:.3f} for the 'right' action"
    ret = discounted_return(lambda o: algo.act(o, deterministic=True))
    beh = behaviour_return(chain_store)
    assert ret == pytest.approx(v_star(0), abs=1e-6), f"{name}: greedy return {ret:.3f}, optimal {v_star(0):.3f}"
    assert ret > beh + 0.2


def test_chain_mdp_cql_is_conservative(chain_store):
    """CQL learns a lower bound of Q on the data: below Q*, ordered correctly, optimal greedy policy."""
    from offline_chain_mdp import onehot, q_star

    torch.manual_seed(0)
    algo, steps = _make("cql")
    sampler = TransitionSampler.from_store(chain_store, gamma=GAMMA, seed=0)
    for _ in range(steps):
        algo.update(sampler.sample(128))
    for s in range(N - 1):
        o = torch.as_tensor(onehot(s))[None]
        with torch.no_grad():
            q_r = float(algo.critic(o, torch.tensor([[0.8]])).min(0).values)
            q_l = float(algo.critic(o, torch.tensor([[-0.8]])).min(0).values)
        assert q_r <= q_star(s, True) + 0.05, (s, q_r)
        assert q_r > q_l, (s, q_r, q_l)
    assert discounted_return(lambda o: algo.act(o, deterministic=True)) == pytest.approx(v_star(0), abs=1e-6)
