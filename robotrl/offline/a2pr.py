"""A2PR: Adaptive Advantage-guided Policy Regularisation (Liu et al., ICML 2024).

TD3+BC whose behaviour-cloning target is chosen by advantage:

* twin critics (TD3 target with policy smoothing) and a value net ``V(s)`` regressed onto
  ``min_i Q_i'(s, a_data)``; advantage ``A(s, a) = min_i Q_i(s, a) - V(s)``;
* a VAE behaviour model whose reconstruction loss is weighted by ``1[A(s, a_data) > 0]``, so it
  models the better-than-average dataset actions;
* per state the target ``a~`` is whichever of {dataset action, VAE sample} has the higher
  advantage, and the regulariser is masked where that advantage is negative;
* actor loss ``-(alpha / mean|Q|) Q(s, pi(s)) + mask * ||pi(s) - a~||^2`` (alpha 2.5; 40 on
  halfcheetah in the paper).
"""
from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from robotrl.nn.mlp import MLP
from robotrl.rl.base import Algorithm, adam, polyak_update
from robotrl.rl.networks import DeterministicActor, EnsembleCritic, ValueNet

__all__ = ["A2PRConfig", "A2PR", "VAE"]


@dataclass
class A2PRConfig:
    hidden_dims: tuple[int, ...] = (256, 256)
    vae_hidden_dims: tuple[int, ...] = (750, 750)
    actor_lr: float = 3e-4
    critic_lr: float = 3e-4
    value_lr: float = 3e-4
    vae_lr: float = 1e-3
    gamma: float = 0.99
    tau: float = 0.005
    alpha: float = 2.5
    policy_noise: float = 0.2
    noise_clip: float = 0.5
    policy_freq: int = 2
    expl_noise: float = 0.1
    vae_kl_weight: float = 0.5
    num_critics: int = 2
    normalize_obs: bool = True
    normalize_reward: bool = False
    max_steps: int = 1_000_000
    batch_size: int = 256


class VAE(nn.Module):
    """Conditional VAE ``p(a | s)`` (BCQ-style; latent ``2 * act_dim``, clipped prior samples)."""

    def __init__(self, obs_dim: int, act_dim: int, hidden: tuple[int, ...]) -> None:
        super().__init__()
        self.latent = 2 * act_dim
        self.enc = MLP(obs_dim + act_dim, hidden, 2 * self.latent)
        self.dec = MLP(obs_dim + self.latent, hidden, act_dim)

    def forward(self, obs: torch.Tensor, action: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        mu, log_std = self.enc(torch.cat([obs, action], -1)).chunk(2, -1)
        log_std = log_std.clamp(-4.0, 15.0)
        z = mu + log_std.exp() * torch.randn_like(mu)
        return self.decode(obs, z), mu, log_std

    def decode(self, obs: torch.Tensor, z: torch.Tensor | None = None) -> torch.Tensor:
        if z is None:
            z = torch.randn(obs.shape[0], self.latent).clamp(-0.5, 0.5)
        return torch.tanh(self.dec(torch.cat([obs, z], -1)))


class A2PR(Algorithm):
    name = "a2pr"

    def __init__(self, obs_dim: int, act_dim: int, cfg: A2PRConfig | None = None) -> None:
        super().__init__(obs_dim, act_dim)
        self.cfg = c = cfg or A2PRConfig()
        self.actor = DeterministicActor(obs_dim, act_dim, c.hidden_dims)
        self.target_actor = copy.deepcopy(self.actor).requires_grad_(False)
        self.critic = EnsembleCritic(obs_dim, act_dim, c.hidden_dims, c.num_critics)
        self.target_critic = copy.deepcopy(self.critic).requires_grad_(False)
        self.value = ValueNet(obs_dim, c.hidden_dims)
        self.vae = VAE(obs_dim, act_dim, c.vae_hidden_dims)
        self.optimizers = {
            "actor": adam(self.actor.parameters(), lr=c.actor_lr),
            "critic": adam(self.critic.parameters(), lr=c.critic_lr),
            "value": adam(self.value.parameters(), lr=c.value_lr),
            "vae": adam(self.vae.parameters(), lr=c.vae_lr),
        }

    def policy_action(self, obs: torch.Tensor, deterministic: bool) -> torch.Tensor:
        a = self.actor(obs)
        if not deterministic and self.cfg.expl_noise > 0:
            a = a + self.cfg.expl_noise * torch.randn_like(a)
        return a.clamp(-1.0, 1.0)

    def _step(self, name: str, loss: torch.Tensor) -> None:
        opt = self.optimizers[name]
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    def update(self, batch: Any) -> dict[str, float]:
        c = self.cfg
        obs, next_obs = self.batch_obs(batch), self.batch_obs(batch, next=True)
        action = batch["action"].float()
        reward, discount = self.batch_reward(batch), self.batch_discount(batch, c.gamma)

        # ---- value: V(s) -> min_i Q_i'(s, a_data)
        with torch.no_grad():
            q_data_t = self.target_critic(obs, action).min(0).values
        v = self.value(obs)
        value_loss = ((v - q_data_t) ** 2).mean()
        self._step("value", value_loss)

        # ---- critic (TD3)
        with torch.no_grad():
            noise = (torch.randn_like(action) * c.policy_noise).clamp(-c.noise_clip, c.noise_clip)
            next_a = (self.target_actor(next_obs) + noise).clamp(-1.0, 1.0)
            y = reward + discount * self.target_critic(next_obs, next_a).min(0).values
        q = self.critic(obs, action)
        critic_loss = ((q - y) ** 2).mean(1).sum()
        self._step("critic", critic_loss)

        # ---- VAE on the dataset actions with positive advantage
        with torch.no_grad():
            v_now = self.value(obs)
            adv_data = self.critic(obs, action).min(0).values - v_now
            w = (adv_data > 0).float()
        recon, mu, log_std = self.vae(obs, action)
        recon_loss = (w * ((recon - action) ** 2).sum(-1)).sum() / w.sum().clamp_min(1.0)
        kl = (-0.5 * (1 + 2 * log_std - mu.pow(2) - (2 * log_std).exp()).sum(-1)).mean()
        vae_loss = recon_loss + c.vae_kl_weight * kl
        self._step("vae", vae_loss)
        metrics = {"critic_loss": float(critic_loss.detach()), "value_loss": float(value_loss.detach()),
                   "vae_loss": float(vae_loss.detach()), "q": float(q.detach().mean()),
                   "positive_adv_frac": float(w.mean())}

        self.num_updates += 1
        if int(self.num_updates) % c.policy_freq == 0:
            with torch.no_grad():
                a_vae = self.vae.decode(obs)
                adv_vae = self.critic(obs, a_vae).min(0).values - v_now
                use_vae = adv_vae > adv_data
                target = torch.where(use_vae.unsqueeze(-1), a_vae, action)
                mask = (torch.maximum(adv_vae, adv_data) > 0).float()
            self.critic.requires_grad_(False)
            pi = self.actor(obs)
            q_pi = self.critic(obs, pi)[0]
            lmbda = c.alpha / q_pi.abs().mean().detach().clamp_min(1e-6)
            reg = (mask * ((pi - target) ** 2).sum(-1)).mean()
            actor_loss = -lmbda * q_pi.mean() + reg
            self._step("actor", actor_loss)
            self.critic.requires_grad_(True)
            polyak_update(self.target_actor, self.actor, c.tau)
            polyak_update(self.target_critic, self.critic, c.tau)
            metrics.update(actor_loss=float(actor_loss.detach()), reg_loss=float(reg.detach()),
                           vae_target_frac=float(use_vae.float().mean()), mask_frac=float(mask.mean()))
        return metrics
