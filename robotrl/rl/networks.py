"""Actor and critic networks shared by the online and offline algorithms.

* :class:`EnsembleCritic` evaluates ``E`` Q-networks in one batched matmul per layer
  (weights ``[E, in, out]``), so a 10-critic ensemble costs about one bigger matmul, not 10 calls.
* :class:`TanhGaussianActor` (SAC, CQL) and :class:`DeterministicActor` (TD3, TD3+BC, A2PR)
  output actions in ``[-1, 1]`` (IQL has its own Gaussian policy: tanh mean, state-independent std).
"""
from __future__ import annotations

import math
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from robotrl.nn.mlp import ACTIVATIONS, MLP

__all__ = ["VectorizedLinear", "EnsembleMLP", "EnsembleCritic", "TanhGaussianActor", "DeterministicActor", "ValueNet"]


class VectorizedLinear(nn.Module):
    """``E`` independent linear layers applied to ``[E, B, in]`` in one ``baddbmm``."""

    def __init__(self, in_features: int, out_features: int, ensemble_size: int) -> None:
        super().__init__()
        self.in_features, self.out_features, self.ensemble_size = in_features, out_features, ensemble_size
        self.weight = nn.Parameter(torch.empty(ensemble_size, in_features, out_features))
        self.bias = nn.Parameter(torch.empty(ensemble_size, 1, out_features))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        # the default nn.Linear init, per member
        for e in range(self.ensemble_size):
            nn.init.kaiming_uniform_(self.weight[e].T, a=math.sqrt(5))
        bound = 1.0 / math.sqrt(self.in_features)
        nn.init.uniform_(self.bias, -bound, bound)

    def forward(self, x: torch.Tensor, heads: torch.Tensor | None = None) -> torch.Tensor:
        """``x`` [E, B, in] (or [len(heads), B, in] with ``heads``: only those members are computed)."""
        if heads is None:
            return torch.baddbmm(self.bias, x, self.weight)
        return torch.baddbmm(self.bias[heads], x, self.weight[heads])


class EnsembleLayerNorm(nn.Module):
    """LayerNorm over the features of ``[E, B, h]`` with a separate affine transform per member."""

    def __init__(self, features: int, ensemble_size: int, eps: float = 1e-5) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(ensemble_size, 1, features))
        self.bias = nn.Parameter(torch.zeros(ensemble_size, 1, features))
        self.eps = eps

    def forward(self, x: torch.Tensor, heads: torch.Tensor | None = None) -> torch.Tensor:
        w, b = (self.weight, self.bias) if heads is None else (self.weight[heads], self.bias[heads])
        return F.layer_norm(x, x.shape[-1:], eps=self.eps) * w + b


class EnsembleMLP(nn.Module):
    """``E`` MLPs with the same shape evaluated together: ``[E, B, in] -> [E, B, out]``."""

    def __init__(self, in_dim: int, hidden_dims: Sequence[int], out_dim: int, ensemble_size: int,
                 activation: str = "relu", layer_norm: bool = False) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        d = in_dim
        for h in hidden_dims:
            layers.append(VectorizedLinear(d, h, ensemble_size))
            if layer_norm:
                layers.append(EnsembleLayerNorm(h, ensemble_size))
            layers.append(ACTIVATIONS[activation]())
            d = h
        layers.append(VectorizedLinear(d, out_dim, ensemble_size))
        self.net = nn.Sequential(*layers)
        self.ensemble_size = ensemble_size

    def forward(self, x: torch.Tensor, heads: torch.Tensor | None = None) -> torch.Tensor:
        """``[E, B, in] -> [E, B, out]``; with ``heads`` (member indices) only those members run."""
        if heads is None:
            return self.net(x)
        for layer in self.net:
            x = layer(x, heads) if isinstance(layer, (VectorizedLinear, EnsembleLayerNorm)) else layer(x)
        return x


class EnsembleCritic(nn.Module):
    """``Q_1..Q_E(s, a)``; ``forward(obs [B, O], act [B, A]) -> [E, B]``."""

    def __init__(self, obs_dim: int, act_dim: int, hidden_dims: Sequence[int] = (256, 256), num_critics: int = 2,
                 layer_norm: bool = False, activation: str = "relu") -> None:
        super().__init__()
        self.num_critics = num_critics
        self.net = EnsembleMLP(obs_dim + act_dim, hidden_dims, 1, num_critics, activation, layer_norm)

    def forward(self, obs: torch.Tensor, act: torch.Tensor, heads: torch.Tensor | None = None) -> torch.Tensor:
        """``[E, B]``, or ``[len(heads), B]`` computing only the critics in ``heads`` (e.g. a target's random pair)."""
        x = torch.cat([obs, act], dim=-1)
        if x.dim() == 2:
            x = x.unsqueeze(0).expand(self.num_critics if heads is None else len(heads), *x.shape)
        return self.net(x, heads).squeeze(-1)


class ValueNet(nn.Module):
    """State value ``V(s)``: ``[B, O] -> [B]``."""

    def __init__(self, obs_dim: int, hidden_dims: Sequence[int] = (256, 256), layer_norm: bool = False,
                 activation: str = "relu") -> None:
        super().__init__()
        self.net = MLP(obs_dim, hidden_dims, 1, activation=activation, layer_norm=layer_norm)

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return self.net(obs).squeeze(-1)


class TanhGaussianActor(nn.Module):
    """``a = tanh(u)``, ``u ~ N(mu(s), sigma(s))``, with the exact log-density of ``a``.

    ``state_independent_std=True`` uses a learned log-std vector (IQL's Gaussian policy style).
    """

    def __init__(self, obs_dim: int, act_dim: int, hidden_dims: Sequence[int] = (256, 256), layer_norm: bool = False,
                 log_std_min: float = -5.0, log_std_max: float = 2.0, state_independent_std: bool = False,
                 dropout: float = 0.0) -> None:
        super().__init__()
        self.state_independent_std = state_independent_std
        out = act_dim if state_independent_std else 2 * act_dim
        self.net = MLP(obs_dim, hidden_dims, out, layer_norm=layer_norm, dropout=dropout)
        self.log_std = nn.Parameter(torch.zeros(act_dim)) if state_independent_std else None
        self.log_std_min, self.log_std_max = log_std_min, log_std_max
        self.act_dim = act_dim

    def dist_params(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.net(obs)
        if self.state_independent_std:
            mu, log_std = h, self.log_std.expand_as(h)
        else:
            mu, log_std = h.chunk(2, dim=-1)
        log_std = log_std.clamp(self.log_std_min, self.log_std_max)
        return mu, log_std

    def forward(self, obs: torch.Tensor, deterministic: bool = False,
                need_log_prob: bool = True) -> tuple[torch.Tensor, torch.Tensor | None]:
        mu, log_std = self.dist_params(obs)
        if deterministic:
            u = mu
        else:
            u = mu + torch.randn_like(mu) * log_std.exp()
        a = torch.tanh(u)
        if not need_log_prob:
            return a, None
        return a, _tanh_normal_log_prob(u, mu, log_std)

    def log_prob(self, obs: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        """``log pi(a|s)`` of given actions in ``[-1, 1]`` (clipped slightly inside for atanh)."""
        mu, log_std = self.dist_params(obs)
        a = action.clamp(-1 + 1e-6, 1 - 1e-6)
        u = torch.atanh(a)
        return _tanh_normal_log_prob(u, mu, log_std)


def _tanh_normal_log_prob(u: torch.Tensor, mu: torch.Tensor, log_std: torch.Tensor) -> torch.Tensor:
    lp = -0.5 * ((u - mu) / log_std.exp()) ** 2 - log_std - 0.5 * math.log(2 * math.pi)
    # log |d tanh(u)/du| = 2 (log 2 - u - softplus(-2u)), numerically stable
    corr = 2.0 * (math.log(2.0) - u - F.softplus(-2.0 * u))
    return (lp - corr).sum(-1)


class DeterministicActor(nn.Module):
    """``a = tanh(f(s))`` (TD3 and its offline variants)."""

    def __init__(self, obs_dim: int, act_dim: int, hidden_dims: Sequence[int] = (256, 256),
                 layer_norm: bool = False) -> None:
        super().__init__()
        self.net = MLP(obs_dim, hidden_dims, act_dim, layer_norm=layer_norm)

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.net(obs))
