"""``robotrl/ArmLift-v0``: grasp a cube with a gantry arm and lift it.

Task
    A Cartesian (gantry) arm — x/y/z slide joints, gravity-compensated, position actuators —
    carries a parallel two-finger gripper (fingers slide along y). A 4 cm cube (50 g) lies on
    the table at a random position (x, y in [-0.12, 0.12] m) and yaw (in [-0.4, 0.4] rad); the
    gripper starts open at a random position (x, y in [-0.1, 0.1], z in [0.12, 0.18]). The
    gripper frame's origin is the point between the fingertip pads (a cube resting on the table
    has its centre at z = 0.02).

Action (4,) in [-1, 1]
    ``a[0:3]``: Cartesian position delta, set-point = ``gripper_pos + 0.01 * a[0:3]`` (m) for this
    10 Hz step. ``a[3]``: absolute gripper command, -1 = fully open (4.5 cm per finger),
    +1 = fully closed (fingers squeeze anything in between).

Observation
    ``state`` (22,) float32::

        0:3   gripper position x, y, z (m)
        3:6   gripper velocity (m/s)
        6:8   finger openings left, right (m, 0 = closed, 0.045 = open)
        8:11  cube position x, y, z (m)
        11:15 cube orientation quaternion (w, x, y, z)
        15:18 cube linear velocity (m/s)
        18:21 cube position - gripper position
        21    lift height the cube must exceed (m)

    ``proprio`` (8,) float32: gripper position, velocity, finger openings (= ``state[0:8]``).
    ``image`` (optional): camera ``front`` (in front of the table, looking down at ~22 deg).

Success
    Cube centre above ``LIFT_HEIGHT`` = 0.10 m (lifted 8 cm). Sparse reward 1.0 on success;
    dense reward ``-(|cube - gripper| + 2 * max(0, 0.10 - cube_z)) / 0.1`` (+1 on success).

Expert (``robotrl.envs.experts.arm_lift``)
    Open and move 6 cm above the cube; descend until the fingertips straddle the cube centre;
    close for a few steps; lift to 0.14 m. It re-approaches if the cube is dropped or knocked.
"""

from __future__ import annotations

import mujoco
import numpy as np

from robotrl.envs.bundled.base import BundledMujocoEnv

LIFT_HEIGHT = 0.10
CUBE_HALF = 0.02
STEP_SCALE = 0.01
FINGER_OPEN = 0.045


class ArmLiftEnv(BundledMujocoEnv):
    """Reach, grasp and lift a cube with a gantry arm (see module docstring)."""

    xml_file = "arm_lift.xml"
    camera = "front"
    frame_skip = 25
    action_dim = 4
    state_dim = 22
    proprio_dim = 8
    default_max_episode_steps = 150

    def _task_init(self) -> None:
        m = self.model
        jid = lambda n: mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_JOINT, n)  # noqa: E731
        arm = [jid(n) for n in ("arm_x", "arm_y", "arm_z")]
        fingers = [jid("finger_left"), jid("finger_right")]
        self._qa = np.array([m.jnt_qposadr[j] for j in arm])
        self._va = np.array([m.jnt_dofadr[j] for j in arm])
        self._qf = np.array([m.jnt_qposadr[j] for j in fingers])
        cube = jid("cube")
        self._qc = int(m.jnt_qposadr[cube])
        self._vc = int(m.jnt_dofadr[cube])
        self._lo = m.actuator_ctrlrange[:3, 0].copy()
        self._hi = m.actuator_ctrlrange[:3, 1].copy()

    def _task_reset(self, rng: np.random.Generator) -> None:
        d = self.data
        cube_xy = rng.uniform(-0.12, 0.12, size=2)
        yaw = rng.uniform(-0.4, 0.4)
        grip = np.array([*rng.uniform(-0.1, 0.1, size=2), rng.uniform(0.12, 0.18)])
        d.qpos[self._qa] = grip
        d.qpos[self._qf] = FINGER_OPEN
        d.qpos[self._qc : self._qc + 3] = (cube_xy[0], cube_xy[1], CUBE_HALF)
        d.qpos[self._qc + 3 : self._qc + 7] = (np.cos(yaw / 2), 0.0, 0.0, np.sin(yaw / 2))
        d.ctrl[:3] = grip
        d.ctrl[3:5] = FINGER_OPEN

    def _task_apply_action(self, action: np.ndarray) -> None:
        d = self.data
        d.ctrl[:3] = np.clip(d.qpos[self._qa] + STEP_SCALE * action[:3], self._lo, self._hi)
        d.ctrl[3:5] = FINGER_OPEN * 0.5 * (1.0 - action[3])
        self._substep()

    def _cube_pos(self) -> np.ndarray:
        return self.data.qpos[self._qc : self._qc + 3]

    def _task_state(self) -> np.ndarray:
        d = self.data
        grip = d.qpos[self._qa]
        cube = self._cube_pos()
        return np.concatenate(
            [
                grip,
                d.qvel[self._va],
                d.qpos[self._qf],
                cube,
                d.qpos[self._qc + 3 : self._qc + 7],
                d.qvel[self._vc : self._vc + 3],
                cube - grip,
                [LIFT_HEIGHT],
            ]
        )

    def _task_proprio(self) -> np.ndarray:
        d = self.data
        return np.concatenate([d.qpos[self._qa], d.qvel[self._va], d.qpos[self._qf]])

    def _task_success(self) -> bool:
        return bool(self._cube_pos()[2] > LIFT_HEIGHT)

    def _task_dense_reward(self) -> float:
        cube = self._cube_pos()
        reach = float(np.linalg.norm(cube - self.data.qpos[self._qa]))
        lift = max(0.0, LIFT_HEIGHT - float(cube[2]))
        return -(reach + 2.0 * lift) / 0.1 + (1.0 if cube[2] > LIFT_HEIGHT else 0.0)
