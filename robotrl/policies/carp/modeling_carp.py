"""CARP: a multi-scale action tokenizer and a next-scale GPT in one policy (one checkpoint).

Training runs two stages (``stages``): "tokenizer" fits the VQ-VAE to normalised action chunks
(reconstruction + VQ loss); "transformer" freezes it and trains the observation encoder and the
GPT with cross-entropy on the frozen tokenizer's tokens. Sampling encodes the observation once,
repeats the embedding for ``N`` candidates, decodes the scales with a KV cache (4 passes for
scales 1-2-3-4) and decodes the final latent to actions.
"""
from __future__ import annotations

from typing import Any, Mapping

import torch
import torch.nn.functional as F
from tensordict import TensorDict

from robotrl.data.normalizers import Normalizer
from robotrl.nn.obs_encoder import ObsEncoder
from robotrl.policies.base import Policy
from robotrl.policies.carp.configuration_carp import CARPConfig
from robotrl.policies.carp.tokenizer import MultiScaleActionTokenizer
from robotrl.policies.carp.transformer import NextScaleTransformer


class CARPPolicy(Policy):
    """Coarse-to-fine autoregressive policy."""

    name = "carp"
    config_class = CARPConfig
    stages = ("tokenizer", "transformer")

    def __init__(self, config: CARPConfig, shape_meta: Mapping[str, Any], normalizer: Normalizer | None = None):
        super().__init__(config, shape_meta, normalizer)
        self.encoder = ObsEncoder(self.shape_meta["obs"], config.n_obs_steps, config.image_encoder)
        self.tokenizer = MultiScaleActionTokenizer(
            self.action_dim, config.horizon, config.scales, config.vocab_size, config.code_dim,
            config.tokenizer_channels, config.tokenizer_ch_mult, config.commitment_beta, config.phi_ratio,
            config.per_dimension,
        )
        self.transformer = NextScaleTransformer(
            self.encoder.out_dim, self.tokenizer.groups, config.scales, config.vocab_size, config.code_dim,
            config.width, config.depth, config.num_heads, config.mlp_ratio, config.dropout, config.qk_norm,
        )

    # ------------------------------------------------------------------ stages
    # the tokenizer is "frozen" in the transformer stage by construction: optim_groups("transformer")
    # leaves it out and its tokens are computed under no_grad (requires_grad is not toggled, so an
    # EMA copy or a loaded checkpoint behaves the same in every stage)
    def stage_steps(self, stage: str, total_steps: int) -> int:
        n_tok = int(round(total_steps * self.config.tokenizer_fraction))
        if stage == "tokenizer":
            return n_tok
        if stage == "transformer":
            return total_steps - n_tok
        raise ValueError(f"carp policy has stages {self.stages}, not {stage!r}")

    def optim_groups(self, stage: str) -> tuple[list[torch.nn.Parameter], dict[str, Any]]:
        cfg: CARPConfig = self.config
        if stage == "tokenizer":
            return list(self.tokenizer.parameters()), {
                "lr": cfg.tokenizer_lr, "betas": tuple(cfg.tokenizer_betas), "weight_decay": cfg.tokenizer_weight_decay,
            }
        if stage == "transformer":
            named = list(self.encoder.named_parameters()) + list(self.transformer.named_parameters(prefix="transformer"))
            over = {"lr": cfg.lr, "betas": tuple(cfg.betas), "weight_decay": cfg.weight_decay, "grad_clip": cfg.grad_clip}
            skip = {f"transformer.{n}" for n in self.transformer.no_decay_parameter_names()}
            if not skip:
                return [q for _, q in named], over
            return [{"params": [q for n, q in named if n not in skip]},
                    {"params": [q for n, q in named if n in skip], "weight_decay": 0.0}], over
        raise ValueError(f"carp policy has stages {self.stages}, not {stage!r}")

    # ------------------------------------------------------------------ losses
    def _target_actions(self, batch: TensorDict) -> torch.Tensor:
        x = self.normalizer.normalize("action", batch["action"].float())
        if x.shape[1:] != (self.config.horizon, self.action_dim):
            raise ValueError(
                f"carp policy: batch 'action' must be [B, {self.config.horizon}, {self.action_dim}], got {tuple(x.shape)}"
            )
        return x

    def loss(self, batch: TensorDict) -> tuple[torch.Tensor, dict[str, float]]:
        actions = self._target_actions(batch)
        if self.stage == "tokenizer":
            recon, vq, _ = self.tokenizer(actions)
            rec = F.mse_loss(recon, actions)
            loss = rec + vq
            return loss, {"loss": float(loss.detach()), "recon_mse": float(rec.detach()), "vq_loss": float(vq.detach())}
        with torch.no_grad():
            indices = self.tokenizer.actions_to_indices(actions)
            teacher = self.tokenizer.teacher_inputs(indices)
            target = self.tokenizer.flatten_indices(indices)
        cond_in = self.encoder(self.batch_obs(batch))
        logits = self.transformer(cond_in, teacher)
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), target.reshape(-1))
        with torch.no_grad():
            correct = (logits.argmax(-1) == target).float()
        metrics = {"loss": float(loss.detach()), "token_acc": float(correct.mean())}
        start = 0
        for si, n in enumerate(self.transformer.sizes):
            metrics[f"token_acc_s{si + 1}"] = float(correct[:, start : start + n].mean())
            start += n
        return loss, metrics

    @torch.no_grad()
    def reconstruction_error(self, actions: torch.Tensor) -> dict[str, float]:
        """Tokenizer round-trip error on raw action chunks ``[B, H, A]``: MSE in normalised units
        and mean absolute error in env units."""
        x = self.normalizer.normalize("action", torch.as_tensor(actions, dtype=torch.float32, device=self.device))
        recon = self.tokenizer.reconstruct(x)
        raw = self.normalizer.unnormalize("action", recon)
        actions = self.normalizer.unnormalize("action", x)
        return {"recon_mse_normalized": float(F.mse_loss(recon, x)), "recon_mae": float((raw - actions).abs().mean())}

    # ------------------------------------------------------------------ sampling
    @torch.no_grad()
    def sample_actions(
        self,
        obs: Mapping[str, Any],
        num_samples: int = 1,
        return_features: bool = False,
        top_k: int | None = None,
        temperature: float | None = None,
        use_cache: bool = True,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """``[B, N, H, A]`` chunks in env units (and ``[B, N, width]`` features: the transformer's
        last hidden state averaged over the chunk's tokens). ``top_k`` defaults to ``config.top_k``
        for one sample and ``config.candidate_top_k`` for several."""
        cfg: CARPConfig = self.config
        if num_samples < 1:
            raise ValueError(f"num_samples must be >= 1, got {num_samples}")
        cond_in = self.encoder(self.prepare_obs(obs))  # encoded once for all N candidates
        b = cond_in.shape[0]
        cond_in = cond_in.repeat_interleave(num_samples, dim=0)
        if top_k is None:
            top_k = cfg.top_k if num_samples == 1 else cfg.candidate_top_k
        temperature = cfg.temperature if temperature is None else temperature
        f_hat, _, hidden = self.transformer.generate(cond_in, self.tokenizer, top_k, temperature, use_cache, generator)
        actions = self.unnormalize_action(self.tokenizer.decode(f_hat))
        actions = actions.reshape(b, num_samples, cfg.horizon, self.action_dim)
        if return_features:
            return actions, hidden.mean(dim=1).reshape(b, num_samples, -1)
        return actions

    @property
    def feature_dim(self) -> int:
        return int(self.config.width)
