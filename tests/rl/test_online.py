"""SAC / TD3 core and the OnlineTrainer: learning, targets, ensembles, checkpoint/resume."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from tensordict import TensorDict

from robotrl.rl import SAC, TD3, OnlineConfig, OnlineTrainer, SACConfig, TD3Config, evaluate_algo
from robotrl.rl.networks import EnsembleCritic


def _batch(n=64, obs_dim=3, act_dim=2, discount=None, seed=0):
    g = torch.Generator().manual_seed(seed)
    td = {"obs": {"state": torch.randn(n, obs_dim, generator=g)}, "action": torch.rand(n, act_dim, generator=g) * 2 - 1,
          "reward": torch.randn(n, generator=g), "terminated": torch.zeros(n, dtype=torch.bool),
          "next": {"obs": {"state": torch.randn(n, obs_dim, generator=g)}}}
    if discount is not None:
        td["discount"] = torch.full((n,), float(discount))
    return TensorDict(td, batch_size=[n])


def test_ensemble_critic_members_are_independent():
    torch.manual_seed(0)
    c = EnsembleCritic(3, 2, (16, 16), num_critics=5, layer_norm=True)
    o, a = torch.randn(7, 3), torch.randn(7, 2)
    q = c(o, a)
    assert q.shape == (5, 7)
    assert q.std(0).mean() > 1e-3                      # different initialisations
    q[2].sum().backward()                              # member 2's output depends only on member 2's weights
    w = c.net.net[0].weight.grad
    assert w[2].abs().sum() > 0 and w[[0, 1, 3, 4]].abs().sum() == 0
    ln = c.net.net[1].weight.grad                       # LayerNorm affine parameters are per member too
    assert ln[2].abs().sum() > 0 and ln[[0, 1, 3, 4]].abs().sum() == 0


@pytest.mark.parametrize("algo_cls,cfg", [(SAC, SACConfig(hidden_dims=(32, 32), critic_lr=3e-3, tau=0.05)),
                                         (TD3, TD3Config(hidden_dims=(32, 32), critic_lr=3e-3, tau=0.05))])
def test_terminal_discount_makes_q_regress_to_reward(algo_cls, cfg):
    """With discount 0 (a terminated n-step return) the critic's target is the reward alone."""
    torch.manual_seed(0)
    err = _q_error_after_fit(algo_cls, cfg, discount=0.0)
    assert err < 0.15, float(err)
    # and with discount 0.9 the target is not the reward alone
    assert _q_error_after_fit(algo_cls, cfg, discount=0.9) > err


def _q_error_after_fit(algo_cls, cfg, discount: float) -> torch.Tensor:
    """Mean |Q - reward| after 400 updates on one fixed batch."""
    algo = algo_cls(3, 2, cfg)
    batch = _batch(discount=discount)
    for _ in range(400):
        algo.update(batch)
    with torch.no_grad():
        q = algo.critic(batch["obs", "state"], batch["action"])
    return (q - batch["reward"]).abs().mean()


def test_state_dict_round_trip_restores_actions_and_optimisers():
    torch.manual_seed(0)
    a = SAC(3, 2, SACConfig(hidden_dims=(16, 16)))
    for _ in range(5):
        a.update(_batch())
    b = SAC(3, 2, SACConfig(hidden_dims=(16, 16)))
    b.load_state_dict(a.state_dict())
    o = np.random.default_rng(0).normal(size=(4, 3)).astype(np.float32)
    np.testing.assert_array_equal(a.act(o, deterministic=True), b.act(o, deterministic=True))
    assert b.optimizers["critic"].state_dict()["state"][0]["step"] == 5
    assert int(b.num_updates) == 5


def test_sac_learns_inverted_pendulum(tmp_path):
    """A bounded budget (2.5k env steps, small nets): the learned policy balances far longer than random."""
    torch.manual_seed(0)
    algo = SAC(4, 1, SACConfig(hidden_dims=(64, 64), batch_size=128))
    rand = evaluate_algo(_Random(), "InvertedPendulum-v5", 5, num_envs=1)["mean_return"]
    cfg = OnlineConfig(total_env_steps=2500, start_steps=500, batch_size=128, eval_every=0, ckpt_every=0,
                       log_every=500, progress=False, tensorboard=False, seed=0)
    out = OnlineTrainer(algo, "InvertedPendulum-v5", cfg, tmp_path).run()
    assert out["updates"] == 2000
    ret = evaluate_algo(algo, "InvertedPendulum-v5", 5, num_envs=1)["mean_return"]
    assert ret >= max(30.0, 4 * rand), (ret, rand)


class _Random(torch.nn.Module):
    def act(self, obs, deterministic=False):
        return np.random.default_rng(0).uniform(-1, 1, (len(obs["state"]), 1))


def test_online_trainer_resumes_from_checkpoint(tmp_path):
    torch.manual_seed(0)
    kw = dict(start_steps=100, batch_size=32, eval_every=0, ckpt_every=150, log_every=100, progress=False,
              tensorboard=False, n_step=3, utd=0.5)
    algo = TD3(4, 1, TD3Config(hidden_dims=(16, 16)))
    out = OnlineTrainer(algo, "InvertedPendulum-v5", OnlineConfig(total_env_steps=300, **kw), tmp_path).run()
    assert out["env_steps"] == 300 and out["updates"] == 100       # utd 0.5 after 100 warm-up steps
    algo2 = TD3(4, 1, TD3Config(hidden_dims=(16, 16)))
    out2 = OnlineTrainer(algo2, "InvertedPendulum-v5", OnlineConfig(total_env_steps=450, **kw), tmp_path).run()
    assert out2["env_steps"] == 450 and out2["updates"] == 175      # continued, not restarted
    from robotrl.data.replay import ReplayBuffer

    assert len(ReplayBuffer.load(tmp_path / "checkpoints" / "online_buffer")) == 450
    assert int(algo2.num_updates) == 175
