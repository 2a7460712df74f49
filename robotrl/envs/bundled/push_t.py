"""``robotrl/PushT-v0``: contact-rich planar pushing of a T-shaped block onto a target pose.

Task
    A round pusher (radius 1.5 cm, two slide joints driven by position actuators) moves in the
    plane of a 0.6 x 0.6 m table and pushes a T-shaped block (bar 12 x 3 cm, stem 3 x 9 cm;
    planar x/y/yaw joints whose damping and friction-loss stand in for table friction) onto a
    fixed target pose, drawn as a translucent green ghost T. The block's frame sits at its
    centre of mass; in that frame the bar lies along +y (bar centre y = +2.57 cm, stem centre
    y = -3.43 cm). Each episode randomises the block pose (x, y in [-0.15, 0.15] m, yaw
    uniform in [-pi, pi), never starting near success) and the pusher position (anywhere in
    [-0.25, 0.25]^2 clear of the block).

Action (2,) in [-1, 1]
    Absolute pusher target ``0.3 * a`` (metres, world x/y). The commanded set-point moves from
    the pusher's current position toward the target at <= 0.4 m/s (interpolated over the
    20 physics substeps of one 10 Hz control step).

Observation
    ``state`` (15,) float32::

        0:2   pusher position x, y (m)
        2:4   pusher velocity x, y (m/s)
        4:6   block position x, y (m, centre of mass)
        6:8   block yaw as (cos, sin)
        8:11  block velocity vx, vy (m/s), yaw rate (rad/s)
        11:13 goal position x, y
        13:15 goal yaw as (cos, sin)

    ``proprio`` (4,) float32: pusher position x, y and velocity x, y (= ``state[0:4]``).
    ``image`` (optional): top-down camera ``top``.

Success
    Block position error < 1.5 cm and yaw error < 0.15 rad (~8.6 deg). Sparse reward is 1.0 on
    success; dense reward is ``-(pos_err / 0.1 + yaw_err / pi)`` (+1 on success).

Expert (``robotrl.envs.experts.push_t``)
    A greedy pose-error planner with a quasi-static pushing model: for ~20 candidate contacts on
    the T's edges it predicts the block twist a normal push would cause (ellipsoidal limit
    surface matching the block's damping), picks the push giving the largest reduction of
    ``|p - g|^2 + (0.05 m/rad)^2 * yaw_err^2`` per unit of travel, walks around the block to the
    pre-contact point (orbiting at a safe radius when the straight path is blocked), then pushes
    while tracking the contact in the block frame, re-planning every step.
"""

from __future__ import annotations

import mujoco
import numpy as np

from robotrl.envs.bundled.base import BundledMujocoEnv

# T geometry in the block frame (metres): (centre_x, centre_y, half_x, half_y).
T_BAR = (0.0, 0.025714, 0.06, 0.015)
T_STEM = (0.0, -0.034286, 0.015, 0.045)
PUSHER_RADIUS = 0.015
WORKSPACE = 0.3  # action scale: target = WORKSPACE * a
MAX_SPEED = 0.4  # m/s, set-point rate limit
GOAL_POSE = (0.0, 0.0, np.pi / 4)
POS_TOL = 0.015
YAW_TOL = 0.15
# ratio of rotational to translational damping (m^2) of the block: the limit-surface constant
BLOCK_C2 = 0.00245 / 2.0


def wrap_angle(x: float | np.ndarray) -> float | np.ndarray:
    """Wrap to [-pi, pi)."""
    return (np.asarray(x) + np.pi) % (2 * np.pi) - np.pi


def t_sdf(points: np.ndarray) -> np.ndarray:
    """Signed distance (m) from block-frame points ``[..., 2]`` to the T (negative inside)."""
    out = None
    for cx, cy, hx, hy in (T_BAR, T_STEM):
        q = np.abs(points - np.array([cx, cy])) - np.array([hx, hy])
        outside = np.linalg.norm(np.maximum(q, 0.0), axis=-1)
        inside = np.minimum(np.max(q, axis=-1), 0.0)
        d = outside + inside
        out = d if out is None else np.minimum(out, d)
    return out


class PushTEnv(BundledMujocoEnv):
    """Push a T-shaped block onto a target pose with a round pusher (see module docstring)."""

    xml_file = "push_t.xml"
    camera = "top"
    frame_skip = 20
    action_dim = 2
    state_dim = 15
    proprio_dim = 4
    default_max_episode_steps = 300
    _chunks = 4

    def _task_init(self) -> None:
        m = self.model
        jid = lambda n: mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_JOINT, n)  # noqa: E731
        self._qa = np.array([m.jnt_qposadr[jid("pusher_x")], m.jnt_qposadr[jid("pusher_y")]])
        self._va = np.array([m.jnt_dofadr[jid("pusher_x")], m.jnt_dofadr[jid("pusher_y")]])
        self._qb = np.array([m.jnt_qposadr[jid(n)] for n in ("block_x", "block_y", "block_yaw")])
        self._vb = np.array([m.jnt_dofadr[jid(n)] for n in ("block_x", "block_y", "block_yaw")])
        self.goal = np.array(GOAL_POSE, dtype=np.float64)
        self._substeps_per_chunk = self.frame_skip // self._chunks

    def _task_reset(self, rng: np.random.Generator) -> None:
        d = self.data
        gx, gy, gyaw = self.goal
        while True:
            pos = rng.uniform(-0.15, 0.15, size=2)
            yaw = rng.uniform(-np.pi, np.pi)
            if np.linalg.norm(pos - self.goal[:2]) > 0.06 or abs(wrap_angle(yaw - gyaw)) > 0.6:
                break
        c, s = np.cos(yaw), np.sin(yaw)
        rot_t = np.array([[c, s], [-s, c]])  # world -> block
        while True:
            agent = rng.uniform(-0.25, 0.25, size=2)
            if t_sdf(rot_t @ (agent - pos)) > PUSHER_RADIUS + 0.01:
                break
        d.qpos[self._qb] = (pos[0], pos[1], yaw)
        d.qpos[self._qa] = agent
        d.ctrl[:] = agent
        self.data.mocap_pos[0, :2] = (gx, gy)
        self.data.mocap_quat[0] = (np.cos(gyaw / 2), 0.0, 0.0, np.sin(gyaw / 2))

    def _task_apply_action(self, action: np.ndarray) -> None:
        d = self.data
        target = WORKSPACE * action
        start = d.qpos[self._qa].copy()
        delta = target - start
        dist = float(np.linalg.norm(delta))
        max_step = MAX_SPEED * self.model.opt.timestep * self.frame_skip
        if dist > max_step:
            delta *= max_step / dist
        for k in range(1, self._chunks + 1):
            d.ctrl[:] = start + delta * (k / self._chunks)
            mujoco.mj_step(self.model, d, nstep=self._substeps_per_chunk)

    def block_pose(self) -> np.ndarray:
        return self.data.qpos[self._qb].copy()

    def _errors(self) -> tuple[float, float]:
        q = self.data.qpos[self._qb]
        pos_err = float(np.hypot(q[0] - self.goal[0], q[1] - self.goal[1]))
        yaw_err = float(abs(wrap_angle(q[2] - self.goal[2])))
        return pos_err, yaw_err

    def _task_state(self) -> np.ndarray:
        d = self.data
        q = d.qpos[self._qb]
        g = self.goal
        return np.concatenate(
            [
                d.qpos[self._qa],
                d.qvel[self._va],
                q[:2],
                [np.cos(q[2]), np.sin(q[2])],
                d.qvel[self._vb],
                g[:2],
                [np.cos(g[2]), np.sin(g[2])],
            ]
        )

    def _task_proprio(self) -> np.ndarray:
        return np.concatenate([self.data.qpos[self._qa], self.data.qvel[self._va]])

    def _task_success(self) -> bool:
        pos_err, yaw_err = self._errors()
        return pos_err < POS_TOL and yaw_err < YAW_TOL

    def _task_dense_reward(self) -> float:
        pos_err, yaw_err = self._errors()
        bonus = 1.0 if (pos_err < POS_TOL and yaw_err < YAW_TOL) else 0.0
        return -(pos_err / 0.1 + yaw_err / np.pi) + bonus
