"""Configuration of the behaviour-cloning policy."""
from __future__ import annotations

import dataclasses

from robotrl.policies.base import PolicyConfig

LOSSES = ("mse", "gaussian")


@dataclasses.dataclass
class BCConfig(PolicyConfig):
    """MLP behaviour cloning of action chunks.

    ``loss="mse"`` regresses the mean action chunk (the mean-regressing baseline that fails on
    multimodal demonstrations); ``loss="gaussian"`` fits a diagonal Gaussian per action
    (negative log-likelihood) and acts with its mean (or samples when ``num_samples > 1``).
    """

    hidden_dims: tuple[int, ...] = (256, 256, 256)
    activation: str = "relu"
    layer_norm: bool = False
    dropout: float = 0.0
    loss: str = "mse"
    min_log_std: float = -5.0
    max_log_std: float = 2.0
    image_encoder: dict = dataclasses.field(default_factory=dict)

    def __post_init__(self) -> None:
        super().__post_init__()
        self.hidden_dims = tuple(self.hidden_dims)
        if self.loss not in LOSSES:
            raise ValueError(f"BCConfig.loss must be one of {LOSSES}, got {self.loss!r}")
