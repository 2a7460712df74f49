"""``robotrl/TwoPaths-v0``: reach a goal behind a wide obstacle — a multimodal task.

Task
    A point agent (disc of radius 2 cm on two slide joints with position actuators) starts
    below a 30 x 10 cm obstacle centred at the origin and must reach a goal disc above it
    (within 2.5 cm). It can go round the obstacle on the LEFT or on the RIGHT; both are equally
    good. Per episode the start is x in [-0.05, 0.05], y in [-0.24, -0.20] and the goal
    x in [-0.05, 0.05], y in [0.20, 0.24]. Demonstrations are bimodal: averaging the two modes
    drives straight into the obstacle, so mean-regressing behaviour cloning fails while
    multimodal policies (diffusion, autoregressive) succeed.

Action (2,) in [-1, 1]
    Position delta: the actuator set-point is ``agent_pos + 0.01 * a`` (m) for this 10 Hz step
    (at most ~0.1 m/s).

Observation
    ``state`` (8,) float32::

        0:2  agent position x, y (m)
        2:4  agent velocity x, y (m/s)
        4:6  goal position x, y
        6:8  goal - agent

    ``proprio`` (4,) float32: agent position and velocity (= ``state[0:4]``).
    ``image`` (optional): top-down camera ``top``.

Success
    ``|agent - goal| < 0.025`` m. Sparse reward 1.0 on success; dense reward is
    ``-|agent - goal| / 0.1`` (+1 on success).

Expert (``robotrl.envs.experts.two_paths``)
    Draws LEFT or RIGHT (50/50 from its own RNG) at reset and commits: waypoints
    ``(s * 0.22, -0.1)`` -> ``(s * 0.22, 0.1)`` -> goal, at full speed, slowing only at the goal.
"""

from __future__ import annotations

import mujoco
import numpy as np

from robotrl.envs.bundled.base import BundledMujocoEnv

OBSTACLE_HALF = (0.15, 0.05)  # centred at the origin
AGENT_RADIUS = 0.02
STEP_SCALE = 0.01
GOAL_TOL = 0.025


class TwoPathsEnv(BundledMujocoEnv):
    """Reach a goal round an obstacle, left or right (see module docstring)."""

    xml_file = "two_paths.xml"
    camera = "top"
    frame_skip = 20
    action_dim = 2
    state_dim = 8
    proprio_dim = 4
    default_max_episode_steps = 200

    def _task_init(self) -> None:
        m = self.model
        jid = lambda n: mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_JOINT, n)  # noqa: E731
        self._qa = np.array([m.jnt_qposadr[jid("agent_x")], m.jnt_qposadr[jid("agent_y")]])
        self._va = np.array([m.jnt_dofadr[jid("agent_x")], m.jnt_dofadr[jid("agent_y")]])
        self.goal = np.zeros(2)

    def _task_reset(self, rng: np.random.Generator) -> None:
        start = np.array([rng.uniform(-0.05, 0.05), rng.uniform(-0.24, -0.20)])
        self.goal = np.array([rng.uniform(-0.05, 0.05), rng.uniform(0.20, 0.24)])
        self.data.qpos[self._qa] = start
        self.data.ctrl[:] = start
        self.data.mocap_pos[0, :2] = self.goal

    def _task_apply_action(self, action: np.ndarray) -> None:
        self.data.ctrl[:] = self.data.qpos[self._qa] + STEP_SCALE * action
        self._substep()

    def _dist(self) -> float:
        return float(np.linalg.norm(self.data.qpos[self._qa] - self.goal))

    def _task_state(self) -> np.ndarray:
        pos = self.data.qpos[self._qa]
        return np.concatenate([pos, self.data.qvel[self._va], self.goal, self.goal - pos])

    def _task_proprio(self) -> np.ndarray:
        return np.concatenate([self.data.qpos[self._qa], self.data.qvel[self._va]])

    def _task_success(self) -> bool:
        return self._dist() < GOAL_TOL

    def _task_dense_reward(self) -> float:
        d = self._dist()
        return -d / 0.1 + (1.0 if d < GOAL_TOL else 0.0)
