"""Scripted experts for the robosuite tasks ``robosuite/Lift`` and ``robosuite/PickPlaceCan``.

robosuite ships no scripted policies (its demonstrations are human teleoperation), so these are
written here: waypoint controllers over the OSC_POSE action (delta position in ``[-1, 1]`` maps to
+-5 cm per step; rotation left at zero; gripper -1 open / +1 close), reading only
``obs["state"]`` = ``robot0_proprio-state`` (43) ++ ``object-state`` of
:mod:`robotrl.envs.suites.robosuite` (Panda, default BASIC controller):

* Lift (state 53): hover 6 cm above the cube, descend, close for 9 steps, lift 15 cm. 20/20
  seeded episodes succeed, ~38 steps each.
* PickPlaceCan (state 57): hover above the can, descend (at most 25 steps: at the far edge of the
  workspace the arm cannot reach the can's centre height), close, lift to z = 1.05, carry over
  the can's bin quadrant, lower to 0.97 and open. 40/40 seeded episodes, 107-163 steps.

``suboptimal=True`` makes a clumsier demonstrator for mixed-quality data: the grasp point is
offset by up to 1.5 cm in x/y (drawn once per episode) and the gripper closes for only 4 steps.
It is only slightly worse on Lift (11/12 seeded episodes succeed); use ``noise`` for clearly
worse data.
"""

from __future__ import annotations

import numpy as np

from robotrl.envs.experts.base import ScriptedExpert

__all__ = ["LiftExpert", "PickPlaceCanExpert"]

_EEF = slice(28, 31)  # robot0_eef_pos inside robot0_proprio-state
_GAIN = 12.0  # action per metre of position error (1.0 = 5 cm/step saturates beyond ~8 cm)
# the can's bin quadrant (robosuite PickPlace target_bin_placements[object id 3]), world x/y
CAN_TARGET_XY = np.array([0.1975, 0.4025])


class _WaypointExpert(ScriptedExpert):
    state_dim = 0
    task = ""

    def _reset(self) -> None:
        self.phase, self.t = 0, 0
        self.offset = np.zeros(3)
        self.close_steps = 9
        if self.suboptimal:
            self.offset[:2] = self.rng.uniform(-0.015, 0.015, size=2)
            self.close_steps = 4

    def _check(self, state: np.ndarray) -> None:
        if state.shape[0] != self.state_dim:
            raise ValueError(
                f"{type(self).__name__} expects the {self.state_dim}-D state of robosuite/{self.task} "
                f"(Panda, robot0_proprio-state ++ object-state), got {state.shape[0]}-D"
            )

    @staticmethod
    def _move(eef: np.ndarray, target: np.ndarray, grip: float) -> np.ndarray:
        a = np.zeros(7)
        a[:3] = np.clip((target - eef) * _GAIN, -1.0, 1.0)
        a[6] = grip
        return a

    def _grasp(self, eef: np.ndarray, obj: np.ndarray, hover: float, reach_tol: float) -> np.ndarray | None:
        """Phases 0-2 shared by both tasks: hover ``hover`` m above ``obj`` (open), descend (at most
        25 steps), close for ``close_steps``. Returns the action, or None once the grasp is done
        (phase 3; ``self.grasp_z`` is then the object's height when the gripper closed)."""
        if self.phase == 0:
            target = obj + [0.0, 0.0, hover]
            err = target - eef
            if np.linalg.norm(err[:2]) < 0.01 and abs(err[2]) < 0.02:
                self.phase, self.t = 1, 0
            return self._move(eef, target, -1.0)
        if self.phase == 1:
            self.t += 1
            if np.linalg.norm(obj - eef) < reach_tol or self.t > 25:
                self.phase, self.t = 2, 0
            return self._move(eef, obj, -1.0)
        if self.phase == 2:
            self.t += 1
            if self.t > self.close_steps:
                self.phase, self.grasp_z = 3, float(obj[2])
            return self._move(eef, obj, 1.0)
        return None


class LiftExpert(_WaypointExpert):
    """robosuite Lift: hover, descend, grasp, lift (see module docstring)."""

    state_dim = 53
    task = "Lift"

    def _act(self, state: np.ndarray) -> np.ndarray:
        self._check(state)
        eef, cube = state[_EEF], state[43:46] + self.offset
        a = self._grasp(eef, cube, hover=0.06, reach_tol=0.008)
        if a is not None:
            return a
        return self._move(eef, np.array([eef[0], eef[1], self.grasp_z + 0.15]), 1.0)  # lift


class PickPlaceCanExpert(_WaypointExpert):
    """robosuite PickPlaceCan: grasp the can, carry it over its bin quadrant, drop it."""

    state_dim = 57
    task = "PickPlaceCan"

    def _act(self, state: np.ndarray) -> np.ndarray:
        self._check(state)
        eef, can = state[_EEF], state[50:53] + self.offset
        high = 1.05
        a = self._grasp(eef, can, hover=0.08, reach_tol=0.01)
        if a is not None:
            return a
        if self.phase == 3:  # lift
            if eef[2] > high - 0.05:
                self.phase = 4
            return self._move(eef, np.array([eef[0], eef[1], high]), 1.0)
        if self.phase == 4:  # carry
            target = np.array([CAN_TARGET_XY[0], CAN_TARGET_XY[1], high])
            if np.linalg.norm((target - eef)[:2]) < 0.02:
                self.phase = 5
            return self._move(eef, target, 1.0)
        # lower, and open once low enough
        return self._move(eef, np.array([CAN_TARGET_XY[0], CAN_TARGET_XY[1], 0.95]), -1.0 if eef[2] < 0.97 else 1.0)
