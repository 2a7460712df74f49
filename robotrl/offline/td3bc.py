"""TD3+BC (Fujimoto & Gu, NeurIPS 2021): TD3 whose actor also regresses onto the dataset action.

Actor loss ``-lambda * Q_1(s, pi(s)) + (pi(s) - a)^2`` with ``lambda = alpha / mean|Q_1(s, pi(s))|``
(the Q scale is normalised away), states normalised by the dataset's mean and std, and the rest
is TD3: clipped double-Q, target policy smoothing, delayed actor and target updates.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

from robotrl.rl.base import polyak_update
from robotrl.rl.td3 import TD3

__all__ = ["TD3BCConfig", "TD3BC"]


@dataclass
class TD3BCConfig:
    hidden_dims: tuple[int, ...] = (256, 256)
    actor_lr: float = 3e-4
    critic_lr: float = 3e-4
    gamma: float = 0.99
    tau: float = 0.005
    alpha: float = 2.5             # weight of the Q term relative to behaviour cloning
    policy_noise: float = 0.2
    noise_clip: float = 0.5
    policy_freq: int = 2
    expl_noise: float = 0.1        # exploration noise when fine-tuning online
    num_critics: int = 2
    layer_norm: bool = False
    normalize_obs: bool = True     # state normalisation with the dataset statistics (trainer)
    normalize_reward: bool = False
    max_steps: int = 1_000_000
    batch_size: int = 256


class TD3BC(TD3):
    """TD3's networks, optimisers and acting (inherited); only the update adds the BC term."""

    name = "td3bc"

    def __init__(self, obs_dim: int, act_dim: int, cfg: TD3BCConfig | None = None) -> None:
        super().__init__(obs_dim, act_dim, cfg or TD3BCConfig())  # type: ignore[arg-type]

    def update(self, batch: Any) -> dict[str, float]:
        c = self.cfg
        obs, next_obs = self.batch_obs(batch), self.batch_obs(batch, next=True)
        action = batch["action"].float()
        reward, discount = self.batch_reward(batch), self.batch_discount(batch, c.gamma)

        with torch.no_grad():
            noise = (torch.randn_like(action) * c.policy_noise).clamp(-c.noise_clip, c.noise_clip)
            next_a = (self.target_actor(next_obs) + noise).clamp(-1.0, 1.0)
            y = reward + discount * self.target_critic(next_obs, next_a).min(0).values
        q = self.critic(obs, action)
        critic_loss = ((q - y) ** 2).mean(1).sum()
        opt = self.optimizers["critic"]
        opt.zero_grad(set_to_none=True)
        critic_loss.backward()
        opt.step()
        metrics = {"critic_loss": float(critic_loss.detach()), "q": float(q.detach().mean())}

        self.num_updates += 1
        if int(self.num_updates) % c.policy_freq == 0:
            self.critic.requires_grad_(False)
            pi = self.actor(obs)
            q_pi = self.critic(obs, pi, heads=self._q1)[0]
            lmbda = c.alpha / q_pi.abs().mean().detach().clamp_min(1e-6)
            bc_loss = F.mse_loss(pi, action)
            actor_loss = -lmbda * q_pi.mean() + bc_loss
            opt = self.optimizers["actor"]
            opt.zero_grad(set_to_none=True)
            actor_loss.backward()
            opt.step()
            self.critic.requires_grad_(True)
            polyak_update(self.target_actor, self.actor, c.tau)
            polyak_update(self.target_critic, self.critic, c.tau)
            metrics.update(actor_loss=float(actor_loss.detach()), bc_loss=float(bc_loss.detach()))
        return metrics
