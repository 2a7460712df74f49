"""CARP's multi-scale action tokenizer: a 1-D conv VQ-VAE with residual quantisation over scales.

An action chunk ``[B, H, A]`` (normalised to [-1, 1]) is encoded to a latent ``[C, L]`` (two
stride-2 stages: ``L = H / 4``). Residual quantisation then walks the scales ``pn = (1, 2, 3, 4)``
(the last equals ``L``): area-downsample the remaining residual to ``pn`` positions, pick the
nearest code by cosine similarity, upsample the code vectors back to ``L`` (linear), refine them
with that scale's "phi" conv (``(1-r) x + r conv(x)``), add them to the running reconstruction
``f_hat`` and subtract them from the residual. The decoder maps ``f_hat`` back to actions.

``per_dimension=True`` (the official code) gives every action dimension its own encoder, codebook,
phis and decoder; they are run together as grouped convolutions (``groups = A``), so the A
tokenizers cost one pass. ``per_dimension=False`` is one tokenizer over the whole chunk (the
paper's description). Token layout per scale: ``pn * G`` tokens, position-major with the
``G`` groups (action dimensions, or 1) interleaved, as in the official code.
"""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn


class _ResBlock(nn.Module):
    """GroupNorm -> SiLU -> conv, twice, plus a 1x1 shortcut; ``groups`` independent copies."""

    def __init__(self, in_ch: int, out_ch: int, groups: int) -> None:
        super().__init__()
        g = groups
        self.norm1 = nn.GroupNorm(g, g * in_ch, eps=1e-6)
        self.conv1 = nn.Conv1d(g * in_ch, g * out_ch, 3, padding=1, groups=g)
        self.norm2 = nn.GroupNorm(g, g * out_ch, eps=1e-6)
        self.conv2 = nn.Conv1d(g * out_ch, g * out_ch, 3, padding=1, groups=g)
        self.shortcut = nn.Conv1d(g * in_ch, g * out_ch, 1, groups=g) if in_ch != out_ch else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        h = self.conv2(F.silu(self.norm2(h)))
        return self.shortcut(x) + h


class MultiScaleActionTokenizer(nn.Module):
    """Encoder, residual multi-scale quantiser and decoder (see the module docstring)."""

    def __init__(
        self,
        action_dim: int,
        horizon: int = 16,
        scales: Sequence[int] = (1, 2, 3, 4),
        vocab_size: int = 512,
        code_dim: int = 8,
        channels: int = 2,
        ch_mult: Sequence[int] = (2, 4),
        beta: float = 0.25,
        phi_ratio: float = 0.5,
        per_dimension: bool = True,
    ) -> None:
        super().__init__()
        self.action_dim, self.horizon = int(action_dim), int(horizon)
        self.scales = tuple(int(s) for s in scales)
        self.vocab_size, self.code_dim = int(vocab_size), int(code_dim)
        self.beta, self.phi_ratio = float(beta), float(phi_ratio)
        self.per_dimension = per_dimension
        self.groups = g = self.action_dim if per_dimension else 1
        cin = 1 if per_dimension else self.action_dim
        self.latent_len = self.horizon // 2 ** len(ch_mult)
        if self.horizon % 2 ** len(ch_mult):
            raise ValueError(f"tokenizer: horizon {horizon} must be divisible by 2**len(ch_mult) = {2 ** len(ch_mult)}")
        if self.scales[-1] != self.latent_len or list(self.scales) != sorted(self.scales) or self.scales[0] < 1:
            raise ValueError(
                f"tokenizer: scales {self.scales} must increase and end at the latent length "
                f"horizon / 2**len(ch_mult) = {self.latent_len}"
            )
        chs = [channels * m for m in ch_mult]
        # encoder: conv_in, then per stage (block, stride-2 conv, block), norm, conv_out, quant_conv
        enc: list[nn.Module] = [nn.Conv1d(g * cin, g * channels, 3, padding=1, groups=g)]
        c = channels
        for co in chs:
            enc += [_ResBlock(c, co, g), nn.Conv1d(g * co, g * co, 3, stride=2, padding=1, groups=g), _ResBlock(co, co, g)]
            c = co
        enc += [nn.GroupNorm(g, g * c, eps=1e-6), nn.SiLU(), nn.Conv1d(g * c, g * code_dim, 3, padding=1, groups=g)]
        self.encoder = nn.Sequential(*enc)
        self.quant_conv = nn.Conv1d(g * code_dim, g * code_dim, 3, padding=1, groups=g)
        # quantiser: one codebook and one phi per scale, per group
        self.codebook = nn.Parameter(torch.empty(g, vocab_size, code_dim).uniform_(-1.0 / vocab_size, 1.0 / vocab_size))
        self.phis = nn.ModuleList([nn.Conv1d(g * code_dim, g * code_dim, 3, padding=1, groups=g) for _ in self.scales])
        # decoder mirrors the encoder
        self.post_quant_conv = nn.Conv1d(g * code_dim, g * code_dim, 3, padding=1, groups=g)
        dec: list[nn.Module] = [nn.GroupNorm(g, g * code_dim, eps=1e-6), nn.SiLU(),
                                nn.Conv1d(g * code_dim, g * chs[-1], 3, padding=1, groups=g)]
        c = chs[-1]
        for co in list(reversed(chs[:-1])) + [channels]:
            dec += [_ResBlock(c, c, g), nn.ConvTranspose1d(g * c, g * c, 3, stride=2, padding=1, output_padding=1, groups=g),
                    _ResBlock(c, co, g)]
            c = co
        dec += [nn.Conv1d(g * c, g * cin, 3, padding=1, groups=g)]
        self.decoder = nn.Sequential(*dec)

    # ------------------------------------------------------------------ shapes
    @property
    def num_tokens(self) -> int:
        """Tokens per chunk: ``sum(scales) * G``."""
        return sum(self.scales) * self.groups

    @property
    def tokens_per_scale(self) -> list[int]:
        return [pn * self.groups for pn in self.scales]

    def _check_actions(self, actions: torch.Tensor) -> None:
        if actions.ndim != 3 or actions.shape[1:] != (self.horizon, self.action_dim):
            raise ValueError(f"tokenizer expects actions [B, {self.horizon}, {self.action_dim}], got {tuple(actions.shape)}")

    # ------------------------------------------------------------------ encoder / decoder
    def encode(self, actions: torch.Tensor) -> torch.Tensor:
        """``[B, H, A]`` -> latent ``f`` ``[B, G, C, L]``."""
        self._check_actions(actions)
        f = self.quant_conv(self.encoder(actions.transpose(1, 2)))
        return f.view(f.shape[0], self.groups, self.code_dim, self.latent_len)

    def decode(self, f_hat: torch.Tensor) -> torch.Tensor:
        """Latent ``[B, G, C, L]`` -> actions ``[B, H, A]``."""
        b = f_hat.shape[0]
        x = self.decoder(self.post_quant_conv(f_hat.reshape(b, self.groups * self.code_dim, self.latent_len)))
        return x.transpose(1, 2)

    # ------------------------------------------------------------------ quantiser pieces
    def _lookup(self, rest: torch.Tensor) -> torch.Tensor:
        """Nearest code by cosine similarity: ``[B, G, C, n]`` -> indices ``[B, G, n]``."""
        sim = torch.einsum("bgcn,gvc->bgnv", F.normalize(rest, dim=2), F.normalize(self.codebook.detach(), dim=-1))
        return sim.argmax(dim=-1)

    def embed(self, idx: torch.Tensor) -> torch.Tensor:
        """Indices ``[B, G, n]`` -> code vectors ``[B, G, C, n]``."""
        b, g, n = idx.shape
        gi = torch.arange(g, device=idx.device)[None, :, None].expand(b, g, n)
        return self.codebook[gi, idx].permute(0, 1, 3, 2)

    def _resize(self, x: torch.Tensor, n: int, mode: str) -> torch.Tensor:
        """Resize ``[B, G, C, L']`` along the last axis to ``n`` ("area" down / "linear" up)."""
        b, g, c, length = x.shape
        if length == n:
            return x
        flat = x.reshape(b, g * c, length)
        out = F.interpolate(flat, size=n, mode=mode, **({"align_corners": False} if mode == "linear" else {}))
        return out.view(b, g, c, n)

    def _phi(self, si: int, h: torch.Tensor) -> torch.Tensor:
        b = h.shape[0]
        flat = h.reshape(b, self.groups * self.code_dim, self.latent_len)
        out = (1.0 - self.phi_ratio) * flat + self.phi_ratio * self.phis[si](flat)
        return out.view_as(h)

    def scale_contribution(self, si: int, idx: torch.Tensor) -> torch.Tensor:
        """What scale ``si``'s tokens ``[B, G, pn]`` add to ``f_hat``: upsample + phi, ``[B, G, C, L]``."""
        return self._phi(si, self._resize(self.embed(idx), self.latent_len, "linear"))

    def quantize(self, f: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor], torch.Tensor]:
        """Residual multi-scale quantisation of ``f`` ``[B, G, C, L]``.

        Returns the straight-through ``f_hat`` (values of the quantised latent, gradients to ``f``),
        the indices per scale (``[B, G, pn]`` each) and the VQ loss
        ``mean_s[beta * |sg(f_hat_s) - f|^2 + |f_hat_s - sg(f)|^2]``.
        """
        f_ng = f.detach()
        rest = f_ng.clone()
        f_hat = torch.zeros_like(f_ng)
        indices, vq = [], f.new_zeros(())
        for si, pn in enumerate(self.scales):
            idx = self._lookup(self._resize(rest, pn, "area"))
            h = self.scale_contribution(si, idx)
            f_hat = f_hat + h
            rest = rest - h.detach()
            indices.append(idx)
            vq = vq + self.beta * F.mse_loss(f_hat.detach(), f) + F.mse_loss(f_hat, f_ng)
        f_st = (f_hat.detach() - f_ng) + f
        return f_st, indices, vq / len(self.scales)

    def forward(self, actions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, list[torch.Tensor]]:
        """Training pass: ``(reconstruction [B, H, A], vq_loss, indices per scale)``."""
        f_st, indices, vq = self.quantize(self.encode(actions))
        return self.decode(f_st), vq, indices

    # ------------------------------------------------------------------ tokens for the transformer
    @torch.no_grad()
    def actions_to_indices(self, actions: torch.Tensor) -> list[torch.Tensor]:
        """Token indices per scale, ``[B, G, pn]`` each."""
        return self.quantize(self.encode(actions))[1]

    @torch.no_grad()
    def reconstruct(self, actions: torch.Tensor) -> torch.Tensor:
        """Quantise and decode (what the policy can express)."""
        return self.forward(actions)[0]

    @staticmethod
    def flatten_indices(indices: list[torch.Tensor]) -> torch.Tensor:
        """Per-scale ``[B, G, pn]`` -> ``[B, sum(pn) * G]`` in token order (position-major)."""
        return torch.cat([i.transpose(1, 2).reshape(i.shape[0], -1) for i in indices], dim=1)

    def split_indices(self, flat: torch.Tensor) -> list[torch.Tensor]:
        """Inverse of :meth:`flatten_indices`."""
        out, start = [], 0
        for pn in self.scales:
            n = pn * self.groups
            out.append(flat[:, start : start + n].reshape(flat.shape[0], pn, self.groups).transpose(1, 2))
            start += n
        return out

    @staticmethod
    def to_tokens(x: torch.Tensor) -> torch.Tensor:
        """``[B, G, C, n]`` -> token vectors ``[B, n * G, C]`` (position-major)."""
        b, g, c, n = x.shape
        return x.permute(0, 3, 1, 2).reshape(b, n * g, c)

    def next_input(self, si: int, f_hat: torch.Tensor, idx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Add scale ``si``'s tokens to ``f_hat``; return it and the next scale's input tokens
        (``f_hat`` area-downsampled to the next scale, ``[B, pn_next * G, C]``; None after the last)."""
        f_hat = f_hat + self.scale_contribution(si, idx)
        if si + 1 == len(self.scales):
            return f_hat, None
        return f_hat, self.to_tokens(self._resize(f_hat, self.scales[si + 1], "area"))

    def teacher_inputs(self, indices: list[torch.Tensor]) -> torch.Tensor:
        """Teacher-forcing inputs of scales 2..K from ground-truth indices: ``[B, L_tok - G*pn_1, C]``."""
        b = indices[0].shape[0]
        f_hat = torch.zeros(b, self.groups, self.code_dim, self.latent_len, device=indices[0].device,
                            dtype=self.codebook.dtype)
        inputs = []
        for si, idx in enumerate(indices[:-1]):
            f_hat, nxt = self.next_input(si, f_hat, idx)
            inputs.append(nxt)
        return torch.cat(inputs, dim=1)
