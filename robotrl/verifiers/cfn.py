"""TACO's pseudo-count verifier: a Coin Flipping Network (CFN, Lobel et al. 2023) on policy features.

For training sample ``i`` the CFN ``f`` regresses a fixed Rademacher vector ``c_i in {-1, +1}^d``
(``d = 20``; ``c_i`` is a hash of ``(seed, i)``, so it never changes between epochs). A point seen
``n`` times is pulled towards the mean of ``n`` independent coin vectors, whose squared norm is
``d / n`` in expectation, hence the pseudo-count ``n(h) ~= d / ||f(h)||^2``. At test time the
candidate with the largest pseudo-count -- the one most like the (successful) training data in
the policy's own feature space -- is executed.

Network (``CFN``): ``x = feature_scale * h`` -> Linear -> GELU -> LayerNorm -> ``num_blocks``
pre-norm residual MLP blocks (``expansion``x wide, dropout) -> LayerNorm -> Linear(d), plus a frozen
random prior network whose output is standardised by running statistics (RND style) and added to
the output: unseen inputs keep a random output of norm ~ sqrt(d) (pseudo-count ~ 1), which the
trained part only cancels where there was data.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Mapping

import numpy as np
import torch
from torch import nn

from robotrl.verifiers.base import Verifier, VerifierConfig, VerifierMismatchError


@dataclasses.dataclass
class CFNConfig(VerifierConfig):
    """CFN shapes. ``feature_dim`` is the policy's feature size (checked when wrapping)."""

    feature_dim: int = 0
    hidden_dim: int = 256
    num_blocks: int = 3
    expansion: int = 4
    dropout: float = 0.1
    out_dim: int = 20
    feature_scale: float = 10.0
    prior_scale: float = 1.0
    coin_seed: int = 0

    def __post_init__(self) -> None:
        if self.feature_dim < 1:
            raise ValueError(f"CFNConfig.feature_dim must be >= 1 (the policy's feature size), got {self.feature_dim}")
        if self.hidden_dim < 1 or self.num_blocks < 0 or self.expansion < 1 or self.out_dim < 1:
            raise ValueError(f"CFNConfig: bad sizes hidden_dim={self.hidden_dim} num_blocks={self.num_blocks} "
                             f"expansion={self.expansion} out_dim={self.out_dim}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"CFNConfig.dropout must be in [0, 1), got {self.dropout}")


def rademacher_coins(indices: np.ndarray | torch.Tensor, dim: int, seed: int = 0) -> torch.Tensor:
    """``{-1, +1}`` float32 ``[len(indices), dim]``: coin ``j`` of sample ``i`` is a hash of ``(seed, i, j)``
    (splitmix64), so each sample keeps its own target whatever the batch order."""
    idx = np.asarray(indices.cpu() if torch.is_tensor(indices) else indices, dtype=np.uint64).reshape(-1, 1)
    with np.errstate(over="ignore"):
        x = idx * np.uint64(dim) + np.arange(dim, dtype=np.uint64)[None, :]
        x = x + np.uint64(seed) * np.uint64(0x9E3779B97F4A7C15) + np.uint64(0x632BE59BD9B4E019)
        x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        x = x ^ (x >> np.uint64(31))
    bits = (x >> np.uint64(17)) & np.uint64(1)
    return torch.from_numpy(bits.astype(np.float32) * 2.0 - 1.0)


class RunningMeanStd(nn.Module):
    """Per-dimension running mean / variance (parallel Welford update), stored as buffers."""

    def __init__(self, dim: int, eps: float = 1e-4) -> None:
        super().__init__()
        self.register_buffer("mean", torch.zeros(dim))
        self.register_buffer("var", torch.ones(dim))
        self.register_buffer("count", torch.tensor(eps))

    @torch.no_grad()
    def update(self, x: torch.Tensor) -> None:
        x = x.reshape(-1, x.shape[-1]).float()
        n = torch.tensor(float(x.shape[0]), device=x.device)
        if n == 0:
            return
        bmean, bvar = x.mean(0), x.var(0, unbiased=False)
        delta = bmean - self.mean
        tot = self.count + n
        self.mean += delta * n / tot
        m2 = self.var * self.count + bvar * n + delta.pow(2) * self.count * n / tot
        self.var.copy_(m2 / tot)
        self.count.copy_(tot)

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.var.clamp_min(1e-8).sqrt()


class _ResidualBlock(nn.Module):
    def __init__(self, dim: int, expansion: int, dropout: float) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(dim)
        self.fc1 = nn.Linear(dim, dim * expansion)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(dim * expansion, dim)
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.drop(self.fc2(self.drop(self.act(self.fc1(self.norm(x))))))


class CFN(nn.Module):
    """The coin-flipping network ``f(h)`` (trainable part + frozen, standardised random prior)."""

    def __init__(self, cfg: CFNConfig) -> None:
        super().__init__()
        self.cfg = cfg
        d = cfg.hidden_dim
        self.stem = nn.Sequential(nn.Linear(cfg.feature_dim, d), nn.GELU(), nn.LayerNorm(d))
        self.blocks = nn.Sequential(*[_ResidualBlock(d, cfg.expansion, cfg.dropout) for _ in range(cfg.num_blocks)])
        self.head = nn.Sequential(nn.LayerNorm(d), nn.Linear(d, cfg.out_dim))
        self.prior = nn.Sequential(nn.Linear(cfg.feature_dim, d), nn.GELU(), nn.Linear(d, d), nn.GELU(),
                                   nn.Linear(d, cfg.out_dim))
        self.prior.requires_grad_(False)
        self.prior_stats = RunningMeanStd(cfg.out_dim)

    def prior_out(self, x: torch.Tensor, update_stats: bool = False) -> torch.Tensor:
        with torch.no_grad():
            p = self.prior(x)
            if update_stats:
                self.prior_stats.update(p)
            return self.prior_stats.normalize(p)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        """``[..., F]`` features -> ``[..., out_dim]`` coin predictions (prior stats update in train mode)."""
        x = h.float() * self.cfg.feature_scale
        out = self.head(self.blocks(self.stem(x)))
        return out + self.cfg.prior_scale * self.prior_out(x, update_stats=self.training)


class CFNVerifier(Verifier):
    """Pseudo-count verifier (TACO): score = ``out_dim / ||f(h)||^2`` (higher = seen more often)."""

    name = "cfn"
    config_class = CFNConfig
    needs_features = True

    def __init__(self, config: CFNConfig) -> None:
        super().__init__(config)
        self.cfn = CFN(config)

    @property
    def feature_dim(self) -> int:
        return int(self.config.feature_dim)

    def coins(self, indices: np.ndarray | torch.Tensor) -> torch.Tensor:
        """Training targets of samples ``indices``."""
        return rademacher_coins(indices, self.config.out_dim, self.config.coin_seed)

    def pseudo_counts(self, features: torch.Tensor) -> torch.Tensor:
        """``[..., F]`` -> ``[...]`` pseudo-counts ``d / ||f(h)||^2``."""
        if features.shape[-1] != self.feature_dim:
            raise VerifierMismatchError(
                f"CFN verifier expects features of size {self.feature_dim}, got shape {tuple(features.shape)}")
        f = self.cfn(features.to(self._device()))
        return self.config.out_dim / f.pow(2).sum(-1).clamp_min(1e-8)

    def score(self, obs: Mapping[str, Any], actions: torch.Tensor, features: torch.Tensor | None) -> torch.Tensor:
        if features is None:
            raise ValueError("CFN verifier needs the policy's features (sample_actions(..., return_features=True))")
        return self.pseudo_counts(features)

    def check_compatible(self, policy: Any) -> None:
        fdim = getattr(policy, "feature_dim", None)
        if fdim is None:
            raise VerifierMismatchError(
                f"CFN verifier needs a policy with per-candidate features (a feature_dim and "
                f"sample_actions(..., return_features=True)); {type(policy).__name__} has none")
        if int(fdim) != self.feature_dim:
            trained = f" (trained for a {self.config.policy_type!r} policy)" if self.config.policy_type else ""
            raise VerifierMismatchError(
                f"CFN verifier{trained} expects policy features of size {self.feature_dim}, but the "
                f"{getattr(policy, 'name', type(policy).__name__)!r} policy produces features of size {int(fdim)}; "
                f"train a verifier for this policy (robotrl-train verifier=taco policy_checkpoint=...)")

    def _device(self) -> torch.device:
        return next(self.parameters()).device
