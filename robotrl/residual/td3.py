"""Residual TD3 (ResFiT-style): the algorithm that trains a :class:`ResidualPolicy`'s actor.

Reads top to bottom: hyper-parameters in :class:`ResidualTD3Config`, the n-step target with the
minimum over a random pair of target heads (:func:`nstep_td_target`), then ``update`` = one
critic step (+ one actor step when asked), Polyak averaging of the target critic and actor.

Batches come from :class:`robotrl.data.replay.MixedSampler` (50 % relabelled demonstrations,
50 % online) and use the library keys plus the base action as an observation key:
``("obs", "state")``, ``("obs", "base_action")`` (normalised), ``"action"`` (the executed
normalised action ``clamp(base + residual)``), ``"reward"``, ``"discount"`` (``gamma**k``, 0 after
a termination), ``("next", "obs", "state")``, ``("next", "obs", "base_action")``.

The critic ``Q([s, a_base], a)`` is an ensemble of ``num_critics`` LayerNorm MLP heads evaluated
in one batched matmul (:class:`robotrl.rl.networks.EnsembleCritic`; the target critic computes only
the drawn pair). Deviations from the method note: for a CPU budget, smaller networks (2x256) and a
larger actor learning rate (1e-4) by default; and the optional ``target_bounds`` clamp of the TD
target (off by default), which robosuite Lift needed (see :class:`ResidualTD3Config`).

With image inputs (``ResidualConfig.image_keys``) the batch also holds ``("obs", <image key>)``
and ``("next", "obs", <image key>)`` (uint8, newest frame); both are encoded by the policy's
shared :class:`robotrl.residual.encoder.ConvEncoder` with random-shift augmentation. The encoder
is trained by the critic loss (its parameters are in the critic optimiser); the actor reads
detached features, as in DrQ-v2.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from robotrl.rl.base import adam, polyak_update
from robotrl.rl.networks import EnsembleCritic

__all__ = ["ResidualTD3Config", "ResidualTD3", "nstep_td_target", "random_pair"]


@dataclass
class ResidualTD3Config:
    """Residual TD3 defaults (method note ``resfit.md``; network sizes scaled for CPU)."""

    critic_hidden_dims: tuple[int, ...] = (256, 256)
    num_critics: int = 10
    num_min_critics: int = 2          # target: min over a random subset of this size
    critic_lr: float = 3e-4
    actor_lr: float = 1e-4
    gamma: float = 0.99
    tau: float = 0.005
    n_step: int = 3
    target_noise: float = 0.1         # target-policy smoothing std (normalised action units)
    target_noise_clip: float = 0.2
    grad_clip: float = 1.0
    actor_update_every: int = 4       # one actor update per this many critic updates
    #: (low, high) clamp of the TD target, e.g. ``(0.0, 1.0)`` for a 0/1 success reward that ends the
    #: episode (every return lies in [0, 1]). Not in the method note: with sparse reward the pessimistic
    #: min over a random pair of heads is a fixed point below zero (Q = gamma^n (Q - ~0.56 * head spread)),
    #: measured at Q ~ -0.19 on robosuite Lift's online states; ``None`` entries leave that side open.
    target_bounds: tuple[float | None, float | None] | None = None


def random_pair(num_heads: int, k: int = 2, generator: torch.Generator | None = None) -> torch.Tensor:
    """``k`` distinct head indices drawn uniformly (REDQ / ResFiT target subset)."""
    return torch.randperm(num_heads, generator=generator)[:k]


def nstep_td_target(reward: torch.Tensor, discount: torch.Tensor, target_q: torch.Tensor,
                    heads: torch.Tensor, bounds: tuple[float | None, float | None] | None = None) -> torch.Tensor:
    """``y = R_n + discount * min_{i in heads} Q'_i(s_{t+n}, a')``, clamped to ``bounds`` when given.

    ``reward`` [B]: the discounted n-step reward sum; ``discount`` [B]: ``gamma**k`` or 0 after a
    termination (as the replay buffer returns it); ``target_q`` [E, B]; ``heads``: indices into E.
    """
    y = reward + discount * target_q[heads].min(0).values
    if bounds is not None:
        y = y.clamp(min=bounds[0], max=bounds[1])
    return y


class ResidualTD3(nn.Module):
    """Critic ensemble + target networks + optimisers around a ResidualPolicy's actor."""

    name = "residual_td3"

    def __init__(self, policy: Any, cfg: ResidualTD3Config | None = None) -> None:
        super().__init__()
        self.cfg = c = cfg or ResidualTD3Config()
        if c.target_bounds is not None:
            if len(c.target_bounds) != 2:
                raise ValueError(f"target_bounds must be (low, high) with None for an open side, got {c.target_bounds!r}")
            lo, hi = c.target_bounds
            if lo is not None and hi is not None and lo >= hi:
                raise ValueError(f"target_bounds low must be < high, got {c.target_bounds!r}")
        if c.num_min_critics < 1 or c.num_min_critics > c.num_critics:
            raise ValueError(f"num_min_critics must be in [1, num_critics={c.num_critics}], got {c.num_min_critics}")
        self.policy = policy
        S, A = policy.feature_dim, policy.action_dim
        self.critic = EnsembleCritic(S + A, A, c.critic_hidden_dims, c.num_critics, layer_norm=True)
        self.target_critic = copy.deepcopy(self.critic).requires_grad_(False)
        self.target_actor = copy.deepcopy(policy.actor).requires_grad_(False)
        self.optimizers = {
            "critic": adam(list(self.critic.parameters()) + list(policy.encoders.parameters()),
                                       lr=c.critic_lr),
            "actor": adam(policy.actor.parameters(), lr=c.actor_lr),
        }
        self.num_updates = 0

    def _inputs(self, batch: Any, next: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        pre = ("next", "obs") if next else ("obs",)
        obs = {"state": batch[pre + ("state",)].float()}
        for k in self.policy.config.image_keys:
            obs[k] = batch[pre + (k,)]
        s = self.policy.features(obs, augment=True)
        b = batch[pre + ("base_action",)].float()
        return s, b

    def q(self, s: torch.Tensor, b: torch.Tensor, a: torch.Tensor, target: bool = False,
          heads: torch.Tensor | None = None) -> torch.Tensor:
        return (self.target_critic if target else self.critic)(torch.cat([s, b], -1), a, heads)

    def update(self, batch: Any, update_actor: bool | None = None) -> dict[str, float]:
        """One critic step; an actor step too when ``update_actor`` (default: every ``actor_update_every``)."""
        c = self.cfg
        if update_actor is None:
            update_actor = self.num_updates % c.actor_update_every == 0
        s, b = self._inputs(batch)
        with torch.no_grad():
            s2, b2 = self._inputs(batch, next=True)
        a = batch["action"].float()
        r = batch["reward"].float().reshape(-1)
        disc = batch["discount"].float().reshape(-1)
        with torch.no_grad():
            res2 = self.target_actor(s2, b2)
            noise = (torch.randn_like(res2) * c.target_noise).clamp(-c.target_noise_clip, c.target_noise_clip)
            a2 = self.policy.combine(b2, res2 + noise)
            heads = random_pair(c.num_critics, c.num_min_critics)
            # only the drawn target heads are computed ([k, B]); the min is over all of them
            y = nstep_td_target(r, disc, self.q(s2, b2, a2, target=True, heads=heads), torch.arange(len(heads)),
                                c.target_bounds)
        q = self.q(s, b, a)
        critic_loss = ((q - y) ** 2).mean(1).sum()
        opt = self.optimizers["critic"]
        opt.zero_grad(set_to_none=True)
        critic_loss.backward()
        if c.grad_clip:
            nn.utils.clip_grad_norm_(opt.param_groups[0]["params"], c.grad_clip)
        opt.step()
        m = {"critic_loss": float(critic_loss.detach()), "q": float(q.detach().mean()), "target": float(y.mean())}
        if update_actor:
            self.critic.requires_grad_(False)
            s = s.detach()  # the actor does not train the shared image encoder
            res = self.policy.actor(s, b)
            actor_loss = -self.q(s, b, self.policy.combine(b, res)).mean()
            opt = self.optimizers["actor"]
            opt.zero_grad(set_to_none=True)
            actor_loss.backward()
            if c.grad_clip:
                nn.utils.clip_grad_norm_(self.policy.actor.parameters(), c.grad_clip)
            opt.step()
            self.critic.requires_grad_(True)
            polyak_update(self.target_actor, self.policy.actor, c.tau)
            m.update(actor_loss=float(actor_loss.detach()), residual_abs=float(res.detach().abs().mean()))
        polyak_update(self.target_critic, self.critic, c.tau)
        self.num_updates += 1
        return m

    def checkpoint(self) -> dict[str, Any]:
        return {"critic": self.critic.state_dict(), "target_critic": self.target_critic.state_dict(),
                "target_actor": self.target_actor.state_dict(), "actor": self.policy.actor.state_dict(),
                "encoders": self.policy.encoders.state_dict(),
                "optimizers": {k: o.state_dict() for k, o in self.optimizers.items()}, "num_updates": self.num_updates}

    def restore(self, blob: dict[str, Any]) -> None:
        self.critic.load_state_dict(blob["critic"])
        self.target_critic.load_state_dict(blob["target_critic"])
        self.target_actor.load_state_dict(blob["target_actor"])
        self.policy.actor.load_state_dict(blob["actor"])
        self.policy.encoders.load_state_dict(blob.get("encoders", {}))
        for k, o in self.optimizers.items():
            o.load_state_dict(blob["optimizers"][k])
        self.num_updates = int(blob["num_updates"])
