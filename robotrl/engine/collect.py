"""Roll out a scripted expert and write the episodes as a robomimic HDF5 demonstration file."""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Mapping

import numpy as np
from tqdm.auto import tqdm

KEEP = ("success", "all")


def rollout_expert(env: Any, expert: Any, seed: int, max_steps: int | None = None,
                   post_success_steps: int | None = None) -> tuple[dict[str, np.ndarray], bool]:
    """One seeded episode of ``expert`` in ``env``: per-key arrays (robotrl store keys) and success.

    ``post_success_steps=k`` ends the episode ``k`` steps after the first success frame (the last
    frame is then marked truncated), as robomimic's demonstrations end at task completion; ``None``
    runs to the env's own end. On tasks that never terminate (Meta-World: 500 steps, success near
    step 60 on push) most frames of a full episode are the expert hovering after success.
    """
    if post_success_steps is not None and post_success_steps < 0:
        raise ValueError(f"post_success_steps must be >= 0 or None, got {post_success_steps}")
    obs, info = env.reset(seed=seed)
    expert.reset(seed=seed)
    rows: dict[str, list] = {}

    def add(key: str, value: Any) -> None:
        rows.setdefault(key, []).append(np.asarray(value))

    success = bool(info.get("is_success", False))
    t = 0
    success_at: int | None = 0 if success else None
    while True:
        action = np.asarray(expert.act(obs), dtype=np.float32)
        next_obs, reward, terminated, truncated, info = env.step(action)
        for k, v in obs.items():
            add(f"obs/{k}", v)
        for k, v in next_obs.items():
            add(f"next_obs/{k}", v)
        add("action", action)
        add("reward", np.float32(reward))
        add("terminated", bool(terminated))
        add("truncated", bool(truncated))
        success = success or bool(info.get("is_success", False))
        obs = next_obs
        t += 1
        if success and success_at is None:
            success_at = t
        if terminated or truncated or (max_steps is not None and t >= max_steps):
            break
        if post_success_steps is not None and success_at is not None and t >= success_at + post_success_steps:
            break
    episode = {k: np.stack(v) for k, v in rows.items()}
    if not episode["truncated"][-1] and not episode["terminated"][-1]:  # cut by max_steps / post_success_steps
        episode["truncated"][-1] = True
    return episode, success


def collect_demos(
    env_cfg: Mapping[str, Any],
    n_episodes: int,
    path: str | os.PathLike,
    keep: str = "success",
    noise: float = 0.0,
    suboptimal: bool = False,
    seed: int = 0,
    max_attempts: int | None = None,
    progress: bool = True,
    post_success_steps: int | None = None,
) -> dict[str, Any]:
    """Collect ``n_episodes`` kept episodes of the env's scripted expert into ``path`` (robomimic HDF5).

    ``keep="success"`` discards failed episodes (and tries further seeds, up to ``max_attempts``,
    default ``3 * n_episodes``); ``keep="all"`` keeps every episode. Episode ``i`` of the attempt
    sequence uses seed ``seed + i``, so a collection is reproducible. ``post_success_steps``: see
    :func:`rollout_expert` (episodes end that many steps after their first success).
    """
    from robotrl.data import EpisodeStore, save_dataset
    from robotrl.envs import make_env
    from robotrl.envs.experts import make_expert

    if keep not in KEEP:
        raise ValueError(f"keep must be one of {KEEP}, got {keep!r}")
    if n_episodes < 1:
        raise ValueError(f"n_episodes must be >= 1, got {n_episodes}")
    env_cfg = dict(env_cfg)
    env = make_env(env_cfg)
    expert = make_expert(env_cfg["id"], noise=noise, suboptimal=suboptimal, seed=seed)
    max_attempts = max_attempts or (3 * n_episodes if keep == "success" else n_episodes)
    episodes, successes, attempts = [], 0, 0
    bar = tqdm(total=n_episodes, desc=f"collect {env_cfg['id']}", disable=not progress, unit="ep")
    while len(episodes) < n_episodes and attempts < max_attempts:
        ep, ok = rollout_expert(env, expert, seed=seed + attempts, post_success_steps=post_success_steps)
        attempts += 1
        successes += int(ok)
        if ok or keep == "all":
            episodes.append(ep)
            bar.update(1)
        bar.set_postfix(success=f"{successes}/{attempts}")
    bar.close()
    env.close()
    if len(episodes) < n_episodes:
        raise RuntimeError(
            f"only {len(episodes)} of {n_episodes} requested episodes were kept after {attempts} attempts "
            f"({successes} successes) for {env_cfg['id']}; use keep=all or more attempts"
        )
    store = EpisodeStore.from_episodes(episodes)
    store.attrs["env_args"] = {"env_name": env_cfg["id"], "type": "robotrl", "env_kwargs": _jsonable(env_cfg)}
    store.attrs["expert"] = {"noise": noise, "suboptimal": suboptimal, "seed": seed, "keep": keep,
                             "post_success_steps": post_success_steps}
    path = Path(path)
    save_dataset(store, path, format="robomimic")
    summary = {
        "path": str(path),
        "env": env_cfg["id"],
        "episodes": len(episodes),
        "attempts": attempts,
        "expert_success_rate": successes / max(attempts, 1),
        "steps": int(store.num_steps),
        "mean_length": float(store.num_steps / len(episodes)),
    }
    return summary


def _jsonable(x: Any) -> Any:
    if isinstance(x, Mapping):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    if isinstance(x, (np.generic,)):
        return x.item()
    return x
