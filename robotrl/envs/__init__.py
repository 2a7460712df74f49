"""Environments in one convention: ``make_env`` for every suite, wrappers, vectorised evaluation.

Importing this package is cheap: optional suites (metaworld, robosuite, gymnasium-robotics) are
imported only when ``make_env`` is asked for one of their ids.
"""

from robotrl.envs.registry import (
    EnvConfig,
    EnvConfigError,
    UnknownEnvError,
    infer_suite,
    list_envs,
    make_env,
    register_suite,
)
from robotrl.envs.vector import evaluate_policy, make_vec_env
from robotrl.envs.wrappers import (
    ActionChunk,
    ObservationHistory,
    RecordFrames,
    RescaleAction,
    SuccessInfo,
    VideoRecorder,
)

__all__ = [
    "EnvConfig",
    "EnvConfigError",
    "UnknownEnvError",
    "infer_suite",
    "list_envs",
    "make_env",
    "register_suite",
    "make_vec_env",
    "evaluate_policy",
    "ActionChunk",
    "ObservationHistory",
    "RecordFrames",
    "RescaleAction",
    "SuccessInfo",
    "VideoRecorder",
]
