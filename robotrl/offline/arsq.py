"""ARSQ: Auto-Regressive Soft Q-learning from suboptimal demonstrations (value-based continuous
control; coarse-to-fine discretisation after CQN). See ``shared/methods/arsq.md``.

Action representation (CQN's "zoom-in"): each of the ``D`` action dimensions starts on ``[-1, 1]``;
at each of ``L`` levels its interval splits into ``B`` bins, one bin is chosen and the interval
zooms into it. The action is the final interval's midpoint, so the decodable actions are exactly
the ``B**L`` bin midpoints per dimension.

Decisions are level-major, ``k = l * D + d`` for ``L * D`` sequential choices. The advantage net
of step ``k`` sees the observation and the *current coarse action* (every dimension's current
midpoint: dimensions before ``d`` already refined to level ``l + 1``, the others at level ``l``)
plus the step's one-hot, and outputs ``B`` raw advantages. Soft normalisation
``A = raw - alpha * logsumexp(raw / alpha)`` makes ``alpha * logsumexp(A / alpha) = 0``, so

    Q(s, a) = V(s) + sum_k A_k(s, coarse_k(a))[bin_k(a)]   and   pi(a|s) = exp((Q(s, a) - V(s)) / alpha)

is exactly the auto-regressive product of the per-step softmaxes (the test checks both). The
critic target needs no action sampling: ``y = r + discount * min(V_1'(s'), V_2'(s'))``.

On demonstration samples (``batch["from_demo"]``) a CQL-style margin pushes the demo bin above the
others at every step: ``relu(alpha_c * logsumexp(A_other / alpha_c) - A_demo)``. Acting takes the
min of the twin advantages per step, samples ``Categorical(A / act_alpha)`` (argmax when
deterministic), zooms and decodes. Data handling (demo buffer = top return-percentile episodes,
fixed demo fraction per batch, offline then online with a UTD ratio, online episodes at least as
good as the demos join the demo buffer) is in :func:`robotrl.engine.rl_trainer.train_algo`.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from robotrl.rl.base import Algorithm, adam, polyak_update

__all__ = ["ARSQConfig", "ARSQ", "CoarseToFine"]


@dataclass
class ARSQConfig:
    levels: int = 3                 # L
    bins: int = 5                   # B
    hidden_dims: tuple[int, ...] = (512, 512, 512)
    activation: str = "tanh"
    output_gain: float = 0.01       # orthogonal init gain of the output layers
    lr: float = 1e-4
    gamma: float = 0.99
    tau: float = 0.005
    alpha: float = 0.01             # soft temperature of the advantage normalisation
    act_alpha: float = 0.01         # sampling temperature when acting (exploration)
    demo_alpha: float = 0.01        # alpha_c of the demo margin
    demo_weight: float = 1.0
    demo_percentile: float = 70.0   # demo buffer = episodes with return >= this percentile
    demo_ratio: float = 0.25        # fraction of demo samples in every batch
    batch_size: int = 256
    grad_clip: float = 10.0


class CoarseToFine:
    """Zoom-in discretisation of ``[-1, 1]^D`` into ``L`` levels of ``B`` bins."""

    def __init__(self, act_dim: int, levels: int, bins: int) -> None:
        self.D, self.L, self.B = act_dim, levels, bins
        self.K = levels * act_dim
        # level of dimension d' in the coarse action of step k = l*D + d: l+1 if d' < d else l
        lvl = torch.empty(self.K, self.D, dtype=torch.long)
        for k in range(self.K):
            l, d = divmod(k, self.D)
            lvl[k] = torch.where(torch.arange(self.D) < d, l + 1, l)
        self.coarse_level = lvl

    def encode(self, action: torch.Tensor) -> torch.Tensor:
        """Bin indices ``[N, D, L]`` of continuous actions ``[N, D]`` (the bins containing them)."""
        a = action.clamp(-1.0, 1.0)
        lo = torch.full_like(a, -1.0)
        width = 2.0
        out = []
        for _ in range(self.L):
            w = width / self.B
            j = torch.floor((a - lo) / w).long().clamp(0, self.B - 1)
            out.append(j)
            lo = lo + j * w
            width = w
        return torch.stack(out, dim=-1)

    def midpoints(self, idx: torch.Tensor) -> torch.Tensor:
        """Midpoints ``[N, D, L+1]`` of each dimension's interval after 0..L zooms."""
        lo = torch.full(idx.shape[:2], -1.0)
        width = 2.0
        mids = [lo + width / 2]
        for l in range(self.L):
            w = width / self.B
            lo = lo + idx[..., l].float() * w
            width = w
            mids.append(lo + width / 2)
        return torch.stack(mids, dim=-1)

    def decode(self, idx: torch.Tensor) -> torch.Tensor:
        """The action ``[N, D]`` of bin indices ``[N, D, L]``: the final interval's midpoint."""
        return self.midpoints(idx)[..., -1]

    def coarse_actions(self, idx: torch.Tensor) -> torch.Tensor:
        """The coarse action ``[N, K, D]`` seen at every step ``k`` (teacher forcing)."""
        mids = self.midpoints(idx)  # [N, D, L+1]
        lvl = self.coarse_level.T.unsqueeze(0).expand(idx.shape[0], self.D, self.K)  # [N, D, K]
        return torch.gather(mids, 2, lvl).transpose(1, 2)

    def step_bins(self, idx: torch.Tensor) -> torch.Tensor:
        """The bin chosen at every step ``k = l*D + d``: ``[N, K]`` (level-major)."""
        return idx.transpose(1, 2).reshape(idx.shape[0], self.K)


def _mlp(in_dim: int, hidden: tuple[int, ...], out_dim: int, activation: str, out_gain: float) -> nn.Sequential:
    acts = {"tanh": nn.Tanh, "relu": nn.ReLU, "elu": nn.ELU, "silu": nn.SiLU}
    layers: list[nn.Module] = []
    d = in_dim
    for h in hidden:
        lin = nn.Linear(d, h)
        nn.init.orthogonal_(lin.weight, gain=nn.init.calculate_gain("tanh" if activation == "tanh" else "relu"))
        nn.init.zeros_(lin.bias)
        layers += [lin, acts[activation]()]
        d = h
    out = nn.Linear(d, out_dim)
    nn.init.orthogonal_(out.weight, gain=out_gain)
    nn.init.zeros_(out.bias)
    layers.append(out)
    return nn.Sequential(*layers)


class ARCritic(nn.Module):
    """One critic: ``V(s)`` and the auto-regressive advantage net ``A_k(s, coarse) -> [B]``."""

    def __init__(self, obs_dim: int, c2f: CoarseToFine, cfg: ARSQConfig) -> None:
        super().__init__()
        self.c2f = c2f
        self.value = _mlp(obs_dim, cfg.hidden_dims, 1, cfg.activation, 1.0)
        self.adv = _mlp(obs_dim + c2f.D + c2f.K, cfg.hidden_dims, c2f.B, cfg.activation, cfg.output_gain)
        self.alpha = cfg.alpha
        self.register_buffer("eye", torch.eye(c2f.K))

    def v(self, obs: torch.Tensor) -> torch.Tensor:
        return self.value(obs).squeeze(-1)

    def raw_adv(self, obs: torch.Tensor, coarse: torch.Tensor, k: torch.Tensor | int) -> torch.Tensor:
        """Raw advantages ``[..., B]`` for obs ``[..., O]``, coarse ``[..., D]`` at step(s) ``k``."""
        step = self.eye[k] if isinstance(k, int) else self.eye[k]
        step = step.expand(*coarse.shape[:-1], self.c2f.K)
        return self.adv(torch.cat([obs, coarse, step], dim=-1))

    def normalize(self, raw: torch.Tensor) -> torch.Tensor:
        return raw - self.alpha * torch.logsumexp(raw / self.alpha, dim=-1, keepdim=True)

    def all_adv(self, obs: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
        """Soft-normalised advantages ``[N, K, B]`` of every step along the action with bins ``idx``."""
        N, K = obs.shape[0], self.c2f.K
        coarse = self.c2f.coarse_actions(idx)                       # [N, K, D]
        o = obs.unsqueeze(1).expand(N, K, obs.shape[-1])
        ks = torch.arange(K)
        return self.normalize(self.raw_adv(o, coarse, ks.unsqueeze(0).expand(N, K)))

    def q(self, obs: torch.Tensor, idx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``Q(s, a) = V(s) + sum_k A_k[bin_k]`` and the advantages ``[N, K, B]``."""
        adv = self.all_adv(obs, idx)
        chosen = torch.gather(adv, 2, self.c2f.step_bins(idx).unsqueeze(-1)).squeeze(-1)
        return self.v(obs) + chosen.sum(-1), adv


class ARSQ(Algorithm):
    name = "arsq"

    def __init__(self, obs_dim: int, act_dim: int, cfg: ARSQConfig | None = None) -> None:
        super().__init__(obs_dim, act_dim)
        self.cfg = c = cfg or ARSQConfig()
        self.c2f = CoarseToFine(act_dim, c.levels, c.bins)
        self.critics = nn.ModuleList([ARCritic(obs_dim, self.c2f, c) for _ in range(2)])
        self.target_critics = copy.deepcopy(self.critics).requires_grad_(False)
        self.optimizers = {"critic": adam(self.critics.parameters(), lr=c.lr)}

    # ------------------------------------------------------------------ acting
    @torch.no_grad()
    def sample_bins(self, obs: torch.Tensor, deterministic: bool, temperature: float | None = None,
                    critics: list[int] | None = None) -> torch.Tensor:
        """Auto-regressive choice of bins ``[N, D, L]``: ``L * D`` serial steps, min over the twins."""
        c2f = self.c2f
        temp = self.cfg.act_alpha if temperature is None else temperature
        N = obs.shape[0]
        idx = torch.zeros(N, c2f.D, c2f.L, dtype=torch.long)
        lo = torch.full((N, c2f.D), -1.0)
        width = torch.full((c2f.D,), 2.0)
        coarse = lo + width / 2
        members = [self.critics[i] for i in (critics if critics is not None else range(len(self.critics)))]
        for k in range(c2f.K):
            l, d = divmod(k, c2f.D)
            adv = torch.stack([m.normalize(m.raw_adv(obs, coarse, k)) for m in members]).min(0).values
            if deterministic:
                j = adv.argmax(-1)
            else:
                j = torch.distributions.Categorical(logits=adv / temp).sample()
            idx[:, d, l] = j
            w = width[d] / c2f.B
            lo[:, d] = lo[:, d] + j.float() * w
            width[d] = w
            coarse = coarse.clone()
            coarse[:, d] = lo[:, d] + w / 2
        return idx

    def policy_action(self, obs: torch.Tensor, deterministic: bool) -> torch.Tensor:
        return self.c2f.decode(self.sample_bins(obs, deterministic))

    def log_prob(self, obs: torch.Tensor, action: torch.Tensor, critic: int = 0) -> torch.Tensor:
        """``log pi(a|s)`` of one critic's auto-regressive policy at temperature ``alpha``."""
        idx = self.c2f.encode(action)
        q, _ = self.critics[critic].q(obs, idx)
        return (q - self.critics[critic].v(obs)) / self.cfg.alpha

    # ------------------------------------------------------------------ learning
    def update(self, batch: Any) -> dict[str, float]:
        c = self.cfg
        obs, next_obs = self.batch_obs(batch), self.batch_obs(batch, next=True)
        idx = self.c2f.encode(batch["action"].float())
        reward, discount = self.batch_reward(batch), self.batch_discount(batch, c.gamma)
        with torch.no_grad():
            v_next = torch.stack([t.v(next_obs) for t in self.target_critics]).min(0).values
            y = reward + discount * v_next
        demo = batch["from_demo"].reshape(-1).bool() if "from_demo" in batch.keys() else None
        td_loss, margin_loss, qs = 0.0, torch.zeros(()), []
        bins = self.c2f.step_bins(idx)  # [N, K]
        for critic in self.critics:
            q, adv = critic.q(obs, idx)
            td_loss = td_loss + ((q - y) ** 2).mean()
            qs.append(q.detach())
            if demo is not None and demo.any():
                a_demo = adv[demo]                                   # [M, K, B]
                b_demo = bins[demo].unsqueeze(-1)                    # [M, K, 1]
                chosen = torch.gather(a_demo, 2, b_demo).squeeze(-1)
                others = a_demo.scatter(2, b_demo, float("-inf"))
                soft_other = c.demo_alpha * torch.logsumexp(others / c.demo_alpha, dim=-1)
                margin_loss = margin_loss + torch.relu(soft_other - chosen).sum(-1).mean()
        loss = td_loss + c.demo_weight * margin_loss
        opt = self.optimizers["critic"]
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if c.grad_clip:
            nn.utils.clip_grad_norm_(self.critics.parameters(), c.grad_clip)
        opt.step()
        polyak_update(self.target_critics, self.critics, c.tau)
        self.num_updates += 1
        return {"critic_loss": float(td_loss.detach()), "demo_margin": float(margin_loss.detach()),
                "q": float(torch.stack(qs).mean()), "target_v": float(v_next.mean())}

    def critic(self, obs: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        """``Q_i(s, a)`` of both critics ``[2, N]`` (the decoded action's bins), for inspection."""
        idx = self.c2f.encode(action)
        return torch.stack([m.q(obs, idx)[0] for m in self.critics])
