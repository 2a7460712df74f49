"""What every offline algorithm needs from a D4RL-style dataset.

* :class:`TransitionSampler`: the dataset's ``(s, a, r, s', done)`` transitions as tensors (from
  :func:`robotrl.data.formats.d4rl.qlearning_dataset`, which never pairs an observation with the next
  episode's first one), sampled uniformly into the library's TensorDict batches.
* :func:`check_dataset_env`: a dataset whose observation/action size does not match the environment
  is refused with the file, key, expected and actual shape.
* :func:`episode_returns`, :func:`top_return_episodes`: per-episode returns and a return-percentile
  slice (ARSQ's demonstration buffer).
* :func:`locomotion_reward_scale`: IQL's ``1000 / (max_return - min_return)`` reward scaling.
"""
from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import torch
from tensordict import TensorDict

from robotrl.data.episode_store import EpisodeStore
from robotrl.data.errors import DataShapeError

__all__ = ["TransitionSampler", "check_dataset_env", "episode_returns", "top_return_episodes",
           "locomotion_reward_scale", "D4RL_ENV_VERSIONS", "dataset_preset"]

#: the mujoco-py environment each D4RL locomotion body was recorded on, and its gymnasium stand-in
D4RL_ENV_VERSIONS = {
    "hopper": ("Hopper-v3 (mujoco-py)", "Hopper-v5"),
    "halfcheetah": ("HalfCheetah-v3 (mujoco-py)", "HalfCheetah-v5"),
    "walker2d": ("Walker2d-v3 (mujoco-py)", "Walker2d-v5"),
    "ant": ("Ant-v3 (mujoco-py)", "Ant-v5"),
}


def dataset_preset(presets: Mapping[str, Mapping[str, Any]], dataset: str) -> dict[str, Any]:
    """A copy of ``presets[name]`` for a D4RL-style dataset name, ignoring a folder prefix and the version
    (``d4rl/hopper-medium-replay-v2`` -> ``hopper-medium-replay``); ``{}`` when there is none."""
    name = re.sub(r"-v\d+$", "", dataset.strip().lower().rsplit("/", 1)[-1])
    return dict(presets.get(name, {}))


class TransitionSampler:
    """Uniformly sampled transitions ``[B]`` with keys ``("obs", "state")``, ``"action"``, ``"reward"``,
    ``("next", "obs", "state")``, ``"terminated"``, ``"discount"`` (``gamma * (1 - terminated)``)."""

    def __init__(self, data: Mapping[str, np.ndarray], gamma: float = 0.99, seed: int = 0) -> None:
        self.gamma = float(gamma)
        self.obs = torch.as_tensor(np.asarray(data["observations"], np.float32))
        self.action = torch.as_tensor(np.asarray(data["actions"], np.float32))
        self.next_obs = torch.as_tensor(np.asarray(data["next_observations"], np.float32))
        self.reward = torch.as_tensor(np.asarray(data["rewards"], np.float32)).reshape(-1)
        self.terminated = torch.as_tensor(np.asarray(data["terminals"], np.float32)).reshape(-1)
        self.gen = torch.Generator().manual_seed(int(seed))

    @classmethod
    def from_store(cls, store: EpisodeStore, gamma: float = 0.99, seed: int = 0, obs_key: str = "obs/state") -> "TransitionSampler":
        from robotrl.data.formats.d4rl import qlearning_dataset

        return cls(qlearning_dataset(store, obs_key), gamma=gamma, seed=seed)

    def __len__(self) -> int:
        return int(self.obs.shape[0])

    def sample(self, batch_size: int) -> TensorDict:
        idx = torch.randint(0, len(self), (int(batch_size),), generator=self.gen)
        return self.gather(idx)

    def gather(self, idx: torch.Tensor) -> TensorDict:
        term = self.terminated[idx]
        return TensorDict(
            {
                "obs": {"state": self.obs[idx]},
                "action": self.action[idx],
                "reward": self.reward[idx],
                "terminated": term,
                "discount": self.gamma * (1.0 - term),
                "next": {"obs": {"state": self.next_obs[idx]}},
            },
            batch_size=[idx.shape[0]],
        )

    def extend(self, batch: Mapping[str, Any]) -> None:
        """Append transitions given like ``ReplayBuffer.extend`` (``{"obs": {"state"}, "next": {"obs": {"state"}}, ...}``)."""
        def t(x: Any) -> torch.Tensor:
            return torch.as_tensor(np.asarray(x, np.float32))

        self.obs = torch.cat([self.obs, t(batch["obs"]["state"])])
        self.next_obs = torch.cat([self.next_obs, t(batch["next"]["obs"]["state"])])
        self.action = torch.cat([self.action, t(batch["action"])])
        self.reward = torch.cat([self.reward, t(batch["reward"]).reshape(-1)])
        self.terminated = torch.cat([self.terminated, t(batch["terminated"]).reshape(-1)])

    def save(self, path: str | os.PathLike) -> None:
        from robotrl.engine.checkpoint import save_checkpoint

        save_checkpoint(Path(path), {k: getattr(self, k) for k in ("obs", "action", "next_obs", "reward", "terminated")}
                        | {"gamma": self.gamma, "gen": self.gen.get_state()})

    @classmethod
    def load(cls, path: str | os.PathLike) -> "TransitionSampler":
        from robotrl.engine.checkpoint import load_checkpoint

        blob = load_checkpoint(path)
        self = cls.__new__(cls)
        for k in ("obs", "action", "next_obs", "reward", "terminated"):
            setattr(self, k, blob[k])
        self.gamma = blob["gamma"]
        self.gen = torch.Generator()
        self.gen.set_state(blob["gen"])
        return self

    def obs_stats(self) -> tuple[np.ndarray, np.ndarray]:
        """Mean and std of the observations (for the algorithms' observation normaliser)."""
        return self.obs.mean(0).numpy(), self.obs.std(0).numpy()


def check_dataset_env(store: EpisodeStore, env_cfg: Any, source: str = "<dataset>") -> tuple[int, int]:
    """Refuse a dataset whose observation / action size differs from the environment's; return both dims."""
    from robotrl.envs import make_env

    env = make_env(env_cfg)
    try:
        obs_dim = int(env.observation_space["state"].shape[0])
        act_dim = int(env.action_space.shape[0])
        env_id = env.spec.id if env.spec is not None else str(env_cfg)
    finally:
        env.close()
    for key, native, want in (("obs/state", "observations", obs_dim), ("action", "actions", act_dim)):
        arr = store[key]
        if arr.ndim != 2 or arr.shape[1] != want:
            raise DataShapeError(
                f"{source}: key {native!r} has shape {tuple(arr.shape)}, but environment {env_id!r} needs "
                f"(N, {want}); this dataset was not recorded on {env_id} (pick the matching dataset/env)"
            )
    return obs_dim, act_dim


def episode_returns(store: EpisodeStore) -> np.ndarray:
    """Undiscounted return of every episode."""
    r = np.asarray(store["reward"], np.float64).reshape(-1)
    ends = store.episode_ends
    c = np.concatenate([[0.0], np.cumsum(r)])
    starts = np.concatenate([[0], ends[:-1]])
    return c[ends] - c[starts]


def top_return_episodes(store: EpisodeStore, percentile: float) -> np.ndarray:
    """Indices of the episodes whose return is at or above the ``percentile``-th percentile."""
    ret = episode_returns(store)
    thr = np.percentile(ret, percentile)
    return np.flatnonzero(ret >= thr)


def locomotion_reward_scale(store: EpisodeStore) -> float:
    """IQL's locomotion reward scale ``1000 / (max episode return - min episode return)``."""
    ret = episode_returns(store)
    span = float(ret.max() - ret.min())
    return 1000.0 / span if span > 1e-6 else 1.0
