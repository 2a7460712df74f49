"""Offline RL and offline-to-online fine-tuning on D4RL-style data.

One readable file per algorithm, hyper-parameters in one dataclass with the paper's defaults:
:mod:`~robotrl.offline.iql`, :mod:`~robotrl.offline.td3bc`, :mod:`~robotrl.offline.cql`,
:mod:`~robotrl.offline.a2pr`, :mod:`~robotrl.offline.arsq`. Each is an Algorithm
(``update(batch) -> metrics``, ``act(obs, deterministic)``, ``state_dict()``), so
:class:`robotrl.rl.OnlineTrainer` fine-tunes any of them online (optionally WSRL-style).
:mod:`~robotrl.offline.datasets` generates D4RL-style datasets on the MuJoCo v5 tasks;
:func:`robotrl.engine.rl_trainer.train_algo` runs everything from a config.
"""
from robotrl.offline.a2pr import A2PR, A2PRConfig
from robotrl.offline.arsq import ARSQ, ARSQConfig, CoarseToFine
from robotrl.offline.common import TransitionSampler, check_dataset_env, episode_returns, top_return_episodes
from robotrl.offline.cql import CQL, CQLConfig
from robotrl.offline.datasets import D4RLGenConfig, generate_d4rl_datasets
from robotrl.offline.iql import IQL, IQLConfig
from robotrl.offline.td3bc import TD3BC, TD3BCConfig

__all__ = [
    "A2PR", "A2PRConfig", "ARSQ", "ARSQConfig", "CoarseToFine", "CQL", "CQLConfig", "IQL", "IQLConfig",
    "TD3BC", "TD3BCConfig", "TransitionSampler", "check_dataset_env", "episode_returns", "top_return_episodes",
    "D4RLGenConfig", "generate_d4rl_datasets",
]
