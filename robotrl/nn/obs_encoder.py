"""Observation encoder shared by policies: low-dim keys concatenated, one image encoder per camera.

Input: dict of prepared observations ``[B, To, ...]`` (see ``Policy.prepare_obs``: low-dim keys
normalised, images float CHW in [0, 1]). Output: ``[B, To * per_step_dim]`` (history flattened),
or ``[B, To, per_step_dim]`` with ``flatten=False``.
"""
from __future__ import annotations

from typing import Any, Mapping

import torch
from torch import nn


def _is_image(key: str) -> bool:
    return key.endswith("image")


class ObsEncoder(nn.Module):
    """Concatenate low-dim observations and per-camera image features, per history step."""

    def __init__(
        self,
        obs_shapes: Mapping[str, Any],
        n_obs_steps: int,
        image_encoder: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__()
        self.keys = list(obs_shapes)
        self.n_obs_steps = n_obs_steps
        self.image_keys = [k for k in self.keys if _is_image(k)]
        self.lowdim_keys = [k for k in self.keys if not _is_image(k)]
        self.image_encoders = nn.ModuleDict()
        dim = 0
        for k in self.lowdim_keys:
            shape = list(obs_shapes[k])
            if len(shape) != 1:
                raise ValueError(f"low-dimensional observation {k!r} must be 1-D per step, got shape {shape}")
            dim += shape[0]
        if self.image_keys:
            from robotrl.nn.vision import build_image_encoder  # only image policies need it

            for k in self.image_keys:
                h, w, c = obs_shapes[k]
                enc = build_image_encoder((c, h, w), **dict(image_encoder or {}))
                self.image_encoders[k.replace(".", "_")] = enc
                dim += enc.out_dim
        self.per_step_dim = dim
        self.out_dim = dim * n_obs_steps

    def forward(self, obs: Mapping[str, torch.Tensor], flatten: bool = True) -> torch.Tensor:
        feats = []
        b = None
        for k in self.keys:
            x = obs[k]
            b, t = x.shape[:2]
            if k in self.image_keys:
                y = self.image_encoders[k.replace(".", "_")](x.reshape(b * t, *x.shape[2:]))
                feats.append(y.reshape(b, t, -1))
            else:
                feats.append(x)
        out = torch.cat(feats, dim=-1)
        return out.reshape(b, -1) if flatten else out
