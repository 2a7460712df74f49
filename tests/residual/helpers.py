"""Shared fixtures: a weak BC base on the tiny reaching task."""
from __future__ import annotations

import numpy as np
import torch

from robotrl.data import SequenceSampler
from robotrl.policies import make_policy
from robotrl.policies.base import shape_meta_from_store

from point_env import collect


def train_weak_bc(store, steps: int = 400, n_obs_steps: int = 1, horizon: int = 4, n_action_steps: int = 2, seed: int = 0):
    torch.manual_seed(seed)
    pol = make_policy({"type": "bc", "n_obs_steps": n_obs_steps, "horizon": horizon, "n_action_steps": n_action_steps,
                       "hidden_dims": [64, 64]}, shape_meta_from_store(store, ("state",)))
    pol.fit_normalizer(store)
    sampler = SequenceSampler(store, sequence_length=horizon, pad_before=n_obs_steps - 1, pad_after=n_action_steps - 1,
                              keys=["obs/state", "action"], obs_steps=n_obs_steps)
    opt = torch.optim.Adam(pol.parameters(), 1e-3)
    gen = np.random.default_rng(seed)
    for _ in range(steps):
        loss, _ = pol.loss(sampler.sample(128, gen))
        opt.zero_grad()
        loss.backward()
        opt.step()
    return pol.eval()


def weak_base(n_demos: int = 20, offset: float = 0.06, n_obs_steps: int = 1):
    store = collect(n_demos, offset=offset, seed=0)
    return store, train_weak_bc(store, n_obs_steps=n_obs_steps)
