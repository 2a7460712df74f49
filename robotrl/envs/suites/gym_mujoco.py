"""Gymnasium MuJoCo locomotion (Hopper, HalfCheetah, Walker2d, Ant, ...).

``state`` is the env's observation; ``proprio`` is the same vector (the agent is the whole
system). These tasks have no notion of success, so ``info["is_success"]`` is always ``False``;
judge them by return or the D4RL-normalised score (``env.unwrapped.d4rl_name`` names the D4RL
reference, e.g. ``"hopper"``). Rewards are left untouched.
"""

from __future__ import annotations

import gymnasium as gym

from robotrl.envs.suites import DictObsAdapter, f32


def make(env_id: str, cfg) -> gym.Env:
    from robotrl.envs.registry import D4RL_NAMES

    if cfg.reward_type is not None:
        raise ValueError(f"{env_id!r}: gym_mujoco tasks have one reward; reward_type must be None")
    kwargs = dict(cfg.kwargs)
    render_mode = cfg.render_mode
    if cfg.image:
        render_mode = "rgb_array"
        kwargs.setdefault("width", int(cfg.image_size))
        kwargs.setdefault("height", int(cfg.image_size))
    if cfg.max_episode_steps is not None:
        kwargs["max_episode_steps"] = int(cfg.max_episode_steps)
    env = gym.make(env_id, render_mode=render_mode, **kwargs)
    env = DictObsAdapter(
        env,
        state_fn=f32,
        proprio_fn=f32,
        success_fn=lambda obs, info: False,
        image=cfg.image,
        image_size=cfg.image_size,
    )
    env.unwrapped.d4rl_name = D4RL_NAMES.get(env_id.split("-")[0])
    return env
