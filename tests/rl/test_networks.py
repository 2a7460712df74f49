"""Ensemble critic: evaluating a subset of heads."""
from __future__ import annotations

import torch

from robotrl.rl.networks import EnsembleCritic


def test_ensemble_critic_heads_subset_equals_the_full_ensemble_rows():
    torch.manual_seed(0)
    for ln in (False, True):
        critic = EnsembleCritic(5, 2, (16, 16), num_critics=10, layer_norm=ln)
        obs, act = torch.randn(7, 5), torch.randn(7, 2)
        heads = torch.tensor([7, 2])
        full = critic(obs, act)
        sub = critic(obs, act, heads)
        assert sub.shape == (2, 7)
        assert torch.allclose(sub, full[heads], atol=1e-6)
        # gradients reach only the chosen members
        critic.zero_grad()
        sub.sum().backward()
        g = critic.net.net[0].weight.grad.abs().sum((1, 2))
        assert (g[heads] > 0).all() and (g[[i for i in range(10) if i not in (7, 2)]] == 0).all()
