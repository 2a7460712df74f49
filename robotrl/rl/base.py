"""The Algorithm contract and the few helpers every RL algorithm shares.

An algorithm is an ``nn.Module`` with

* ``update(batch: TensorDict) -> dict[str, float]``: one gradient step (critic, actor, ...);
* ``act(obs, deterministic=False) -> np.ndarray``: actions in ``[-1, 1]`` for raw observations
  (``{"state": [N, D]}``, ``[N, D]`` or ``[D]``);
* ``state_dict()`` / ``load_state_dict()``: networks, target networks, optimisers and counters,
  so a training loop can checkpoint and resume without knowing which algorithm it runs.

Batches use the library's keys: ``("obs", "state")``, ``"action"``, ``"reward"``,
``("next", "obs", "state")``, ``"terminated"`` and optionally ``"discount"`` (the factor of the
bootstrap value, ``gamma**k`` for an n-step return and 0 after a termination, as
:class:`robotrl.data.replay.ReplayBuffer` returns it); without ``"discount"`` it is
``gamma * (1 - terminated)``.

Observations are normalised inside the algorithm (``obs_mean`` / ``obs_std`` buffers, identity by
default) so a checkpoint is self-contained and ``act`` takes raw observations.
"""
from __future__ import annotations

from typing import Any, Mapping

import numpy as np
import torch
from torch import nn

__all__ = ["Algorithm", "polyak_update", "config_from_dict"]


def adam(params: Any, lr: float, **kwargs: Any) -> torch.optim.Adam:
    """``torch.optim.Adam`` with the fused kernel (one kernel for all tensors, CPU or CUDA).

    For the small MLPs of RL the optimiser step is a visible part of an update: the fused step
    is about 3x faster than the default per-tensor loop on this CPU. Same algorithm and defaults.
    """
    params = list(params)
    try:
        return torch.optim.Adam(params, lr=lr, fused=True, **kwargs)
    except (RuntimeError, TypeError):  # a device or dtype without a fused kernel
        return torch.optim.Adam(params, lr=lr, **kwargs)


def polyak_update(target: nn.Module, source: nn.Module, tau: float) -> None:
    """``target <- (1 - tau) target + tau source`` for every parameter (in place, no grad)."""
    with torch.no_grad():
        tp = list(target.parameters())
        sp = list(source.parameters())
        torch._foreach_lerp_(tp, sp, tau)


def config_from_dict(cls: type, values: Mapping[str, Any] | None, where: str = "algo") -> Any:
    """Build the dataclass ``cls`` from ``values``, refusing unknown keys (a typo fails at start)."""
    from robotrl.utils.config import dataclass_from_dict

    values = {k: tuple(v) if isinstance(v, list) else v for k, v in dict(values or {}).items()}
    return dataclass_from_dict(cls, values, f"{where} ({cls.__name__})")


class Algorithm(nn.Module):
    """Base class: observation normaliser, ``act``, and a ``state_dict`` that includes optimisers."""

    name = "algorithm"
    obs_key = "state"

    def __init__(self, obs_dim: int, act_dim: int) -> None:
        super().__init__()
        self.obs_dim, self.act_dim = int(obs_dim), int(act_dim)
        self.register_buffer("obs_mean", torch.zeros(self.obs_dim))
        self.register_buffer("obs_std", torch.ones(self.obs_dim))
        self.register_buffer("num_updates", torch.zeros((), dtype=torch.long))
        self.optimizers: dict[str, torch.optim.Optimizer] = {}

    # ------------------------------------------------------------------ observations
    def set_obs_stats(self, mean: np.ndarray | torch.Tensor, std: np.ndarray | torch.Tensor, eps: float = 1e-3) -> None:
        """Normalise observations with these statistics from now on (e.g. the offline dataset's)."""
        mean = torch.as_tensor(np.asarray(mean), dtype=torch.float32).reshape(self.obs_dim)
        std = torch.as_tensor(np.asarray(std), dtype=torch.float32).reshape(self.obs_dim)
        self.obs_mean.copy_(mean)
        self.obs_std.copy_(std + eps)

    def normalize_obs(self, obs: torch.Tensor) -> torch.Tensor:
        return (obs - self.obs_mean) / self.obs_std

    def batch_obs(self, batch: Any, next: bool = False) -> torch.Tensor:
        key = ("next", "obs", self.obs_key) if next else ("obs", self.obs_key)
        return self.normalize_obs(batch[key].float())

    def batch_discount(self, batch: Any, gamma: float) -> torch.Tensor:
        if "discount" in batch.keys():
            return batch["discount"].float().reshape(-1)
        return gamma * (1.0 - batch["terminated"].float().reshape(-1))

    @staticmethod
    def batch_reward(batch: Any) -> torch.Tensor:
        return batch["reward"].float().reshape(-1)

    # ------------------------------------------------------------------ acting
    def policy_action(self, obs: torch.Tensor, deterministic: bool) -> torch.Tensor:
        """Actions ``[B, A]`` in ``[-1, 1]`` for *normalised* observations ``[B, O]``."""
        raise NotImplementedError

    @torch.no_grad()
    def act(self, obs: Any, deterministic: bool = False) -> np.ndarray:
        """Actions in ``[-1, 1]`` for raw observations (dict with ``"state"``, ``[N, D]`` or ``[D]``)."""
        if isinstance(obs, Mapping):
            obs = obs[self.obs_key]
        x = torch.as_tensor(np.asarray(obs), dtype=torch.float32)
        single = x.dim() == 1
        if single:
            x = x.unsqueeze(0)
        if x.shape[-1] != self.obs_dim:
            raise ValueError(f"{self.name}.act: expected observations [..., {self.obs_dim}], got shape {tuple(x.shape)}")
        a = self.policy_action(self.normalize_obs(x), deterministic).clamp(-1.0, 1.0).cpu().numpy()
        return a[0] if single else a

    # ------------------------------------------------------------------ checkpoints
    def state_dict(self, *args: Any, **kwargs: Any) -> dict[str, Any]:  # type: ignore[override]
        if args or kwargs:  # called as a child module: behave like nn.Module
            return super().state_dict(*args, **kwargs)
        return {
            "model": super().state_dict(),
            "optimizers": {k: o.state_dict() for k, o in self.optimizers.items()},
            "extra": self.extra_state(),
        }

    def load_state_dict(self, state: Mapping[str, Any], strict: bool = True) -> Any:  # type: ignore[override]
        if "model" not in state:  # a plain module state dict
            return super().load_state_dict(state, strict=strict)
        res = super().load_state_dict(state["model"], strict=strict)
        for k, s in state.get("optimizers", {}).items():
            if k in self.optimizers:
                self.optimizers[k].load_state_dict(s)
            elif strict:
                raise KeyError(f"{self.name}: checkpoint has optimiser {k!r}, this algorithm has {sorted(self.optimizers)}")
        self.load_extra_state(state.get("extra") or {})
        return res

    def extra_state(self) -> dict[str, Any]:
        """Non-tensor state to checkpoint (override)."""
        return {}

    def load_extra_state(self, state: Mapping[str, Any]) -> None:
        """Restore :meth:`extra_state` (override)."""
