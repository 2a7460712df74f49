"""TD3 (Fujimoto et al. 2018): clipped double-Q over a critic ensemble, target policy smoothing,
delayed actor updates; LayerNorm and n-step targets optional (as in :mod:`robotrl.rl.sac`)."""
from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

import torch

from robotrl.rl.base import Algorithm, adam, polyak_update
from robotrl.rl.networks import DeterministicActor, EnsembleCritic

__all__ = ["TD3Config", "TD3"]


@dataclass
class TD3Config:
    """TD3 defaults (Fujimoto et al. 2018; the author's reference implementation)."""

    hidden_dims: tuple[int, ...] = (256, 256)
    actor_lr: float = 3e-4
    critic_lr: float = 3e-4
    gamma: float = 0.99
    tau: float = 0.005
    num_critics: int = 2
    num_min_critics: int | None = None
    layer_norm: bool = False
    policy_noise: float = 0.2      # target policy smoothing std (action units of [-1, 1])
    noise_clip: float = 0.5
    policy_freq: int = 2           # actor and target updates every policy_freq critic updates
    expl_noise: float = 0.1        # Gaussian exploration noise of act(deterministic=False)
    n_step: int = 1
    utd: float = 1.0
    batch_size: int = 256


class TD3(Algorithm):
    name = "td3"

    def __init__(self, obs_dim: int, act_dim: int, cfg: TD3Config | None = None) -> None:
        super().__init__(obs_dim, act_dim)
        self.cfg = c = cfg or TD3Config()
        self.actor = DeterministicActor(obs_dim, act_dim, c.hidden_dims)
        self.target_actor = copy.deepcopy(self.actor).requires_grad_(False)
        self.critic = EnsembleCritic(obs_dim, act_dim, c.hidden_dims, c.num_critics, layer_norm=c.layer_norm)
        self.target_critic = copy.deepcopy(self.critic).requires_grad_(False)
        self._q1 = torch.tensor([0])  # the actor maximises Q1 (Fujimoto et al.); only that head is computed
        self.optimizers = {
            "actor": adam(self.actor.parameters(), lr=c.actor_lr),
            "critic": adam(self.critic.parameters(), lr=c.critic_lr),
        }

    def policy_action(self, obs: torch.Tensor, deterministic: bool) -> torch.Tensor:
        a = self.actor(obs)
        if not deterministic and self.cfg.expl_noise > 0:
            a = a + self.cfg.expl_noise * torch.randn_like(a)
        return a.clamp(-1.0, 1.0)

    def _target_min(self, q: torch.Tensor) -> torch.Tensor:
        k = self.cfg.num_min_critics
        if k is not None and k < q.shape[0]:
            q = q[torch.randperm(q.shape[0])[:k]]
        return q.min(0).values

    def update(self, batch: Any) -> dict[str, float]:
        c = self.cfg
        obs, next_obs = self.batch_obs(batch), self.batch_obs(batch, next=True)
        action = batch["action"].float()
        reward, discount = self.batch_reward(batch), self.batch_discount(batch, c.gamma)
        with torch.no_grad():
            noise = (torch.randn_like(action) * c.policy_noise).clamp(-c.noise_clip, c.noise_clip)
            next_a = (self.target_actor(next_obs) + noise).clamp(-1.0, 1.0)
            y = reward + discount * self._target_min(self.target_critic(next_obs, next_a))
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
            actor_loss = -self.critic(obs, self.actor(obs), heads=self._q1)[0].mean()
            opt = self.optimizers["actor"]
            opt.zero_grad(set_to_none=True)
            actor_loss.backward()
            opt.step()
            self.critic.requires_grad_(True)
            polyak_update(self.target_actor, self.actor, c.tau)
            polyak_update(self.target_critic, self.critic, c.tau)
            metrics["actor_loss"] = float(actor_loss.detach())
        return metrics
