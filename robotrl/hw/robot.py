"""The ``Robot`` interface, its declared features, and the robot config every backend reads.

A :class:`Robot` is anything that can be connected to, observed and commanded:

- ``connect()`` / ``disconnect()`` (also a context manager),
- ``get_observation() -> dict``: the newest observation, one array per declared observation
  feature (the policy's keys such as ``"state"`` / ``"image"`` plus ``"joint_pos"`` and
  ``"joint_vel"`` in the config's joint order) and ``"timestamp"`` (``time.monotonic()`` seconds
  at which the newest part of it arrived in this process),
- ``send_action(target) -> sent``: command joint **position targets** (one per joint, in the
  config's units) and return what was actually commanded,
- declared ``observation_features`` / ``action_features`` (:class:`Feature`: shape, dtype, names,
  unit, limits).

Policies act in their task's action units (e.g. a bundled task's normalised Cartesian delta). An
:class:`ActionMap` turns a policy action into joint targets (and back, so a recording stores the
policy-space equivalent of what was actually sent). Everything is described by a
:class:`RobotConfig` (``conf/robot/*.yaml``) that refuses unknown keys.

Model: LeRobot's ``Robot`` ABC (declared features, connect/disconnect, ``send_action`` returning
what was sent). No code was copied.
"""
from __future__ import annotations

import abc
import dataclasses
import difflib
import time
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import numpy as np

__all__ = [
    "Feature",
    "Robot",
    "RobotConfig",
    "RobotConfigError",
    "RobotConnectionError",
    "ActionMap",
    "make_robot",
    "robot_config_from",
]


class RobotConfigError(ValueError):
    """A robot config is malformed or does not fit the policy (raised before anything is sent)."""


class RobotConnectionError(ConnectionError):
    """The robot (or its ROS master / rosbridge server) cannot be reached or does not answer."""


@dataclass(frozen=True)
class Feature:
    """One declared observation or action entry."""

    shape: tuple[int, ...]
    dtype: str = "float32"
    names: tuple[str, ...] | None = None  # per-element names (joints) for 1-D features
    unit: str | tuple[str, ...] = ""
    lower: tuple[float, ...] | None = None
    upper: tuple[float, ...] | None = None

    def check(self, key: str, value: Any, source: str = "") -> np.ndarray:
        """``value`` as an array of this feature's shape, or a clear ValueError."""
        arr = np.asarray(value)
        if tuple(arr.shape) != tuple(self.shape):
            where = f" from {source}" if source else ""
            raise ValueError(f"observation {key!r}{where}: expected shape {tuple(self.shape)}, got {tuple(arr.shape)}")
        return arr.astype(self.dtype, copy=False)


# --------------------------------------------------------------------------------------------
# action map


_MODES = ("absolute", "delta")


@dataclass
class ActionMap:
    """Policy action (``[A]``) <-> joint position targets (``[J]``).

    For joint ``j``: ``a = action[index[j]]`` and

    - ``mode[j] == "absolute"``: ``target[j] = offset[j] + scale[j] * a``
    - ``mode[j] == "delta"``:    ``target[j] = joint_pos[j] + offset[j] + scale[j] * a``

    Several joints may read the same action entry (a gripper driving two fingers); the inverse
    averages them. ``index=None`` means joint ``j`` reads action ``j`` (A == J).
    """

    n_joints: int
    index: list[int] | None = None
    mode: list[str] | str = "absolute"
    scale: list[float] | float = 1.0
    offset: list[float] | float = 0.0

    def __post_init__(self) -> None:
        J = int(self.n_joints)
        self.index = list(range(J)) if self.index is None else [int(i) for i in self.index]
        self.mode = [self.mode] * J if isinstance(self.mode, str) else [str(m) for m in self.mode]
        self.scale = [float(self.scale)] * J if np.isscalar(self.scale) else [float(s) for s in self.scale]
        self.offset = [float(self.offset)] * J if np.isscalar(self.offset) else [float(o) for o in self.offset]
        for name in ("index", "mode", "scale", "offset"):
            if len(getattr(self, name)) != J:
                raise RobotConfigError(
                    f"action_map.{name} has {len(getattr(self, name))} entries for {J} joints; give one per joint"
                )
        bad = [m for m in self.mode if m not in _MODES]
        if bad:
            raise RobotConfigError(f"action_map.mode {bad} not in {list(_MODES)}")
        if min(self.index) < 0:
            raise RobotConfigError(f"action_map.index must be >= 0, got {self.index}")
        used = sorted(set(self.index))
        if used != list(range(len(used))):
            raise RobotConfigError(f"action_map.index must use every action entry 0..A-1, got {self.index}")
        if any(s == 0.0 for s in self.scale):
            raise RobotConfigError(f"action_map.scale must be non-zero, got {self.scale}")
        self._idx = np.asarray(self.index)
        self._delta = np.asarray([m == "delta" for m in self.mode])
        self._scale = np.asarray(self.scale, dtype=np.float64)
        self._offset = np.asarray(self.offset, dtype=np.float64)

    @property
    def action_dim(self) -> int:
        return int(self._idx.max()) + 1

    def to_target(self, action: np.ndarray, joint_pos: np.ndarray) -> np.ndarray:
        a = np.asarray(action, dtype=np.float64).reshape(-1)
        if a.shape != (self.action_dim,):
            raise ValueError(f"action_map: expected an action of shape ({self.action_dim},), got {a.shape}")
        t = self._offset + self._scale * a[self._idx]
        return np.where(self._delta, np.asarray(joint_pos, dtype=np.float64) + t, t)

    def to_action(self, target: np.ndarray, joint_pos: np.ndarray) -> np.ndarray:
        """The policy action that ``to_target`` maps to ``target`` (averaged over shared entries)."""
        t = np.asarray(target, dtype=np.float64).reshape(-1)
        base = np.where(self._delta, np.asarray(joint_pos, dtype=np.float64), 0.0)
        per_joint = (t - base - self._offset) / self._scale
        a = np.zeros(self.action_dim)
        np.add.at(a, self._idx, per_joint)
        return a / np.bincount(self._idx, minlength=self.action_dim)


# --------------------------------------------------------------------------------------------
# config


@dataclass
class RobotConfig:
    """What a ``conf/robot/*.yaml`` holds. Unknown keys are refused.

    Attributes:
        type: backend: ``sim`` (in-process bundled task), ``ros1`` (rospy), ``rosbridge`` (roslibpy).
        name: display name.
        task: bundled task id a simulated robot runs (``None``: the checkpoint's training env).
        control_rate_hz: the runner's loop rate.
        joints: commanded joint names, in command order (``None``: the sim task's preset).
        units / lower / upper: per joint; position limits in those units.
        max_velocity: per joint, units/s (``None``: unlimited).
        max_relative_target: per joint, largest change of target vs the measured position in one
            step (LeRobot's ``max_relative_target``); ``None``: unlimited.
        hold: per joint ``"current"`` (hold = measured position) or ``"last"`` (keep the last sent
            target, e.g. a gripper that must keep squeezing).
        workspace: ``{lower: [x,y,z], upper: [x,y,z], kinematics: {...}}``; enforced only when a
            kinematic map is given (see :func:`robotrl.hw.safety.make_kinematics`).
        action_map: :class:`ActionMap` fields (``index``, ``mode``, ``scale``, ``offset``).
        observation: policy key -> source, a mapping or a list of mappings concatenated in order:
            ``{topic: /x}`` (a ``std_msgs/Float32MultiArray`` or ``Float64MultiArray`` vector),
            ``{topic: /cam, type: image}`` (``sensor_msgs/Image``, rgb8/bgr8/mono8),
            ``{joint_state: position|velocity|effort, joints: [...]}`` (from the joint states).
        ros: backend settings (topics, master URI, timeouts), see ``conf/robot/*.yaml``.
        sim_node: for ``sim_ros``: launch the simulated robot node (``launch``, ``namespace``...).
    """

    type: str = "sim"
    name: str = "robot"
    task: str | None = None
    control_rate_hz: float = 10.0
    joints: list[str] | None = None
    units: list[str] | str | None = None
    lower: list[float] | None = None
    upper: list[float] | None = None
    max_velocity: list[float] | float | None = None
    max_relative_target: list[float] | float | None = None
    hold: list[str] | str | None = None
    workspace: dict[str, Any] | None = None
    action_map: dict[str, Any] | None = None
    observation: dict[str, Any] | None = None
    ros: dict[str, Any] = field(default_factory=dict)
    sim_node: dict[str, Any] = field(default_factory=dict)
    env: dict[str, Any] | None = None  # make_env overrides for simulated robots (image, max_episode_steps)

    # -------------------------------------------------------------------------------- checks
    def validate(self) -> "RobotConfig":
        if self.type not in BACKENDS:
            raise RobotConfigError(f"robot.type {self.type!r} unknown; known: {sorted(BACKENDS)}")
        if not self.control_rate_hz or float(self.control_rate_hz) <= 0:
            raise RobotConfigError(f"robot.control_rate_hz must be > 0, got {self.control_rate_hz}")
        if self.joints is None:
            raise RobotConfigError(f"robot {self.name!r}: 'joints' is not set (and no sim task preset filled it)")
        J = len(self.joints)
        if len(set(self.joints)) != J:
            raise RobotConfigError(f"robot.joints has duplicates: {self.joints}")
        for name in ("lower", "upper", "units", "max_velocity", "max_relative_target", "hold"):
            v = getattr(self, name)
            if v is None or isinstance(v, (str, int, float)):
                continue
            if len(v) != J:
                raise RobotConfigError(f"robot.{name} has {len(v)} entries for {J} joints {list(self.joints)}")
        if self.lower is not None and self.upper is not None:
            lo, hi = np.asarray(self.lower, float), np.asarray(self.upper, float)
            if np.any(lo > hi):
                raise RobotConfigError(f"robot.lower > robot.upper for joints {[self.joints[i] for i in np.flatnonzero(lo > hi)]}")
        self.make_action_map()
        return self

    @property
    def period(self) -> float:
        return 1.0 / float(self.control_rate_hz)

    def per_joint(self, name: str, default: Any) -> np.ndarray | list:
        v = getattr(self, name)
        J = len(self.joints or [])
        if v is None:
            v = default
        if v is None:
            return None  # type: ignore[return-value]
        if isinstance(v, str):
            return [v] * J
        if np.isscalar(v):
            return np.full(J, float(v))
        return list(v) if isinstance(v[0], str) else np.asarray(v, dtype=np.float64)

    def make_action_map(self) -> ActionMap:
        am = dict(self.action_map or {})
        unknown = sorted(set(am) - {"index", "mode", "scale", "offset"})
        if unknown:
            raise RobotConfigError(f"robot.action_map: unknown key(s) {unknown}; allowed: index, mode, scale, offset")
        return ActionMap(n_joints=len(self.joints or []), **am)

    def action_features(self) -> dict[str, Feature]:
        J = len(self.joints or [])
        lo = self.per_joint("lower", -np.inf)
        hi = self.per_joint("upper", np.inf)
        return {
            "joint_target": Feature(
                (J,), "float64", tuple(self.joints or ()), tuple(self.per_joint("units", "")),
                tuple(float(x) for x in lo), tuple(float(x) for x in hi),
            )
        }


_FIELDS = tuple(f.name for f in dataclasses.fields(RobotConfig))


def robot_config_from(cfg: Any, **overrides: Any) -> RobotConfig:
    """A :class:`RobotConfig` from a mapping / ``DictConfig`` / RobotConfig; unknown keys are errors."""
    if isinstance(cfg, RobotConfig):
        data = dataclasses.asdict(cfg)
    else:
        try:
            from omegaconf import DictConfig, OmegaConf

            if isinstance(cfg, DictConfig):
                cfg = OmegaConf.to_container(cfg, resolve=True)
        except ImportError:  # pragma: no cover
            pass
        if not isinstance(cfg, Mapping):
            raise RobotConfigError(f"robot config must be a mapping, got {type(cfg).__name__}")
        data = dict(cfg)
    data.update({k: v for k, v in overrides.items()})
    data.pop("_target_", None)
    unknown = sorted(set(data) - set(_FIELDS))
    if unknown:
        hints = []
        for k in unknown:
            close = difflib.get_close_matches(str(k), _FIELDS, n=1)
            hints.append(f"{k!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))
        raise RobotConfigError(f"unknown robot config key(s): {', '.join(hints)}; allowed keys: {', '.join(_FIELDS)}")
    data["ros"] = dict(data.get("ros") or {})
    data["sim_node"] = dict(data.get("sim_node") or {})
    return RobotConfig(**data)


# --------------------------------------------------------------------------------------------
# the interface


class Robot(abc.ABC):
    """Base class of every robot backend (see the module docstring for the contract)."""

    def __init__(self, config: RobotConfig) -> None:
        self.config = config
        self.action_map = config.make_action_map()
        self._connected = False

    # ------------------------------------------------------------------ declared features
    @property
    def joint_names(self) -> list[str]:
        return list(self.config.joints or [])

    @property
    def action_features(self) -> dict[str, Feature]:
        return self.config.action_features()

    @property
    @abc.abstractmethod
    def observation_features(self) -> dict[str, Feature]:
        """Observation key -> :class:`Feature` (known once connected for topic-fed keys)."""

    # ------------------------------------------------------------------ lifecycle
    @property
    def is_connected(self) -> bool:
        return self._connected

    @abc.abstractmethod
    def connect(self) -> None:
        """Open connections and check everything (types, names, shapes) before any command."""

    @abc.abstractmethod
    def disconnect(self) -> None:
        """Close connections (idempotent)."""

    @abc.abstractmethod
    def get_observation(self) -> dict[str, Any]:
        """Newest observation: one entry per observation feature, plus ``"timestamp"``."""

    @abc.abstractmethod
    def send_action(self, target: np.ndarray) -> np.ndarray:
        """Command joint position targets ``[J]``; return what was commanded."""

    # ------------------------------------------------------------------ optional hooks
    def reset_episode(self, seed: int | None = None, timeout: float = 30.0) -> None:
        """Bring the scene to the start of an episode. Simulated robots reset their task;
        a real robot has nothing to do here (the operator resets the scene)."""

    def episode_info(self) -> dict[str, Any]:
        """Task outcome where the robot knows it (simulated robots): ``is_success``, ``reward``,
        ``terminated``, ``truncated``. Empty for a real robot."""
        return {}

    def add_estop_callback(self, callback: Any) -> bool:
        """Call ``callback(reason)`` when the robot's e-stop source fires; False if it has none."""
        return False

    def check_policy(self, shape_meta: Mapping[str, Any], obs_keys: Sequence[str]) -> None:
        """Raise :class:`RobotConfigError` if this robot cannot serve a policy with ``shape_meta``."""
        A = int(shape_meta["action"][0])
        if self.action_map.action_dim != A:
            raise RobotConfigError(
                f"robot {self.config.name!r}: its action_map reads {self.action_map.action_dim} action entries "
                f"for joints {self.joint_names}, but the policy's action has size {A}; fix robot.joints / "
                "robot.action_map.index so they cover exactly the policy's action"
            )
        feats = self.observation_features
        for key in obs_keys:
            if key not in feats:
                raise RobotConfigError(
                    f"robot {self.config.name!r} provides observation keys {sorted(feats)}, but the policy needs {key!r}; "
                    "add it to robot.observation"
                )
            want = tuple(int(s) for s in shape_meta["obs"][key])
            have = tuple(feats[key].shape)
            if have != want:
                raise RobotConfigError(
                    f"robot {self.config.name!r}: observation {key!r} has shape {have}, the policy expects {want}"
                )

    def __enter__(self) -> "Robot":
        self.connect()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.disconnect()

    @staticmethod
    def now() -> float:
        return time.monotonic()


#: backend name -> "module:Class"
BACKENDS = {
    "sim": "robotrl.hw.sim_robot:SimRobot",
    "ros1": "robotrl.hw.ros1:ROS1Robot",
    "rosbridge": "robotrl.hw.rosbridge:RosbridgeRobot",
}


def make_robot(cfg: Any, **overrides: Any) -> Robot:
    """Build (not connect) the robot a config describes; sim task presets fill missing fields."""
    import importlib

    rc = robot_config_from(cfg, **overrides)
    if rc.type not in BACKENDS:
        raise RobotConfigError(f"robot.type {rc.type!r} unknown; known: {sorted(BACKENDS)}")
    if rc.task is not None:
        from robotrl.hw.sim_robot import apply_task_preset

        rc = apply_task_preset(rc)
    rc.validate()
    module, cls = BACKENDS[rc.type].split(":")
    return getattr(importlib.import_module(module), cls)(rc)
