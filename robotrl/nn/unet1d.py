"""1-D temporal convolutional UNet with FiLM conditioning (the "CNN" denoiser of Diffusion Policy).

The structure follows Chi et al.'s ``ConditionalUnet1D``: a sinusoidal diffusion-step embedding
(+ MLP) is concatenated with a global condition (the encoded observation history); every residual
block applies FiLM (per-channel scale and bias predicted from that vector) after its first conv.
Down path: two residual blocks per level then a stride-2 conv (none after the last level); a
two-block middle; the up path mirrors it with skip connections from the coarser levels. Input/output ``[B, T, input_dim]`` (time-major like
action chunks); the convolutions run over T.
"""
from __future__ import annotations

import math
from typing import Sequence

import torch
from torch import nn


class SinusoidalPosEmb(nn.Module):
    """Transformer-style sinusoidal embedding of a (diffusion step) scalar per batch element."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        if dim % 2:
            raise ValueError(f"SinusoidalPosEmb needs an even dim, got {dim}")
        self.dim = dim

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        half = self.dim // 2
        freqs = torch.exp(torch.arange(half, device=t.device, dtype=torch.float32) * (-math.log(10000.0) / max(half - 1, 1)))
        arg = t.float()[:, None] * freqs[None, :]
        return torch.cat([arg.sin(), arg.cos()], dim=-1)


class Conv1dBlock(nn.Sequential):
    """Conv1d -> GroupNorm -> Mish."""

    def __init__(self, in_ch: int, out_ch: int, kernel_size: int, n_groups: int = 8) -> None:
        super().__init__(
            nn.Conv1d(in_ch, out_ch, kernel_size, padding=kernel_size // 2),
            nn.GroupNorm(_groups(out_ch, n_groups), out_ch),
            nn.Mish(),
        )


def _groups(channels: int, n_groups: int) -> int:
    g = min(n_groups, channels)
    while channels % g:
        g -= 1
    return g


class ConditionalResidualBlock1D(nn.Module):
    """Two conv blocks; FiLM (scale, bias) from the condition vector after the first one."""

    def __init__(self, in_ch: int, out_ch: int, cond_dim: int, kernel_size: int = 5, n_groups: int = 8,
                 cond_predict_scale: bool = True) -> None:
        super().__init__()
        self.blocks = nn.ModuleList([
            Conv1dBlock(in_ch, out_ch, kernel_size, n_groups),
            Conv1dBlock(out_ch, out_ch, kernel_size, n_groups),
        ])
        self.out_ch = out_ch
        self.cond_predict_scale = cond_predict_scale
        self.cond_encoder = nn.Sequential(nn.Mish(), nn.Linear(cond_dim, out_ch * (2 if cond_predict_scale else 1)))
        self.residual_conv = nn.Conv1d(in_ch, out_ch, 1) if in_ch != out_ch else nn.Identity()

    def forward(self, x: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        out = self.blocks[0](x)
        film = self.cond_encoder(cond).unsqueeze(-1)  # [B, C or 2C, 1]
        if self.cond_predict_scale:
            scale, bias = film.chunk(2, dim=1)
            out = scale * out + bias
        else:
            out = out + film
        out = self.blocks[1](out)
        return out + self.residual_conv(x)


class ConditionalUnet1D(nn.Module):
    """Denoiser ``eps(x_t, t, global_cond)`` over ``[B, T, input_dim]`` sequences.

    ``T`` must be divisible by ``2 ** (len(down_dims) - 1)``. ``forward(..., return_features=True)``
    also returns the last hidden state ``[B, T, down_dims[0]]`` (before the output conv).
    """

    def __init__(
        self,
        input_dim: int,
        global_cond_dim: int,
        diffusion_step_embed_dim: int = 64,
        down_dims: Sequence[int] = (64, 128, 256),
        kernel_size: int = 5,
        n_groups: int = 8,
        cond_predict_scale: bool = True,
    ) -> None:
        super().__init__()
        down_dims = list(down_dims)
        if not down_dims:
            raise ValueError("ConditionalUnet1D needs at least one entry in down_dims")
        dsed = diffusion_step_embed_dim
        self.step_encoder = nn.Sequential(SinusoidalPosEmb(dsed), nn.Linear(dsed, dsed * 4), nn.Mish(), nn.Linear(dsed * 4, dsed))
        cond_dim = dsed + global_cond_dim
        all_dims = [input_dim] + down_dims
        in_out = list(zip(all_dims[:-1], all_dims[1:]))

        def res(i: int, o: int) -> ConditionalResidualBlock1D:
            return ConditionalResidualBlock1D(i, o, cond_dim, kernel_size, n_groups, cond_predict_scale)

        self.down_modules = nn.ModuleList()
        for idx, (d_in, d_out) in enumerate(in_out):
            last = idx == len(in_out) - 1
            self.down_modules.append(nn.ModuleList([
                res(d_in, d_out), res(d_out, d_out),
                nn.Conv1d(d_out, d_out, 3, stride=2, padding=1) if not last else nn.Identity(),
            ]))
        mid = down_dims[-1]
        self.mid_modules = nn.ModuleList([res(mid, mid), res(mid, mid)])
        self.up_modules = nn.ModuleList()
        for d_in, d_out in reversed(in_out[1:]):  # every up level doubles T back
            self.up_modules.append(nn.ModuleList([
                res(d_out * 2, d_in), res(d_in, d_in),
                nn.ConvTranspose1d(d_in, d_in, 4, stride=2, padding=1),
            ]))
        self.final_block = Conv1dBlock(down_dims[0], down_dims[0], kernel_size, n_groups)
        self.final_conv = nn.Conv1d(down_dims[0], input_dim, 1)
        self.downsample_factor = 2 ** (len(down_dims) - 1)
        self.feature_dim = down_dims[0]

    def forward(
        self, sample: torch.Tensor, timestep: torch.Tensor, global_cond: torch.Tensor, return_features: bool = False
    ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        if sample.shape[1] % self.downsample_factor:
            raise ValueError(
                f"ConditionalUnet1D: sequence length {sample.shape[1]} must be divisible by {self.downsample_factor}"
            )
        if timestep.ndim == 0:
            timestep = timestep.expand(sample.shape[0])
        cond = torch.cat([self.step_encoder(timestep), global_cond], dim=-1)
        x = sample.transpose(1, 2)  # [B, C, T]
        skips = []
        for res1, res2, down in self.down_modules:
            x = res2(res1(x, cond), cond)
            skips.append(x)
            x = down(x)
        for m in self.mid_modules:
            x = m(x, cond)
        for res1, res2, up in self.up_modules:
            x = torch.cat([x, skips.pop()], dim=1)
            x = up(res2(res1(x, cond), cond))
        h = self.final_block(x)
        out = self.final_conv(h).transpose(1, 2)
        if return_features:
            return out, h.transpose(1, 2)
        return out
