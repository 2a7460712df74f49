"""Evaluate a policy in vectorised environments: success rate, return, video, JSON."""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import torch

from robotrl.utils.atomic import atomic_path


def policy_chunk_fn(policy: Any):
    """Adapt a Policy to the evaluator's ``obs[num_envs, To, ...] -> actions[num_envs, Ta, A]``."""

    @torch.no_grad()
    def fn(obs: Mapping[str, np.ndarray]) -> np.ndarray:
        was_training = policy.training
        policy.eval()
        chunk = policy.predict_chunk(obs)
        policy.train(was_training)
        return chunk.detach().cpu().numpy()

    return fn


def evaluate(
    policy: Any,
    env_cfg: Mapping[str, Any],
    n_episodes: int = 50,
    num_envs: int = 10,
    seed: int = 100_000,
    video_path: str | os.PathLike | None = None,
    max_episode_steps: int | None = None,
    progress: bool = True,
    stop_on_success: bool = False,
) -> dict[str, Any]:
    """Run ``n_episodes`` seeded episodes (seeds ``seed + i``) and return the metrics dict.

    Evaluation seeds default to a range disjoint from the demonstration seeds. An episode counts
    as a success if ``info["is_success"]`` was true at any step; ``stop_on_success`` only ends it
    there (faster on tasks that never terminate, such as Meta-World; returns then stop there too).
    """
    from robotrl.envs.vector import evaluate_policy

    return evaluate_policy(
        policy_chunk_fn(policy),
        dict(env_cfg),
        n_episodes=n_episodes,
        num_envs=num_envs,
        seed=seed,
        n_obs_steps=policy.config.n_obs_steps,
        max_episode_steps=max_episode_steps,
        video_path=str(video_path) if video_path else None,
        progress=progress,
        reset_fn=getattr(policy, "reset_envs", None),  # per-env episode starts (residual, verifiers)
        stop_on_success=stop_on_success,
    )


def write_eval_json(path: str | os.PathLike, metrics: Mapping[str, Any], extra: Mapping[str, Any] | None = None) -> Path:
    """Metrics (numpy made JSON-friendly) plus ``extra`` context, written atomically."""
    def conv(x: Any) -> Any:
        if isinstance(x, np.ndarray):
            return x.tolist()
        if isinstance(x, (np.floating, np.integer, np.bool_)):
            return x.item()
        if isinstance(x, Mapping):
            return {k: conv(v) for k, v in x.items()}
        if isinstance(x, (list, tuple)):
            return [conv(v) for v in x]
        return x

    path = Path(path)
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(conv({**dict(extra or {}), **dict(metrics)}), indent=2))
    return path
