"""robotrl's own tasks (``robotrl/PushT-v0``, ``robotrl/TwoPaths-v0``, ``robotrl/ArmLift-v0``).

They already follow the convention; this module registers them with gymnasium (by importing
``robotrl.envs.bundled``) and passes the config through.
"""

from __future__ import annotations

import gymnasium as gym


def make(env_id: str, cfg) -> gym.Env:
    import robotrl.envs.bundled  # noqa: F401  (registers the gymnasium ids)

    from robotrl.envs.wrappers import SuccessInfo

    if env_id not in gym.registry:
        import difflib

        known = sorted(k for k in gym.registry if k.startswith("robotrl/"))
        close = difflib.get_close_matches(env_id, known, n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise ValueError(f"unknown bundled task {env_id!r}.{hint} Bundled tasks: {', '.join(known)}")
    kwargs = dict(cfg.kwargs)
    kwargs.setdefault("image", bool(cfg.image))
    kwargs.setdefault("image_size", int(cfg.image_size))
    if cfg.reward_type is not None:
        kwargs.setdefault("reward_type", cfg.reward_type)
    make_kwargs = {}
    if cfg.max_episode_steps is not None:
        make_kwargs["max_episode_steps"] = int(cfg.max_episode_steps)
    env = gym.make(env_id, render_mode=cfg.render_mode, **make_kwargs, **kwargs)
    return SuccessInfo(env)
