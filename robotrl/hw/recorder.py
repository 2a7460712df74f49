"""Record deployed episodes to robomimic HDF5 (through ``robotrl.data``), ready for ``robotrl-train``.

Each step of an episode stores

- ``obs/<key>``: what the policy saw at that tick (its observation keys) plus ``obs/joint_pos`` and
  ``obs/joint_vel``;
- ``action``: the policy-space equivalent of the joint target **actually sent** after the safety
  layer (a clamp or a hold shows up here), so the file trains the next policy directly;
- ``joint_target`` (what was sent, joint units), ``policy_action`` (the raw policy output, NaN
  where the policy gave none), ``safety_flags`` (bit mask of the safety events of the step, see
  :data:`FLAG_BITS`);
- ``timestamp`` (tick start, s since the episode began), ``obs_timestamp`` (arrival of that
  observation, same clock), ``send_timestamp`` (when the command left);
- ``reward`` / ``terminated`` / ``truncated`` where the robot reports them (simulated robots),
  else zeros.

The file is rewritten atomically after every episode, so an interrupted deployment keeps every
finished episode. An existing file is appended to (same keys and shapes required).
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Mapping

import numpy as np

__all__ = ["EpisodeRecorder", "FLAG_BITS"]

#: safety event kind -> bit in ``safety_flags``
FLAG_BITS = {
    "joint_limit": 1, "relative_target": 2, "velocity": 4, "workspace": 8, "nonfinite": 16,
    "estop": 32, "watchdog_obs": 64, "watchdog_policy": 128, "hold": 256, "dry_run": 512,
}


class EpisodeRecorder:
    """Collects steps, then ``end_episode`` appends them to the robomimic file at ``path``."""

    def __init__(self, path: str | os.PathLike, env_args: Mapping[str, Any] | None = None) -> None:
        from robotrl.data.episode_store import EpisodeStore

        self.path = Path(path)
        self.env_args = dict(env_args or {})
        self._steps: list[dict[str, np.ndarray]] = []
        self._episode_attrs: list[dict[str, Any]] = []
        if self.path.exists():
            from robotrl.data.io import load_dataset

            self.store = load_dataset(self.path, format="robomimic")
            self._episode_attrs = list(self.store.attrs.get("episode_attrs") or [{} for _ in range(self.store.num_episodes)])
        else:
            self.store = EpisodeStore(attrs={"env_args": self.env_args})
        self.num_saved = 0

    def add_step(self, step: Mapping[str, Any]) -> None:
        self._steps.append({k: np.asarray(v) for k, v in step.items()})

    def set_last(self, key: str, value: Any) -> None:
        """Fill ``key`` of the most recent step (rewards arrive one tick after the action)."""
        if self._steps:
            self._steps[-1][key] = np.asarray(value)

    @property
    def n_steps(self) -> int:
        return len(self._steps)

    def end_episode(self, attrs: Mapping[str, Any] | None = None) -> bool:
        """Append the collected steps as one episode and rewrite the file; False if it was empty."""
        from robotrl.data.io import save_dataset

        steps, self._steps = self._steps, []
        if not steps:
            return False
        keys = list(steps[0].keys())
        episode = {k: np.stack([s[k] for s in steps]) for k in keys}
        for k in ("reward",):
            episode[k] = episode[k].astype(np.float64)
        for k in ("terminated", "truncated"):
            episode[k] = episode[k].astype(bool)
        if self.store.num_episodes:
            have = set(self.store.keys())
            if have != set(episode):
                raise ValueError(
                    f"{self.path}: cannot append an episode with keys {sorted(episode)} to a file with keys {sorted(have)}"
                )
        self.store.add_episode(episode)
        self._episode_attrs.append({k: v for k, v in dict(attrs or {}).items() if isinstance(v, (int, float, str, bool))})
        self.store.attrs["episode_attrs"] = self._episode_attrs
        self.store.attrs["episode_names"] = [f"demo_{i}" for i in range(self.store.num_episodes)]
        self.path.parent.mkdir(parents=True, exist_ok=True)
        save_dataset(self.store, self.path, format="robomimic")
        self.num_saved += 1
        return True
