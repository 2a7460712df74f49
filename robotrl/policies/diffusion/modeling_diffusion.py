"""Diffusion Policy: DDPM-trained denoiser of action chunks, conditioned on the observation history.

Training (``loss``): normalise the chunk ``[B, H, A]`` to [-1, 1], draw ``t`` and Gaussian noise,
regress the noise (or the clean chunk) with MSE. Sampling (``sample_actions``): encode the
observations once, repeat the condition for ``N`` candidates, run one batched reverse chain
(DDPM or DDIM) from ``N(0, I)`` and unnormalise.
"""
from __future__ import annotations

from typing import Any, Mapping

import torch
import torch.nn.functional as F
from tensordict import TensorDict

from robotrl.data.normalizers import Normalizer
from robotrl.nn.obs_encoder import ObsEncoder
from robotrl.nn.transformer import DiffusionTransformer
from robotrl.nn.unet1d import ConditionalUnet1D
from robotrl.policies.base import Policy
from robotrl.policies.diffusion.configuration_diffusion import DiffusionConfig
from robotrl.policies.diffusion.schedulers import NoiseScheduler


class DiffusionPolicy(Policy):
    """Diffusion Policy with a UNet ("CNN") or transformer denoiser."""

    name = "diffusion"
    config_class = DiffusionConfig

    def __init__(self, config: DiffusionConfig, shape_meta: Mapping[str, Any], normalizer: Normalizer | None = None):
        super().__init__(config, shape_meta, normalizer)
        self.encoder = ObsEncoder(self.shape_meta["obs"], config.n_obs_steps, config.image_encoder)
        a = self.action_dim
        if config.denoiser == "unet":
            self.denoiser: torch.nn.Module = ConditionalUnet1D(
                a, self.encoder.out_dim, config.diffusion_step_embed_dim, config.down_dims, config.kernel_size,
                config.n_groups, config.cond_predict_scale,
            )
        else:
            self.denoiser = DiffusionTransformer(
                a, self.encoder.per_step_dim, config.n_obs_steps, config.horizon, config.d_model, config.n_layers,
                config.n_heads, config.n_cond_layers, config.dropout_emb, config.dropout_attn, config.causal_attn,
            )
        self.scheduler = NoiseScheduler(
            config.num_train_timesteps, config.beta_schedule, config.prediction_type, config.clip_sample,
            config.clip_sample_range,
        )

    # ------------------------------------------------------------------ pieces
    def encode(self, obs: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """Prepared observations -> the denoiser's condition (flat for the UNet, per step for the transformer)."""
        return self.encoder(obs, flatten=self.config.denoiser == "unet")

    def _denoise(self, x: torch.Tensor, t: torch.Tensor, cond: torch.Tensor, return_features: bool = False):
        return self.denoiser(x, t, cond, return_features=return_features)

    # ------------------------------------------------------------------ contract
    def loss(self, batch: TensorDict) -> tuple[torch.Tensor, dict[str, float]]:
        cfg: DiffusionConfig = self.config
        cond = self.encode(self.batch_obs(batch))
        x0 = self.normalizer.normalize("action", batch["action"].float())
        if x0.shape[1:] != (cfg.horizon, self.action_dim):
            raise ValueError(
                f"diffusion policy: batch 'action' must be [B, {cfg.horizon}, {self.action_dim}], got {tuple(x0.shape)}"
            )
        noise = torch.randn_like(x0)
        t = self.scheduler.sample_timesteps(x0.shape[0], x0.device)
        pred = self._denoise(self.scheduler.add_noise(x0, noise, t), t, cond)
        loss = F.mse_loss(pred, self.scheduler.training_target(x0, noise))
        return loss, {"loss": float(loss.detach())}

    @torch.no_grad()
    def sample_actions(
        self,
        obs: Mapping[str, Any],
        num_samples: int = 1,
        return_features: bool = False,
        num_inference_steps: int | None = None,
        sampler: str | None = None,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """``[B, N, H, A]`` chunks in env units (and ``[B, N, F]`` features: the denoiser's last
        hidden state at the final denoising step, averaged over the horizon)."""
        cfg: DiffusionConfig = self.config
        if num_samples < 1:
            raise ValueError(f"num_samples must be >= 1, got {num_samples}")
        cond = self.encode(self.prepare_obs(obs))  # encoded once for all N candidates
        b = cond.shape[0]
        cond = cond.repeat_interleave(num_samples, dim=0)
        steps = cfg.num_inference_steps if num_inference_steps is None else num_inference_steps
        sampler = cfg.sampler if sampler is None else sampler
        x = torch.randn((b * num_samples, cfg.horizon, self.action_dim), generator=generator, device=cond.device,
                        dtype=cond.dtype)
        ts = self.scheduler.timesteps(steps)
        feats = None
        for i, t in enumerate(ts):
            t_prev = ts[i + 1] if i + 1 < len(ts) else -1
            t_batch = torch.full((x.shape[0],), t, device=x.device, dtype=torch.long)
            last = t_prev < 0
            out = self._denoise(x, t_batch, cond, return_features=return_features and last)
            if return_features and last:
                out, hidden = out
                feats = hidden.mean(dim=1)
            x = self.scheduler.step(out, t, t_prev, x, sampler=sampler, eta=cfg.ddim_eta, generator=generator)
        actions = self.unnormalize_action(x).reshape(b, num_samples, cfg.horizon, self.action_dim)
        if return_features:
            return actions, feats.reshape(b, num_samples, -1)
        return actions

    # ------------------------------------------------------------------ training hooks
    def optim_groups(self, stage: str) -> tuple[list[torch.nn.Parameter], dict[str, Any]]:
        cfg: DiffusionConfig = self.config
        over: dict[str, Any] = {"lr": cfg.lr, "weight_decay": cfg.weight_decay, "betas": tuple(cfg.betas)}
        if cfg.warmup_steps is not None:
            over["warmup_steps"] = int(cfg.warmup_steps)
        no_decay_fn = getattr(self.denoiser, "no_decay_parameter_names", None)
        if no_decay_fn is None:
            return [p for p in self.parameters() if p.requires_grad], over
        skip = {f"denoiser.{n}" for n in no_decay_fn()}
        named = [(n, p) for n, p in self.named_parameters() if p.requires_grad]
        decay = [p for n, p in named if n not in skip]
        no_decay = [p for n, p in named if n in skip]
        return [{"params": decay}, {"params": no_decay, "weight_decay": 0.0}], over

    @property
    def feature_dim(self) -> int:
        return int(self.denoiser.feature_dim)
