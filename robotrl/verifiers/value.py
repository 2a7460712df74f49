"""V-GPS value verifier: a chunk critic ``Q(s, a_{t:t+Ta})`` trained with IQL on the demonstrations.

The critic sees the current low-dimensional observation (the last of the ``To`` history steps,
its keys concatenated) and the *executed* part of a chunk, ``actions[To-1 : To-1+Ta]`` flattened to
``Ta * A`` numbers -- exactly what the policy will do before it replans. Training
(:func:`robotrl.verifiers.train.train_value_verifier`) is IQL on chunk transitions

    Q(s_t, a_{t:t+Ta}) <- sum_{k<Ta} gamma^k r_{t+k} + gamma^Ta (1 - done) V(s_{t+Ta})
    V(s)               <- expectile_tau of min_i Q_target,i(s, a)   (dataset chunks only)

so it never queries Q on chunks outside the data. At test time candidates are scored by the
ensemble minimum of Q; the selection (greedy / softmax with a temperature) is the
:class:`VerifiedPolicy`'s.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Mapping

import numpy as np
import torch
from torch import nn

from robotrl.data.normalizers import Normalizer
from robotrl.nn.mlp import MLP
from robotrl.verifiers.base import Verifier, VerifierConfig, VerifierMismatchError


@dataclasses.dataclass
class ValueConfig(VerifierConfig):
    """Chunk-critic shapes; ``obs_keys``/``obs_dims``/``action_dim``/``n_obs_steps``/``n_action_steps``
    are the policy's (checked when wrapping). ``normalizer`` is the critic's own normaliser spec."""

    obs_keys: tuple[str, ...] = ("state",)
    obs_dims: tuple[int, ...] = ()
    action_dim: int = 0
    n_obs_steps: int = 1
    n_action_steps: int = 1
    hidden_dims: tuple[int, ...] = (256, 256)
    num_critics: int = 2
    layer_norm: bool = True
    normalizer: dict = dataclasses.field(default_factory=dict)

    def __post_init__(self) -> None:
        self.obs_keys = tuple(self.obs_keys)
        self.obs_dims = tuple(int(d) for d in self.obs_dims)
        self.hidden_dims = tuple(int(h) for h in self.hidden_dims)
        if len(self.obs_dims) != len(self.obs_keys):
            raise ValueError(f"ValueConfig: obs_dims {self.obs_dims} must give one size per obs key {self.obs_keys}")
        if any(k.endswith("image") for k in self.obs_keys):
            raise ValueError(f"ValueConfig: the value verifier works on low-dimensional keys only, got {self.obs_keys}")
        if self.action_dim < 1 or self.n_action_steps < 1 or self.n_obs_steps < 1 or self.num_critics < 1:
            raise ValueError(f"ValueConfig: bad sizes action_dim={self.action_dim} n_action_steps={self.n_action_steps} "
                             f"n_obs_steps={self.n_obs_steps} num_critics={self.num_critics}")

    @property
    def obs_dim(self) -> int:
        return int(sum(self.obs_dims))

    @property
    def chunk_dim(self) -> int:
        return self.n_action_steps * self.action_dim


class ValueVerifier(Verifier):
    """Score = ``min_i Q_i(s, executed chunk)`` (an IQL chunk critic)."""

    name = "value"
    config_class = ValueConfig
    needs_features = False

    def __init__(self, config: ValueConfig) -> None:
        super().__init__(config)
        self.normalizer = Normalizer.from_spec(config.normalizer) if config.normalizer else Normalizer()
        c = config
        self.q = nn.ModuleList(
            MLP(c.obs_dim + c.chunk_dim, c.hidden_dims, 1, layer_norm=c.layer_norm) for _ in range(c.num_critics))
        self.v = MLP(c.obs_dim, c.hidden_dims, 1, layer_norm=c.layer_norm)

    # ----------------------------------------------------------------- pieces (normalised inputs)
    def q_values(self, s: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
        """``[E, ...]`` ensemble Q of normalised ``s [..., obs_dim]`` and ``a [..., Ta*A]``."""
        x = torch.cat([s, a], dim=-1)
        return torch.stack([q(x).squeeze(-1) for q in self.q])

    def value(self, s: torch.Tensor) -> torch.Tensor:
        return self.v(s).squeeze(-1)

    def normalize_obs(self, obs: Mapping[str, Any]) -> torch.Tensor:
        """Observation dict (``[B, To, d]`` or ``[B, d]``; env units) -> ``[B, obs_dim]`` (current step)."""
        parts = []
        dev = self._device()
        for key, dim in zip(self.config.obs_keys, self.config.obs_dims):
            if key not in obs:
                raise KeyError(f"value verifier expects observation key {key!r}; got keys {sorted(obs)}")
            x = obs[key]
            x = (x if torch.is_tensor(x) else torch.as_tensor(np.asarray(x))).to(dev).float()
            if x.ndim == 3:
                x = x[:, -1]
            if x.ndim != 2 or x.shape[-1] != dim:
                raise ValueError(f"value verifier: observation {key!r} must be [B, To, {dim}] or [B, {dim}], "
                                 f"got {tuple(x.shape)}")
            parts.append(self.normalizer.normalize(f"obs/{key}", x))
        return torch.cat(parts, dim=-1)

    def executed(self, actions: torch.Tensor) -> torch.Tensor:
        """``[..., H, A]`` env-unit chunks -> normalised executed part ``[..., Ta*A]``."""
        c = self.config
        start = c.n_obs_steps - 1
        if actions.shape[-1] != c.action_dim or actions.shape[-2] < start + c.n_action_steps:
            raise ValueError(f"value verifier: chunks must be [..., H >= {start + c.n_action_steps}, {c.action_dim}], "
                             f"got {tuple(actions.shape)}")
        a = actions[..., start : start + c.n_action_steps, :].to(self._device()).float()
        return self.normalizer.normalize("action", a).flatten(-2)

    # ----------------------------------------------------------------- contract
    @torch.no_grad()
    def score(self, obs: Mapping[str, Any], actions: torch.Tensor, features: torch.Tensor | None) -> torch.Tensor:
        s = self.normalize_obs(obs)  # [B, S]
        a = self.executed(actions)   # [B, N, Ta*A]
        s = s[:, None].expand(-1, a.shape[1], -1)
        return self.q_values(s, a).min(0).values

    def check_compatible(self, policy: Any) -> None:
        c = self.config
        pc = policy.config
        trained = f" (trained for a {c.policy_type!r} policy)" if c.policy_type else ""
        problems = []
        if int(policy.action_dim) != c.action_dim:
            problems.append(f"action size {c.action_dim} != policy's {policy.action_dim}")
        if pc.n_obs_steps != c.n_obs_steps or pc.n_action_steps != c.n_action_steps:
            problems.append(f"(n_obs_steps, n_action_steps) = ({c.n_obs_steps}, {c.n_action_steps}) != policy's "
                            f"({pc.n_obs_steps}, {pc.n_action_steps})")
        shapes = policy.shape_meta["obs"]
        for key, dim in zip(c.obs_keys, c.obs_dims):
            if key not in shapes:
                problems.append(f"observation {key!r} is not among the policy's keys {sorted(shapes)}")
            elif list(shapes[key]) != [dim]:
                problems.append(f"observation {key!r} size {dim} != policy's {list(shapes[key])}")
        if problems:
            raise VerifierMismatchError(f"value verifier{trained} does not fit the "
                                        f"{getattr(policy, 'name', type(policy).__name__)!r} policy: " + "; ".join(problems))

    def meta(self) -> dict[str, Any]:
        self.config.normalizer = self.normalizer.spec()
        return super().meta()

    def _device(self) -> torch.device:
        return next(self.parameters()).device
