"""A2PR's options beyond the public code."""
from __future__ import annotations

import torch


def test_a2pr_detached_target_changes_only_the_actor_gradient():
    """``detach_target`` (fixed target VAE(s, pi(s))) vs the public code's kept gradient: from the same
    weights and batch, the critic/value/VAE steps are identical and the actor's step differs."""
    from robotrl.offline.a2pr import A2PR, A2PRConfig

    torch.manual_seed(0)
    obs, act = torch.randn(64, 5), torch.rand(64, 2) * 2 - 1
    batch = {("obs", "state"): obs, "action": act, "reward": torch.randn(64),
             ("next", "obs", "state"): torch.randn(64, 5), "terminated": torch.zeros(64)}
    from tensordict import TensorDict

    batch = TensorDict(batch, batch_size=[64])
    algos = []
    for detach in (False, True):
        torch.manual_seed(1)
        a = A2PR(5, 2, A2PRConfig(actor_hidden_dims=(32,), critic_hidden_dims=(32,), value_hidden_dims=(32,),
                                  vae_hidden_dims=(32,), policy_freq=1, reg_weight=10.0, detach_target=detach))
        # plain SGD: the step is the gradient itself (Adam's first step would be its sign)
        a.optimizers["actor"] = torch.optim.SGD(a.actor.parameters(), lr=0.1)
        torch.manual_seed(2)
        a.update(batch)
        algos.append(a)
    kept, fixed = algos
    for part in ("critic", "value", "vae"):
        for p, q in zip(getattr(kept, part).parameters(), getattr(fixed, part).parameters()):
            assert torch.equal(p, q), part
    assert any(not torch.allclose(p, q) for p, q in zip(kept.actor.parameters(), fixed.actor.parameters()))


def _one_update(**over):
    from tensordict import TensorDict

    from robotrl.offline.a2pr import A2PR, A2PRConfig

    torch.manual_seed(0)
    obs, act = torch.randn(64, 5), torch.rand(64, 2) * 2 - 1
    batch = TensorDict({("obs", "state"): obs, "action": act, "reward": torch.randn(64),
                        ("next", "obs", "state"): torch.randn(64, 5), "terminated": torch.zeros(64)}, batch_size=[64])
    torch.manual_seed(1)
    a = A2PR(5, 2, A2PRConfig(actor_hidden_dims=(32,), critic_hidden_dims=(32,), value_hidden_dims=(32,),
                              vae_hidden_dims=(32,), policy_freq=1, reg_weight=10.0, **over))
    a.optimizers["actor"] = torch.optim.SGD(a.actor.parameters(), lr=0.1)
    torch.manual_seed(2)
    m = a.update(batch)
    return a, m


def test_a2pr_prior_vae_target_changes_only_the_actor_step():
    """``vae_target="prior"`` (decode(s, z), z from the clipped prior) vs the public code's VAE(s, pi(s)):
    the critic/value/VAE steps are identical, the actor's step differs."""
    recon, _ = _one_update()
    prior, m = _one_update(vae_target="prior")
    for part in ("critic", "value", "vae"):
        for p, q in zip(getattr(recon, part).parameters(), getattr(prior, part).parameters()):
            assert torch.equal(p, q), part
    assert any(not torch.allclose(p, q) for p, q in zip(recon.actor.parameters(), prior.actor.parameters()))
    assert 0.0 <= m["vae_target_frac"] <= 1.0


def test_a2pr_prior_target_is_generated_from_the_state_alone():
    """With ``vae_target="prior"`` the actor step asks the VAE for decode(s) with z from the prior (no z
    given); with "recon" every decode comes through VAE(s, a) with the posterior's z."""
    from robotrl.offline.a2pr import VAE

    calls = []
    orig = VAE.decode

    def spy(self, obs, z=None):
        calls.append(z is None)
        return orig(self, obs, z)

    VAE.decode = spy
    try:
        _one_update()
        recon_calls = list(calls)
        calls.clear()
        _one_update(vae_target="prior")
    finally:
        VAE.decode = orig
    assert recon_calls and not any(recon_calls)
    assert calls.count(True) == 1  # one prior draw: the actor step's regularisation target


def test_a2pr_prior_with_detach_target_is_refused():
    import pytest

    with pytest.raises(ValueError, match="detach_target"):
        _one_update(vae_target="prior", detach_target=True)


def test_a2pr_unknown_vae_target_is_refused():
    import pytest

    with pytest.raises(ValueError, match="vae_target"):
        _one_update(vae_target="posterior")
