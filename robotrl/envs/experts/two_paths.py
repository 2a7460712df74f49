"""Scripted expert for ``robotrl/TwoPaths-v0``.

At ``reset`` the expert draws a side, LEFT (s = -1) or RIGHT (s = +1), 50/50 from its own RNG,
and commits to it for the episode: it heads for ``(s * 0.22, -0.1)`` (beside the obstacle's lower
corner), goes up to ``(s * 0.22, 0.1)``, then to the goal, moving at full speed and slowing only
on the last few centimetres. The two modes' trajectories are mirror images ~0.44 m apart, and
their average drives straight into the obstacle.

``suboptimal=True``: moves at half speed, and in about half of the episodes it is imprecise —
it settles 4 cm beside the goal (on the side it came from, outside the 2.5 cm tolerance), so
those episodes fail.
"""

from __future__ import annotations

import numpy as np

from robotrl.envs.bundled.two_paths import OBSTACLE_HALF, STEP_SCALE
from robotrl.envs.experts.base import ScriptedExpert

_SIDE_X = OBSTACLE_HALF[0] + 0.07
_Y_BELOW = -(OBSTACLE_HALF[1] + 0.05)
_Y_ABOVE = OBSTACLE_HALF[1] + 0.05


class TwoPathsExpert(ScriptedExpert):
    """Commit to LEFT or RIGHT round the obstacle (see module docstring)."""

    def _reset(self) -> None:
        self.side = float(self.rng.choice([-1.0, 1.0]))
        self._phase = 0
        self._speed = 0.5 if self.suboptimal else 1.0
        self._offset = 0.0
        if self.suboptimal and self.rng.random() < 0.5:
            self._offset = 0.04 * self.side

    def _act(self, state: np.ndarray) -> np.ndarray:
        pos, goal = state[0:2], state[4:6] + np.array([self._offset, 0.0])
        s = self.side
        if self._phase == 0 and (pos[1] > _Y_BELOW - 0.02 or s * pos[0] > _SIDE_X - 0.03):
            self._phase = 1
        if self._phase == 1 and pos[1] > _Y_ABOVE - 0.02:
            self._phase = 2
        if self._phase == 0:
            target = np.array([s * _SIDE_X, _Y_BELOW])
        elif self._phase == 1:
            target = np.array([s * _SIDE_X, _Y_ABOVE])
        else:
            target = goal
        delta = (target - pos) / STEP_SCALE
        if self._phase < 2:  # full speed through the waypoints
            delta = delta / max(np.linalg.norm(delta), 1e-6)
        nrm = float(np.linalg.norm(delta))
        if nrm > 1.0:
            delta = delta / nrm
        return delta * self._speed
