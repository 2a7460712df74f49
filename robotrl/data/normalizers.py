"""Normalisers that live inside a policy, so a checkpoint is self-contained.

A :class:`Normalizer` holds per-key statistics as registered buffers (they travel with
``state_dict`` / safetensors) and maps data to a canonical range:

- ``"minmax"``: affine map of ``[min, max]`` to ``[-1, 1]`` (Diffusion Policy's default for
  actions and low-dimensional observations). Dimensions with ``max - min < eps`` are
  centred only (scale 1), so constant features do not blow up.
- ``"zscore"``: ``(x - mean) / std`` with ``std`` floored at ``eps``.
- ``"identity"``: no change (e.g. images, which encoders scale themselves).
"""
from __future__ import annotations

from typing import Mapping

import numpy as np
import torch
from torch import nn

MODES = ("minmax", "zscore", "identity")


def _buffer_name(key: str) -> str:
    return key.replace("/", "__").replace(".", "_")


class Normalizer(nn.Module):
    """Per-key affine normaliser: ``y = (x - offset) * scale``; inverse ``x = y / scale + offset``."""

    def __init__(self) -> None:
        super().__init__()
        self.modes: dict[str, str] = {}

    # ------------------------------------------------------------------ fitting
    def fit_key(self, key: str, data: np.ndarray | torch.Tensor, mode: str = "minmax", eps: float = 1e-4) -> None:
        """Compute statistics for ``key`` over the leading dims of ``data`` (last dim = features)."""
        if mode not in MODES:
            raise ValueError(f"normaliser mode for {key!r} must be one of {MODES}, got {mode!r}")
        x = torch.as_tensor(np.asarray(data), dtype=torch.float64)
        if x.ndim == 0:
            raise ValueError(f"normaliser key {key!r}: expected an array with a feature dimension, got a scalar")
        if x.ndim == 1:
            x = x[:, None]
        x = x.reshape(-1, x.shape[-1])
        if x.shape[0] == 0:
            raise ValueError(f"normaliser key {key!r}: no data to fit")
        if not torch.isfinite(x).all():
            bad = int((~torch.isfinite(x)).any(dim=1).nonzero()[0, 0])
            raise ValueError(f"normaliser key {key!r}: data contains NaN/inf (first bad row {bad})")
        if mode == "minmax":
            lo, hi = x.min(0).values, x.max(0).values
            rng = hi - lo
            scale = torch.where(rng > eps, 2.0 / rng.clamp_min(eps), torch.ones_like(rng))
            offset = (hi + lo) / 2.0
        elif mode == "zscore":
            offset = x.mean(0)
            scale = 1.0 / x.std(0, unbiased=False).clamp_min(eps)
        else:
            offset = torch.zeros(x.shape[-1], dtype=torch.float64)
            scale = torch.ones(x.shape[-1], dtype=torch.float64)
        self.set_stats(key, offset.float(), scale.float(), mode)

    def set_stats(self, key: str, offset: torch.Tensor, scale: torch.Tensor, mode: str) -> None:
        """Set (or replace) the statistics of ``key``."""
        name = _buffer_name(key)
        self.register_buffer(f"{name}__offset", torch.as_tensor(offset, dtype=torch.float32).clone())
        self.register_buffer(f"{name}__scale", torch.as_tensor(scale, dtype=torch.float32).clone())
        self.modes[key] = mode

    def fit(self, data: Mapping[str, np.ndarray], modes: Mapping[str, str] | str = "minmax") -> "Normalizer":
        """Fit every key of ``data``; ``modes`` is one mode or a per-key mapping."""
        for key, arr in data.items():
            mode = modes if isinstance(modes, str) else modes.get(key, "minmax")
            self.fit_key(key, arr, mode)
        return self

    # ------------------------------------------------------------------ use
    def __contains__(self, key: object) -> bool:
        return key in self.modes

    def keys(self) -> list[str]:
        return list(self.modes)

    def _stats(self, key: str) -> tuple[torch.Tensor, torch.Tensor]:
        if key not in self.modes:
            raise KeyError(f"normaliser has no statistics for key {key!r}; known keys: {sorted(self.modes)}")
        name = _buffer_name(key)
        return getattr(self, f"{name}__offset"), getattr(self, f"{name}__scale")

    def normalize(self, key: str, x: torch.Tensor) -> torch.Tensor:
        offset, scale = self._stats(key)
        if x.shape[-1] != offset.shape[-1]:
            raise ValueError(f"normaliser key {key!r}: expected last dim {offset.shape[-1]}, got shape {tuple(x.shape)}")
        return (x - offset.to(x)) * scale.to(x)

    def unnormalize(self, key: str, y: torch.Tensor) -> torch.Tensor:
        offset, scale = self._stats(key)
        if y.shape[-1] != offset.shape[-1]:
            raise ValueError(f"normaliser key {key!r}: expected last dim {offset.shape[-1]}, got shape {tuple(y.shape)}")
        return y / scale.to(y) + offset.to(y)

    # ------------------------------------------------------------------ (de)serialisation
    def spec(self) -> dict[str, list]:
        """``{key: [feature_dim, mode]}``: enough to rebuild an empty normaliser before loading weights."""
        return {k: [int(self._stats(k)[0].shape[-1]), m] for k, m in self.modes.items()}

    @classmethod
    def from_spec(cls, spec: Mapping[str, list]) -> "Normalizer":
        """Placeholder statistics of the right shapes (weights are loaded afterwards)."""
        norm = cls()
        for key, (dim, mode) in spec.items():
            norm.set_stats(key, torch.zeros(int(dim)), torch.ones(int(dim)), mode)
        return norm
