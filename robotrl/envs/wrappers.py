"""Wrappers shared by every suite: success key, observation history, action chunks, video, rescaling.

Order matters when stacking: ``ActionChunk(ObservationHistory(env, To), Ta)`` executes a chunk
of ``Ta`` actions and returns the history of the last ``To`` observations it saw (the rule of
Diffusion Policy's ``MultiStepWrapper``).
"""

from __future__ import annotations

import os
from collections import deque
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

__all__ = ["SuccessInfo", "ObservationHistory", "ActionChunk", "VideoRecorder", "RecordFrames", "RescaleAction"]


class SuccessInfo(gym.Wrapper):
    """Guarantees ``info["is_success"]`` (bool) after reset and every step.

    Takes it from ``is_success`` or ``success`` in the wrapped env's info; ``False`` otherwise.
    """

    @staticmethod
    def _fix(info: dict) -> dict:
        info = dict(info)
        if "is_success" in info:
            info["is_success"] = bool(info["is_success"])
        elif "success" in info:
            info["is_success"] = bool(info["success"])
        else:
            info["is_success"] = False
        return info

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        obs, info = self.env.reset(seed=seed, options=options)
        return obs, self._fix(info)

    def step(self, action):
        obs, reward, terminated, truncated, info = self.env.step(action)
        return obs, reward, terminated, truncated, self._fix(info)


def _stack_space(space: spaces.Space, n: int) -> spaces.Space:
    if isinstance(space, spaces.Box):
        low = np.repeat(space.low[None], n, axis=0)
        high = np.repeat(space.high[None], n, axis=0)
        return spaces.Box(low, high, dtype=space.dtype)
    raise TypeError(f"ObservationHistory can stack Box spaces only, got {space}")


class ObservationHistory(gym.Wrapper):
    """Stacks the last ``n_obs_steps`` observations of each dict key into ``[To, ...]``.

    At reset the first observation is repeated ``To`` times, so a policy always sees ``To`` frames.
    """

    def __init__(self, env: gym.Env, n_obs_steps: int):
        super().__init__(env)
        if int(n_obs_steps) < 1:
            raise ValueError(f"n_obs_steps must be >= 1, got {n_obs_steps}")
        if not isinstance(env.observation_space, spaces.Dict):
            raise TypeError(f"ObservationHistory needs a Dict observation space, got {env.observation_space}")
        self.n_obs_steps = int(n_obs_steps)
        self.observation_space = spaces.Dict(
            {k: _stack_space(s, self.n_obs_steps) for k, s in env.observation_space.spaces.items()}
        )
        self._hist: dict[str, deque] = {}

    def _stacked(self) -> dict[str, np.ndarray]:
        return {k: np.stack(list(q), axis=0) for k, q in self._hist.items()}

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        obs, info = self.env.reset(seed=seed, options=options)
        self._hist = {
            k: deque([np.asarray(v)] * self.n_obs_steps, maxlen=self.n_obs_steps) for k, v in obs.items()
        }
        return self._stacked(), info

    def step(self, action):
        obs, reward, terminated, truncated, info = self.env.step(action)
        for k, v in obs.items():
            self._hist[k].append(np.asarray(v))
        return self._stacked(), reward, terminated, truncated, info


class ActionChunk(gym.Wrapper):
    """Executes a chunk ``[Ta, A]`` of actions in one ``step``.

    Stops early when the episode terminates or truncates, sums the rewards, returns the last
    observation, and reports ``info["is_success"]`` true if any executed step succeeded.
    ``info["chunk_steps"]`` is the number of env steps taken. A 1-D action is a chunk of one.
    With ``n_action_steps`` given, the action space is the ``[Ta, A]`` box and chunks longer than
    ``Ta`` are refused; without it any chunk length is accepted.
    """

    def __init__(self, env: gym.Env, n_action_steps: int | None = None):
        super().__init__(env)
        if not isinstance(env.action_space, spaces.Box):
            raise TypeError(f"ActionChunk needs a Box action space, got {env.action_space}")
        self._single = env.action_space
        self.n_action_steps = None if n_action_steps is None else int(n_action_steps)
        if self.n_action_steps is not None:
            if self.n_action_steps < 1:
                raise ValueError(f"n_action_steps must be >= 1, got {n_action_steps}")
            self.action_space = _stack_space(env.action_space, self.n_action_steps)

    def step(self, action):
        chunk = np.asarray(action)
        a_shape = self._single.shape
        if chunk.shape == a_shape:
            chunk = chunk[None]
        if chunk.ndim != len(a_shape) + 1 or chunk.shape[1:] != a_shape:
            raise ValueError(f"action chunk must have shape [Ta, {', '.join(map(str, a_shape))}], got {chunk.shape}")
        if self.n_action_steps is not None and chunk.shape[0] > self.n_action_steps:
            raise ValueError(f"action chunk has {chunk.shape[0]} steps, more than n_action_steps={self.n_action_steps}")
        total = 0.0
        success = False
        terminated = truncated = False
        obs, info = None, {}
        n = 0
        for a in chunk:
            obs, r, terminated, truncated, info = self.env.step(a)
            total += float(r)
            success = success or bool(info.get("is_success", False))
            n += 1
            if terminated or truncated:
                break
        info = dict(info)
        info["is_success"] = success
        info["chunk_steps"] = n
        return obs, total, terminated, truncated, info


class VideoRecorder:
    """Collects RGB frames and writes them as an mp4 (imageio-ffmpeg), atomically.

    ``rec.add(env.render())`` per step, then ``rec.close()``; or use as a context manager.
    Frames with odd sizes are padded to even sizes (H.264 needs them).
    """

    def __init__(self, path: str | os.PathLike, fps: int = 10):
        self.path = os.fspath(path)
        self.fps = int(fps)
        self.frames: list[np.ndarray] = []
        self.closed = False

    def add(self, frame: np.ndarray | None) -> None:
        if frame is None:
            raise ValueError("VideoRecorder.add got None; make the env with render_mode='rgb_array'")
        f = np.asarray(frame)
        if f.ndim != 3 or f.shape[2] not in (3, 4) or f.dtype != np.uint8:
            raise ValueError(f"video frame must be uint8 HxWx3, got {f.dtype} {f.shape}")
        self.frames.append(f[..., :3].copy())

    def capture(self, env: gym.Env) -> None:
        """Add ``env.render()``."""
        self.add(env.render())

    def close(self) -> str | None:
        """Write the file (nothing if no frame was added) and return its path."""
        if self.closed:
            return self.path if self.frames else None
        self.closed = True
        if not self.frames:
            return None
        import imageio_ffmpeg

        from robotrl.utils.atomic import atomic_path

        h = max(f.shape[0] for f in self.frames)
        w = max(f.shape[1] for f in self.frames)
        h, w = h + h % 2, w + w % 2
        with atomic_path(self.path) as tmp:
            writer = imageio_ffmpeg.write_frames(
                str(tmp), (w, h), fps=self.fps, codec="libx264", pix_fmt_out="yuv420p",
                macro_block_size=1, output_params=["-f", "mp4"],
            )
            writer.send(None)  # start the ffmpeg process
            try:
                for f in self.frames:
                    pad = ((0, h - f.shape[0]), (0, w - f.shape[1]), (0, 0))
                    f = np.pad(f, pad) if pad[0][1] or pad[1][1] else f
                    writer.send(np.ascontiguousarray(f, dtype=np.uint8))
            finally:
                writer.close()
        return self.path

    def __enter__(self) -> "VideoRecorder":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


class RecordFrames(gym.Wrapper):
    """Adds ``env.render()`` to a :class:`VideoRecorder` after reset and every step."""

    def __init__(self, env: gym.Env, recorder: VideoRecorder):
        super().__init__(env)
        self.recorder = recorder

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        out = self.env.reset(seed=seed, options=options)
        self.recorder.capture(self.env)
        return out

    def step(self, action):
        out = self.env.step(action)
        self.recorder.capture(self.env)
        return out


class RescaleAction(gym.ActionWrapper):
    """Exposes a ``[-1, 1]`` Box for an env with other finite bounds (optional; not applied by
    ``make_env``: suites keep their own bounds and policies normalise actions themselves)."""

    def __init__(self, env: gym.Env):
        super().__init__(env)
        space = env.action_space
        if not isinstance(space, spaces.Box) or not (np.all(np.isfinite(space.low)) and np.all(np.isfinite(space.high))):
            raise TypeError(f"RescaleAction needs a bounded Box action space, got {space}")
        self._low = space.low.astype(np.float64)
        self._high = space.high.astype(np.float64)
        self.action_space = spaces.Box(-1.0, 1.0, shape=space.shape, dtype=np.float32)

    def action(self, action):
        a = np.clip(np.asarray(action, dtype=np.float64), -1.0, 1.0)
        return (self._low + (a + 1.0) * 0.5 * (self._high - self._low)).astype(self.env.action_space.dtype)
