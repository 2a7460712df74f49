"""ARSQ: the zoom-in discretisation decodes exactly the bin midpoints, auto-regressive sampling
is the policy its Q decomposition defines, and it solves the chain MDP from demos + data."""
from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

from robotrl.offline.arsq import ARSQ, ARSQConfig, CoarseToFine
from robotrl.offline.common import TransitionSampler, top_return_episodes
from robotrl.rl.trainer import mix_batches

from offline_chain_mdp import GAMMA, N, critic_error, discounted_return, v_star


@pytest.mark.parametrize("levels,bins", [(1, 5), (2, 3), (3, 5)])
def test_decode_is_exactly_the_bin_midpoints(levels, bins):
    c2f = CoarseToFine(2, levels, bins)
    n = bins**levels
    expected = -1.0 + (2.0 / n) * (np.arange(n) + 0.5)           # the n finest bins' midpoints
    combos = torch.tensor(list(itertools.product(range(bins), repeat=levels)))  # [n, L], coarse first
    idx = torch.stack([combos, combos.flip(0)], dim=1)             # [n, D=2, L]
    a = c2f.decode(idx).double().numpy()
    flat = (combos * torch.tensor([bins ** (levels - 1 - l) for l in range(levels)])).sum(-1).numpy()
    np.testing.assert_allclose(a[:, 0], expected[flat], atol=1e-6)
    np.testing.assert_allclose(a[:, 1], expected[flat[::-1]], atol=1e-6)
    assert torch.equal(c2f.encode(c2f.decode(idx)), idx)          # encode o decode = identity
    # a continuous action is encoded into the bins containing it
    x = torch.rand(100, 2) * 2 - 1
    assert (c2f.decode(c2f.encode(x)) - x).abs().max() <= 1.0 / n + 1e-6


def test_coarse_action_is_level_major():
    c2f = CoarseToFine(2, 2, 3)
    idx = torch.tensor([[[0, 2], [2, 0]]])                         # dim0: bins 0 then 2, dim1: 2 then 0
    coarse = c2f.coarse_actions(idx)[0]                           # [K=4, D=2]
    assert torch.allclose(coarse[0], torch.tensor([0.0, 0.0]))    # k=(0,0): nothing chosen
    assert torch.allclose(coarse[1], torch.tensor([-2 / 3, 0.0]))  # k=(0,1): dim0 level 1 chosen
    assert torch.allclose(coarse[2], torch.tensor([-2 / 3, 2 / 3]))  # k=(1,0): both at level 1
    assert torch.allclose(coarse[3], torch.tensor([-4 / 9, 2 / 3]))  # k=(1,1): dim0 refined
    assert c2f.step_bins(idx).tolist() == [[0, 2, 2, 0]]


def test_autoregressive_sampling_matches_q_decomposition():
    torch.manual_seed(0)
    cfg = ARSQConfig(levels=2, bins=3, hidden_dims=(32, 32), alpha=0.5, act_alpha=0.5, output_gain=1.0)
    algo = ARSQ(3, 2, cfg)
    obs = torch.randn(1, 3)
    combos = torch.tensor(list(itertools.product(range(3), repeat=4))).reshape(-1, 2, 2)
    acts = algo.c2f.decode(combos)
    with torch.no_grad():
        q, _ = algo.critics[0].q(obs.expand(len(acts), 3), combos)
        v = algo.critics[0].v(obs)
    p = torch.exp((q - v) / cfg.alpha)                            # pi(a|s) = exp((Q - V) / alpha)
    assert float(p.sum()) == pytest.approx(1.0, abs=1e-4)         # V is the soft value of Q
    # sampling step by step (critic 0 only, temperature alpha) draws actions with these probabilities
    n = 20000
    idx = algo.sample_bins(obs.expand(n, 3), deterministic=False, critics=[0])
    code = (idx.reshape(n, 4) * torch.tensor([27, 9, 3, 1])).sum(-1)
    freq = torch.bincount(code, minlength=81).double() / n
    ref = (combos.reshape(-1, 4) * torch.tensor([27, 9, 3, 1])).sum(-1)
    assert torch.allclose(freq[ref], p.double(), atol=0.012)
    # deterministic acting takes each step's argmax; that action has the highest per-step probability path
    greedy = algo.sample_bins(obs, deterministic=True, critics=[0])
    gq, _ = algo.critics[0].q(obs, greedy)
    assert float(gq.detach()) >= float(q.median())


def test_arsq_chain_mdp_with_demos():
    """Random data plus a few optimal episodes as demonstrations: the demo margin agrees with the TD
    targets and Q converges to Q*. (All successful chain episodes have return 1, so a return
    percentile cannot single out the optimal ones here; see test_demo_buffer_by_return_percentile.)"""
    from offline_chain_mdp import behaviour_store, expert_store
    from robotrl.offline.datasets import concat_stores

    torch.manual_seed(0)
    experts = expert_store(10, seed=1)
    chain_store = concat_stores(behaviour_store(150, seed=0), experts)
    cfg = ARSQConfig(levels=2, bins=3, hidden_dims=(64, 64), gamma=GAMMA, tau=0.01, lr=1e-3, alpha=0.005,
                     act_alpha=0.005, demo_alpha=0.005, demo_weight=1.0, demo_clip_min=0.0, grad_clip=10.0)
    algo = ARSQ(N, 1, cfg)
    main = TransitionSampler.from_store(chain_store, gamma=GAMMA, seed=0)
    demo = TransitionSampler.from_store(experts, gamma=GAMMA, seed=1)
    for _ in range(1500):
        batch = mix_batches([(main.sample(96), False), (demo.sample(32), True)])
        m = algo.update(batch)
    assert m["demo_margin"] >= 0
    err = critic_error(lambda o, a: algo.critic(o, a).min(0).values, 0.8)
    assert err < 0.08, err
    assert discounted_return(lambda o: algo.act(o, deterministic=True)) == pytest.approx(v_star(0), abs=1e-6)


def test_demo_terms_match_a_reference():
    """Both demo-term forms of the release, by hand on one sample with K=2 steps of B=3 bins."""
    adv = torch.tensor([[[0.0, -0.5, 0.3], [-2.0, 0.0, -0.1]]])
    bins = torch.tensor([[1, 0]])  # the demo bins
    lse = ARSQ(3, 1, ARSQConfig(levels=2, bins=3, hidden_dims=(8,), demo_loss="lse", demo_alpha=1.0,
                                demo_clip_min=-1.0))
    # step 0: log(e^0 + e^0.3) - (-0.5); step 1: log(e^0 + e^-0.1) - (-2.0) -> clipped to [-1, inf)
    ref = (np.log(np.exp(0.0) + np.exp(0.3)) + 0.5) + (np.log(1 + np.exp(-0.1)) + 2.0)
    assert float(lse.demo_term(adv, bins)) == pytest.approx(ref, rel=1e-6)
    margin = ARSQ(3, 1, ARSQConfig(levels=2, bins=3, hidden_dims=(8,), demo_loss="margin", demo_clip_min=1.0))
    # step 0: mean(clamp(0 + 0.5, 1), clamp(0.3 + 0.5, 1)) = 1; step 1: mean(clamp(2, 1), clamp(1.9, 1)) = 1.95
    assert float(margin.demo_term(adv, bins)) == pytest.approx(1.0 + 1.95, rel=1e-6)
    with pytest.raises(ValueError, match="demo_loss"):
        ARSQConfig(demo_loss="hinge")


def test_demo_buffer_by_return_percentile():
    from robotrl.data.episode_store import EpisodeStore
    from robotrl.offline.common import episode_returns

    rewards = np.concatenate([np.full(3, 1.0), np.full(2, 5.0), np.full(4, 0.5), np.full(1, 9.0)]).astype(np.float32)
    store = EpisodeStore({"reward": rewards, "action": np.zeros((10, 1), np.float32)}, [3, 5, 9, 10])
    np.testing.assert_allclose(episode_returns(store), [3.0, 10.0, 2.0, 9.0])
    assert top_return_episodes(store, 50).tolist() == [1, 3]
    assert top_return_episodes(store, 0).tolist() == [0, 1, 2, 3]
