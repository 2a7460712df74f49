"""Conservative Q-Learning, CQL(H) (Kumar et al., NeurIPS 2020), on a SAC backbone.

Each critic minimises its TD error plus ``cql_alpha * (logsumexp_a Q(s, a) - Q(s, a_data))``, the
log-sum-exp estimated by importance sampling over ``num_random`` uniform actions and as many
policy actions at ``s`` and ``s'`` (the paper's ``CQL(H)``), so Q is pushed down on actions the
dataset does not support and up on those it does. The actor and temperature are SAC's.
Defaults follow the paper / CORL's locomotion settings (alpha 10, 10 sampled actions, policy lr
3e-5, no entropy in the backup).
"""
from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from typing import Any

import torch

from robotrl.rl.base import Algorithm, adam, polyak_update
from robotrl.rl.networks import EnsembleCritic, TanhGaussianActor

__all__ = ["CQLConfig", "CQL"]


@dataclass
class CQLConfig:
    hidden_dims: tuple[int, ...] = (256, 256)
    actor_lr: float = 3e-5
    critic_lr: float = 3e-4
    alpha_lr: float = 3e-4
    gamma: float = 0.99
    tau: float = 0.005
    cql_alpha: float = 10.0        # weight of the conservative term
    num_random: int = 10           # sampled actions per state for the log-sum-exp
    cql_temp: float = 1.0
    target_entropy: float | None = None
    backup_entropy: bool = False
    num_critics: int = 2
    layer_norm: bool = False
    normalize_obs: bool = False
    normalize_reward: bool = False
    max_steps: int = 1_000_000
    batch_size: int = 256


class CQL(Algorithm):
    name = "cql"

    def __init__(self, obs_dim: int, act_dim: int, cfg: CQLConfig | None = None) -> None:
        super().__init__(obs_dim, act_dim)
        self.cfg = c = cfg or CQLConfig()
        self.actor = TanhGaussianActor(obs_dim, act_dim, c.hidden_dims)
        self.critic = EnsembleCritic(obs_dim, act_dim, c.hidden_dims, c.num_critics, layer_norm=c.layer_norm)
        self.target_critic = copy.deepcopy(self.critic).requires_grad_(False)
        self.log_alpha = torch.nn.Parameter(torch.zeros(()))
        self.target_entropy = float(-act_dim if c.target_entropy is None else c.target_entropy)
        self.optimizers = {
            "actor": adam(self.actor.parameters(), lr=c.actor_lr),
            "critic": adam(self.critic.parameters(), lr=c.critic_lr),
            "alpha": adam([self.log_alpha], lr=c.alpha_lr),
        }

    def policy_action(self, obs: torch.Tensor, deterministic: bool) -> torch.Tensor:
        return self.actor(obs, deterministic=deterministic, need_log_prob=False)[0]

    def _q_many(self, obs: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        """Q of ``[N, M, A]`` actions at ``[N, O]`` states -> ``[E, N, M]``."""
        N, M, _ = actions.shape
        o = obs.unsqueeze(1).expand(N, M, obs.shape[-1]).reshape(N * M, -1)
        return self.critic(o, actions.reshape(N * M, -1)).reshape(-1, N, M)

    def _pi_many(self, obs: torch.Tensor, m: int) -> tuple[torch.Tensor, torch.Tensor]:
        N = obs.shape[0]
        o = obs.unsqueeze(1).expand(N, m, obs.shape[-1]).reshape(N * m, -1)
        a, logp = self.actor(o)
        return a.reshape(N, m, -1).detach(), logp.reshape(N, m).detach()

    def update(self, batch: Any) -> dict[str, float]:
        c = self.cfg
        obs, next_obs = self.batch_obs(batch), self.batch_obs(batch, next=True)
        action = batch["action"].float()
        reward, discount = self.batch_reward(batch), self.batch_discount(batch, c.gamma)
        N, A = action.shape

        # ---- actor and temperature (SAC)
        alpha = self.log_alpha.exp().detach()
        self.critic.requires_grad_(False)
        pi, logp = self.actor(obs)
        actor_loss = (alpha * logp - self.critic(obs, pi).min(0).values).mean()
        opt = self.optimizers["actor"]
        opt.zero_grad(set_to_none=True)
        actor_loss.backward()
        opt.step()
        self.critic.requires_grad_(True)
        alpha_loss = -(self.log_alpha * (logp.detach() + self.target_entropy)).mean()
        opt = self.optimizers["alpha"]
        opt.zero_grad(set_to_none=True)
        alpha_loss.backward()
        opt.step()

        # ---- critic: TD + conservative term
        with torch.no_grad():
            next_a, next_logp = self.actor(next_obs)
            target_q = self.target_critic(next_obs, next_a).min(0).values
            if c.backup_entropy:
                target_q = target_q - alpha * next_logp
            y = reward + discount * target_q
        q = self.critic(obs, action)                                    # [E, N]
        td_loss = ((q - y) ** 2).mean(1).sum()
        M = c.num_random
        rand_a = torch.empty(N, M, A).uniform_(-1.0, 1.0)
        pi_a, pi_logp = self._pi_many(obs, M)
        next_pi_a, next_pi_logp = self._pi_many(next_obs, M)
        rand_density = A * math.log(0.5)                                # log of the uniform density on [-1, 1]^A
        cat = torch.cat([
            self._q_many(obs, rand_a) - rand_density,
            self._q_many(obs, pi_a) - pi_logp,
            self._q_many(obs, next_pi_a) - next_pi_logp,
        ], dim=2)                                                       # [E, N, 3M]
        lse = c.cql_temp * torch.logsumexp(cat / c.cql_temp, dim=2)
        cql_gap = (lse - q).mean(1)                                     # [E]
        cql_loss = c.cql_alpha * cql_gap.sum()
        loss = td_loss + cql_loss
        opt = self.optimizers["critic"]
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        polyak_update(self.target_critic, self.critic, c.tau)
        self.num_updates += 1
        return {"critic_loss": float(td_loss.detach()), "cql_gap": float(cql_gap.detach().mean()),
                "actor_loss": float(actor_loss.detach()), "alpha": float(alpha), "q": float(q.detach().mean())}
