"""Shared transformer pieces: attention with an optional KV cache, pre-norm and AdaLN blocks, and
the transformer denoiser of Diffusion Policy.

Masks follow ``torch.nn.functional.scaled_dot_product_attention``: a boolean ``[Lq, Lk]`` (or
broadcastable) tensor where ``True`` means "may attend".
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from robotrl.nn.unet1d import SinusoidalPosEmb


class KVCache:
    """Keys and values of the tokens seen so far by one attention layer (incremental decoding)."""

    def __init__(self) -> None:
        self.k: torch.Tensor | None = None
        self.v: torch.Tensor | None = None

    def append(self, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Add ``[B, h, L, d]`` keys/values along the sequence axis; return everything cached."""
        if self.k is None:
            self.k, self.v = k, v
        else:
            self.k = torch.cat([self.k, k], dim=2)
            self.v = torch.cat([self.v, v], dim=2)
        return self.k, self.v

    def __len__(self) -> int:
        return 0 if self.k is None else int(self.k.shape[2])

    def reset(self) -> None:
        self.k = self.v = None


class Attention(nn.Module):
    """Multi-head attention; self-attention when ``context`` is None, cross-attention otherwise.

    With a :class:`KVCache` (self-attention only), the new tokens' keys/values are appended to the
    cache and the queries attend to all cached tokens (the caller feeds tokens in an order where
    everything cached is visible, e.g. one scale at a time for next-scale prediction).
    """

    #: QK-norm: the initial and the largest per-head logit scale (VAR / official CARP code: 4 and 100)
    QK_SCALE_INIT, QK_SCALE_MAX = 4.0, 100.0

    def __init__(self, dim: int, num_heads: int, context_dim: int | None = None, attn_drop: float = 0.0,
                 proj_drop: float = 0.0, qkv_bias: bool = True, qk_norm: bool = False) -> None:
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"Attention: dim {dim} is not divisible by num_heads {num_heads}")
        self.num_heads, self.head_dim = num_heads, dim // num_heads
        # qk_norm: queries and keys L2-normalised per head, logits = cosine x a learned per-head scale
        # (log-parametrised, capped at QK_SCALE_MAX), instead of q.k / sqrt(head_dim)
        self.qk_log_scale = (nn.Parameter(torch.full((1, num_heads, 1, 1), math.log(self.QK_SCALE_INIT)))
                             if qk_norm else None)
        self.q = nn.Linear(dim, dim, bias=qkv_bias)
        self.kv = nn.Linear(context_dim or dim, 2 * dim, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)
        self.attn_drop = attn_drop
        self.proj_drop = nn.Dropout(proj_drop)

    def _heads(self, x: torch.Tensor) -> torch.Tensor:
        b, n, _ = x.shape
        return x.view(b, n, self.num_heads, self.head_dim).transpose(1, 2)

    def forward(self, x: torch.Tensor, attn_mask: torch.Tensor | None = None, context: torch.Tensor | None = None,
                cache: KVCache | None = None) -> torch.Tensor:
        b, n, c = x.shape
        q = self._heads(self.q(x))
        k, v = self.kv(x if context is None else context).chunk(2, dim=-1)
        k, v = self._heads(k), self._heads(v)
        scale = None
        if self.qk_log_scale is not None:
            q = F.normalize(q, dim=-1) * self.qk_log_scale.clamp(max=math.log(self.QK_SCALE_MAX)).exp()
            k = F.normalize(k, dim=-1)
            scale = 1.0
        if cache is not None:
            if context is not None:
                raise ValueError("Attention: a KV cache is only supported for self-attention")
            k, v = cache.append(k, v)
        out = F.scaled_dot_product_attention(
            q, k, v, attn_mask=attn_mask, dropout_p=self.attn_drop if self.training else 0.0, scale=scale
        )
        return self.proj_drop(self.proj(out.transpose(1, 2).reshape(b, n, c)))


class FeedForward(nn.Sequential):
    def __init__(self, dim: int, mlp_ratio: float = 4.0, dropout: float = 0.0) -> None:
        hidden = int(dim * mlp_ratio)
        super().__init__(nn.Linear(dim, hidden), nn.GELU(approximate="tanh"), nn.Dropout(dropout), nn.Linear(hidden, dim),
                         nn.Dropout(dropout))


class TransformerBlock(nn.Module):
    """Pre-norm block: self-attention, optional cross-attention to ``context``, MLP."""

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float = 4.0, dropout: float = 0.0,
                 attn_dropout: float = 0.0, cross_attention: bool = False, context_dim: int | None = None) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = Attention(dim, num_heads, attn_drop=attn_dropout, proj_drop=dropout)
        self.cross = None
        if cross_attention:
            self.norm_cross = nn.LayerNorm(dim)
            self.cross = Attention(dim, num_heads, context_dim=context_dim, attn_drop=attn_dropout, proj_drop=dropout)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = FeedForward(dim, mlp_ratio, dropout)

    def forward(self, x: torch.Tensor, attn_mask: torch.Tensor | None = None, context: torch.Tensor | None = None,
                context_mask: torch.Tensor | None = None, cache: KVCache | None = None) -> torch.Tensor:
        x = x + self.attn(self.norm1(x), attn_mask=attn_mask, cache=cache)
        if self.cross is not None:
            if context is None:
                raise ValueError("TransformerBlock built with cross_attention needs a context")
            x = x + self.cross(self.norm_cross(x), attn_mask=context_mask, context=context)
        return x + self.mlp(self.norm2(x))


class AdaLNBlock(nn.Module):
    """Self-attention block with adaptive LayerNorm (VAR / DiT style) conditioned on a vector.

    ``cond`` ``[B, cond_dim]`` -> per-channel (gate, scale, shift) for the attention and MLP branches:
    ``x += gate1 * attn(LN(x) * (1 + scale1) + shift1)``, same for the MLP. The modulation layer is
    zero-initialised, so every block starts as the identity (adaLN-Zero).
    """

    def __init__(self, dim: int, num_heads: int, cond_dim: int, mlp_ratio: float = 4.0, dropout: float = 0.0,
                 attn_dropout: float = 0.0, qk_norm: bool = False) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, elementwise_affine=False, eps=1e-6)
        self.attn = Attention(dim, num_heads, attn_drop=attn_dropout, proj_drop=dropout, qk_norm=qk_norm)
        self.norm2 = nn.LayerNorm(dim, elementwise_affine=False, eps=1e-6)
        self.mlp = FeedForward(dim, mlp_ratio, dropout)
        self.ada_lin = nn.Sequential(nn.SiLU(), nn.Linear(cond_dim, 6 * dim))
        nn.init.zeros_(self.ada_lin[-1].weight)
        nn.init.zeros_(self.ada_lin[-1].bias)

    def forward(self, x: torch.Tensor, cond: torch.Tensor, attn_mask: torch.Tensor | None = None,
                cache: KVCache | None = None) -> torch.Tensor:
        g1, g2, s1, s2, b1, b2 = self.ada_lin(cond).unsqueeze(1).chunk(6, dim=-1)
        x = x + g1 * self.attn(self.norm1(x) * (1 + s1) + b1, attn_mask=attn_mask, cache=cache)
        return x + g2 * self.mlp(self.norm2(x) * (1 + s2) + b2)


class AdaLNHead(nn.Module):
    """Final adaptive LayerNorm (scale, shift from the condition) before an output head."""

    def __init__(self, dim: int, cond_dim: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(dim, elementwise_affine=False, eps=1e-6)
        self.ada_lin = nn.Sequential(nn.SiLU(), nn.Linear(cond_dim, 2 * dim))
        nn.init.zeros_(self.ada_lin[-1].weight)
        nn.init.zeros_(self.ada_lin[-1].bias)

    def forward(self, x: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        scale, shift = self.ada_lin(cond).unsqueeze(1).chunk(2, dim=-1)
        return self.norm(x) * (1 + scale) + shift


def block_causal_mask(block_sizes: list[int] | tuple[int, ...], device: torch.device | str | None = None) -> torch.Tensor:
    """``[L, L]`` boolean mask: token i may attend token j iff block(j) <= block(i)."""
    level = torch.cat([torch.full((n,), i, dtype=torch.long) for i, n in enumerate(block_sizes)])
    mask = level[None, :] <= level[:, None]
    return mask.to(device) if device is not None else mask


class DiffusionTransformer(nn.Module):
    """Transformer denoiser of Diffusion Policy (Chi et al.'s ``TransformerForDiffusion``, obs as cond).

    The noisy action chunk ``[B, T, input_dim]`` is embedded per step (+ learned positions) and run
    through a decoder whose blocks cross-attend to condition tokens: the diffusion-step embedding
    followed by one token per observation step (``[B, To, cond_dim]``), mixed by a small MLP (or a
    transformer encoder when ``n_cond_layers > 0``). With ``causal_attn`` action step t attends only
    to steps <= t and to observation tokens s <= t (as in the reference implementation).
    """

    def __init__(
        self,
        input_dim: int,
        cond_dim: int,
        n_obs_steps: int,
        horizon: int,
        d_model: int = 128,
        n_layers: int = 4,
        n_heads: int = 4,
        n_cond_layers: int = 0,
        dropout_emb: float = 0.0,
        dropout_attn: float = 0.1,
        causal_attn: bool = True,
    ) -> None:
        super().__init__()
        self.horizon, self.n_obs_steps = horizon, n_obs_steps
        self.input_emb = nn.Linear(input_dim, d_model)
        self.pos_emb = nn.Parameter(torch.zeros(1, horizon, d_model))
        self.time_emb = SinusoidalPosEmb(d_model)
        self.cond_obs_emb = nn.Linear(cond_dim, d_model)
        self.cond_pos_emb = nn.Parameter(torch.zeros(1, 1 + n_obs_steps, d_model))
        self.drop = nn.Dropout(dropout_emb)
        if n_cond_layers > 0:
            self.cond_encoder: nn.Module = nn.ModuleList(
                [TransformerBlock(d_model, n_heads, 4.0, dropout_attn, dropout_attn) for _ in range(n_cond_layers)]
            )
        else:
            self.cond_encoder = nn.Sequential(nn.Linear(d_model, 4 * d_model), nn.Mish(), nn.Linear(4 * d_model, d_model))
        self.blocks = nn.ModuleList([
            TransformerBlock(d_model, n_heads, 4.0, dropout_attn, dropout_attn, cross_attention=True)
            for _ in range(n_layers)
        ])
        self.ln_f = nn.LayerNorm(d_model)
        self.head = nn.Linear(d_model, input_dim)
        self.feature_dim = d_model
        if causal_attn:
            t = torch.arange(horizon)[:, None]
            s = torch.arange(1 + n_obs_steps)[None, :]
            self.register_buffer("self_mask", t >= t.T, persistent=False)
            self.register_buffer("context_mask", t >= s - 1, persistent=False)
        else:
            self.self_mask = self.context_mask = None
        # GPT-style initialisation as in Chi et al.'s TransformerForDiffusion: every Linear ~ N(0, 0.02)
        # with zero bias, LayerNorm = identity, learned position embeddings ~ N(0, 0.02)
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, std=0.02)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.LayerNorm):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
        nn.init.normal_(self.pos_emb, std=0.02)
        nn.init.normal_(self.cond_pos_emb, std=0.02)

    def no_decay_parameter_names(self) -> set[str]:
        """Biases, LayerNorm weights and position embeddings: kept out of weight decay (as the reference)."""
        names = {"pos_emb", "cond_pos_emb"}
        for mn, m in self.named_modules():
            for pn, _ in m.named_parameters(recurse=False):
                full = f"{mn}.{pn}" if mn else pn
                if pn == "bias" or isinstance(m, nn.LayerNorm):
                    names.add(full)
        return names

    def forward(self, sample: torch.Tensor, timestep: torch.Tensor, cond: torch.Tensor, return_features: bool = False):
        b, t, _ = sample.shape
        if t != self.horizon:
            raise ValueError(f"DiffusionTransformer: expected {self.horizon} action steps, got {t}")
        if cond.ndim != 3 or cond.shape[1] != self.n_obs_steps:
            raise ValueError(f"DiffusionTransformer: cond must be [B, {self.n_obs_steps}, D], got {tuple(cond.shape)}")
        if timestep.ndim == 0:
            timestep = timestep.expand(b)
        ctx = torch.cat([self.time_emb(timestep).unsqueeze(1), self.cond_obs_emb(cond)], dim=1) + self.cond_pos_emb
        ctx = self.drop(ctx)
        if isinstance(self.cond_encoder, nn.ModuleList):
            for blk in self.cond_encoder:
                ctx = blk(ctx)
        else:
            ctx = self.cond_encoder(ctx)
        x = self.drop(self.input_emb(sample) + self.pos_emb)
        for blk in self.blocks:
            x = blk(x, attn_mask=self.self_mask, context=ctx, context_mask=self.context_mask)
        h = self.ln_f(x)
        out = self.head(h)
        return (out, h) if return_features else out
