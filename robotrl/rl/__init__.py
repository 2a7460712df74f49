"""Online actor-critic core: SAC and TD3 with critic ensembles, LayerNorm, n-step targets and an
update-to-data ratio, plus the :class:`OnlineTrainer` loop (collect -> buffer -> updates -> eval ->
checkpoint/resume). Offline algorithms (:mod:`robotrl.offline`) build on the same networks.
"""
from robotrl.rl.base import Algorithm, config_from_dict, polyak_update
from robotrl.rl.networks import DeterministicActor, EnsembleCritic, TanhGaussianActor, ValueNet
from robotrl.rl.sac import SAC, SACConfig
from robotrl.rl.td3 import TD3, TD3Config
from robotrl.rl.trainer import ActionScaler, OnlineConfig, OnlineTrainer, evaluate_algo

__all__ = [
    "Algorithm", "config_from_dict", "polyak_update",
    "DeterministicActor", "EnsembleCritic", "TanhGaussianActor", "ValueNet",
    "SAC", "SACConfig", "TD3", "TD3Config",
    "ActionScaler", "OnlineConfig", "OnlineTrainer", "evaluate_algo",
]
