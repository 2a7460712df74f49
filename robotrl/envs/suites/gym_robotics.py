"""gymnasium-robotics 1.4.2: Adroit hand, Franka Kitchen, PointMaze and AntMaze.

* Adroit (``AdroitHandDoor-v1``, ``...Hammer``, ``...Pen``, ``...Relocate``; ``...Sparse`` too):
  ``state`` = observation; ``proprio`` = the hand's joint positions (the first ``nu`` qpos
  entries); ``is_success`` from ``info["success"]``. ``reward_type`` dense/sparse is passed on.
* ``FrankaKitchen-v1``: ``state`` = observation ++ achieved goals ++ desired goals (goal dicts
  flattened in sorted task order); ``proprio`` = robot joint positions and velocities (first 18
  entries of the observation); ``is_success`` when every task to complete has been completed
  (``info["tasks_to_complete"]`` empty). No ``reward_type``.
* ``PointMaze_*`` / ``AntMaze_*``: ``state`` = observation ++ desired_goal; ``proprio`` =
  observation (the agent's own state); ``is_success`` from ``info["success"]``.
* ``image=True`` adds ``"image"`` from the env's ``rgb_array`` renderer.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np

from robotrl.envs.suites import DictObsAdapter, f32, flatten_obs

_REGISTERED = False


def _register() -> None:
    global _REGISTERED
    if not _REGISTERED:
        import gymnasium_robotics

        gym.register_envs(gymnasium_robotics)
        _REGISTERED = True


def _kitchen_success(obs: Any, info: dict) -> bool:
    if "tasks_to_complete" not in info:
        return False
    return len(info["tasks_to_complete"]) == 0


def make(env_id: str, cfg: Any) -> gym.Env:
    _register()
    if env_id not in gym.registry:
        import difflib

        known = [k for k in gym.registry if k.startswith(("AdroitHand", "FrankaKitchen", "PointMaze_", "AntMaze_"))]
        close = difflib.get_close_matches(env_id, known, n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise ValueError(f"unknown gymnasium-robotics id {env_id!r}.{hint}")
    kwargs = dict(cfg.kwargs)
    render_mode = cfg.render_mode
    if cfg.image:
        render_mode = "rgb_array"
        kwargs.setdefault("width", int(cfg.image_size))
        kwargs.setdefault("height", int(cfg.image_size))
    kitchen = env_id.startswith("FrankaKitchen")
    if cfg.reward_type is not None:
        if kitchen:
            raise ValueError(f"{env_id!r} has one reward (completed tasks); reward_type must be None")
        kwargs.setdefault("reward_type", cfg.reward_type)
    if cfg.max_episode_steps is not None:
        kwargs["max_episode_steps"] = int(cfg.max_episode_steps)
    env = gym.make(env_id, render_mode=render_mode, **kwargs)

    if kitchen:
        state_fn = lambda o: np.concatenate(  # noqa: E731
            [f32(o["observation"]), flatten_obs(o["achieved_goal"]), flatten_obs(o["desired_goal"])]
        )
        proprio_fn = lambda o: f32(o["observation"][:18])  # noqa: E731
        success_fn = _kitchen_success
    elif env_id.startswith(("PointMaze_", "AntMaze_")):
        state_fn = lambda o: np.concatenate([f32(o["observation"]), f32(o["desired_goal"])])  # noqa: E731
        proprio_fn = lambda o: f32(o["observation"])  # noqa: E731
        success_fn = lambda o, info: bool(info.get("success", False))  # noqa: E731
    else:  # Adroit
        nu = int(env.unwrapped.model.nu)
        data = env.unwrapped.data
        state_fn = f32
        proprio_fn = lambda o: f32(data.qpos[:nu])  # noqa: E731
        success_fn = lambda o, info: bool(info.get("success", False))  # noqa: E731
    return DictObsAdapter(
        env,
        state_fn=state_fn,
        proprio_fn=proprio_fn,
        success_fn=success_fn,
        image=cfg.image,
        image_size=cfg.image_size,
    )
