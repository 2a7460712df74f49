"""The policy contract shared by every policy (BC, diffusion, CARP, ...).

A :class:`Policy` is an ``nn.Module`` that

- trains from sequence batches: ``loss(batch) -> (loss, metrics)`` where ``batch`` is a
  ``TensorDict`` with ``("obs", key)`` ``[B, To, ...]`` and ``"action"`` ``[B, H, A]`` (the
  window starts at the first observation step, Diffusion Policy's convention);
- samples whole action chunks: ``sample_actions(obs, num_samples=N) -> [B, N, H, A]`` in the
  environment's (unnormalised) action units, encoding the observation once for all N;
- acts step by step: ``act(obs) -> [B, A]`` pops from a per-batch action queue that is refilled
  with the executed part ``[To-1 : To-1+Ta]`` of a fresh chunk when empty; ``reset()`` clears it;
- saves and loads itself: ``save_pretrained(dir)`` writes ``config.json`` (type, config,
  shape_meta, normaliser spec) and ``model.safetensors``; ``Policy.from_pretrained(dir)``
  rebuilds the right subclass. The normaliser is a submodule, so a checkpoint is self-contained.

Observations given to ``sample_actions`` / ``act`` are dicts of arrays or tensors shaped
``[B, To, ...]`` (low-dimensional keys float, image keys uint8 HWC as the environments emit
them). Images are converted to float CHW in [0, 1] here; encoders do the rest.
"""
from __future__ import annotations

import dataclasses
import json
import os
from collections import deque
from pathlib import Path
from typing import Any, ClassVar, Mapping

import numpy as np
import torch
from tensordict import TensorDict
from torch import nn

from robotrl.data.normalizers import Normalizer
from robotrl.utils.atomic import atomic_path

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"


def is_image_key(key: str) -> bool:
    """A key names a camera image iff it ends with ``image`` (see docs/conventions.md)."""
    return key.endswith("image")


@dataclasses.dataclass
class PolicyConfig:
    """Fields every policy has. Subclasses add their own (dataclasses refuse unknown keys)."""

    n_obs_steps: int = 2
    horizon: int = 16
    n_action_steps: int = 8
    obs_keys: tuple[str, ...] = ("state",)

    def __post_init__(self) -> None:
        self.obs_keys = tuple(self.obs_keys)
        if self.n_obs_steps < 1 or self.horizon < 1 or self.n_action_steps < 1:
            raise ValueError(f"{type(self).__name__}: n_obs_steps, horizon and n_action_steps must be >= 1")
        if self.n_obs_steps - 1 + self.n_action_steps > self.horizon:
            raise ValueError(
                f"{type(self).__name__}: n_obs_steps - 1 + n_action_steps = "
                f"{self.n_obs_steps - 1 + self.n_action_steps} exceeds horizon {self.horizon}"
            )

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "PolicyConfig":
        """Build from a mapping; an unknown key is an error that lists the known ones."""
        from robotrl.utils.config import dataclass_from_dict

        return dataclass_from_dict(cls, d, noun="config key")

    def to_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        return {k: list(v) if isinstance(v, tuple) else v for k, v in out.items()}


class Policy(nn.Module):
    """Base class: see the module docstring for the contract."""

    name: ClassVar[str] = "base"
    config_class: ClassVar[type[PolicyConfig]] = PolicyConfig
    #: training stages run in order by the trainer (CARP: tokenizer, then transformer)
    stages: ClassVar[tuple[str, ...]] = ("main",)

    def __init__(self, config: PolicyConfig, shape_meta: Mapping[str, Any], normalizer: Normalizer | None = None):
        super().__init__()
        self.config = config
        self.shape_meta = _check_shape_meta(shape_meta, config.obs_keys)
        self.normalizer = normalizer if normalizer is not None else Normalizer()
        self._queue: deque[torch.Tensor] = deque()
        self.stage = self.stages[0]

    # ----------------------------------------------------------------- shapes
    @property
    def action_dim(self) -> int:
        return int(self.shape_meta["action"][0])

    @property
    def device(self) -> torch.device:
        for p in self.parameters():
            return p.device
        return torch.device("cpu")

    # ----------------------------------------------------------------- normalisation
    def fit_normalizer(self, store: Any, obs_mode: str = "minmax", action_mode: str = "minmax") -> None:
        """Fit action and low-dimensional observation statistics from an EpisodeStore."""
        self.normalizer.fit_key("action", store["action"], action_mode)
        for key in self.config.obs_keys:
            if not is_image_key(key):
                self.normalizer.fit_key(f"obs/{key}", store[f"obs/{key}"], obs_mode)

    def prepare_obs(self, obs: Mapping[str, Any]) -> dict[str, torch.Tensor]:
        """Dict of ``[B, To, ...]`` arrays -> normalised float tensors (images CHW in [0, 1])."""
        out: dict[str, torch.Tensor] = {}
        dev = self.device
        for key in self.config.obs_keys:
            if key not in obs:
                raise KeyError(f"{self.name} policy expects observation key {key!r}; got keys {sorted(obs.keys())}")
            x = torch.as_tensor(np.asarray(obs[key]) if not torch.is_tensor(obs[key]) else obs[key], device=dev)
            expected = tuple(self.shape_meta["obs"][key])
            if x.ndim == len(expected) + 1:  # no history axis: [B, ...] -> [B, 1, ...]
                x = x.unsqueeze(1)
            if tuple(x.shape[2:]) != expected:
                raise ValueError(
                    f"{self.name} policy: observation {key!r} expected shape [B, To, {', '.join(map(str, expected))}],"
                    f" got {tuple(x.shape)}"
                )
            if x.shape[1] < self.config.n_obs_steps:
                raise ValueError(
                    f"{self.name} policy: observation {key!r} has {x.shape[1]} history steps, "
                    f"needs n_obs_steps={self.config.n_obs_steps}"
                )
            x = x[:, -self.config.n_obs_steps :]
            if is_image_key(key):
                x = x.float().div(255.0).movedim(-1, -3)  # [B, To, C, H, W]
            else:
                x = self.normalizer.normalize(f"obs/{key}", x.float())
            out[key] = x
        return out

    def unnormalize_action(self, a: torch.Tensor) -> torch.Tensor:
        """Normalised actions -> env units; clipped to the data's range under min-max normalisation."""
        if self.normalizer.modes.get("action") == "minmax":
            a = a.clamp(-1.0, 1.0)
        return self.normalizer.unnormalize("action", a)

    def batch_obs(self, batch: TensorDict) -> dict[str, torch.Tensor]:
        return self.prepare_obs({k: batch["obs", k] for k in self.config.obs_keys})

    # ----------------------------------------------------------------- training hooks
    def set_stage(self, stage: str) -> None:
        """Select what ``loss`` trains (only multi-stage policies care)."""
        if stage not in self.stages:
            raise ValueError(f"{self.name} policy has stages {self.stages}, not {stage!r}")
        self.stage = stage

    def stage_steps(self, stage: str, total_steps: int) -> int:
        """Gradient steps spent in ``stage`` when the run has ``total_steps`` in all."""
        return total_steps

    def optim_groups(self, stage: str) -> tuple[list[torch.nn.Parameter], dict[str, Any]]:
        """Parameters trained in ``stage`` and optimiser overrides (e.g. ``{"lr": 3e-4}``)."""
        return [p for p in self.parameters() if p.requires_grad], {}

    # ----------------------------------------------------------------- contract
    def loss(self, batch: TensorDict) -> tuple[torch.Tensor, dict[str, float]]:
        raise NotImplementedError(f"{type(self).__name__} must implement loss()")

    def sample_actions(self, obs: Mapping[str, Any], num_samples: int = 1, return_features: bool = False):
        """``[B, N, H, A]`` candidate chunks in env units (observation encoded once for all N).

        With ``return_features=True`` also the policy's own feature per candidate ``[B, N, F]``
        (what test-time verifiers score): diffusion, the denoiser's last hidden state at the
        final denoising step; CARP, the transformer's last hidden state over the chunk's tokens.
        """
        raise NotImplementedError(f"{type(self).__name__} must implement sample_actions()")

    @torch.no_grad()
    def predict_chunk(self, obs: Mapping[str, Any]) -> torch.Tensor:
        """The executed part of one sampled chunk: ``[B, Ta, A]``."""
        chunk = self.sample_actions(obs, num_samples=1)[:, 0]
        start = self.config.n_obs_steps - 1
        return chunk[:, start : start + self.config.n_action_steps]

    @torch.no_grad()
    def act(self, obs: Mapping[str, Any]) -> torch.Tensor:
        """One action per batch element, from the queue (refilled with a new chunk when empty)."""
        if not self._queue:
            chunk = self.predict_chunk(obs)  # [B, Ta, A]
            self._queue.extend(chunk.unbind(1))
        return self._queue.popleft()

    def reset(self) -> None:
        """Forget queued actions (call at the start of every episode)."""
        self._queue.clear()

    # ----------------------------------------------------------------- persistence
    def save_pretrained(self, directory: str | os.PathLike) -> Path:
        """Write ``config.json`` + ``model.safetensors`` to ``directory`` atomically."""
        from safetensors.torch import save_file

        directory = Path(directory)
        meta = {
            "type": self.name,
            "config": self.config.to_dict(),
            "shape_meta": _jsonable(self.shape_meta),
            "normalizer": self.normalizer.spec(),
        }
        with atomic_path(directory) as tmp:
            tmp.mkdir(parents=True, exist_ok=True)
            state = {k: v.detach().cpu().contiguous() for k, v in self.state_dict().items() if torch.is_tensor(v)}
            save_file(state, str(tmp / WEIGHTS_NAME))
            (tmp / CONFIG_NAME).write_text(json.dumps(meta, indent=2))
        return directory

    @classmethod
    def from_pretrained(cls, directory: str | os.PathLike, map_location: str = "cpu") -> "Policy":
        """Rebuild the policy saved in ``directory`` (the subclass is read from config.json)."""
        from safetensors.torch import load_file

        from robotrl.policies.factory import get_policy_class

        directory = Path(directory)
        cfg_path = directory / CONFIG_NAME
        if not cfg_path.is_file():
            raise FileNotFoundError(f"no policy checkpoint at {directory}: missing {CONFIG_NAME}")
        meta = json.loads(cfg_path.read_text())
        for key in ("type", "config", "shape_meta", "normalizer"):
            if key not in meta:
                raise KeyError(f"{cfg_path}: missing key {key!r} (expected type, config, shape_meta, normalizer)")
        klass = get_policy_class(meta["type"])
        if cls is not Policy and not issubclass(klass, cls):
            raise TypeError(f"{directory} holds a {meta['type']!r} policy, not a {cls.__name__}")
        config = klass.config_class.from_dict(meta["config"])
        policy = klass(config, meta["shape_meta"], Normalizer.from_spec(meta["normalizer"]))
        weights = directory / WEIGHTS_NAME
        if not weights.is_file():
            raise FileNotFoundError(f"no weights at {weights}")
        state = load_file(str(weights), device=map_location)
        missing, unexpected = policy.load_state_dict(state, strict=False)
        if missing or unexpected:
            raise ValueError(f"{weights}: weights do not match the {meta['type']} policy: missing {missing}, unexpected {unexpected}")
        return policy.to(map_location)


def _check_shape_meta(shape_meta: Mapping[str, Any], obs_keys: tuple[str, ...]) -> dict[str, Any]:
    if "obs" not in shape_meta or "action" not in shape_meta:
        raise ValueError(f"shape_meta needs 'obs' and 'action' entries, got keys {sorted(shape_meta)}")
    obs = {k: [int(s) for s in v] for k, v in dict(shape_meta["obs"]).items()}
    missing = [k for k in obs_keys if k not in obs]
    if missing:
        raise KeyError(f"policy obs_keys {missing} not in the data's observation keys {sorted(obs)}")
    return {"obs": {k: obs[k] for k in obs_keys}, "action": [int(s) for s in shape_meta["action"]]}


def _jsonable(x: Any) -> Any:
    if isinstance(x, Mapping):
        return {k: _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    return x


def shape_meta_from_store(store: Any, obs_keys: tuple[str, ...] | list[str]) -> dict[str, Any]:
    """``{"obs": {key: per-step shape}, "action": [A]}`` from an EpisodeStore."""
    obs = {}
    for key in obs_keys:
        if f"obs/{key}" not in store:
            raise KeyError(f"dataset has no observation key 'obs/{key}'; it has {sorted(store.keys())}")
        obs[key] = list(store[f"obs/{key}"].shape[1:])
    return {"obs": obs, "action": list(store["action"].shape[1:])}
