"""robosuite 1.5.1 tasks ``robosuite/Lift``, ``robosuite/PickPlaceCan``, ``robosuite/NutAssemblySquare``.

* Panda arm with the default ``BASIC`` composite controller (OSC_POSE for the arm, 7-D actions
  in ``[-1, 1]``: delta position, delta axis-angle, gripper), 20 Hz, horizon 500.
* ``state`` = ``robot0_proprio-state`` ++ ``object-state``; ``proprio`` = ``robot0_proprio-state``.
* ``image=True`` adds ``"agentview_image"`` (flipped upright; robosuite renders OpenGL-style
  bottom-up), without shadows/reflections for speed (``kwargs.fast_render=False`` keeps them). Offscreen rendering needs ``MUJOCO_GL=egl`` (set here when unset).
* ``info["is_success"]`` = ``env._check_success()``. Episodes truncate at the horizon; they
  terminate only with ``kwargs.terminate_on_success=True`` (on the first success frame, as the
  bundled tasks do; used by the residual-RL benchmark). ``reward_type="dense"`` turns on robosuite's reward shaping (default sparse).
* Seeding: robosuite places objects with the global ``np.random``; ``reset(seed=...)`` seeds a
  private RNG that draws a seed for each placement, and the global state is restored afterwards.
  robosuite also draws *model* randomness when the env is built (Lift's cube edge, 0.020-0.022 m);
  with soft resets (``hard_reset=False``, used here for speed) that draw lasts the env's lifetime, so
  it is seeded with ``kwargs.model_seed`` (default 0): every instance is the same model and a seeded
  episode replays exactly in any process. (robosuite's own default, hard resets, redraws the cube per
  episode from the unseeded global RNG.)

It is slow (~250 steps/s without cameras, far less with them).
"""

from __future__ import annotations

import os
from typing import Any

import gymnasium as gym
import numpy as np

from robotrl.envs.suites import dict_obs_space, disable_shadows, f32

TASKS = ("Lift", "PickPlaceCan", "NutAssemblySquare")


class RobosuiteEnv(gym.Env):
    """A robosuite environment behind the gymnasium API and the robotrl observation convention."""

    metadata = {"render_modes": ["rgb_array"], "render_fps": 20}

    def __init__(
        self,
        task: str,
        image: bool = False,
        image_size: int = 84,
        horizon: int = 500,
        reward_shaping: bool = False,
        render_mode: str | None = None,
        robots: str = "Panda",
        camera_name: str = "agentview",
        render_size: int = 256,
        fast_render: bool = True,
        terminate_on_success: bool = False,
        model_seed: int = 0,
        **kwargs: Any,
    ):
        os.environ.setdefault("MUJOCO_GL", "egl")
        import robosuite
        from robosuite.controllers import load_composite_controller_config

        if render_mode not in (None, "rgb_array"):
            raise ValueError(f"robosuite envs support render_mode None or 'rgb_array', got {render_mode!r}")
        self.task = task
        self.render_mode = render_mode
        self.terminate_on_success = bool(terminate_on_success)
        self._image = bool(image)
        self._image_size = int(image_size)
        self._camera = camera_name
        self._render_size = int(render_size)
        self.image_key = f"{camera_name}_image"
        offscreen = self._image or render_mode == "rgb_array"
        controller = kwargs.pop("controller_configs", None) or load_composite_controller_config(
            controller="BASIC", robot=robots
        )
        saved = np.random.get_state()
        np.random.seed(int(model_seed))  # robosuite draws model randomness (Lift's cube size) while building
        try:
            self._env = robosuite.make(
                task,
                robots=robots,
                controller_configs=controller,
                has_renderer=False,
                has_offscreen_renderer=offscreen,
                use_camera_obs=self._image,
                camera_names=camera_name,
                camera_heights=self._image_size,
                camera_widths=self._image_size,
                reward_shaping=reward_shaping,
                control_freq=kwargs.pop("control_freq", 20),
                horizon=int(horizon),
                ignore_done=False,
                hard_reset=kwargs.pop("hard_reset", False),
                **kwargs,
            )
            ctx = getattr(self._env.sim, "_render_context_offscreen", None)
            if offscreen and fast_render and ctx is not None:
                disable_shadows(ctx.scn)
            raw = self._env.reset()
        finally:
            np.random.set_state(saved)
        low, high = self._env.action_spec
        self.action_space = gym.spaces.Box(low.astype(np.float32), high.astype(np.float32), dtype=np.float32)
        self.observation_space = dict_obs_space(
            self._state(raw).shape[0],
            raw["robot0_proprio-state"].shape[0],
            (self.image_key,) if self._image else (),
            self._image_size,
        )
        self._rng = np.random.default_rng()
        self._last_raw: dict | None = raw

    # ----------------------------------------------------------------------------------------
    def _make_current(self) -> None:
        """robosuite renders into whatever GL context is current; other envs in this process
        (gymnasium's renderer) switch it, so claim ours before anything renders."""
        ctx = getattr(self._env.sim, "_render_context_offscreen", None)
        if ctx is not None:
            import mujoco

            ctx.gl_ctx.make_current()
            mujoco.mjr_setBuffer(mujoco.mjtFramebuffer.mjFB_OFFSCREEN, ctx.con)

    @staticmethod
    def _state(raw: dict) -> np.ndarray:
        return np.concatenate([f32(raw["robot0_proprio-state"]), f32(raw["object-state"])])

    def _obs(self, raw: dict) -> dict[str, np.ndarray]:
        out = {"state": self._state(raw), "proprio": f32(raw["robot0_proprio-state"])}
        if self._image:
            out[self.image_key] = np.ascontiguousarray(raw[self.image_key][::-1], dtype=np.uint8)
        return out

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        if seed is not None:
            self._rng = np.random.default_rng(seed)
        placement_seed = int(self._rng.integers(2**31 - 1))
        saved = np.random.get_state()
        try:
            np.random.seed(placement_seed)
            self._make_current()
            raw = self._env.reset()
        finally:
            np.random.set_state(saved)
        self._last_raw = raw
        return self._obs(raw), {"is_success": bool(self._env._check_success())}

    def step(self, action):
        a = np.asarray(action, dtype=np.float64).reshape(self.action_space.shape)
        if self._image:
            self._make_current()
        raw, reward, done, info = self._env.step(a)
        self._last_raw = raw
        info = dict(info)
        info["is_success"] = success = bool(self._env._check_success())
        terminated = success and self.terminate_on_success
        return self._obs(raw), float(reward), terminated, bool(done) and not terminated, info

    def render(self):
        if self.render_mode != "rgb_array":
            return None
        if self._image and self._last_raw is not None:
            return np.ascontiguousarray(self._last_raw[self.image_key][::-1])
        self._make_current()
        img = self._env.sim.render(
            camera_name=self._camera, width=self._render_size, height=self._render_size
        )
        return np.ascontiguousarray(np.asarray(img)[::-1], dtype=np.uint8)

    def close(self):
        try:
            self._env.close()
        except Exception:  # robosuite's close can fail during interpreter shutdown
            pass


def make(env_id: str, cfg: Any) -> gym.Env:
    import difflib

    task = env_id.split("/", 1)[1] if "/" in env_id else env_id
    if task not in TASKS:
        close = difflib.get_close_matches(task, TASKS, n=1)
        hint = f" Did you mean 'robosuite/{close[0]}'?" if close else ""
        raise ValueError(f"unknown robosuite task {env_id!r}.{hint} Supported: {', '.join('robosuite/' + t for t in TASKS)}")
    return RobosuiteEnv(
        task,
        image=cfg.image,
        image_size=cfg.image_size,
        horizon=cfg.max_episode_steps or 500,
        reward_shaping=cfg.reward_type == "dense",
        render_mode=cfg.render_mode,
        **dict(cfg.kwargs),
    )
