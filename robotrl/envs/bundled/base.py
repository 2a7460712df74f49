"""Common base for the bundled MuJoCo tasks.

A bundled task is a :class:`gymnasium.Env` with

- a ``Dict`` observation space: ``"state"`` (float32, everything low-dimensional a scripted
  expert needs), ``"proprio"`` (float32, the agent only) and, with ``image=True``, ``"image"``
  (uint8, HWC, ``image_size`` x ``image_size`` x 3) rendered offscreen from the task's camera;
- ``Box(-1, 1)`` actions applied at ~10 Hz (``frame_skip`` physics steps per ``step``);
- ``reward_type`` ``"sparse"`` (1.0 on success, else 0.0) or ``"dense"`` (task-shaped);
- ``info["is_success"]`` (bool) after ``reset`` and every ``step``;
- termination on success unless ``terminate_on_success=False``;
- ``render_mode="rgb_array"`` (``render()`` returns a ``render_size`` square uint8 frame);
- exact reproducibility under ``reset(seed=...)``.

Subclasses set ``xml_file``, ``camera``, ``frame_skip``, ``action_dim`` and implement the
``_task_*`` hooks.
"""

from __future__ import annotations

import atexit
import os
import weakref
from pathlib import Path
from typing import Any, ClassVar

# Headless offscreen rendering by default; must be set before mujoco is first imported.
os.environ.setdefault("MUJOCO_GL", "egl")

import gymnasium as gym  # noqa: E402
import mujoco  # noqa: E402
import numpy as np  # noqa: E402
from gymnasium import spaces  # noqa: E402

REWARD_TYPES = ("sparse", "dense")
# Envs holding offscreen renderers; closed at exit so GL contexts are freed before mujoco's EGL
# backend terminates its display (otherwise "Exception ignored in Renderer.__del__" is printed
# when a user never calls close()). The hook is registered after the first renderer exists so
# that it runs before mujoco's own atexit hook (atexit is last-in, first-out).
_LIVE_RENDERING_ENVS: weakref.WeakSet = weakref.WeakSet()
_EXIT_HOOK_REGISTERED = False


def _close_renderers_at_exit() -> None:
    for env in list(_LIVE_RENDERING_ENVS):
        env.close()

RENDER_MODES = ("rgb_array",)


def sim_assets_dir() -> Path:
    """Folder holding the bundled MJCF files (``<repo>/sim_assets``).

    ``ROBOTRL_SIM_ASSETS`` overrides it. Works from a source checkout and an editable install
    (both resolve this file inside the checkout).
    """
    override = os.environ.get("ROBOTRL_SIM_ASSETS")
    candidates = [Path(override)] if override else []
    candidates.append(Path(__file__).resolve().parents[3] / "sim_assets")
    for cand in candidates:
        if cand.is_dir():
            return cand
    raise FileNotFoundError(
        f"robotrl sim_assets folder not found; looked in {[str(c) for c in candidates]}. "
        "Install robotrl from a source checkout (pip install -e .) or set ROBOTRL_SIM_ASSETS."
    )


def _check_choice(name: str, value: Any, allowed: tuple) -> None:
    if value not in allowed:
        raise ValueError(f"{name}={value!r} is not supported; allowed values: {list(allowed)}")


def _check_positive_int(name: str, value: Any, allow_none: bool = False) -> None:
    if value is None and allow_none:
        return
    if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value <= 0:
        raise ValueError(f"{name} must be a positive int, got {value!r}")


class BundledMujocoEnv(gym.Env):
    """Shared machinery of the bundled tasks (see module docstring)."""

    metadata: ClassVar[dict] = {"render_modes": list(RENDER_MODES), "render_fps": 10}

    xml_file: ClassVar[str] = ""
    camera: ClassVar[str] = ""
    frame_skip: ClassVar[int] = 20
    action_dim: ClassVar[int] = 2
    state_dim: ClassVar[int] = 0
    proprio_dim: ClassVar[int] = 0
    default_max_episode_steps: ClassVar[int] = 200

    def __init__(
        self,
        image: bool = False,
        image_size: int = 84,
        render_mode: str | None = None,
        render_size: int = 256,
        reward_type: str = "sparse",
        terminate_on_success: bool = True,
        max_episode_steps: int | None = None,
    ) -> None:
        _check_choice("reward_type", reward_type, REWARD_TYPES)
        if render_mode is not None:
            _check_choice("render_mode", render_mode, RENDER_MODES)
        _check_positive_int("image_size", image_size)
        _check_positive_int("render_size", render_size)
        _check_positive_int("max_episode_steps", max_episode_steps, allow_none=True)
        self.image = bool(image)
        self.image_size = int(image_size)
        self.render_mode = render_mode
        self.render_size = int(render_size)
        self.reward_type = reward_type
        self.terminate_on_success = bool(terminate_on_success)
        # None: no internal limit (gymnasium.make adds the registered TimeLimit).
        self.max_episode_steps = max_episode_steps

        xml_path = sim_assets_dir() / self.xml_file
        if not xml_path.is_file():
            raise FileNotFoundError(f"MJCF file for {type(self).__name__} not found: {xml_path}")
        self.model = mujoco.MjModel.from_xml_path(str(xml_path))
        self.data = mujoco.MjData(self.model)
        side = max(self.image_size, self.render_size)
        self.model.vis.global_.offwidth = max(self.model.vis.global_.offwidth, side)
        self.model.vis.global_.offheight = max(self.model.vis.global_.offheight, side)
        self._renderers: dict[int, mujoco.Renderer] = {}
        self._cam_id = mujoco.mj_name2id(self.model, mujoco.mjtObj.mjOBJ_CAMERA, self.camera)
        if self._cam_id < 0:
            raise ValueError(f"camera {self.camera!r} missing in {xml_path}")

        self.action_space = spaces.Box(-1.0, 1.0, shape=(self.action_dim,), dtype=np.float32)
        obs_spaces: dict[str, spaces.Space] = {
            "state": spaces.Box(-np.inf, np.inf, shape=(self.state_dim,), dtype=np.float32),
            "proprio": spaces.Box(-np.inf, np.inf, shape=(self.proprio_dim,), dtype=np.float32),
        }
        if self.image:
            obs_spaces["image"] = spaces.Box(
                0, 255, shape=(self.image_size, self.image_size, 3), dtype=np.uint8
            )
        self.observation_space = spaces.Dict(obs_spaces)
        self._elapsed = 0
        self._task_init()

    # ------------------------------------------------------------------ hooks
    def _task_init(self) -> None:
        """Look up ids etc. after the model is loaded."""

    def _task_reset(self, rng: np.random.Generator) -> None:
        """Set ``self.data`` (qpos/qvel/ctrl) for a fresh randomised episode."""
        raise NotImplementedError

    def _task_apply_action(self, action: np.ndarray) -> None:
        """Map a clipped action in [-1, 1] to actuator controls and run ``frame_skip`` substeps."""
        raise NotImplementedError

    def _task_state(self) -> np.ndarray:
        raise NotImplementedError

    def _task_proprio(self) -> np.ndarray:
        raise NotImplementedError

    def _task_success(self) -> bool:
        raise NotImplementedError

    def _task_dense_reward(self) -> float:
        raise NotImplementedError

    # ------------------------------------------------------------- gym api
    def reset(
        self, *, seed: int | None = None, options: dict | None = None
    ) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        super().reset(seed=seed)
        mujoco.mj_resetData(self.model, self.data)
        self._task_reset(self.np_random)
        mujoco.mj_forward(self.model, self.data)
        self._elapsed = 0
        success = self._task_success()
        return self._get_obs(), {"is_success": bool(success)}

    def step(
        self, action: np.ndarray
    ) -> tuple[dict[str, np.ndarray], float, bool, bool, dict[str, Any]]:
        a = np.asarray(action, dtype=np.float64).reshape(-1)
        if a.shape != (self.action_dim,):
            raise ValueError(
                f"{type(self).__name__}.step: action must have shape ({self.action_dim},), "
                f"got {np.shape(action)}"
            )
        a = np.clip(np.nan_to_num(a, nan=0.0), -1.0, 1.0)
        self._task_apply_action(a)
        self._elapsed += 1
        success = bool(self._task_success())
        if self.reward_type == "sparse":
            reward = 1.0 if success else 0.0
        else:
            reward = float(self._task_dense_reward())
        terminated = success and self.terminate_on_success
        truncated = self.max_episode_steps is not None and self._elapsed >= self.max_episode_steps
        return self._get_obs(), reward, terminated, bool(truncated), {"is_success": success}

    def render(self) -> np.ndarray | None:
        if self.render_mode is None:
            gym.logger.warn(
                "render() called with render_mode=None; create the env with render_mode='rgb_array'"
            )
            return None
        return self._render(self.render_size)

    def close(self) -> None:
        for r in self._renderers.values():
            try:
                r.close()
            except Exception:  # noqa: BLE001 - GL teardown errors are harmless at close
                pass
        self._renderers.clear()

    def __del__(self) -> None:  # pragma: no cover - best effort
        try:
            self.close()
        except Exception:  # noqa: BLE001
            pass

    # ------------------------------------------------------------- helpers
    def _get_obs(self) -> dict[str, np.ndarray]:
        obs = {
            "state": np.asarray(self._task_state(), dtype=np.float32),
            "proprio": np.asarray(self._task_proprio(), dtype=np.float32),
        }
        if self.image:
            obs["image"] = self._render(self.image_size)
        return obs

    def _render(self, size: int) -> np.ndarray:
        r = self._renderers.get(size)
        if r is None:
            r = mujoco.Renderer(self.model, size, size)
            r.scene.flags[mujoco.mjtRndFlag.mjRND_SHADOW] = False
            r.scene.flags[mujoco.mjtRndFlag.mjRND_REFLECTION] = False
            r.scene.flags[mujoco.mjtRndFlag.mjRND_SKYBOX] = False
            self._renderers[size] = r
            _LIVE_RENDERING_ENVS.add(self)
            global _EXIT_HOOK_REGISTERED
            if not _EXIT_HOOK_REGISTERED:
                atexit.register(_close_renderers_at_exit)
                _EXIT_HOOK_REGISTERED = True
        r.update_scene(self.data, camera=self._cam_id)
        return r.render().copy()

    def _substep(self) -> None:
        mujoco.mj_step(self.model, self.data, nstep=self.frame_skip)
