"""Image encoder for visuomotor policies: a ResNet-18-style trunk with GroupNorm, spatial-softmax
keypoints and crop augmentation (the recipe of Diffusion Policy's image variant).

Input: float ``[B, C, H, W]`` in [0, 1] (see ``Policy.prepare_obs``). The trunk downsamples by 32
(84x84 cropped to 76x76 -> a 3x3 keypoint map, as in Diffusion Policy); for small images use fewer
stages (``blocks_per_stage=(2, 2, 2)`` -> /16). In training mode each image
is randomly cropped to ``crop_ratio`` of its size; in eval mode it is centre-cropped, so train and
test see the same resolution. The trunk is trained from scratch (no pretrained weights, no
downloads). Output: ``[B, out_dim]``.
"""
from __future__ import annotations

from typing import Any, Sequence

import torch
import torch.nn.functional as F
from torch import nn


def _gn(channels: int) -> nn.GroupNorm:
    """GroupNorm with groups of 16 channels (Diffusion Policy replaces every BatchNorm this way)."""
    return nn.GroupNorm(max(1, channels // 16), channels)


class BasicBlock(nn.Module):
    """ResNet basic block (two 3x3 convs) with GroupNorm."""

    def __init__(self, in_ch: int, out_ch: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_ch, out_ch, 3, stride=stride, padding=1, bias=False)
        self.norm1 = _gn(out_ch)
        self.conv2 = nn.Conv2d(out_ch, out_ch, 3, padding=1, bias=False)
        self.norm2 = _gn(out_ch)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or in_ch != out_ch:
            self.shortcut = nn.Sequential(nn.Conv2d(in_ch, out_ch, 1, stride=stride, bias=False), _gn(out_ch))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.norm1(self.conv1(x)))
        out = self.norm2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class SpatialSoftmax(nn.Module):
    """Feature map -> ``num_keypoints`` expected (x, y) image coordinates in [-1, 1] (Levine et al.)."""

    def __init__(self, in_ch: int, num_keypoints: int = 32, temperature: float = 1.0) -> None:
        super().__init__()
        self.keypoints = nn.Conv2d(in_ch, num_keypoints, 1)
        self.temperature = temperature
        self.out_dim = 2 * num_keypoints

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feat = self.keypoints(x)
        b, k, h, w = feat.shape
        attn = torch.softmax(feat.reshape(b, k, h * w) / self.temperature, dim=-1)
        ys = _coords(h, x)
        xs = _coords(w, x)
        grid_y, grid_x = torch.meshgrid(ys, xs, indexing="ij")
        ex = attn @ grid_x.reshape(-1, 1)
        ey = attn @ grid_y.reshape(-1, 1)
        return torch.cat([ex, ey], dim=-1).reshape(b, 2 * k)


def _coords(n: int, like: torch.Tensor) -> torch.Tensor:
    if n == 1:
        return torch.zeros(1, device=like.device, dtype=like.dtype)
    return torch.linspace(-1.0, 1.0, n, device=like.device, dtype=like.dtype)


class RandomCrop(nn.Module):
    """Per-sample random crop in training mode, centre crop in eval mode."""

    def __init__(self, in_hw: tuple[int, int], crop_ratio: float) -> None:
        super().__init__()
        if not 0.0 < crop_ratio <= 1.0:
            raise ValueError(f"crop_ratio must be in (0, 1], got {crop_ratio}")
        self.in_hw = in_hw
        self.out_hw = (max(1, int(round(in_hw[0] * crop_ratio))), max(1, int(round(in_hw[1] * crop_ratio))))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        (h, w), (ch, cw) = x.shape[-2:], self.out_hw
        if (h, w) == (ch, cw):
            return x
        if not self.training:
            top, left = (h - ch) // 2, (w - cw) // 2
            return x[..., top : top + ch, left : left + cw]
        b, c = x.shape[:2]
        top = torch.randint(0, h - ch + 1, (b,), device=x.device)
        left = torch.randint(0, w - cw + 1, (b,), device=x.device)
        rows = (top[:, None] + torch.arange(ch, device=x.device)[None, :])  # [B, ch]
        cols = (left[:, None] + torch.arange(cw, device=x.device)[None, :])  # [B, cw]
        x = torch.gather(x, 2, rows[:, None, :, None].expand(b, c, ch, w))
        return torch.gather(x, 3, cols[:, None, None, :].expand(b, c, ch, cw))


class ResNetImageEncoder(nn.Module):
    """ResNet-18-style conv trunk (GroupNorm) + spatial softmax (+ optional linear projection)."""

    def __init__(
        self,
        chw_shape: Sequence[int],
        crop_ratio: float = 0.9,
        width: int = 64,
        blocks_per_stage: Sequence[int] = (2, 2, 2, 2),
        num_keypoints: int = 32,
        feature_dim: int | None = 64,
        pretrained: bool = False,
    ) -> None:
        super().__init__()
        if pretrained:
            raise ValueError("build_image_encoder: pretrained weights are not supported (no downloads); use pretrained=False")
        if len(chw_shape) != 3:
            raise ValueError(f"build_image_encoder: expected a (C, H, W) shape, got {tuple(chw_shape)}")
        c, h, w = (int(s) for s in chw_shape)
        self.chw_shape = (c, h, w)
        self.crop = RandomCrop((h, w), crop_ratio)
        self.stem = nn.Sequential(nn.Conv2d(c, width, 7, stride=2, padding=3, bias=False), _gn(width), nn.ReLU(),
                                  nn.MaxPool2d(3, stride=2, padding=1))
        stages, ch = [], width
        for i, n in enumerate(blocks_per_stage):
            out = width * 2**i
            for j in range(n):
                stages.append(BasicBlock(ch, out, stride=2 if (j == 0 and i > 0) else 1))
                ch = out
        self.stages = nn.Sequential(*stages)
        self.pool = SpatialSoftmax(ch, num_keypoints)
        self.proj: nn.Module = nn.Linear(self.pool.out_dim, feature_dim) if feature_dim else nn.Identity()
        self.out_dim = int(feature_dim) if feature_dim else self.pool.out_dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 4 or tuple(x.shape[1:]) != self.chw_shape:
            raise ValueError(f"image encoder expects [B, {', '.join(map(str, self.chw_shape))}], got {tuple(x.shape)}")
        x = self.crop(x)
        return self.proj(self.pool(self.stages(self.stem(x))))


def build_image_encoder(chw_shape: Sequence[int], **kwargs: Any) -> ResNetImageEncoder:
    """One camera's encoder: ``chw_shape`` = (C, H, W); kwargs: crop_ratio, width, blocks_per_stage,
    num_keypoints, feature_dim (None = raw 2*num_keypoints), pretrained (must be False)."""
    known = {"crop_ratio", "width", "blocks_per_stage", "num_keypoints", "feature_dim", "pretrained"}
    unknown = sorted(set(kwargs) - known)
    if unknown:
        raise ValueError(f"build_image_encoder: unknown option(s) {unknown}; known: {sorted(known)}")
    return ResNetImageEncoder(chw_shape, **kwargs)
