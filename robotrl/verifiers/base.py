"""The verifier contract: score N candidate action chunks per observation (higher is better).

A :class:`Verifier` is an ``nn.Module`` with a config dataclass. It is rebuilt from
``meta() -> {"type", "config"}`` (JSON) plus its weights, so a :class:`VerifiedPolicy` stores
it inside its own checkpoint, and a standalone verifier saves as ``verifier.json`` +
``verifier.safetensors``.

``score(obs, actions, features) -> [B, N]``:

- ``obs``: the observation dict the policy got (``[B, To, ...]`` arrays / tensors, env units);
- ``actions``: the candidates ``[B, N, H, A]`` in env units;
- ``features``: ``[B, N, F]`` policy features (``None`` unless ``needs_features``).

``check_compatible(policy)`` refuses a policy the verifier was not trained for
(:class:`VerifierMismatchError`, a ``ValueError`` naming what differs).
"""
from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path
from typing import Any, ClassVar, Mapping

import torch
from torch import nn

from robotrl.utils.atomic import atomic_path

VERIFIER_CONFIG_NAME = "verifier.json"
VERIFIER_WEIGHTS_NAME = "verifier.safetensors"


class VerifierMismatchError(ValueError):
    """A verifier does not fit the policy it is asked to verify (feature size, action shape ...)."""


@dataclasses.dataclass
class VerifierConfig:
    """Fields every verifier has: what it was trained for (checked when wrapping a policy)."""

    policy_type: str = ""

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "VerifierConfig":
        """Build from a mapping; an unknown key is an error listing the known ones."""
        from robotrl.utils.config import dataclass_from_dict

        return dataclass_from_dict(cls, d, noun="config key")

    def to_dict(self) -> dict[str, Any]:
        return _jsonable(dataclasses.asdict(self))


class Verifier(nn.Module):
    """Base class: see the module docstring."""

    name: ClassVar[str] = "base"
    config_class: ClassVar[type[VerifierConfig]] = VerifierConfig
    #: whether ``score`` needs the policy's per-candidate features
    needs_features: ClassVar[bool] = False

    def __init__(self, config: VerifierConfig) -> None:
        super().__init__()
        self.config = config

    def score(self, obs: Mapping[str, Any], actions: torch.Tensor, features: torch.Tensor | None) -> torch.Tensor:
        raise NotImplementedError(f"{type(self).__name__} must implement score()")

    def check_compatible(self, policy: Any) -> None:
        raise NotImplementedError(f"{type(self).__name__} must implement check_compatible()")

    # ----------------------------------------------------------------- persistence
    def meta(self) -> dict[str, Any]:
        """JSON-able description from which :func:`verifier_from_meta` rebuilds an empty copy."""
        return {"type": self.name, "config": self.config.to_dict()}

    @classmethod
    def from_meta(cls, meta: Mapping[str, Any]) -> "Verifier":
        return cls(cls.config_class.from_dict(meta["config"]))

    def save_pretrained(self, directory: str | os.PathLike) -> Path:
        """Write ``verifier.json`` + ``verifier.safetensors`` to ``directory`` atomically."""
        from safetensors.torch import save_file

        directory = Path(directory)
        with atomic_path(directory) as tmp:
            tmp.mkdir(parents=True, exist_ok=True)
            state = {k: v.detach().cpu().contiguous() for k, v in self.state_dict().items()}
            save_file(state, str(tmp / VERIFIER_WEIGHTS_NAME))
            (tmp / VERIFIER_CONFIG_NAME).write_text(json.dumps(self.meta(), indent=2))
        return directory


def get_verifier_class(name: str) -> type[Verifier]:
    """The verifier class registered as ``name`` (``cfn`` / ``taco``, ``value``)."""
    if name in ("cfn", "taco"):
        from robotrl.verifiers.cfn import CFNVerifier

        return CFNVerifier
    if name == "value":
        from robotrl.verifiers.value import ValueVerifier

        return ValueVerifier
    raise ValueError(f"unknown verifier type {name!r}; known: ['cfn' (alias 'taco'), 'value']")


def verifier_from_meta(meta: Mapping[str, Any]) -> Verifier:
    """An untrained verifier of the right type and shapes (weights are loaded afterwards)."""
    for key in ("type", "config"):
        if key not in meta:
            raise KeyError(f"verifier description needs a {key!r} entry, got keys {sorted(meta)}")
    return get_verifier_class(meta["type"]).from_meta(meta)


def load_verifier(directory: str | os.PathLike, map_location: str = "cpu") -> Verifier:
    """Load a verifier written by :meth:`Verifier.save_pretrained`."""
    from safetensors.torch import load_file

    directory = Path(directory)
    cfg_path = directory / VERIFIER_CONFIG_NAME
    if not cfg_path.is_file():
        raise FileNotFoundError(f"no verifier checkpoint at {directory}: missing {VERIFIER_CONFIG_NAME}")
    verifier = verifier_from_meta(json.loads(cfg_path.read_text()))
    weights = directory / VERIFIER_WEIGHTS_NAME
    if not weights.is_file():
        raise FileNotFoundError(f"no verifier weights at {weights}")
    missing, unexpected = verifier.load_state_dict(load_file(str(weights), device=map_location), strict=False)
    if missing or unexpected:
        raise ValueError(f"{weights}: weights do not match the {verifier.name} verifier: missing {missing}, "
                         f"unexpected {unexpected}")
    return verifier.to(map_location).eval()


def _jsonable(x: Any) -> Any:
    if isinstance(x, Mapping):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    return x
