"""Shared surface of the scripted experts: ``reset(seed)`` and ``act(obs) -> action``."""

from __future__ import annotations

import numpy as np


class ScriptedExpert:
    """Base class: subclasses implement ``_reset()`` and ``_act(state) -> action in [-1, 1]``.

    ``noise`` is the std of Gaussian noise added to every action (then clipped to [-1, 1]);
    ``suboptimal`` switches on the task's worse-but-partly-successful behaviour. All randomness
    (mode choices, noise) comes from the expert's own generator, seeded by ``seed`` and
    re-seedable through ``reset(seed=...)``.
    """

    def __init__(self, noise: float = 0.0, suboptimal: bool = False, seed: int | None = None):
        noise = float(noise)
        if not np.isfinite(noise) or noise < 0:
            raise ValueError(f"noise must be a finite std >= 0, got {noise!r}")
        self.noise = noise
        self.suboptimal = bool(suboptimal)
        self.rng = np.random.default_rng(seed)
        self._reset()

    def reset(self, seed: int | None = None) -> None:
        """Start a new episode (optionally re-seeding the expert's RNG)."""
        if seed is not None:
            self.rng = np.random.default_rng(seed)
        self._reset()

    def act(self, obs: dict) -> np.ndarray:
        """Action for one (unbatched) observation dict; uses ``obs["state"]`` only."""
        if not isinstance(obs, dict) or "state" not in obs:
            raise KeyError(
                f"{type(self).__name__}.act expects an observation dict with key 'state', "
                f"got {type(obs).__name__}"
                + (f" with keys {sorted(obs)}" if isinstance(obs, dict) else "")
            )
        state = np.asarray(obs["state"], dtype=np.float64).reshape(-1)
        action = np.asarray(self._act(state), dtype=np.float64)
        if self.noise > 0:
            action = action + self.rng.normal(0.0, self.noise, size=action.shape)
        return np.clip(action, -1.0, 1.0).astype(np.float32)

    def _reset(self) -> None:
        pass

    def _act(self, state: np.ndarray) -> np.ndarray:
        raise NotImplementedError
