"""Configuration of CARP, the Coarse-to-fine AutoRegressive Policy (Gong et al., 2024)."""
from __future__ import annotations

import dataclasses

from robotrl.policies.base import PolicyConfig


@dataclasses.dataclass
class CARPConfig(PolicyConfig):
    """Multi-scale action tokenizer + next-scale GPT, trained in two stages.

    Stage "tokenizer" (``tokenizer_fraction`` of the steps) trains the VQ-VAE on action chunks;
    stage "transformer" freezes it and trains the GPT with cross-entropy on its tokens.
    Inference: one forward pass per scale (KV cache); greedy (``top_k = 1``) for a single chunk,
    top-k sampling with ``candidate_top_k`` when several candidates are drawn at once.
    """

    # tokenizer (official: one VQ-VAE per action dimension, codebook 512 x 8, scales 1-2-3-4)
    per_dimension: bool = True
    scales: tuple[int, ...] = (1, 2, 3, 4)
    vocab_size: int = 512
    code_dim: int = 8
    tokenizer_channels: int = 2
    tokenizer_ch_mult: tuple[int, ...] = (2, 4)
    commitment_beta: float = 0.25
    phi_ratio: float = 0.5
    # transformer (state config of the paper: depth 8, width 64, 8 heads)
    depth: int = 8
    width: int = 64
    num_heads: int = 8
    mlp_ratio: float = 4.0
    dropout: float = 0.0
    #: L2-normalised queries/keys with a learned per-head logit scale (init 4, cap 100), as the official code's
    #: attention (VAR's); off by default: our benchmark results were measured with plain scaled dot-product
    qk_norm: bool = False
    # inference
    top_k: int = 1
    candidate_top_k: int = 8
    temperature: float = 1.0
    # observation encoder (image keys only): kwargs of robotrl.nn.vision.build_image_encoder
    image_encoder: dict = dataclasses.field(default_factory=dict)
    # two-stage optimisation
    tokenizer_fraction: float = 0.3
    tokenizer_lr: float = 3e-4
    tokenizer_betas: tuple[float, float] = (0.5, 0.9)
    tokenizer_weight_decay: float = 0.005
    lr: float = 1e-4
    betas: tuple[float, float] = (0.9, 0.95)
    weight_decay: float = 0.05
    grad_clip: float = 2.0

    def __post_init__(self) -> None:
        super().__post_init__()
        self.scales = tuple(int(s) for s in self.scales)
        self.tokenizer_ch_mult = tuple(int(m) for m in self.tokenizer_ch_mult)
        self.tokenizer_betas = tuple(float(b) for b in self.tokenizer_betas)
        self.betas = tuple(float(b) for b in self.betas)
        latent = self.horizon // 2 ** len(self.tokenizer_ch_mult)
        if self.horizon % 2 ** len(self.tokenizer_ch_mult) or not self.scales or self.scales[-1] != latent:
            raise ValueError(
                f"CARPConfig: the last scale ({self.scales[-1] if self.scales else None}) must equal the latent length "
                f"horizon / 2**len(tokenizer_ch_mult) = {self.horizon} / {2 ** len(self.tokenizer_ch_mult)}"
            )
        if list(self.scales) != sorted(set(self.scales)) or self.scales[0] < 1:
            raise ValueError(f"CARPConfig.scales must be strictly increasing positive ints, got {self.scales}")
        if self.width % self.num_heads:
            raise ValueError(f"CARPConfig: width {self.width} must be divisible by num_heads {self.num_heads}")
        if not 0.0 < self.tokenizer_fraction < 1.0:
            raise ValueError(f"CARPConfig.tokenizer_fraction must be in (0, 1), got {self.tokenizer_fraction}")
        if self.top_k < 1 or self.candidate_top_k < 1:
            raise ValueError("CARPConfig.top_k and candidate_top_k must be >= 1")
