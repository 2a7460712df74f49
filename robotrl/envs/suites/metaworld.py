"""Meta-World v3 (metaworld 3.1.1) MT1 tasks: ids ``metaworld/<task>-v3``, e.g. ``metaworld/pick-place-v3``.

* Object and goal positions vary: metaworld's ``MT1(task)`` holds 50 tasks (fixed positions each);
  every ``reset`` picks one from an RNG seeded by ``reset(seed=...)``, so a seed fixes the layout.
  The set of 50 comes from ``kwargs.task_set_seed`` (default 0), the same for every run.
* ``state``: the 39-D observation (hand, gripper, objects, previous frame, goal); ``proprio``: hand
  xyz + gripper opening (first 4 entries).
* ``info["is_success"]`` from metaworld's ``info["success"]``. Episodes truncate after
  ``max_path_length`` (500) steps or ``max_episode_steps``; they never terminate.
* ``image=True`` adds ``"image"`` from the ``corner`` camera (flipped upright; that camera's
  up-axis points down). ``kwargs.camera_name`` chooses another camera.
* ``reward_type="sparse"`` gives ``float(success)``; the default keeps metaworld's dense reward.
"""

from __future__ import annotations

import difflib
from typing import Any

import gymnasium as gym
import numpy as np

from robotrl.envs.suites import DictObsAdapter, f32

_OWN_KWARGS = ("camera_name", "task_set_seed", "flip_image", "render_size")


class MetaWorldTaskSampler(gym.Wrapper):
    """Sets a Meta-World task drawn from a seeded RNG before each reset."""

    def __init__(self, env: gym.Env, tasks: list, sparse: bool = False):
        super().__init__(env)
        self.tasks = list(tasks)
        self._rng = np.random.default_rng()
        self._sparse = sparse
        self.task_index: int | None = None

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        if seed is not None:
            self._rng = np.random.default_rng(seed)
            self.env.unwrapped.seed(int(seed))  # seeds metaworld's own np_random and spaces
        if options and "task_index" in options:
            self.task_index = int(options["task_index"])
        else:
            self.task_index = int(self._rng.integers(len(self.tasks)))
        self.env.unwrapped.set_task(self.tasks[self.task_index])
        obs, info = self.env.reset()
        info = dict(info)
        info["success"] = False
        info["task_index"] = self.task_index
        return obs, info

    def step(self, action):
        obs, reward, terminated, truncated, info = self.env.step(np.asarray(action, dtype=np.float64))
        if self._sparse:
            reward = float(bool(info.get("success", False)))
        return obs, reward, terminated, truncated, info


def task_names() -> list[str]:
    """All Meta-World v3 task names (``pick-place-v3``, ...)."""
    from metaworld.env_dict import ALL_V3_ENVIRONMENTS

    return list(ALL_V3_ENVIRONMENTS)


def make(env_id: str, cfg: Any) -> gym.Env:
    import metaworld
    from metaworld.env_dict import ALL_V3_ENVIRONMENTS

    task = env_id.split("/", 1)[1] if "/" in env_id else env_id
    if task not in ALL_V3_ENVIRONMENTS:
        close = difflib.get_close_matches(task, list(ALL_V3_ENVIRONMENTS), n=1)
        hint = f" Did you mean 'metaworld/{close[0]}'?" if close else ""
        raise ValueError(
            f"unknown Meta-World task {env_id!r}.{hint} Tasks: {', '.join(ALL_V3_ENVIRONMENTS)}"
        )
    kwargs = dict(cfg.kwargs)
    own = {k: kwargs.pop(k) for k in _OWN_KWARGS if k in kwargs}
    camera_name = own.get("camera_name", "corner")
    flip = bool(own.get("flip_image", camera_name == "corner"))
    render_mode = "rgb_array" if cfg.image else cfg.render_mode
    size = int(own.get("render_size", cfg.image_size if cfg.image else 256))

    bench = metaworld.MT1(task, seed=int(own.get("task_set_seed", 0)))
    env_cls = bench.train_classes[task]
    raw = env_cls(render_mode=render_mode, camera_name=camera_name, width=size, height=size, **kwargs)
    if cfg.max_episode_steps is not None:
        raw.max_path_length = int(cfg.max_episode_steps)
    env = MetaWorldTaskSampler(raw, bench.train_tasks, sparse=cfg.reward_type == "sparse")
    env = DictObsAdapter(
        env,
        state_fn=f32,
        proprio_fn=lambda o: f32(np.asarray(o)[:4]),
        success_fn=lambda obs, info: bool(info.get("success", False)),
        image=cfg.image,
        image_size=cfg.image_size,
        flip_image=flip,
    )
    env.unwrapped.task_name_v3 = task
    return env
