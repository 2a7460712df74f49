"""Exponential moving average of a model's weights (evaluation uses the EMA copy)."""
from __future__ import annotations

import copy

import torch
from torch import nn


class EMA:
    """Keeps ``shadow`` = EMA of ``model``'s parameters; buffers are copied as they are.

    The decay warms up as in Diffusion Policy's EMAModel: ``1 - (1 + step / inv_gamma) ** -power``,
    capped at ``max_decay``, so early weights are not frozen in.
    """

    def __init__(self, model: nn.Module, max_decay: float = 0.9999, power: float = 0.75, inv_gamma: float = 1.0):
        self.shadow = copy.deepcopy(model).eval()
        for p in self.shadow.parameters():
            p.requires_grad_(False)
        self.max_decay, self.power, self.inv_gamma = max_decay, power, inv_gamma
        self.step = 0

    def decay(self) -> float:
        value = 1.0 - (1.0 + self.step / self.inv_gamma) ** -self.power
        return float(min(max(value, 0.0), self.max_decay))

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        d = self.decay()
        for ps, pm in zip(self.shadow.parameters(), model.parameters()):
            ps.mul_(d).add_(pm.detach(), alpha=1.0 - d)
        for bs, bm in zip(self.shadow.buffers(), model.buffers()):
            bs.copy_(bm)
        self.step += 1

    def state_dict(self) -> dict:
        return {"shadow": self.shadow.state_dict(), "step": self.step}

    def load_state_dict(self, state: dict) -> None:
        self.shadow.load_state_dict(state["shadow"])
        self.step = int(state["step"])
