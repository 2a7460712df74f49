"""ARSQ: Auto-Regressive Soft Q-learning from suboptimal demonstrations (value-based continuous
control; coarse-to-fine discretisation after CQN). See ``shared/methods/arsq.md``.

Action representation (CQN's "zoom-in"): each of the ``D`` action dimensions starts on ``[-1, 1]``;
at each of ``L`` levels its interval splits into ``B`` bins, one bin is chosen and the interval
zooms into it. The action is the final interval's midpoint, so the decodable actions are exactly
the ``B**L`` bin midpoints per dimension.

Decisions are level-major, ``k = l * D + d`` for ``L * D`` sequential choices. The advantage net
sees the observation and the *current coarse action* (every dimension's current midpoint:
dimensions before ``d`` already refined to level ``l + 1``, the others at level ``l``) and outputs
``K * B`` raw advantages; step ``k`` reads its own ``B``-wide slice (as the public code does).
Soft normalisation
``A = raw - alpha * logsumexp(raw / alpha)`` makes ``alpha * logsumexp(A / alpha) = 0``, so

    Q(s, a) = V(s) + sum_k A_k(s, coarse_k(a))[bin_k(a)]   and   pi(a|s) = exp((Q(s, a) - V(s)) / alpha)

is exactly the auto-regressive product of the per-step softmaxes (the test checks both). The
critic target needs no action sampling: ``y = r + discount * min(V_1'(s'), V_2'(s'))``.

On demonstration samples (``batch["from_demo"]``) a CQL-style term pushes the demo bin above the
others, summed over the ``K`` steps and averaged over the demo samples, in one of the public code's
two forms: ``"lse"`` ``clamp(temp * logsumexp(A_other / temp) - A_demo, clip_min, clip_max)`` or
``"margin"`` ``mean_other clamp(A_other - A_demo, clip_min, clip_max)``. Acting takes the min of the
twin advantages per step, samples ``Categorical(A / act_alpha)`` (argmax when deterministic), zooms
and decodes.

Data handling (:func:`robotrl.engine.rl_trainer.train_algo`), as the public D4RL code: the demo
buffer is the dataset's episodes above a return percentile (default 0: all of them); every batch is
``demo_ratio`` (0.5) demo samples and the rest from the dataset ∪ the online data; optional offline
epochs, then online training at UTD 1; online episodes join the demo buffer only with ``demo_grow``
(the release's ``demo_relabel``, off by default).

Defaults are the public code's generic ones (batch 512, lr 3e-4 for V and A, 3x512 tanh MLPs with
orthogonal init gain sqrt(2) and output gain 0.01, no gradient clipping); its per-dataset settings
(levels, bins, demo-term form / weight / clip) are :data:`PRESETS` / :func:`arsq_preset`.
Source of these facts: the D4RL folder of the ARSQ release (CornellRL/ARSQ), read from a verbatim
copy; nothing copied.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from robotrl.offline.common import dataset_preset
from robotrl.rl.base import Algorithm, adam, polyak_update

__all__ = ["ARSQConfig", "ARSQ", "CoarseToFine", "PRESETS", "arsq_preset"]

#: per-dataset settings of the public D4RL configs (env_cfg/*.yaml)
PRESETS: dict[str, dict[str, Any]] = {
    "hopper-medium-replay": {"levels": 2, "bins": 7, "demo_loss": "margin", "demo_weight": 0.03, "demo_clip_min": 1.0},
    "hopper-medium": {"levels": 2, "bins": 7, "demo_loss": "lse", "demo_weight": 0.5, "demo_clip_min": -1.0},
    "walker2d-medium-replay": {"levels": 1, "bins": 41, "demo_loss": "margin", "demo_weight": 0.1, "demo_clip_min": -1.0},
    "walker2d-medium": {"levels": 1, "bins": 41, "demo_loss": "lse", "demo_weight": 10.0, "demo_clip_min": 0.0},
    "halfcheetah-medium-replay": {"levels": 1, "bins": 41, "demo_loss": "margin", "demo_weight": 0.1,
                                  "demo_clip_min": -1.0},
}


def arsq_preset(dataset: str) -> dict[str, Any]:
    """The public code's settings for a D4RL-style name (``hopper-medium-replay-v2``); ``{}`` if unknown."""
    return dataset_preset(PRESETS, dataset)


@dataclass
class ARSQConfig:
    levels: int = 2                 # L
    bins: int = 7                   # B
    hidden_dims: tuple[int, ...] = (512, 512, 512)
    activation: str = "tanh"
    hidden_gain: float = 2 ** 0.5   # orthogonal init gain of the hidden layers
    output_gain: float = 0.01       # orthogonal init gain of every output layer (V and A)
    lr: float = 3e-4
    gamma: float = 0.99
    tau: float = 0.005
    alpha: float = 0.01             # soft temperature of the advantage normalisation
    act_alpha: float = 0.01         # sampling temperature when acting (exploration)
    demo_loss: str = "lse"          # "lse" (the release's "cql") | "margin"
    demo_alpha: float = 1.0         # temperature of the "lse" form (the release's cql_temp)
    demo_weight: float = 5.0
    demo_clip_min: float = -1.0
    demo_clip_max: float = float("inf")
    demo_percentile: float = 0.0    # demo buffer = episodes with return >= this percentile (0: all)
    demo_ratio: float = 0.5         # fraction of demo samples in every batch
    demo_grow: bool = False         # online episodes with return >= the demos' mean join the demo buffer
    batch_size: int = 512
    grad_clip: float = 0.0          # 0: off

    def __post_init__(self) -> None:
        if self.demo_loss not in ("lse", "margin"):
            raise ValueError(f"ARSQConfig.demo_loss must be 'lse' or 'margin', got {self.demo_loss!r}")


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


def _mlp(in_dim: int, hidden: tuple[int, ...], out_dim: int, activation: str, out_gain: float,
         hidden_gain: float) -> nn.Sequential:
    acts = {"tanh": nn.Tanh, "relu": nn.ReLU, "elu": nn.ELU, "silu": nn.SiLU}
    layers: list[nn.Module] = []
    d = in_dim
    for h in hidden:
        lin = nn.Linear(d, h)
        nn.init.orthogonal_(lin.weight, gain=hidden_gain)
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
        self.value = _mlp(obs_dim, cfg.hidden_dims, 1, cfg.activation, cfg.output_gain, cfg.hidden_gain)
        self.adv = _mlp(obs_dim + c2f.D, cfg.hidden_dims, c2f.K * c2f.B, cfg.activation, cfg.output_gain,
                        cfg.hidden_gain)
        self.alpha = cfg.alpha

    def v(self, obs: torch.Tensor) -> torch.Tensor:
        return self.value(obs).squeeze(-1)

    def raw_adv(self, obs: torch.Tensor, coarse: torch.Tensor, k: torch.Tensor | int) -> torch.Tensor:
        """Raw advantages ``[..., B]`` for obs ``[..., O]``, coarse ``[..., D]`` at step(s) ``k`` (an int, or
        a long tensor shaped like ``coarse[..., 0]``): slice ``k`` of the net's ``K * B`` outputs."""
        full = self.adv(torch.cat([obs, coarse], dim=-1)).unflatten(-1, (self.c2f.K, self.c2f.B))
        if isinstance(k, int):
            return full[..., k, :]
        return torch.gather(full, -2, k[..., None, None].expand(*k.shape, 1, self.c2f.B)).squeeze(-2)

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
                margin_loss = margin_loss + self.demo_term(adv[demo], bins[demo]).mean()
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

    def demo_term(self, adv: torch.Tensor, bins: torch.Tensor) -> torch.Tensor:
        """Per-sample demo term ``[M]`` of advantages ``[M, K, B]`` at the demo bins ``[M, K]`` (see module doc)."""
        c = self.cfg
        chosen = torch.gather(adv, 2, bins.unsqueeze(-1))                       # [M, K, 1]
        if c.demo_loss == "lse":
            others = adv.scatter(2, bins.unsqueeze(-1), float("-inf"))
            soft = c.demo_alpha * torch.logsumexp(others / c.demo_alpha, dim=-1, keepdim=True)
            return (soft - chosen).clamp(c.demo_clip_min, c.demo_clip_max).sum((1, 2))
        diff = (adv - chosen).clamp(c.demo_clip_min, c.demo_clip_max)
        own = min(max(0.0, c.demo_clip_min), c.demo_clip_max)  # the demo bin's own (clamped) 0, taken out again
        return ((diff.sum(-1) - own) / (adv.shape[-1] - 1)).sum(-1)

    def critic(self, obs: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        """``Q_i(s, a)`` of both critics ``[2, N]`` (the decoded action's bins), for inspection."""
        idx = self.c2f.encode(action)
        return torch.stack([m.q(obs, idx)[0] for m in self.critics])
