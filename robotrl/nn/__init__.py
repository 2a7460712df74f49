"""Shared neural-network building blocks."""
from robotrl.nn.ema import EMA
from robotrl.nn.mlp import MLP
from robotrl.nn.obs_encoder import ObsEncoder

__all__ = ["EMA", "MLP", "ObsEncoder"]
