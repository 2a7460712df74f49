"""Implicit Q-Learning (Kostrikov, Nair & Levine, ICLR 2022).

Never queries Q on actions outside the dataset:

* ``V(s)``  <- expectile ``tau`` of ``min_i Q_i'(s, a)`` over dataset actions (asymmetric L2);
* ``Q(s,a)`` <- ``r + discount * V(s')``;
* policy: advantage-weighted regression, ``exp(beta * (Q - V))`` (clipped at 100) times
  ``-log pi(a|s)`` for a Gaussian policy with tanh mean and state-independent log-std, whose
  learning rate follows a cosine decay over ``max_steps``.

Defaults are the paper's locomotion settings (expectile 0.7, temperature 3.0, 256x256 MLPs,
lr 3e-4, batch 256, rewards scaled by ``1000 / (max return - min return)``, done by the trainer).
"""
from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from robotrl.nn.mlp import MLP
from robotrl.rl.base import Algorithm, adam, polyak_update
from robotrl.rl.networks import EnsembleCritic, ValueNet

__all__ = ["IQLConfig", "IQL"]


@dataclass
class IQLConfig:
    hidden_dims: tuple[int, ...] = (256, 256)
    actor_lr: float = 3e-4
    critic_lr: float = 3e-4
    value_lr: float = 3e-4
    gamma: float = 0.99
    tau: float = 0.005              # Polyak rate of the target Q
    expectile: float = 0.7          # 0.7 locomotion, 0.9 antmaze
    beta: float = 3.0               # inverse temperature of the advantage weights (10 for antmaze)
    exp_adv_max: float = 100.0
    max_steps: int = 1_000_000      # horizon of the actor's cosine learning-rate decay
    num_critics: int = 2
    layer_norm: bool = False
    dropout: float = 0.0            # actor dropout (0.1 on kitchen/adroit in the paper)
    normalize_reward: bool = True   # locomotion reward scaling (trainer applies it)
    normalize_obs: bool = False
    batch_size: int = 256


class GaussianPolicy(nn.Module):
    """``N(tanh(f(s)), exp(log_std))`` with a learned state-independent log-std (IQL's policy)."""

    def __init__(self, obs_dim: int, act_dim: int, hidden_dims: tuple[int, ...], dropout: float = 0.0) -> None:
        super().__init__()
        self.net = MLP(obs_dim, hidden_dims, act_dim, dropout=dropout)
        self.log_std = nn.Parameter(torch.zeros(act_dim))

    def forward(self, obs: torch.Tensor) -> torch.distributions.Normal:
        mean = torch.tanh(self.net(obs))
        std = self.log_std.clamp(-5.0, 2.0).exp()
        return torch.distributions.Normal(mean, std)


class IQL(Algorithm):
    name = "iql"

    def __init__(self, obs_dim: int, act_dim: int, cfg: IQLConfig | None = None) -> None:
        super().__init__(obs_dim, act_dim)
        self.cfg = c = cfg or IQLConfig()
        self.actor = GaussianPolicy(obs_dim, act_dim, c.hidden_dims, c.dropout)
        self.critic = EnsembleCritic(obs_dim, act_dim, c.hidden_dims, c.num_critics, layer_norm=c.layer_norm)
        self.target_critic = copy.deepcopy(self.critic).requires_grad_(False)
        self.value = ValueNet(obs_dim, c.hidden_dims, layer_norm=c.layer_norm)
        self.optimizers = {
            "actor": adam(self.actor.parameters(), lr=c.actor_lr),
            "critic": adam(self.critic.parameters(), lr=c.critic_lr),
            "value": adam(self.value.parameters(), lr=c.value_lr),
        }

    def policy_action(self, obs: torch.Tensor, deterministic: bool) -> torch.Tensor:
        dist = self.actor(obs)
        return dist.mean if deterministic else dist.sample()

    def _actor_lr(self) -> float:
        t = min(int(self.num_updates), self.cfg.max_steps)
        return self.cfg.actor_lr * 0.5 * (1.0 + math.cos(math.pi * t / max(1, self.cfg.max_steps)))

    def update(self, batch: Any) -> dict[str, float]:
        c = self.cfg
        obs, next_obs = self.batch_obs(batch), self.batch_obs(batch, next=True)
        action = batch["action"].float()
        reward, discount = self.batch_reward(batch), self.batch_discount(batch, c.gamma)

        # ---- value: expectile regression towards the target critics (dataset actions only)
        with torch.no_grad():
            target_q = self.target_critic(obs, action).min(0).values
        v = self.value(obs)
        u = target_q - v
        weight = torch.abs(c.expectile - (u < 0).float())
        value_loss = (weight * u.pow(2)).mean()
        opt = self.optimizers["value"]
        opt.zero_grad(set_to_none=True)
        value_loss.backward()
        opt.step()

        # ---- critic: r + discount * V(s')
        with torch.no_grad():
            y = reward + discount * self.value(next_obs)
        q = self.critic(obs, action)
        critic_loss = ((q - y) ** 2).mean(1).sum()
        opt = self.optimizers["critic"]
        opt.zero_grad(set_to_none=True)
        critic_loss.backward()
        opt.step()

        # ---- actor: advantage-weighted regression
        with torch.no_grad():
            exp_adv = torch.exp(c.beta * u.detach()).clamp(max=c.exp_adv_max)
        log_prob = self.actor(obs).log_prob(action).sum(-1)
        actor_loss = -(exp_adv * log_prob).mean()
        opt = self.optimizers["actor"]
        for g in opt.param_groups:
            g["lr"] = self._actor_lr()
        opt.zero_grad(set_to_none=True)
        actor_loss.backward()
        opt.step()

        polyak_update(self.target_critic, self.critic, c.tau)
        self.num_updates += 1
        return {"value_loss": float(value_loss.detach()), "critic_loss": float(critic_loss.detach()),
                "actor_loss": float(actor_loss.detach()), "q": float(q.detach().mean()),
                "v": float(v.detach().mean()), "adv_weight": float(exp_adv.mean())}
