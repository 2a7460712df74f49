"""A2PR: Adaptive Advantage-guided Policy Regularisation (Liu et al., ICML 2024).

TD3+BC whose behaviour-cloning target is chosen by advantage. Loss forms, update order and sizes
follow the authors' public code (ltlhuuu/A2PR, MIT; facts taken, no code copied):

* twin critics (TD3 target ``y`` with policy smoothing, sum of the two MSEs); a value net ``V(s)``
  regressed, after the critic step, onto ``min(y, r + gamma * min_i Q_i(s', a'))`` (the same noisy
  target action through the just-updated online critics); advantages use ``Q_1`` and ``V`` as it was
  before its own step;
* a VAE behaviour model (750x750, latent ``2 * act_dim``) whose per-element reconstruction loss is
  weighted by ``vae_weight * 1[Q_1(s, a_data) > V(s)]``, plus 0.5 x KL (both averaged);
* the regularisation target ``a~`` is whichever of {dataset action, ``VAE(s, pi(s))`` = the policy's
  action encoded and decoded (gradient kept, as in the public code)} has the higher ``Q_1``, and the
  regulariser is ``reg_weight * 1[either advantage >= 0]`` (the public code's ``mask``);
* actor loss ``-(alpha / mean|Q_1|) Q_1(s, pi(s)) + mean((pi(s) - a~)^2 * weight)`` (mean over batch
  and action dimensions, as TD3+BC's);
* actor 3x256, critics and value 4x256 (the public code's).

Option (not the public code): ``detach_target=True`` regresses ``pi(s)`` onto a *fixed* target
(``VAE(s, pi(s))`` without gradient), the reading of the method description in which ``a~`` is a
target action. With the gradient kept (default), the VAE term's pull is ``2 (pi - f(pi)) (I - J_f)``,
close to zero where the VAE reconstructs well, so the regulariser is weak; on this project's small
generated datasets the default scores well below TD3+BC (bench/RESULTS.md).

Option (not the public code): ``vae_target="prior"`` lets the regulariser pick ``decode(s, z)``, an action
generated from the state alone (z from the clipped prior, BCQ-style), instead of ``VAE(s, pi(s))``.

Per-dataset settings of the public README (alpha 40 on halfcheetah; ``reg_weight``, ``vae_weight``,
``gamma``) are in :data:`PRESETS` / :func:`a2pr_preset`; the config's defaults are its generic ones.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from robotrl.nn.mlp import MLP
from robotrl.offline.common import dataset_preset
from robotrl.rl.base import Algorithm, adam, polyak_update
from robotrl.rl.networks import DeterministicActor, EnsembleCritic, ValueNet

__all__ = ["A2PRConfig", "A2PR", "VAE", "PRESETS", "a2pr_preset"]

#: per-dataset settings listed with the public code (README / READMEv0): alpha, reg_weight (``mask``),
#: vae_weight, gamma. Where the README lists more than one candidate, the first is taken.
PRESETS: dict[str, dict[str, float]] = {
    "hopper-medium": {"alpha": 2.5, "reg_weight": 0.4, "vae_weight": 1.0, "gamma": 0.995},
    "hopper-medium-replay": {"alpha": 2.5, "reg_weight": 0.5, "vae_weight": 1.5, "gamma": 0.99},
    "hopper-medium-expert": {"alpha": 2.5, "reg_weight": 4.0, "vae_weight": 1.0, "gamma": 0.99},
    "halfcheetah-medium": {"alpha": 40.0, "reg_weight": 1.0, "vae_weight": 1.0, "gamma": 0.99},
    "halfcheetah-medium-replay": {"alpha": 40.0, "reg_weight": 0.8, "vae_weight": 1.5, "gamma": 0.995},
    "halfcheetah-medium-expert": {"alpha": 40.0, "reg_weight": 15.0, "vae_weight": 1.0, "gamma": 0.99},
    "walker2d-medium": {"alpha": 2.5, "reg_weight": 1.0, "vae_weight": 1.5, "gamma": 0.99},
    "walker2d-medium-replay": {"alpha": 2.5, "reg_weight": 1.2, "vae_weight": 1.5, "gamma": 0.995},
    "walker2d-medium-expert": {"alpha": 2.5, "reg_weight": 0.8, "vae_weight": 1.0, "gamma": 0.99},
}


def a2pr_preset(dataset: str) -> dict[str, float]:
    """The public code's settings for a D4RL-style name (``hopper-medium-replay-v2``, ``halfcheetah-medium``);
    ``{}`` for unknown names."""
    return dataset_preset(PRESETS, dataset)


@dataclass
class A2PRConfig:
    actor_hidden_dims: tuple[int, ...] = (256, 256, 256)
    critic_hidden_dims: tuple[int, ...] = (256, 256, 256, 256)
    value_hidden_dims: tuple[int, ...] = (256, 256, 256, 256)
    vae_hidden_dims: tuple[int, ...] = (750, 750)
    actor_lr: float = 3e-4
    critic_lr: float = 3e-4
    value_lr: float = 3e-4
    vae_lr: float = 1e-3
    gamma: float = 0.99
    tau: float = 0.005
    alpha: float = 2.5
    reg_weight: float = 1.0           # the public code's ``mask``: weight of the regulariser
    vae_weight: float = 1.0           # weight of the advantage-filtered VAE reconstruction
    policy_noise: float = 0.2
    noise_clip: float = 0.5
    policy_freq: int = 2
    expl_noise: float = 0.1
    vae_kl_weight: float = 0.5
    detach_target: bool = False       # True: no gradient through VAE(s, pi(s)) (public code keeps it)
    #: the VAE action the regulariser may pick: "recon" = VAE(s, pi(s)), pi's action encoded and decoded
    #: (public code); "prior" = decode(s, z) with z ~ N(0, I) clipped to [-0.5, 0.5] (BCQ-style generation
    #: from the state alone; a fixed target, not the public code)
    vae_target: str = "recon"
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
            z = torch.randn(obs.shape[0], self.latent, device=obs.device).clamp(-0.5, 0.5)
        return torch.tanh(self.dec(torch.cat([obs, z], -1)))


class A2PR(Algorithm):
    name = "a2pr"

    def __init__(self, obs_dim: int, act_dim: int, cfg: A2PRConfig | None = None) -> None:
        super().__init__(obs_dim, act_dim)
        self.cfg = c = cfg or A2PRConfig()
        if c.vae_target not in ("recon", "prior"):
            raise ValueError(f"A2PRConfig.vae_target must be 'recon' or 'prior', got {c.vae_target!r}")
        if c.vae_target == "prior" and c.detach_target:
            raise ValueError("A2PRConfig: detach_target applies to vae_target='recon' only (the 'prior' target "
                             "decode(s, z) carries no gradient to pi); set one of them")
        self.actor = DeterministicActor(obs_dim, act_dim, c.actor_hidden_dims)
        self.target_actor = copy.deepcopy(self.actor).requires_grad_(False)
        self.critic = EnsembleCritic(obs_dim, act_dim, c.critic_hidden_dims, c.num_critics)
        self.target_critic = copy.deepcopy(self.critic).requires_grad_(False)
        self.value = ValueNet(obs_dim, c.value_hidden_dims)
        self.vae = VAE(obs_dim, act_dim, c.vae_hidden_dims)
        self._q1_head = torch.tensor([0])  # the public code's advantages and actor use Q1 alone
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

    def _q1(self, obs: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        """``Q_1(s, a)`` ``[B]``, computing only that member of the critic ensemble."""
        return self.critic(obs, action, heads=self._q1_head)[0]

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

        # ---- critic (TD3: clipped double Q with target-policy smoothing)
        with torch.no_grad():
            noise = (torch.randn_like(action) * c.policy_noise).clamp(-c.noise_clip, c.noise_clip)
            next_a = (self.target_actor(next_obs) + noise).clamp(-1.0, 1.0)
            y = reward + discount * self.target_critic(next_obs, next_a).min(0).values
        q = self.critic(obs, action)
        critic_loss = ((q - y) ** 2).mean(1).sum()
        self._step("critic", critic_loss)

        # ---- value: V(s) -> min(y, r + gamma * min_i Q_i(s', a')) with the updated online critics
        with torch.no_grad():
            v_target = torch.minimum(y, reward + discount * self.critic(next_obs, next_a).min(0).values)
        v = self.value(obs)
        value_loss = ((v - v_target) ** 2).mean()
        self._step("value", value_loss)
        v = v.detach()  # the advantages below use V before its step (as the public code does)

        # ---- VAE on the dataset actions with positive advantage
        with torch.no_grad():
            q1_data = self._q1(obs, action)
            w = c.vae_weight * (q1_data > v).float()
        recon, mu, log_std = self.vae(obs, action)
        recon_loss = (w.unsqueeze(-1) * (recon - action) ** 2).mean()
        kl = (-0.5 * (1 + 2 * log_std - mu.pow(2) - (2 * log_std).exp())).mean()
        vae_loss = recon_loss + c.vae_kl_weight * kl
        self._step("vae", vae_loss)
        metrics = {"critic_loss": float(critic_loss.detach()), "value_loss": float(value_loss.detach()),
                   "vae_loss": float(vae_loss.detach()), "q": float(q.detach().mean()),
                   "positive_adv_frac": float((q1_data > v).float().mean())}

        self.num_updates += 1
        if int(self.num_updates) % c.policy_freq == 0:
            self.critic.requires_grad_(False)
            self.vae.requires_grad_(False)  # the gradient still flows through the VAE into pi
            pi = self.actor(obs)
            q_pi = self._q1(obs, pi)
            lmbda = c.alpha / q_pi.abs().mean().detach().clamp_min(1e-6)
            if c.vae_target == "prior":
                with torch.no_grad():
                    recon_pi = self.vae.decode(obs)
            else:
                recon_pi, _, _ = self.vae(obs, pi.detach() if c.detach_target else pi)
                if c.detach_target:
                    recon_pi = recon_pi.detach()
            with torch.no_grad():
                q1_recon = self._q1(obs, recon_pi)
                use_vae = q1_recon >= q1_data
                weight = c.reg_weight * ((q1_recon >= v) | (q1_data > v)).float()
            target = torch.where(use_vae.unsqueeze(-1), recon_pi, action)
            reg = (weight.unsqueeze(-1) * (pi - target) ** 2).mean()
            actor_loss = -lmbda * q_pi.mean() + reg
            self._step("actor", actor_loss)
            self.critic.requires_grad_(True)
            self.vae.requires_grad_(True)
            polyak_update(self.target_actor, self.actor, c.tau)
            polyak_update(self.target_critic, self.critic, c.tau)
            metrics.update(actor_loss=float(actor_loss.detach()), reg_loss=float(reg.detach()),
                           vae_target_frac=float(use_vae.float().mean()), mask_frac=float((weight > 0).float().mean()))
        return metrics
