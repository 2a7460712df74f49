"""Suite adapters: each module turns one external suite into the robotrl observation convention.

Every env a suite's ``make(env_id, cfg)`` returns has a ``gymnasium.spaces.Dict`` observation
space with ``"state"`` (float32 1-D), ``"proprio"`` where defined, image keys ending in ``image``
(uint8 HWC) when ``cfg.image`` is set, and ``info["is_success"]`` (bool) after reset and every step.

This package only holds light helpers; a suite's own heavy imports (metaworld, robosuite,
gymnasium_robotics) happen inside its ``make`` so importing ``robotrl.envs`` stays cheap.
"""

from __future__ import annotations

from typing import Any, Callable

import gymnasium as gym
import numpy as np
from gymnasium import spaces

__all__ = [
    "DictObsAdapter",
    "f32",
    "resize_image",
    "dict_obs_space",
    "flatten_obs",
    "disable_shadows",
]


def f32(x: Any) -> np.ndarray:
    """A float32 1-D copy of ``x``."""
    return np.asarray(x, dtype=np.float32).reshape(-1)


def resize_image(img: np.ndarray, size: int) -> np.ndarray:
    """Nearest-neighbour resize of an HWC uint8 image to ``size x size`` (no extra deps)."""
    h, w = img.shape[:2]
    if h == size and w == size:
        return np.ascontiguousarray(img, dtype=np.uint8)
    rows = (np.arange(size) * h / size).astype(np.int64)
    cols = (np.arange(size) * w / size).astype(np.int64)
    return np.ascontiguousarray(img[rows][:, cols], dtype=np.uint8)


def disable_shadows(scene: Any) -> None:
    """Turn off shadows and reflections of a ``mujoco.MjvScene`` (about 5x faster software GL)."""
    import mujoco

    scene.flags[mujoco.mjtRndFlag.mjRND_SHADOW] = 0
    scene.flags[mujoco.mjtRndFlag.mjRND_REFLECTION] = 0


def _gym_mujoco_renderer(env: gym.Env) -> Any:
    u = env.unwrapped
    r = getattr(u, "mujoco_renderer", None)
    for inner in ("robot_env", "ant_env", "point_env"):  # Kitchen / mazes render through an inner env
        if r is None and hasattr(u, inner):
            r = getattr(getattr(u, inner), "mujoco_renderer", None)
    return r


def flatten_obs(obs: Any) -> np.ndarray:
    """Flatten a (possibly nested) dict/array observation into one float32 vector.

    Dict keys are visited in sorted order so the layout is stable across runs.
    """
    if isinstance(obs, dict):
        parts = [flatten_obs(obs[k]) for k in sorted(obs)]
        return np.concatenate(parts) if parts else np.zeros(0, np.float32)
    return f32(obs)


def dict_obs_space(
    state_dim: int,
    proprio_dim: int | None = None,
    image_keys: tuple[str, ...] = (),
    image_size: int = 84,
) -> spaces.Dict:
    """The robotrl observation space: float32 ``state``/``proprio`` boxes and uint8 HWC images."""
    d: dict[str, spaces.Space] = {
        "state": spaces.Box(-np.inf, np.inf, shape=(int(state_dim),), dtype=np.float32)
    }
    if proprio_dim is not None:
        d["proprio"] = spaces.Box(-np.inf, np.inf, shape=(int(proprio_dim),), dtype=np.float32)
    for k in image_keys:
        if not k.endswith("image"):
            raise ValueError(f"image key {k!r} must end with 'image' (robotrl convention)")
        d[k] = spaces.Box(0, 255, shape=(image_size, image_size, 3), dtype=np.uint8)
    return spaces.Dict(d)


class DictObsAdapter(gym.Wrapper):
    """Base adapter: converts a gymnasium env's raw observation into the robotrl dict.

    Subclasses give ``state_fn(raw_obs)``, ``proprio_fn(raw_obs)`` (or ``None``) and
    ``success_fn(raw_obs, info)``. Images, when asked for, come from ``env.render()`` (the
    wrapped env must have ``render_mode="rgb_array"``), resized to ``image_size``. Image observations and ``render()`` frames are drawn without shadows and
    reflections (``fast_render``; ~5x faster with software OpenGL).
    """

    def __init__(
        self,
        env: gym.Env,
        state_fn: Callable[[Any], np.ndarray],
        success_fn: Callable[[Any, dict], bool],
        proprio_fn: Callable[[Any], np.ndarray] | None = None,
        image: bool = False,
        image_size: int = 84,
        image_key: str = "image",
        flip_image: bool = False,
        fast_render: bool = True,
    ):
        super().__init__(env)
        if image and env.render_mode != "rgb_array":
            raise ValueError(
                f"image=True needs render_mode='rgb_array' on the wrapped env, got {env.render_mode!r}"
            )
        self._state_fn = state_fn
        self._success_fn = success_fn
        self._proprio_fn = proprio_fn
        self._image = bool(image)
        self._image_size = int(image_size)
        self._image_key = image_key
        self._flip_image = flip_image
        self._last_frame: np.ndarray | None = None
        self._fast_render = bool(fast_render)
        self._render_tuned = False
        # probe sizes with a throw-away sample of the raw space (no reset needed)
        sample = env.observation_space.sample()
        state_dim = self._state_fn(sample).shape[0]
        proprio_dim = None if proprio_fn is None else proprio_fn(sample).shape[0]
        self.observation_space = dict_obs_space(
            state_dim, proprio_dim, (image_key,) if image else (), self._image_size
        )

    def _tune_renderer(self) -> None:
        """Create the offscreen viewer up front and switch off shadows/reflections, so every
        frame (the first included) is rendered the same, fast way."""
        self._render_tuned = True
        if not self._fast_render:
            return
        r = _gym_mujoco_renderer(self.env)
        if r is None:
            return
        try:
            viewer = r._get_viewer(render_mode="rgb_array")
            disable_shadows(viewer.scn)
        except Exception:  # renderer internals differ: keep the default look
            pass

    def _frame(self) -> np.ndarray:
        if not self._render_tuned:
            self._tune_renderer()
        img = self.env.render()
        if img is None:
            raise RuntimeError("env.render() returned None; was render_mode='rgb_array' set?")
        img = np.asarray(img)
        if self._flip_image:
            img = img[::-1]
        return resize_image(img, self._image_size)

    def _convert(self, raw: Any) -> dict[str, np.ndarray]:
        out = {"state": self._state_fn(raw)}
        if self._proprio_fn is not None:
            out["proprio"] = self._proprio_fn(raw)
        if self._image:
            self._last_frame = self._frame()
            out[self._image_key] = self._last_frame
        return out

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        raw, info = self.env.reset(seed=seed, options=options)
        info = dict(info)
        info["is_success"] = bool(self._success_fn(raw, info))
        return self._convert(raw), info

    def step(self, action):
        raw, reward, terminated, truncated, info = self.env.step(action)
        info = dict(info)
        info["is_success"] = bool(self._success_fn(raw, info))
        return self._convert(raw), float(reward), bool(terminated), bool(truncated), info

    def close(self):
        # gymnasium frees the GL context on close but keeps the MjrContext until garbage
        # collection; freed later, it deletes GL objects (framebuffers, textures) of whatever
        # context is current then -- e.g. a robosuite env made afterwards. Drop it now.
        r = _gym_mujoco_renderer(self.env)
        super().close()
        if r is not None:
            viewers = getattr(r, "_viewers", None)
            had_context = bool(viewers) or getattr(r, "viewer", None) is not None
            if isinstance(viewers, dict):
                viewers.clear()
            if hasattr(r, "viewer"):
                r.viewer = None
            if had_context:  # a full collection costs ~0.25 s; envs that never rendered skip it
                import gc

                gc.collect()

    def render(self):
        # With image obs the renderer already produced this step's frame; reuse it.
        if self._image and self._last_frame is not None:
            return self._last_frame
        if not self._render_tuned and self.env.render_mode == "rgb_array":
            self._tune_renderer()
        img = self.env.render()
        if img is not None and self._flip_image:
            img = np.ascontiguousarray(np.asarray(img)[::-1])
        return img
