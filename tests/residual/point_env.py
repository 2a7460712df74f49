"""A tiny sparse-reward reaching task for fast residual-RL tests (no physics, microseconds per step).

``state = [pos, goal]`` (``dim`` each); ``action`` in [-1, 1]^dim moves the point by ``0.1 * a``;
with ``image=True`` also a 16x16 RGB ``image`` (point in red, goal in green; 1-D tasks on one row);
success (reward 1, episode ends) within 0.05 of the goal; 30 steps at most. The biased expert
aims ``offset`` past the goal, so a policy cloned from it often stops just outside the target.
"""
from __future__ import annotations

import gymnasium as gym
import numpy as np
from gymnasium import spaces


class PointReach(gym.Env):
    metadata = {"render_modes": []}

    def __init__(self, dim: int = 1, max_steps: int = 30, radius: float = 0.05, image: bool = False):
        spaces_ = {"state": spaces.Box(-2, 2, (2 * dim,), np.float32)}
        if image:
            spaces_["image"] = spaces.Box(0, 255, (16, 16, 3), np.uint8)
        self.observation_space = spaces.Dict(spaces_)
        self.image = image
        self.action_space = spaces.Box(-1, 1, (dim,), np.float32)
        self.dim, self.max_steps, self.radius = dim, max_steps, radius

    def _obs(self):
        obs = {"state": np.concatenate([self.pos, self.goal]).astype(np.float32)}
        if self.image:
            img = np.zeros((16, 16, 3), np.uint8)
            for ch, p in ((0, self.pos), (1, self.goal)):
                xy = np.clip(((np.asarray(p) + 1.5) / 3.0 * 15).round().astype(int), 0, 15)
                img[xy[1] if len(xy) > 1 else 8, xy[0], ch] = 255
            obs["image"] = img
        return obs

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.pos = self.np_random.uniform(-0.6, 0.6, self.dim)
        self.goal = self.np_random.uniform(-0.4, 0.4, self.dim)
        self.t = 0
        return self._obs(), {"is_success": False}

    def step(self, action):
        a = np.clip(np.asarray(action, np.float64), -1, 1)
        self.pos = np.clip(self.pos + 0.1 * a, -1.5, 1.5)
        self.t += 1
        ok = bool(np.linalg.norm(self.pos - self.goal) < self.radius)
        return self._obs(), float(ok), ok, self.t >= self.max_steps and not ok, {"is_success": ok}


class BiasedExpert:
    """Deadbeat controller that aims ``offset`` past the goal (succeeds only when passing through)."""

    def __init__(self, offset: float = 0.06, noise: float = 0.0, seed: int = 0):
        self.offset, self.noise = offset, noise
        self.rng = np.random.default_rng(seed)

    def reset(self, seed=None):
        if seed is not None:
            self.rng = np.random.default_rng(seed)

    def act(self, obs):
        s = obs["state"]
        d = s.shape[0] // 2
        a = np.clip((s[d:] + self.offset - s[:d]) / 0.1, -1, 1)
        return np.clip(a + self.noise * self.rng.standard_normal(d), -1, 1).astype(np.float32)


def collect(n: int, offset: float = 0.06, dim: int = 1, seed: int = 0, keep_success: bool = False, image: bool = False):
    from robotrl.data import EpisodeStore
    from robotrl.engine.collect import rollout_expert

    env, eps, i = PointReach(dim=dim, image=image), [], 0
    while len(eps) < n and i < 20 * n:
        ep, ok = rollout_expert(env, BiasedExpert(offset, seed=seed + i), seed=seed + i)
        i += 1
        if ok or not keep_success:
            eps.append(ep)
    return EpisodeStore.from_episodes(eps)
