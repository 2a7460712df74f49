"""Behaviour cloning: an MLP maps the observation history to a whole action chunk."""
from __future__ import annotations

from typing import Any, Mapping

import torch
import torch.nn.functional as F
from tensordict import TensorDict

from robotrl.data.normalizers import Normalizer
from robotrl.nn.mlp import MLP
from robotrl.nn.obs_encoder import ObsEncoder
from robotrl.policies.base import Policy
from robotrl.policies.bc.configuration_bc import BCConfig


class BCPolicy(Policy):
    """MLP BC over action chunks ``[H, A]`` in the normalised action space."""

    name = "bc"
    config_class = BCConfig

    def __init__(self, config: BCConfig, shape_meta: Mapping[str, Any], normalizer: Normalizer | None = None):
        super().__init__(config, shape_meta, normalizer)
        self.encoder = ObsEncoder(self.shape_meta["obs"], config.n_obs_steps, config.image_encoder)
        out = config.horizon * self.action_dim * (2 if config.loss == "gaussian" else 1)
        self.head = MLP(self.encoder.out_dim, config.hidden_dims, out, config.activation, config.layer_norm, config.dropout)

    def _forward(self, obs: Mapping[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor]:
        cfg: BCConfig = self.config
        hidden = self.encoder(obs)
        layers = list(self.head)
        for layer in layers[:-1]:
            hidden = layer(hidden)
        out = layers[-1](hidden)
        b = out.shape[0]
        if cfg.loss == "gaussian":
            mean, log_std = out.reshape(b, cfg.horizon, self.action_dim, 2).unbind(-1)
            return mean, log_std.clamp(cfg.min_log_std, cfg.max_log_std), hidden
        return out.reshape(b, cfg.horizon, self.action_dim), None, hidden

    def loss(self, batch: TensorDict) -> tuple[torch.Tensor, dict[str, float]]:
        obs = self.batch_obs(batch)
        target = self.normalizer.normalize("action", batch["action"].float())
        mean, log_std, _ = self._forward(obs)
        if log_std is None:
            loss = F.mse_loss(mean, target)
            return loss, {"loss": float(loss.detach())}
        nll = 0.5 * ((target - mean) / log_std.exp()) ** 2 + log_std
        loss = nll.mean()
        return loss, {"loss": float(loss.detach()), "mse": float(F.mse_loss(mean, target).detach())}

    @torch.no_grad()
    def sample_actions(self, obs: Mapping[str, Any], num_samples: int = 1, return_features: bool = False):
        """Chunks ``[B, N, H, A]``; with ``return_features`` also the MLP's last hidden layer ``[B, N, F]``."""
        prepared = self.prepare_obs(obs)
        mean, log_std, hidden = self._forward(prepared)  # observation encoded once
        chunks = mean.unsqueeze(1).expand(-1, num_samples, -1, -1)
        if log_std is not None and num_samples > 1:
            chunks = chunks + log_std.exp().unsqueeze(1) * torch.randn_like(chunks)
        actions = self.unnormalize_action(chunks)
        if return_features:
            return actions, hidden.unsqueeze(1).expand(-1, num_samples, -1)
        return actions

    @property
    def feature_dim(self) -> int:
        return int(self.config.hidden_dims[-1]) if self.config.hidden_dims else self.encoder.out_dim
