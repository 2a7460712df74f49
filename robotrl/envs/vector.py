"""Vectorised environments and a reproducible, episode-exact policy evaluator."""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Sequence

import gymnasium as gym
import numpy as np

from robotrl.envs.registry import _coerce_cfg, make_env
from robotrl.envs.wrappers import ObservationHistory, VideoRecorder

__all__ = ["make_vec_env", "evaluate_policy"]


def _env_fn(cfg: Any, seed: int | None, history: int | None, **overrides: Any) -> Callable[[], gym.Env]:
    def thunk() -> gym.Env:
        env = make_env(cfg, seed=seed, **overrides)
        if history is not None:
            env = ObservationHistory(env, history)
        return env

    return thunk


def make_vec_env(
    cfg: Any,
    num_envs: int,
    seed: int | None = None,
    history: int | None = None,
    async_: bool = False,
    **vector_kwargs: Any,
) -> gym.vector.VectorEnv:
    """``num_envs`` copies of ``make_env(cfg)`` in a gymnasium ``SyncVectorEnv`` (``AsyncVectorEnv``
    with ``async_=True``), with dict observations batched per key.

    Env ``i`` uses ``seed + i`` on its first ``reset()`` when ``seed`` is given (so ``vec.reset()``
    is reproducible without passing seeds). ``history=To`` stacks each key to ``[To, ...]``
    (:class:`ObservationHistory`). ``vector_kwargs`` go to the vector env (e.g. ``autoreset_mode``).
    """
    if int(num_envs) < 1:
        raise ValueError(f"num_envs must be >= 1, got {num_envs}")
    c = _coerce_cfg(cfg, {})
    base_seed = seed if seed is not None else c.seed
    fns = [
        _env_fn(c, None if base_seed is None else int(base_seed) + i, history) for i in range(int(num_envs))
    ]
    cls = gym.vector.AsyncVectorEnv if async_ else gym.vector.SyncVectorEnv
    return cls(fns, **vector_kwargs)


def _stack_obs(obs_list: Sequence[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    return {k: np.stack([o[k] for o in obs_list], axis=0) for k in obs_list[0]}


def evaluate_policy(
    policy_fn: Callable[[dict[str, np.ndarray]], np.ndarray],
    env_cfg: Any,
    n_episodes: int,
    num_envs: int = 1,
    seed: int = 0,
    n_obs_steps: int = 1,
    max_episode_steps: int | None = None,
    video_path: str | None = None,
    progress: bool = True,
    reset_fn: Callable[[list[int]], None] | None = None,
    stop_on_success: bool = False,
    video_fps: int = 10,
) -> dict[str, Any]:
    """Run ``n_episodes`` episodes of a chunking policy on ``num_envs`` envs; return the statistics.

    Protocol: ``policy_fn(obs)`` gets ``{key: [num_envs, To, ...]}`` and returns an action chunk
    ``[num_envs, Ta, A]`` (``[num_envs, A]`` means ``Ta = 1``). The evaluator executes each env's
    chunk (stopping early at the end of its episode), then asks again. Rows of envs with no more
    episodes to run are still passed (their last observation) and their actions are ignored.
    ``reset_fn(env_indices)``, if given, is called whenever those envs start a new episode
    (including at the start), so a policy can clear per-env action queues / histories.

    Episode ``i`` is reset with seed ``seed + i``; a finished env takes the next unstarted episode
    until ``n_episodes`` have run, and every episode is counted exactly once. Results are ordered by
    episode index, so they do not depend on ``num_envs`` for a deterministic per-env policy.
    An episode is a success if ``info["is_success"]`` was true at any step. With
    ``stop_on_success`` it ends at the first successful step (its return counts up to there).
    ``video_path``: the first episode (env 0) is rendered (``render_mode="rgb_array"``) to an mp4.

    Returns ``dict(success_rate, mean_return, std_return, returns, successes, lengths, seeds,
    video_path)``.
    """
    n_episodes = int(n_episodes)
    if n_episodes < 1:
        raise ValueError(f"n_episodes must be >= 1, got {n_episodes}")
    num_envs = max(1, min(int(num_envs), n_episodes))
    c = _coerce_cfg(env_cfg, {})
    if max_episode_steps is not None:
        c = dataclasses.replace(c, max_episode_steps=int(max_episode_steps))
    limit = c.max_episode_steps

    envs: list[gym.Env] = []
    recorder: VideoRecorder | None = None
    for i in range(num_envs):
        render_mode = "rgb_array" if (i == 0 and video_path is not None) else c.render_mode
        env = make_env(dataclasses.replace(c, render_mode=render_mode, seed=None))
        envs.append(ObservationHistory(env, n_obs_steps))
    if video_path is not None:
        recorder = VideoRecorder(video_path, fps=video_fps)

    returns = np.zeros(n_episodes, dtype=np.float64)
    successes = np.zeros(n_episodes, dtype=bool)
    lengths = np.zeros(n_episodes, dtype=np.int64)
    finished_mask = np.zeros(n_episodes, dtype=bool)
    episode_of = [-1] * num_envs  # which episode each env is running, -1: idle
    next_episode = 0
    done_count = 0
    obs: list[dict[str, np.ndarray] | None] = [None] * num_envs

    pbar = None
    if progress:
        from tqdm.auto import tqdm

        pbar = tqdm(total=n_episodes, desc=f"eval {c.id}", leave=False)

    def start(j: int) -> bool:
        nonlocal next_episode
        if next_episode >= n_episodes:
            episode_of[j] = -1
            return False
        ep = next_episode
        next_episode += 1
        episode_of[j] = ep
        o, info = envs[j].reset(seed=int(seed) + ep)
        obs[j] = o
        successes[ep] = bool(info.get("is_success", False))
        if recorder is not None and j == 0 and ep == 0:
            recorder.capture(envs[0])
        return True

    try:
        started = [j for j in range(num_envs) if start(j)]
        if reset_fn is not None:
            reset_fn(started)
        while done_count < n_episodes:
            batch = _stack_obs(obs)  # type: ignore[arg-type]
            actions = np.asarray(policy_fn(batch))
            if actions.ndim == 2:
                actions = actions[:, None]
            if actions.ndim != 3 or actions.shape[0] != num_envs:
                raise ValueError(
                    f"policy_fn must return an action chunk [num_envs={num_envs}, Ta, A]; got shape {actions.shape}"
                )
            restarted: list[int] = []
            for j in range(num_envs):
                ep = episode_of[j]
                if ep < 0:
                    continue
                finished = False
                for a in actions[j]:
                    o, r, terminated, truncated, info = envs[j].step(a)
                    obs[j] = o
                    returns[ep] += float(r)
                    lengths[ep] += 1
                    if recorder is not None and j == 0 and ep == 0:
                        recorder.capture(envs[0])
                    if info.get("is_success", False):
                        successes[ep] = True
                    if (
                        terminated
                        or truncated
                        or (limit is not None and lengths[ep] >= limit)
                        or (stop_on_success and successes[ep])
                    ):
                        finished = True
                        break
                if finished:
                    done_count += 1
                    finished_mask[ep] = True
                    if pbar is not None:
                        pbar.update(1)
                        pbar.set_postfix(success=f"{successes[finished_mask].mean():.2f}")
                    if recorder is not None and ep == 0:
                        recorder.close()
                    if start(j):
                        restarted.append(j)
            if restarted and reset_fn is not None:
                reset_fn(restarted)
    finally:
        if pbar is not None:
            pbar.close()
        if recorder is not None and not recorder.closed:
            recorder.close()
        for e in envs:
            e.close()

    return {
        "success_rate": float(successes.mean()),
        "mean_return": float(returns.mean()),
        "std_return": float(returns.std()),
        "returns": returns.tolist(),
        "successes": successes.tolist(),
        "lengths": lengths.tolist(),
        "seeds": [int(seed) + i for i in range(n_episodes)],
        "video_path": None if video_path is None else str(video_path),
    }
