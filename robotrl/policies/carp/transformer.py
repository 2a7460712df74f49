"""CARP's next-scale GPT: a decoder-only transformer with AdaLN conditioning on the observation.

Sequence: ``L_tok = sum(scales) * G`` tokens. The first scale's ``G`` positions are "start"
tokens (the observation embedding + a learned position); every later token is the word embedding
of the tokenizer's running reconstruction downsampled to that scale (teacher forcing in training,
the model's own tokens at inference). Position and scale-level embeddings are added. A block-causal
mask lets every token see all tokens of its own and earlier scales, so token i predicts the code
at position i from coarser scales. Inference runs one forward pass per scale with a KV cache.
"""
from __future__ import annotations

import math
from typing import Sequence

import torch
from torch import nn

from robotrl.nn.transformer import AdaLNBlock, AdaLNHead, KVCache, block_causal_mask
from robotrl.policies.carp.tokenizer import MultiScaleActionTokenizer


def sample_top_k(logits: torch.Tensor, top_k: int = 1, temperature: float = 1.0,
                 generator: torch.Generator | None = None) -> torch.Tensor:
    """Token indices from ``[..., V]`` logits: argmax when ``top_k == 1``, else top-k sampling."""
    if top_k <= 1:
        return logits.argmax(dim=-1)
    k = min(int(top_k), logits.shape[-1])
    vals, idx = torch.topk(logits / max(temperature, 1e-6), k, dim=-1)
    probs = torch.softmax(vals, dim=-1)
    flat = probs.reshape(-1, k)
    choice = torch.multinomial(flat, 1, generator=generator).reshape(*vals.shape[:-1], 1)
    return idx.gather(-1, choice).squeeze(-1)


class NextScaleTransformer(nn.Module):
    """Coarse-to-fine autoregressive transformer over the tokenizer's multi-scale tokens."""

    def __init__(
        self,
        cond_in_dim: int,
        groups: int,
        scales: Sequence[int] = (1, 2, 3, 4),
        vocab_size: int = 512,
        code_dim: int = 8,
        width: int = 64,
        depth: int = 8,
        num_heads: int = 8,
        mlp_ratio: float = 4.0,
        dropout: float = 0.0,
        qk_norm: bool = False,
    ) -> None:
        super().__init__()
        self.groups, self.scales = int(groups), tuple(int(s) for s in scales)
        self.sizes = [pn * self.groups for pn in self.scales]
        self.num_tokens = sum(self.sizes)
        self.first_l = self.sizes[0]
        self.width, self.vocab_size = width, vocab_size
        init_std = math.sqrt(1.0 / width / 3.0)
        self.obs_embed = nn.Linear(cond_in_dim, width)
        self.word_embed = nn.Linear(code_dim, width)
        self.pos_start = nn.Parameter(torch.empty(1, self.first_l, width))
        self.pos = nn.Parameter(torch.empty(1, self.num_tokens, width))
        self.lvl_embed = nn.Embedding(len(self.scales), width)
        for p in (self.pos_start, self.pos, self.lvl_embed.weight):
            nn.init.trunc_normal_(p, std=init_std)
        self.blocks = nn.ModuleList([AdaLNBlock(width, num_heads, width, mlp_ratio, dropout, dropout, qk_norm)
                                     for _ in range(depth)])
        self.head_norm = AdaLNHead(width, width)
        self.head = nn.Linear(width, vocab_size)
        level = torch.cat([torch.full((n,), i, dtype=torch.long) for i, n in enumerate(self.sizes)])
        self.register_buffer("level", level, persistent=False)
        self.register_buffer("attn_mask", block_causal_mask(self.sizes), persistent=False)
        self.apply(self._init_linear)
        for blk in self.blocks:  # re-apply adaLN-Zero after the generic init
            nn.init.zeros_(blk.ada_lin[-1].weight)
            nn.init.zeros_(blk.ada_lin[-1].bias)
        nn.init.zeros_(self.head_norm.ada_lin[-1].weight)
        nn.init.zeros_(self.head_norm.ada_lin[-1].bias)
        self.head.weight.data.mul_(0.1)  # small initial logits: near-uniform token distribution

    def no_decay_parameter_names(self) -> set[str]:
        """The QK-norm logit scales (weight decay would pull every head's scale towards 1); empty without qk_norm."""
        return {n for n, _ in self.named_parameters() if n.endswith("qk_log_scale")}

    @staticmethod
    def _init_linear(m: nn.Module) -> None:
        if isinstance(m, nn.Linear):
            nn.init.trunc_normal_(m.weight, std=0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)

    # ------------------------------------------------------------------ embeddings
    def _pos_lvl(self, start: int, end: int) -> torch.Tensor:
        return self.pos[:, start:end] + self.lvl_embed(self.level[start:end]).unsqueeze(0)

    def start_tokens(self, cond: torch.Tensor) -> torch.Tensor:
        """``[B, width]`` observation embedding -> the first scale's input ``[B, first_l, width]``."""
        return cond.unsqueeze(1) + self.pos_start + self._pos_lvl(0, self.first_l)

    def embed_inputs(self, cond: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
        """Full input sequence ``[B, L', width]`` from the condition and teacher tokens ``[B, L'-first_l, C]``."""
        end = self.first_l + teacher.shape[1]
        rest = self.word_embed(teacher) + self._pos_lvl(self.first_l, end)
        return torch.cat([self.start_tokens(cond), rest], dim=1)

    def run_blocks(self, x: torch.Tensor, cond: torch.Tensor, attn_mask: torch.Tensor | None = None,
                   caches: list[KVCache] | None = None) -> torch.Tensor:
        for i, blk in enumerate(self.blocks):
            x = blk(x, cond, attn_mask=attn_mask, cache=None if caches is None else caches[i])
        return self.head_norm(x, cond)

    # ------------------------------------------------------------------ training
    def forward(self, cond_in: torch.Tensor, teacher: torch.Tensor, return_hidden: bool = False):
        """Logits ``[B, L_tok, V]`` under the block-causal mask (teacher forcing)."""
        cond = self.obs_embed(cond_in)
        x = self.embed_inputs(cond, teacher)
        n = x.shape[1]
        h = self.run_blocks(x, cond, attn_mask=self.attn_mask[:n, :n])
        logits = self.head(h)
        return (logits, h) if return_hidden else logits

    # ------------------------------------------------------------------ inference
    @torch.no_grad()
    def generate(
        self,
        cond_in: torch.Tensor,
        tokenizer: MultiScaleActionTokenizer,
        top_k: int = 1,
        temperature: float = 1.0,
        use_cache: bool = True,
        generator: torch.Generator | None = None,
    ) -> tuple[torch.Tensor, list[torch.Tensor], torch.Tensor]:
        """Decode scale by scale. Returns ``(f_hat [B, G, C, L], indices per scale [B, G, pn],
        hidden [B, L_tok, width])``. ``use_cache=False`` re-runs the whole prefix under the mask
        each scale (the reference the KV cache must match)."""
        b = cond_in.shape[0]
        cond = self.obs_embed(cond_in)
        caches = [KVCache() for _ in self.blocks] if use_cache else None
        f_hat = torch.zeros(b, tokenizer.groups, tokenizer.code_dim, tokenizer.latent_len, device=cond.device, dtype=cond.dtype)
        x = self.start_tokens(cond)
        teacher: list[torch.Tensor] = []  # token vectors fed so far (uncached path)
        indices, hiddens, start = [], [], 0
        for si, n in enumerate(self.sizes):
            if use_cache:
                h = self.run_blocks(x, cond, caches=caches)
            else:
                full = self.embed_inputs(cond, torch.cat(teacher, dim=1) if teacher else cond.new_zeros(b, 0, tokenizer.code_dim))
                end = start + n
                h = self.run_blocks(full, cond, attn_mask=self.attn_mask[:end, :end])[:, start:end]
            hiddens.append(h)
            idx_flat = sample_top_k(self.head(h), top_k, temperature, generator)  # [B, pn*G]
            idx = idx_flat.reshape(b, self.scales[si], self.groups).transpose(1, 2)
            indices.append(idx)
            f_hat, nxt = tokenizer.next_input(si, f_hat, idx)
            if nxt is not None:
                teacher.append(nxt)
                x = self.word_embed(nxt) + self._pos_lvl(start + n, start + n + self.sizes[si + 1])
            start += n
        return f_hat, indices, torch.cat(hiddens, dim=1)
