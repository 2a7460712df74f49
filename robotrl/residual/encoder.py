"""Image inputs for the residual actor and critic: a small conv encoder and random-shift augmentation.

Following the method note (ResFiT builds on DrQ-v2-style image RL), one :class:`ConvEncoder` per
camera is *shared* by the residual actor and the critic ensemble: the critic's TD loss trains it,
the actor reads its features detached. Training batches are augmented with :func:`random_shift`
(replicate-pad by ``pad`` pixels, then a random crop back to the original size, one shift per
sample); acting uses the unshifted image.

Architecture (DrQ-v2's encoder at a CPU-friendly width): conv 3x3 stride 2, three conv 3x3
stride 1, ``channels`` filters each with ReLU, then linear -> LayerNorm -> tanh to ``feature_dim``.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["ConvEncoder", "random_shift", "to_chw_float"]


def to_chw_float(x: torch.Tensor) -> torch.Tensor:
    """``[B, H, W, C]`` uint8 (the library's image layout) -> ``[B, C, H, W]`` float in [-0.5, 0.5]."""
    if x.ndim != 4:
        raise ValueError(f"image batch must be [B, H, W, C], got {tuple(x.shape)}")
    return x.permute(0, 3, 1, 2).float().div(255.0).sub(0.5)


def random_shift(x: torch.Tensor, pad: int = 4, generator: torch.Generator | None = None) -> torch.Tensor:
    """Shift each image of ``[B, C, H, W]`` by a random integer offset in ``[-pad, pad]`` (replicate border)."""
    if pad <= 0:
        return x
    B, C, H, W = x.shape
    xp = F.pad(x, (pad, pad, pad, pad), mode="replicate")
    sy = torch.randint(0, 2 * pad + 1, (B,), generator=generator).to(x.device)
    sx = torch.randint(0, 2 * pad + 1, (B,), generator=generator).to(x.device)
    rows = torch.arange(H, device=x.device)[None] + sy[:, None]  # [B, H]
    cols = torch.arange(W, device=x.device)[None] + sx[:, None]  # [B, W]
    b = torch.arange(B, device=x.device)[:, None, None]
    return xp[b, :, rows[:, :, None], cols[:, None, :]].permute(0, 3, 1, 2)  # [B, H, W, C] -> [B, C, H, W]


class ConvEncoder(nn.Module):
    """``[B, H, W, C]`` uint8 image -> ``[B, feature_dim]`` (see the module docstring)."""

    def __init__(self, image_shape: tuple[int, int, int], channels: int = 32, feature_dim: int = 64):
        super().__init__()
        H, W, C = (int(s) for s in image_shape)
        self.image_shape = (H, W, C)
        self.convs = nn.Sequential(
            nn.Conv2d(C, channels, 3, stride=2), nn.ReLU(),
            nn.Conv2d(channels, channels, 3, stride=1), nn.ReLU(),
            nn.Conv2d(channels, channels, 3, stride=1), nn.ReLU(),
            nn.Conv2d(channels, channels, 3, stride=1), nn.ReLU(),
        )
        with torch.no_grad():
            flat = self.convs(torch.zeros(1, C, H, W)).numel()
        self.head = nn.Sequential(nn.Linear(flat, feature_dim), nn.LayerNorm(feature_dim), nn.Tanh())
        self.feature_dim = int(feature_dim)

    def forward(self, image: torch.Tensor, shift_pad: int = 0, generator: torch.Generator | None = None) -> torch.Tensor:
        if tuple(image.shape[1:]) != self.image_shape:
            raise ValueError(f"ConvEncoder: expected images [B, {', '.join(map(str, self.image_shape))}], "
                             f"got {tuple(image.shape)}")
        x = to_chw_float(image)
        if shift_pad:
            x = random_shift(x, shift_pad, generator)
        return self.head(self.convs(x).flatten(1))
