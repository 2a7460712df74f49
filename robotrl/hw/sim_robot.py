"""A bundled MuJoCo task seen as a position-controlled robot, in-process (no ROS).

:class:`SimTask` is the simulated robot itself, shared with the ROS node
(:mod:`robotrl.hw.sim_ros_node`): it reads joint positions/velocities from the task's MuJoCo
model, accepts joint position targets, turns each target back into the task's own action with the
robot's :class:`~robotrl.hw.robot.ActionMap` (so the physics, reward, success and time limit are
exactly the task's) and steps one control period per command (lockstep: simulated time advances
when a command arrives; with no command the scene holds still).

:data:`TASK_PRESETS` describe each bundled task as a robot (joints, limits, action map, workspace
of the gantry arm). :class:`SimRobot` exposes a :class:`SimTask` through the ``Robot`` interface.
"""
from __future__ import annotations

import copy
import time
from typing import Any, Mapping

import numpy as np

from robotrl.hw.robot import Feature, Robot, RobotConfig, RobotConfigError

__all__ = ["TASK_PRESETS", "SimTask", "SimRobot", "apply_task_preset", "sim_env_config"]

#: bundled task id -> robot description (joint names are the MJCF joints)
TASK_PRESETS: dict[str, dict[str, Any]] = {
    "robotrl/ArmLift-v0": {
        # gantry x/y/z slides + two fingers driven by one gripper command
        "joints": ["arm_x", "arm_y", "arm_z", "finger_left", "finger_right"],
        "units": ["m", "m", "m", "m", "m"],
        "lower": [-0.2, -0.2, 0.0, 0.0, 0.0],
        "upper": [0.2, 0.2, 0.3, 0.045, 0.045],
        "max_velocity": [0.5, 0.5, 0.5, 0.6, 0.6],
        "max_relative_target": [0.03, 0.03, 0.03, 0.05, 0.05],
        "hold": ["current", "current", "current", "last", "last"],
        "workspace": {
            "lower": [-0.19, -0.19, 0.0],
            "upper": [0.19, 0.19, 0.28],
            "kinematics": {"type": "gantry", "joints": ["arm_x", "arm_y", "arm_z"]},
        },
        "action_map": {
            "index": [0, 1, 2, 3, 3],
            "mode": ["delta", "delta", "delta", "absolute", "absolute"],
            "scale": [0.02, 0.02, 0.02, -0.0225, -0.0225],
            "offset": [0.0, 0.0, 0.0, 0.0225, 0.0225],
        },
    },
    "robotrl/TwoPaths-v0": {
        "joints": ["agent_x", "agent_y"],
        "units": ["m", "m"],
        "lower": [-0.29, -0.29],
        "upper": [0.29, 0.29],
        "max_velocity": [0.3, 0.3],
        "max_relative_target": [0.015, 0.015],
        "hold": "current",
        "workspace": None,
        "action_map": {"mode": "delta", "scale": 0.01},
    },
    "robotrl/PushT-v0": {
        # absolute pusher target; the task itself limits the pusher speed to 0.4 m/s
        "joints": ["pusher_x", "pusher_y"],
        "units": ["m", "m"],
        "lower": [-0.3, -0.3],
        "upper": [0.3, 0.3],
        "max_velocity": None,
        "max_relative_target": None,
        "hold": "current",
        "workspace": None,
        "action_map": {"mode": "absolute", "scale": 0.3},
    },
}


def sim_env_config(rc: RobotConfig) -> dict[str, Any]:
    """The ``make_env`` config of a simulated robot's task."""
    env = dict(rc.env or {})
    env.pop("name", None)
    if rc.task is not None:
        env["id"] = rc.task
    if "id" not in env:
        raise RobotConfigError(f"simulated robot {rc.name!r} needs robot.task (a bundled task id)")
    return env


def _observation_preset(rc: RobotConfig, obs_keys: list[str]) -> dict[str, Any]:
    ns = str(rc.sim_node.get("namespace", "/robotrl_sim")).rstrip("/")
    out: dict[str, Any] = {}
    for k in obs_keys:
        if k.endswith("image"):
            out[k] = {"topic": f"{ns}/camera/{k}", "type": "image"}
        else:
            out[k] = {"topic": f"{ns}/obs/{k}"}
    return out


def apply_task_preset(rc: RobotConfig) -> RobotConfig:
    """Fill the unset fields of a simulated robot's config from its task preset (a copy)."""
    rc = copy.deepcopy(rc)
    env = sim_env_config(rc)
    preset = TASK_PRESETS.get(env["id"])
    if preset is None:
        raise RobotConfigError(f"no simulated-robot preset for task {env['id']!r}; presets: {sorted(TASK_PRESETS)}")
    for key, value in preset.items():
        if getattr(rc, key) is None:
            setattr(rc, key, copy.deepcopy(value))
    if rc.type != "sim":
        ns = str(rc.sim_node.get("namespace", "/robotrl_sim")).rstrip("/")
        ros = dict(rc.ros)
        ros.setdefault("joint_state_topic", f"{ns}/joint_states")
        ros.setdefault("command_topic", f"{ns}/joint_command")
        ros.setdefault("reset_topic", f"{ns}/reset")
        ros.setdefault("info_topic", f"{ns}/task_info")
        rc.ros = ros
        if rc.observation is None:
            keys = ["state", "proprio"] + (["image"] if env.get("image") else [])
            rc.observation = _observation_preset(rc, keys)
    return rc


class SimTask:
    """A bundled task driven by joint position targets (see the module docstring)."""

    def __init__(self, rc: RobotConfig) -> None:
        from robotrl.envs import make_env

        self.rc = rc
        self.env_cfg = sim_env_config(rc)
        self.env = make_env(self.env_cfg)
        base = self.env.unwrapped
        self.model, self.data = base.model, base.data
        self.action_map = rc.make_action_map()
        import mujoco

        qadr, vadr = [], []
        for name in rc.joints or []:
            jid = mujoco.mj_name2id(self.model, mujoco.mjtObj.mjOBJ_JOINT, name)
            if jid < 0:
                raise RobotConfigError(f"simulated robot: joint {name!r} is not in the task {self.env_cfg['id']!r}")
            qadr.append(int(self.model.jnt_qposadr[jid]))
            vadr.append(int(self.model.jnt_dofadr[jid]))
        self._qadr, self._vadr = np.asarray(qadr), np.asarray(vadr)
        space = self.env.action_space
        if self.action_map.action_dim != space.shape[0]:
            raise RobotConfigError(
                f"simulated robot: action_map reads {self.action_map.action_dim} entries but task {self.env_cfg['id']!r} "
                f"has {space.shape[0]}-dim actions"
            )
        self.a_low, self.a_high = space.low.astype(np.float64), space.high.astype(np.float64)
        self.obs: dict[str, np.ndarray] = {}
        self.episode = -1
        self.steps = 0
        self.reward = 0.0
        self.ret = 0.0
        self.success = False
        self.terminated = False
        self.truncated = False

    @property
    def observation_space(self) -> Any:
        return self.env.observation_space

    def joint_pos(self) -> np.ndarray:
        return self.data.qpos[self._qadr].astype(np.float64)

    def joint_vel(self) -> np.ndarray:
        return self.data.qvel[self._vadr].astype(np.float64)

    @property
    def done(self) -> bool:
        return self.terminated or self.truncated

    def reset(self, seed: int | None = None) -> dict[str, np.ndarray]:
        self.obs, info = self.env.reset(seed=seed)
        self.episode += 1
        self.steps, self.reward, self.ret = 0, 0.0, 0.0
        self.success = bool(info.get("is_success", False))
        self.terminated = self.truncated = False
        return self.obs

    def apply(self, target: np.ndarray) -> bool:
        """One control period towards ``target``; False (nothing done) once the episode is over."""
        if self.done:
            return False
        a = self.action_map.to_action(np.asarray(target, dtype=np.float64), self.joint_pos())
        a = np.clip(np.nan_to_num(a, nan=0.0), self.a_low, self.a_high).astype(np.float32)
        self.obs, r, term, trunc, info = self.env.step(a)
        self.steps += 1
        self.reward = float(r)
        self.ret += float(r)
        self.success = self.success or bool(info.get("is_success", False))
        self.terminated, self.truncated = bool(term), bool(trunc)
        return True

    def info(self) -> dict[str, Any]:
        return {
            "episode": self.episode, "step": self.steps, "reward": self.reward, "return": self.ret,
            "is_success": self.success, "terminated": self.terminated, "truncated": self.truncated,
        }

    def close(self) -> None:
        self.env.close()


class SimRobot(Robot):
    """In-process simulated robot over a bundled task (``robot=sim``)."""

    def __init__(self, config: RobotConfig) -> None:
        super().__init__(config)
        self.task: SimTask | None = None
        self.sent: list[np.ndarray] = []

    @property
    def observation_features(self) -> dict[str, Feature]:
        if self.task is None:
            raise RuntimeError("SimRobot: connect() first")
        feats: dict[str, Feature] = {}
        for k, sp in self.task.observation_space.spaces.items():
            feats[k] = Feature(tuple(sp.shape), str(sp.dtype))
        J = len(self.joint_names)
        af = self.action_features["joint_target"]
        feats["joint_pos"] = Feature((J,), "float64", tuple(self.joint_names), af.unit, af.lower, af.upper)
        feats["joint_vel"] = Feature((J,), "float64", tuple(self.joint_names))
        return feats

    def connect(self) -> None:
        if self._connected:
            return
        self.task = SimTask(self.config)
        self.task.reset()
        self._connected = True

    def disconnect(self) -> None:
        if self.task is not None:
            self.task.close()
        self.task = None
        self._connected = False

    def reset_episode(self, seed: int | None = None, timeout: float = 30.0) -> None:
        assert self.task is not None, "SimRobot: connect() first"
        self.task.reset(seed)

    def episode_info(self) -> dict[str, Any]:
        return {} if self.task is None else self.task.info()

    def get_observation(self) -> dict[str, Any]:
        if self.task is None:
            raise RuntimeError("SimRobot: connect() first")
        obs: dict[str, Any] = {k: np.array(v) for k, v in self.task.obs.items()}
        obs["joint_pos"] = self.task.joint_pos()
        obs["joint_vel"] = self.task.joint_vel()
        obs["timestamp"] = time.monotonic()  # sensors are read synchronously: always fresh
        return obs

    def send_action(self, target: np.ndarray) -> np.ndarray:
        if self.task is None:
            raise RuntimeError("SimRobot: connect() first")
        t = np.asarray(target, dtype=np.float64).reshape(-1)
        self.sent.append(t.copy())
        self.task.apply(t)
        return t


def task_info_vector(info: Mapping[str, Any]) -> list[float]:
    """``[episode, step, reward, return, is_success, terminated, truncated]`` for the info topic."""
    return [float(info["episode"]), float(info["step"]), float(info["reward"]), float(info["return"]),
            float(info["is_success"]), float(info["terminated"]), float(info["truncated"])]


def task_info_from_vector(v: Any) -> dict[str, Any]:
    v = list(v)
    if len(v) < 7:
        return {}
    return {"episode": int(v[0]), "step": int(v[1]), "reward": float(v[2]), "return": float(v[3]),
            "is_success": bool(v[4]), "terminated": bool(v[5]), "truncated": bool(v[6])}
