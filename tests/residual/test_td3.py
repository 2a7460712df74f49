"""Residual TD3 pieces: n-step targets with the random-pair minimum, demo relabelling."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from helpers import weak_base
from robotrl.data.replay import MixedSampler, ReplayBuffer
from robotrl.residual import ResidualPolicy, ResidualTD3, ResidualTD3Config, nstep_td_target, random_pair, relabel_demos
from robotrl.residual.trainer import buffer_spec


def test_nstep_target_with_random_pair_min_matches_reference():
    gamma, n = 0.9, 3
    # one episode of 6 steps, terminating with reward 1 at the end; rewards also at step 1
    T = 6
    s = np.arange(T + 1, dtype=np.float32)[:, None].repeat(2, 1)
    rew = np.array([0, 0.5, 0, 0, 0, 1], np.float32)
    term = np.zeros(T, bool)
    term[-1] = True
    buf = ReplayBuffer(16, buffer_spec(2, 1), seed=0, n_step=n, gamma=gamma)
    buf.extend({"obs": {"state": s[:-1], "base_action": np.zeros((T, 1), np.float32)},
                "action": np.zeros((T, 1), np.float32), "reward": rew, "terminated": term,
                "truncated": np.zeros(T, bool),
                "next": {"obs": {"state": s[1:], "base_action": np.zeros((T, 1), np.float32)}}})
    batch = buf.sample(64)
    idx = batch["index"].numpy()
    E = 10
    q_next = torch.randn(E, 64)
    g = torch.Generator().manual_seed(3)
    heads = random_pair(E, 2, generator=g)
    assert heads.shape == (2,) and heads[0] != heads[1]
    y = nstep_td_target(batch["reward"].reshape(-1), batch["discount"].reshape(-1), q_next, heads)
    for j, t in enumerate(idx):
        ret, k, done = 0.0, 0, False
        while k < n and t + k < T:
            ret += gamma ** k * rew[t + k]
            done = bool(term[t + k])
            k += 1
            if done:
                break
        boot = 0.0 if done else gamma ** k * min(float(q_next[heads[0], j]), float(q_next[heads[1], j]))
        assert abs(float(y[j]) - (ret + boot)) < 1e-5, (t, float(y[j]), ret + boot)
    assert len(set(idx.tolist())) > 3


def test_target_bounds_clamp_the_target_and_stop_the_negative_fixed_point():
    r = torch.tensor([0.0, 1.0, 0.0, 0.0])
    disc = torch.tensor([0.97, 0.0, 0.97, 0.97])
    q_next = torch.tensor([[-0.3, 5.0, 0.5, 2.0], [-0.1, 5.0, 0.4, 0.9]])
    heads = torch.tensor([0, 1])
    y = nstep_td_target(r, disc, q_next, heads)
    assert torch.allclose(y, torch.tensor([-0.291, 1.0, 0.388, 0.873]), atol=1e-6)
    yb = nstep_td_target(r, disc, q_next, heads, (0.0, 1.0))
    assert torch.allclose(yb, torch.tensor([0.0, 1.0, 0.388, 0.873]), atol=1e-6)
    assert torch.allclose(nstep_td_target(r, disc, q_next * 3, heads, (None, 1.0)).max(), torch.tensor(1.0))
    # no reward anywhere: the min over heads drifts the critic below 0 without the bound, stays >= 0 with it
    E, B = 10, 512
    for bounds, expect_negative in ((None, True), ((0.0, 1.0), False)):
        torch.manual_seed(0)
        q = torch.zeros(B)
        for _ in range(300):
            heads_q = q + 0.05 * torch.randn(E, B)  # an ensemble that disagrees a little
            q = nstep_td_target(torch.zeros(B), torch.full((B,), 0.97), heads_q, random_pair(E, 2), bounds)
        assert (float(q.mean()) < -0.2) == expect_negative, (bounds, float(q.mean()))
    with pytest.raises(ValueError, match="target_bounds"):
        ResidualTD3(ResidualPolicy.from_base(weak_base(n_demos=2, n_obs_steps=2)[1], hidden_dims=(8,)),
                    ResidualTD3Config(target_bounds=(1.0, 0.0)))


def test_random_pair_covers_all_heads():
    seen = set()
    g = torch.Generator().manual_seed(0)
    for _ in range(200):
        seen.update(random_pair(10, 2, generator=g).tolist())
    assert seen == set(range(10))


def test_demo_relabelling_uses_the_base_action_and_success_reward():
    store, base = weak_base(n_demos=6, n_obs_steps=2)
    rp = ResidualPolicy.from_base(base, hidden_dims=(32, 32))
    buf = relabel_demos(store, rp, n_step=1)
    ends = np.asarray(store.episode_ends)
    assert len(buf) == int(ends[-1])
    data = buf.get(np.arange(len(buf)))
    # reference: run the base open-loop from each episode start on the demo states
    from robotrl.envs.wrappers import ObservationHistory  # noqa: F401  (same padding rule)

    starts = np.concatenate([[0], ends[:-1]])
    st = store["obs/state"]
    ref = []
    for s, e in zip(starts, ends):
        base.reset()
        for t in range(s, e):
            hist = st[[max(s, t - 1), t]][None]
            ref.append(base.normalizer.normalize("action", base.act({"state": hist}))[0].clamp(-1, 1).numpy())
    ref = np.stack(ref)
    np.testing.assert_allclose(data[("obs", "base_action")], ref, atol=1e-6)
    # the executed action is the demonstrator's, normalised; it differs from the base's
    demo_n = base.normalizer.normalize("action", torch.as_tensor(store["action"])).clamp(-1, 1).numpy()
    np.testing.assert_allclose(data[("action",)], demo_n, atol=1e-6)
    assert not np.allclose(data[("action",)], data[("obs", "base_action")])
    # reward 1 exactly on success frames (episode ends that terminated), 0 elsewhere
    term = np.asarray(store["terminated"]).reshape(-1)
    r = data[("reward",)].reshape(-1)
    assert set(np.flatnonzero(r).tolist()) == set(np.flatnonzero(term).tolist())
    assert np.all(r[term] == 1.0)


def test_update_mixes_demo_and_online_and_moves_only_the_actor_and_critic():
    store, base = weak_base(n_demos=6)
    rp = ResidualPolicy.from_base(base, hidden_dims=(32, 32))
    cfg = ResidualTD3Config(critic_hidden_dims=(32, 32), actor_update_every=1)
    algo = ResidualTD3(rp, cfg)
    demo = relabel_demos(store, rp, n_step=cfg.n_step, gamma=cfg.gamma)
    online = relabel_demos(store, rp, n_step=cfg.n_step, gamma=cfg.gamma, seed=5)
    sampler = MixedSampler(online, demo, 0.5)
    batch = sampler.sample(64)
    assert int(batch["from_demo"].sum()) == 32
    base_before = {k: v.clone() for k, v in rp.base.state_dict().items()}
    m = algo.update(batch)
    assert "actor_loss" in m and np.isfinite(m["critic_loss"])
    assert all(torch.equal(v, rp.base.state_dict()[k]) for k, v in base_before.items())  # base frozen
    assert rp.actor.net[-1].weight.abs().sum() > 0  # the zero-initialised layer moved
