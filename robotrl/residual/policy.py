"""``ResidualPolicy``: a frozen base policy (BC, diffusion, CARP, ...) plus a per-step residual actor.

The base runs its action chunks open-loop exactly as it was trained (one chunk every
``n_action_steps`` steps, tracked per batch row); at every step the residual actor sees the
current low-dimensional observation and the base action and outputs a correction::

    a = clamp(a_base + scale * tanh(f([s, a_base])), -1, 1)      (normalised action space)

The residual's last layer is zero-initialised, so a fresh ``ResidualPolicy`` executes exactly the
base policy's actions (bit for bit). The normalised action space is the base policy's min-max
action normalisation (or the environment's bounds when the base does not normalise min-max).

Saved as one ordinary policy checkpoint (type ``residual``): ``config.json`` holds the base's own
checkpoint metadata and ``model.safetensors`` both networks, so ``robotrl.policies.load_policy``,
``robotrl-eval`` and deployment load the fine-tuned policy like any other.

Per-row episode starts: call ``reset()`` (all rows) or ``reset_envs(rows)``. As a fallback for
evaluators that cannot tell the policy (``robotrl.engine.evaluation.evaluate``), a row whose
observation history holds ``n_obs_steps >= 2`` identical frames (what ``ObservationHistory``
returns right after ``reset``) starts a new base chunk (``auto_episode_starts``; the training
loop, demo relabelling and :func:`robotrl.residual.trainer.evaluate_policy_seeded` reset
explicitly and turn it off, since a robot at rest also repeats frames).
"""
from __future__ import annotations

import dataclasses
from typing import Any, Mapping

import numpy as np
import torch
from torch import nn

from robotrl.data.normalizers import Normalizer
from robotrl.nn.mlp import MLP
from robotrl.policies.base import Policy, PolicyConfig, is_image_key

__all__ = ["ResidualConfig", "ResidualPolicy", "ActionSpaceMismatchError", "check_base_matches_env"]

STATE_KEY = "state"


class ActionSpaceMismatchError(ValueError):
    """The base checkpoint's action (or observation) space does not match the environment."""


@dataclasses.dataclass
class ResidualConfig(PolicyConfig):
    """Residual actor on top of a frozen base policy.

    ``base`` is the base checkpoint's ``config.json`` content (type, config, shape_meta,
    normaliser spec): enough to rebuild it before the weights are loaded. ``n_obs_steps`` and
    ``obs_keys`` are the base's; ``horizon = n_obs_steps`` and ``n_action_steps = 1`` (the
    residual acts every step).
    """

    n_action_steps: int = 1
    base: dict = dataclasses.field(default_factory=dict)
    state_dim: int = 0
    hidden_dims: tuple[int, ...] = (256, 256)
    layer_norm: bool = True
    action_scale: float = 0.2
    #: the z-scored state is clipped to +-state_clip: online states leave the demonstrations' range
    #: (a tipped cube's quaternion, a joint the demos barely moved) and would otherwise reach
    #: hundreds of standard deviations (seen on robosuite Lift); 0 turns clipping off
    state_clip: float = 10.0
    #: action dimensions the residual may correct (empty: all); the others are the base's exactly,
    #: exploration noise included. E.g. ``(0, 1, 2, 6)`` on robosuite's OSC_POSE (dx, dy, dz, gripper):
    #: a small constant bias on the delta-rotation dims integrates into a large gripper tilt that the
    #: base never saw, and the critic cannot judge it from data where rotation is always 0
    residual_dims: tuple[int, ...] = ()
    #: camera keys the residual actor and critic also see (newest frame, one shared ConvEncoder each)
    image_keys: tuple[str, ...] = ()
    encoder_channels: int = 32
    encoder_feature_dim: int = 64
    shift_pad: int = 4                  # random-shift augmentation of training batches (pixels)

    def __post_init__(self) -> None:
        super().__post_init__()
        self.hidden_dims = tuple(self.hidden_dims)
        self.image_keys = tuple(self.image_keys)
        self.residual_dims = tuple(int(d) for d in self.residual_dims)
        bad = [k for k in self.image_keys if not is_image_key(k) or k not in self.obs_keys]
        if bad:
            raise ValueError(f"ResidualConfig.image_keys {bad}: must be image keys (ending in 'image') among "
                             f"obs_keys {self.obs_keys}")
        if self.n_action_steps != 1:
            raise ValueError(f"ResidualConfig.n_action_steps must be 1 (a correction every step), got {self.n_action_steps}")
        if not self.base or "type" not in self.base:
            raise ValueError("ResidualConfig.base must hold the base checkpoint's config.json (type, config, ...)")
        if self.action_scale <= 0:
            raise ValueError(f"ResidualConfig.action_scale must be > 0, got {self.action_scale}")


class ResidualActor(nn.Module):
    """``[features, a_base] -> scale * tanh(MLP(...))``, last layer zero-initialised.

    ``features`` = the normalised state (and, with images, the shared encoders' outputs).
    """

    def __init__(self, feature_dim: int, act_dim: int, hidden_dims: tuple[int, ...], layer_norm: bool, scale: float):
        super().__init__()
        self.net = MLP(feature_dim + act_dim, hidden_dims, act_dim, layer_norm=layer_norm)
        last = self.net[-1]
        nn.init.zeros_(last.weight)
        nn.init.zeros_(last.bias)
        self.scale = float(scale)

        #: 1 on the action dims the residual may correct, 0 elsewhere (not saved: rebuilt from the config)
        self.register_buffer("mask", torch.ones(act_dim), persistent=False)

    def forward(self, state: torch.Tensor, base_action: torch.Tensor) -> torch.Tensor:
        return self.scale * torch.tanh(self.net(torch.cat([state, base_action], -1))) * self.mask


class ResidualPolicy(Policy):
    """Frozen base + residual actor (see the module docstring)."""

    name = "residual"
    config_class = ResidualConfig

    def __init__(self, config: ResidualConfig, shape_meta: Mapping[str, Any], normalizer: Normalizer | None = None,
                 base: Policy | None = None):
        super().__init__(config, shape_meta, normalizer)
        if base is None:  # rebuilding from a checkpoint: weights are loaded afterwards
            from robotrl.policies.factory import get_policy_class

            meta = config.base
            klass = get_policy_class(meta["type"])
            base = klass(klass.config_class.from_dict(meta["config"]), meta["shape_meta"],
                         Normalizer.from_spec(meta["normalizer"]))
        self.base = base.eval().requires_grad_(False)
        if STATE_KEY not in self.shape_meta["obs"]:
            raise KeyError(f"residual policy needs a low-dimensional {STATE_KEY!r} observation; obs_keys={config.obs_keys}")
        self.state_dim = int(self.shape_meta["obs"][STATE_KEY][0])
        from robotrl.residual.encoder import ConvEncoder

        self.encoders = nn.ModuleDict({
            k: ConvEncoder(tuple(self.shape_meta["obs"][k]), config.encoder_channels, config.encoder_feature_dim)
            for k in config.image_keys})
        self.feature_dim = self.state_dim + config.encoder_feature_dim * len(config.image_keys)
        self.actor = ResidualActor(self.feature_dim, self.action_dim, config.hidden_dims, config.layer_norm,
                                   config.action_scale)
        if config.residual_dims:
            bad = [d for d in config.residual_dims if not 0 <= d < self.action_dim]
            if bad:
                raise ValueError(f"ResidualConfig.residual_dims {bad} out of range for a {self.action_dim}-D action")
            self.actor.mask.zero_()
            self.actor.mask[list(config.residual_dims)] = 1.0
        self._chunk: torch.Tensor | None = None   # [B, Ta, A] normalised base chunk
        self._chunk_env: torch.Tensor | None = None  # the same in env units (exact base actions)
        self._phase: torch.Tensor | None = None   # [B] next index into the chunk
        #: detect episode starts from identical history frames (for evaluators that never call
        #: ``reset_envs``); loops that reset explicitly turn it off (a robot at rest repeats frames)
        self.auto_episode_starts = True

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_base(cls, base: Policy, action_low: np.ndarray | None = None, action_high: np.ndarray | None = None,
                  state_mean: np.ndarray | None = None, state_std: np.ndarray | None = None,
                  hidden_dims: tuple[int, ...] = (256, 256), layer_norm: bool = True,
                  action_scale: float = 0.2, image_shapes: Mapping[str, Any] | None = None,
                  state_std_min: float = 1e-2, state_clip: float = 10.0,
                  residual_dims: tuple[int, ...] = (), **image_options: Any) -> "ResidualPolicy":
        """Wrap ``base``; ``action_low/high`` (env bounds) are used when the base does not normalise min-max.

        The residual's own state normaliser is a z-score with ``state_mean`` / ``state_std`` (the
        demonstrations'), each std floored at ``state_std_min`` (state units) and the result clipped
        to ``+-state_clip``: dimensions the demos hardly vary would otherwise blow up online.

        ``image_shapes`` (``{"image": (84, 84, 3)}``) gives the residual actor and critic camera inputs
        (``image_options``: ``encoder_channels``, ``encoder_feature_dim``, ``shift_pad``).
        """
        from robotrl.policies.base import _jsonable

        bc = base.config
        if "state" not in bc.obs_keys and STATE_KEY not in base.shape_meta["obs"]:
            raise KeyError(f"base policy {base.name!r} has no {STATE_KEY!r} observation (obs_keys={bc.obs_keys}); "
                           "the residual actor needs the low-dimensional state")
        meta = {"type": base.name, "config": bc.to_dict(), "shape_meta": _jsonable(base.shape_meta),
                "normalizer": base.normalizer.spec()}
        obs_keys = tuple(bc.obs_keys)
        shape_meta = {"obs": dict(base.shape_meta["obs"]), "action": list(base.shape_meta["action"])}
        image_shapes = dict(image_shapes or {})
        for k, shape in image_shapes.items():
            if not is_image_key(k):
                raise ValueError(f"image_shapes: {k!r} is not an image key (image keys end in 'image')")
            if k in shape_meta["obs"] and tuple(shape_meta["obs"][k]) != tuple(shape):
                raise ValueError(f"image_shapes[{k!r}] = {list(shape)} but the base policy sees {shape_meta['obs'][k]}")
            shape_meta["obs"][k] = [int(x) for x in shape]
            if k not in obs_keys:
                obs_keys = obs_keys + (k,)
        norm = Normalizer()
        if base.normalizer.modes.get("action") == "minmax":
            off, sc = base.normalizer._stats("action")
            norm.set_stats("action", off, sc, "minmax")
        else:
            if action_low is None or action_high is None:
                raise ValueError(f"base policy {base.name!r} does not normalise actions min-max: pass the env's "
                                 "action bounds (action_low, action_high)")
            norm.fit_key("action", np.stack([np.asarray(action_low, np.float64), np.asarray(action_high, np.float64)]),
                         "minmax")
        sd = int(shape_meta["obs"][STATE_KEY][0])
        mean = np.zeros(sd) if state_mean is None else np.asarray(state_mean, np.float64)
        std = np.ones(sd) if state_std is None else np.asarray(state_std, np.float64)
        norm.set_stats("res/state", torch.as_tensor(mean).float(), 1.0 / torch.as_tensor(std).float().clamp_min(float(state_std_min)),
                       "zscore")
        cfg = ResidualConfig(n_obs_steps=bc.n_obs_steps, horizon=bc.n_obs_steps, n_action_steps=1, obs_keys=obs_keys,
                             base=meta, state_dim=sd, hidden_dims=tuple(hidden_dims), layer_norm=layer_norm,
                             action_scale=action_scale, state_clip=float(state_clip), residual_dims=tuple(residual_dims),
                             image_keys=tuple(image_shapes),
                             **image_options)
        return cls(cfg, shape_meta, norm, base=base)

    # ------------------------------------------------------------------ pieces used by the RL loop
    def normalize_action(self, a_env: torch.Tensor) -> torch.Tensor:
        return self.normalizer.normalize("action", a_env.float())

    def unnormalize_action(self, a: torch.Tensor) -> torch.Tensor:
        return self.normalizer.unnormalize("action", a.clamp(-1.0, 1.0))

    def normalize_state(self, state: torch.Tensor) -> torch.Tensor:
        z = self.normalizer.normalize("res/state", state.float())
        c = self.config.state_clip
        return z.clamp(-c, c) if c > 0 else z

    def features(self, obs: torch.Tensor | Mapping[str, torch.Tensor], augment: bool = False,
                 generator: torch.Generator | None = None) -> torch.Tensor:
        """Actor/critic input ``[B, feature_dim]`` from the newest frame: raw ``state`` ``[B, D]`` (a tensor,
        or a dict also holding the ``image_keys`` as ``[B, H, W, C]`` uint8). ``augment``: random shift."""
        if torch.is_tensor(obs):
            obs = {STATE_KEY: obs}
        parts = [self.normalize_state(obs[STATE_KEY])]
        pad = self.config.shift_pad if augment else 0
        for k, enc in self.encoders.items():
            if k not in obs:
                raise KeyError(f"residual policy: observation {k!r} missing (keys: {sorted(obs)})")
            parts.append(enc(torch.as_tensor(obs[k], device=self.device), shift_pad=pad, generator=generator))
        return parts[0] if len(parts) == 1 else torch.cat(parts, -1)

    def residual(self, obs: torch.Tensor | Mapping[str, torch.Tensor], base_action: torch.Tensor,
                 actor: nn.Module | None = None) -> torch.Tensor:
        """Correction ``[B, A]`` for the newest raw observation (see :meth:`features`) and normalised base actions."""
        return (actor or self.actor)(self.features(obs), base_action)

    def combine(self, base_action: torch.Tensor, residual: torch.Tensor) -> torch.Tensor:
        """Executed normalised action: ``clamp(base + residual, -1, 1)`` (residual masked to ``residual_dims``)."""
        return (base_action + residual * self.actor.mask).clamp(-1.0, 1.0)

    def _refresh_rows(self, obs: Mapping[str, Any], B: int) -> torch.Tensor:
        cfg = self.config
        if self._chunk is None or self._chunk.shape[0] != B:
            return torch.ones(B, dtype=torch.bool)
        need = self._phase >= self._chunk.shape[1]
        if cfg.n_obs_steps >= 2 and self.auto_episode_starts:  # fallback episode-start detection (see module docstring)
            fresh = torch.ones(B, dtype=torch.bool)
            for k in cfg.obs_keys:
                x = torch.as_tensor(np.asarray(obs[k])) if not torch.is_tensor(obs[k]) else obs[k]
                if x.ndim < 2 + len(self.shape_meta["obs"][k]) or x.shape[1] < 2:
                    fresh[:] = False
                    break
                x = x[:, -cfg.n_obs_steps:]
                x = x.reshape(B, x.shape[1], -1)
                fresh &= (x == x[:, :1]).all(-1).all(-1).cpu()
            need = need | fresh
        return need

    @torch.no_grad()
    def base_step(self, obs: Mapping[str, Any]) -> tuple[torch.Tensor, torch.Tensor]:
        """Advance the open-loop base chunks by one step: ``(normalised [B, A], env units [B, A])``."""
        k0 = self.base.config.obs_keys[0]
        B = int(np.asarray(obs[k0]).shape[0]) if not torch.is_tensor(obs[k0]) else int(obs[k0].shape[0])
        need = self._refresh_rows(obs, B)
        if need.any():
            rows = need.nonzero().squeeze(1)
            sub = {k: _rows(obs[k], rows) for k in self.base.config.obs_keys}
            self.base.eval()
            chunk_env = self.base.predict_chunk(sub).float()  # [b, Ta, A] env units
            if self._chunk is None or self._chunk.shape[0] != B or self._chunk.shape[1] != chunk_env.shape[1]:
                Ta, A = chunk_env.shape[1], chunk_env.shape[2]
                self._chunk_env = torch.zeros(B, Ta, A, device=chunk_env.device)
                self._chunk = torch.zeros(B, Ta, A, device=chunk_env.device)
                self._phase = torch.zeros(B, dtype=torch.long)
            self._chunk_env[rows] = chunk_env
            self._chunk[rows] = self.normalize_action(chunk_env).clamp(-1.0, 1.0)
            self._phase[rows] = 0
        ar = torch.arange(B)
        a_n, a_env = self._chunk[ar, self._phase], self._chunk_env[ar, self._phase]
        self._phase += 1
        return a_n, a_env

    def last_state(self, obs: Mapping[str, Any]) -> torch.Tensor:
        """The newest frame of ``obs["state"]`` as a float tensor ``[B, D]``."""
        x = obs[STATE_KEY]
        x = torch.as_tensor(np.asarray(x)) if not torch.is_tensor(x) else x
        x = x.float().to(self.device)
        if x.ndim == 3:
            x = x[:, -1]
        if x.ndim != 2 or x.shape[-1] != self.state_dim:
            raise ValueError(f"residual policy: observation 'state' expected [B, (To,) {self.state_dim}], got {tuple(x.shape)}")
        return x

    def last_obs(self, obs: Mapping[str, Any]) -> dict[str, torch.Tensor]:
        """The newest frame of ``state`` and of the residual's ``image_keys`` (what :meth:`features` reads)."""
        out = {STATE_KEY: self.last_state(obs)}
        for k in self.config.image_keys:
            x = obs[k]
            x = torch.as_tensor(np.asarray(x)) if not torch.is_tensor(x) else x
            out[k] = x[:, -1] if x.ndim == 5 else x
        return out

    def executed(self, base_n: torch.Tensor, base_env: torch.Tensor, res: torch.Tensor) -> torch.Tensor:
        """Env-unit action; rows with no effective correction return the base's action bit for bit."""
        a = self.combine(base_n, res)
        return torch.where((a == base_n).all(-1, keepdim=True), base_env, self.unnormalize_action(a))

    # ------------------------------------------------------------------ Policy contract
    def loss(self, batch: Any) -> tuple[torch.Tensor, dict[str, float]]:
        raise NotImplementedError("the residual policy is trained with RL: robotrl-train algo=residual base_policy=<dir>")

    @torch.no_grad()
    def predict_chunk(self, obs: Mapping[str, Any]) -> torch.Tensor:
        """One step ``[B, 1, A]`` (env units): advances the base chunks and adds the correction."""
        base_n, base_env = self.base_step(obs)
        res = self.residual(self.last_obs(obs), base_n)
        return self.executed(base_n, base_env, res).unsqueeze(1)

    @torch.no_grad()
    def sample_actions(self, obs: Mapping[str, Any], num_samples: int = 1) -> torch.Tensor:
        """``[B, N, H, A]``: the deterministic corrected action of this step, repeated (advances the base)."""
        a = self.predict_chunk(obs)[:, 0]
        return a[:, None, None].expand(-1, num_samples, self.config.horizon, -1)

    def reset(self) -> None:
        super().reset()
        self._chunk = self._chunk_env = self._phase = None

    def reset_envs(self, rows: Any) -> None:
        """Start a new base chunk for these batch rows at their next step (new episodes)."""
        if self._phase is not None:
            self._phase[torch.as_tensor(list(rows), dtype=torch.long)] = self._chunk.shape[1]

    def optim_groups(self, stage: str) -> tuple[list[torch.nn.Parameter], dict[str, Any]]:
        return list(self.actor.parameters()) + list(self.encoders.parameters()), {}


def _rows(x: Any, rows: torch.Tensor) -> Any:
    if torch.is_tensor(x):
        return x[rows.to(x.device)]
    return np.asarray(x)[rows.numpy()]


def check_base_matches_env(base: Policy, env: Any, where: str = "base policy") -> None:
    """Raise :class:`ActionSpaceMismatchError` naming both shapes when ``base`` cannot drive ``env``."""
    space = env.action_space
    A = tuple(int(s) for s in base.shape_meta["action"])
    if tuple(space.shape) != A:
        raise ActionSpaceMismatchError(
            f"{where}: the checkpoint's action shape is {list(A)} but the environment "
            f"{getattr(env.spec, 'id', env)} has action space shape {list(space.shape)}; "
            "fine-tune a base policy trained on this environment")
    for k, shape in base.shape_meta["obs"].items():
        if is_image_key(k) and k not in env.observation_space.spaces:
            raise ActionSpaceMismatchError(f"{where}: needs observation {k!r}; env has {sorted(env.observation_space.spaces)}"
                                           " (set env.image=true for image policies)")
        if k not in env.observation_space.spaces:
            raise ActionSpaceMismatchError(f"{where}: needs observation {k!r}; env has {sorted(env.observation_space.spaces)}")
        got = tuple(env.observation_space[k].shape)
        if got != tuple(shape):
            raise ActionSpaceMismatchError(f"{where}: observation {k!r} has shape {list(shape)} in the checkpoint but "
                                           f"{list(got)} in the environment")
