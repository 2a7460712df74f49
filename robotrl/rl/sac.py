"""Soft Actor-Critic (Haarnoja et al. 2018) with a critic ensemble, LayerNorm and n-step targets.

Reads top to bottom: the hyper-parameters in :class:`SACConfig`, then ``update`` = critic step,
actor + temperature step, Polyak averaging. With ``num_critics > 2`` and ``num_min_critics`` set it
is REDQ's target (min over a random subset); with ``layer_norm=True`` and a high ``utd`` it is the
RLPD-style critic. n-step returns come from the replay buffer (``"discount"`` = ``gamma**n``).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import copy
import torch

from robotrl.rl.base import Algorithm, adam, polyak_update
from robotrl.rl.networks import EnsembleCritic, TanhGaussianActor

__all__ = ["SACConfig", "SAC"]


@dataclass
class SACConfig:
    """SAC defaults (Haarnoja et al. 2018, v2 with automatic temperature)."""

    hidden_dims: tuple[int, ...] = (256, 256)
    actor_lr: float = 3e-4
    critic_lr: float = 3e-4
    alpha_lr: float = 3e-4
    gamma: float = 0.99
    tau: float = 0.005
    num_critics: int = 2
    num_min_critics: int | None = None   # REDQ: min over a random subset of this size (None: all)
    layer_norm: bool = False             # LayerNorm in the critics (RLPD)
    actor_layer_norm: bool = False
    init_alpha: float = 1.0
    autotune_alpha: bool = True
    target_entropy: float | None = None  # None: -act_dim
    backup_entropy: bool = True
    actor_update_every: int = 1
    n_step: int = 1                      # used by the trainer's replay buffer
    utd: float = 1.0                     # gradient updates per environment step (trainer)
    batch_size: int = 256


class SAC(Algorithm):
    name = "sac"

    def __init__(self, obs_dim: int, act_dim: int, cfg: SACConfig | None = None) -> None:
        super().__init__(obs_dim, act_dim)
        self.cfg = c = cfg or SACConfig()
        self.actor = TanhGaussianActor(obs_dim, act_dim, c.hidden_dims, layer_norm=c.actor_layer_norm)
        self.critic = EnsembleCritic(obs_dim, act_dim, c.hidden_dims, c.num_critics, layer_norm=c.layer_norm)
        self.target_critic = copy.deepcopy(self.critic).requires_grad_(False)
        self.log_alpha = torch.nn.Parameter(torch.tensor(float(c.init_alpha)).log())
        self.target_entropy = float(-act_dim if c.target_entropy is None else c.target_entropy)
        self.optimizers = {
            "actor": adam(self.actor.parameters(), lr=c.actor_lr),
            "critic": adam(self.critic.parameters(), lr=c.critic_lr),
            "alpha": adam([self.log_alpha], lr=c.alpha_lr),
        }

    @property
    def alpha(self) -> torch.Tensor:
        return self.log_alpha.exp().detach()

    def policy_action(self, obs: torch.Tensor, deterministic: bool) -> torch.Tensor:
        return self.actor(obs, deterministic=deterministic, need_log_prob=False)[0]

    def _target_min(self, q: torch.Tensor) -> torch.Tensor:
        k = self.cfg.num_min_critics
        if k is not None and k < q.shape[0]:
            idx = torch.randperm(q.shape[0])[:k]
            q = q[idx]
        return q.min(0).values

    def update(self, batch: Any) -> dict[str, float]:
        c = self.cfg
        obs, next_obs = self.batch_obs(batch), self.batch_obs(batch, next=True)
        action = batch["action"].float()
        reward, discount = self.batch_reward(batch), self.batch_discount(batch, c.gamma)
        alpha = self.alpha

        # ---- critic: y = r + discount * (min_i Q_i'(s', a') - alpha log pi(a'|s'))
        with torch.no_grad():
            next_a, next_logp = self.actor(next_obs)
            target_q = self._target_min(self.target_critic(next_obs, next_a))
            if c.backup_entropy:
                target_q = target_q - alpha * next_logp
            y = reward + discount * target_q
        q = self.critic(obs, action)
        critic_loss = ((q - y) ** 2).mean(1).sum()
        opt = self.optimizers["critic"]
        opt.zero_grad(set_to_none=True)
        critic_loss.backward()
        opt.step()
        metrics = {"critic_loss": float(critic_loss.detach()), "q": float(q.detach().mean()), "alpha": float(alpha)}

        # ---- actor and temperature
        if int(self.num_updates) % c.actor_update_every == 0:
            self.critic.requires_grad_(False)
            a, logp = self.actor(obs)
            q_pi = self.critic(obs, a)
            q_pi = q_pi.min(0).values if q_pi.shape[0] <= 2 else q_pi.mean(0)
            actor_loss = (alpha * logp - q_pi).mean()
            opt = self.optimizers["actor"]
            opt.zero_grad(set_to_none=True)
            actor_loss.backward()
            opt.step()
            self.critic.requires_grad_(True)
            metrics.update(actor_loss=float(actor_loss.detach()), entropy=float(-logp.detach().mean()))
            if c.autotune_alpha:
                alpha_loss = -(self.log_alpha * (logp.detach() + self.target_entropy)).mean()
                opt = self.optimizers["alpha"]
                opt.zero_grad(set_to_none=True)
                alpha_loss.backward()
                opt.step()
        polyak_update(self.target_critic, self.critic, c.tau)
        self.num_updates += 1
        return metrics
