"""Scripted expert for ``robotrl/ArmLift-v0``.

A small state machine on ``obs["state"]``:

1. ``approach``: open the gripper and move to 6 cm above the cube (xy error < 6 mm).
2. ``descend``: keep xy on the cube and go down until the fingertips straddle the cube centre.
3. ``close``: close the fingers and wait until they stop moving (at most 8 steps).
4. ``lift``: keep closed and rise to 0.14 m.

If the cube slips out (cube more than 3 cm from the gripper centre) it starts again from 1.

``suboptimal=True``: moves at half speed and, in about half of the episodes, grasps sloppily —
it closes 2.5 cm above the cube centre, so the fingertips barely catch it and the cube usually
drops or is never lifted.
"""

from __future__ import annotations

import numpy as np

from robotrl.envs.bundled.arm_lift import CUBE_HALF, STEP_SCALE
from robotrl.envs.experts.base import ScriptedExpert


class ArmLiftExpert(ScriptedExpert):
    """Approach, descend, close, lift (see module docstring)."""

    def _reset(self) -> None:
        self._phase = "approach"
        self._close_steps = 0
        self._last_fingers: np.ndarray | None = None
        self._speed = 0.5 if self.suboptimal else 1.0
        self._grasp_dz = 0.0
        if self.suboptimal and self.rng.random() < 0.5:
            self._grasp_dz = 0.025

    def _move(self, grip: np.ndarray, target: np.ndarray) -> np.ndarray:
        delta = (target - grip) / STEP_SCALE
        nrm = float(np.linalg.norm(delta))
        if nrm > 1.0:
            delta = delta / nrm
        return delta * self._speed

    def _act(self, state: np.ndarray) -> np.ndarray:
        grip, fingers, cube = state[0:3], state[6:8], state[8:11]
        lift_h = float(state[21])
        rel = cube - grip
        grasp_z = cube[2] + self._grasp_dz
        if self._phase in ("close", "lift") and np.linalg.norm(rel) > 0.03:
            self._phase = "approach"  # dropped it
        if self._phase == "approach":
            above = np.array([cube[0], cube[1], max(cube[2] + 0.06, CUBE_HALF + 0.06)])
            if np.linalg.norm(rel[:2]) < 0.006 and abs(grip[2] - above[2]) < 0.02:
                self._phase = "descend"
            else:
                return np.append(self._move(grip, above), -1.0)
        if self._phase == "descend":
            if np.linalg.norm(rel[:2]) > 0.015:
                self._phase = "approach"
                return np.append(self._move(grip, grip + np.array([0, 0, 0.02])), -1.0)
            if grip[2] - grasp_z < 0.004:
                self._phase = "close"
                self._close_steps = 0
            else:
                target = np.array([cube[0], cube[1], grasp_z])
                return np.append(self._move(grip, target), -1.0)
        if self._phase == "close":
            self._close_steps += 1
            last = fingers if self._last_fingers is None else self._last_fingers
            settled = self._close_steps > 2 and bool(np.all(np.abs(fingers - last) < 5e-4))
            self._last_fingers = fingers.copy()
            if settled or self._close_steps >= 8:
                self._phase = "lift"
            else:
                return np.array([0.0, 0.0, 0.0, 1.0])
        target = np.array([grip[0], grip[1], lift_h + 0.04])
        return np.append(self._move(grip, target), 1.0)
