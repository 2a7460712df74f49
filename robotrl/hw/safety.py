"""Safety layer: wraps any :class:`~robotrl.hw.robot.Robot` and filters every command.

Guarantees of :class:`SafeRobot.send_action` (in this order, every step):

1. **E-stop latched** -> the robot is sent its hold position, nothing else, until ``reset_estop()``.
   Sources: :meth:`SafeRobot.estop` (API), a ROS topic (``std_msgs/Bool`` true, via the backend),
   a POSIX signal (``SIGUSR1`` by default, :meth:`EStop.install_signal`), a key (``e`` or space on
   a terminal, :meth:`EStop.start_key_listener`).
2. **NaN / inf** anywhere in the target -> rejected; the hold position is sent instead.
3. **Joint position limits** (``lower`` / ``upper``) -> clamped.
4. **max_relative_target** -> ``|target - measured position|`` clamped per joint.
5. **max_velocity** -> ``|target - last sent target| / period`` clamped per joint.
6. **Workspace bounds** (only where a kinematic map is configured) -> the target is projected
   into the box (gantry) or pulled back along the step towards the measured position (any
   forward-kinematics callable), never past the joint limits.

The **watchdog** (:meth:`SafeRobot.check_watchdog`, called by the runner every tick) holds the
robot while the newest observation is older than ``obs_timeout`` or no policy output arrived
within ``policy_timeout``, and reports each trip and recovery.

Every clamp, rejection, hold and stop is a :class:`SafetyEvent` (kept in ``events``, counted in
``counts``) and is logged on ``robotrl.hw.safety`` with its reason.

Model: LeRobot's ``ensure_safe_goal_position`` (``max_relative_target``). No code was copied.
"""
from __future__ import annotations

import dataclasses
import importlib
import logging
import signal
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from robotrl.hw.robot import Feature, Robot, RobotConfigError

__all__ = [
    "SafetyConfig",
    "SafetyEvent",
    "EStop",
    "SafeRobot",
    "GantryKinematics",
    "make_kinematics",
]

log = logging.getLogger("robotrl.hw.safety")


@dataclass
class SafetyConfig:
    """Runner-side safety settings (limits themselves live in the robot config).

    Attributes:
        obs_timeout_periods: watchdog deadline for a fresh observation, in control periods.
            Between 1 and 2 it trips within two control-loop steps of the last fresh observation.
        policy_timeout_periods: deadline for the policy's next action when the queue is empty.
        estop_signal: POSIX signal name that triggers the e-stop (``None``: none).
        estop_key: listen for ``e`` / space on an interactive stdin.
        estop_topic: let the backend subscribe its e-stop topic.
        hold_on_watchdog: send the hold position on every tick the watchdog is tripped.
        dry_run: compute and filter commands but never send them.
        max_events: events kept in memory (counts are always exact).
    """

    obs_timeout_periods: float = 1.5
    policy_timeout_periods: float = 3.0
    estop_signal: str | None = "SIGUSR1"
    estop_key: bool = True
    estop_topic: bool = True
    hold_on_watchdog: bool = True
    dry_run: bool = False
    max_events: int = 10_000

    @classmethod
    def from_dict(cls, d: Mapping[str, Any] | None) -> "SafetyConfig":
        from robotrl.utils.config import dataclass_from_dict

        return dataclass_from_dict(cls, d, "safety", error=RobotConfigError)


@dataclass
class SafetyEvent:
    """One clamp / rejection / hold / stop, with its reason."""

    kind: str  # joint_limit | relative_target | velocity | workspace | nonfinite | estop | watchdog_obs | watchdog_policy | hold | recovered
    reason: str
    step: int
    time: float
    joints: tuple[str, ...] = ()
    requested: list[float] | None = None
    sent: list[float] | None = None

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


class EStop:
    """A latched emergency stop: once triggered it stays set until :meth:`reset`."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._reason: str | None = None
        self._callbacks: list[Callable[[str], None]] = []
        self._old_handlers: dict[int, Any] = {}
        self._key_thread: threading.Thread | None = None
        self._key_stop = threading.Event()

    @property
    def is_set(self) -> bool:
        return self._reason is not None

    @property
    def reason(self) -> str | None:
        return self._reason

    def on_trigger(self, callback: Callable[[str], None]) -> None:
        self._callbacks.append(callback)

    def trigger(self, reason: str) -> None:
        """Latch the e-stop (a second trigger keeps the first reason)."""
        with self._lock:
            first = self._reason is None
            if first:
                self._reason = reason
        if first:
            log.error("E-STOP latched: %s", reason)
            for cb in self._callbacks:
                cb(reason)

    def reset(self) -> None:
        with self._lock:
            if self._reason is not None:
                log.warning("e-stop reset (was: %s)", self._reason)
            self._reason = None

    # ------------------------------------------------------------------ sources
    def install_signal(self, name: str = "SIGUSR1") -> bool:
        """Trigger on a POSIX signal (main thread only); False where that is impossible."""
        signum = getattr(signal, name, None)
        if signum is None or threading.current_thread() is not threading.main_thread():
            return False
        self._old_handlers[signum] = signal.signal(signum, lambda s, f: self.trigger(f"signal {name}"))
        return True

    def start_key_listener(self, stream: Any = None) -> bool:
        """Trigger when ``e`` or a space is read from ``stream`` (default: an interactive stdin)."""
        if stream is None:
            if not sys.stdin or not sys.stdin.isatty():
                return False
            stream = sys.stdin
        self._key_thread = threading.Thread(target=self._read_keys, args=(stream,), daemon=True, name="estop-keys")
        self._key_thread.start()
        return True

    def _read_keys(self, stream: Any) -> None:
        restore = None
        try:
            if hasattr(stream, "fileno") and stream.isatty():  # single keys, no Enter needed
                import termios
                import tty

                fd = stream.fileno()
                restore = (fd, termios.tcgetattr(fd))
                tty.setcbreak(fd)
            while not self._key_stop.is_set():
                ch = stream.read(1)
                if not ch:
                    return
                if ch in ("e", "E", " "):
                    self.trigger(f"key {ch!r}")
        except (OSError, ValueError):  # stream closed
            return
        finally:
            if restore is not None:
                import termios

                termios.tcsetattr(restore[0], termios.TCSADRAIN, restore[1])

    def close(self) -> None:
        for signum, old in self._old_handlers.items():
            try:
                signal.signal(signum, old)
            except (ValueError, TypeError):
                pass
        self._old_handlers.clear()
        self._key_stop.set()


# --------------------------------------------------------------------------------------------
# kinematic maps


class GantryKinematics:
    """Cartesian (gantry) arm: end-effector ``xyz = offset + sign * q[indices]``."""

    def __init__(self, indices: Sequence[int], offset: Sequence[float] | None = None, sign: Sequence[float] | None = None):
        self.indices = np.asarray(list(indices), dtype=int)
        self.offset = np.zeros(len(self.indices)) if offset is None else np.asarray(offset, dtype=float)
        self.sign = np.ones(len(self.indices)) if sign is None else np.asarray(sign, dtype=float)

    def __call__(self, q: np.ndarray) -> np.ndarray:
        return self.offset + self.sign * np.asarray(q, dtype=float)[self.indices]

    def project(self, q: np.ndarray, lower: np.ndarray, upper: np.ndarray) -> np.ndarray:
        """Joint vector whose end effector is ``fk(q)`` clamped into the box (exact for a gantry)."""
        out = np.array(q, dtype=float)
        x = np.clip(self(q), lower, upper)
        out[self.indices] = (x - self.offset) / self.sign
        return out


def make_kinematics(spec: Mapping[str, Any] | None, joints: Sequence[str]) -> Callable[[np.ndarray], np.ndarray] | None:
    """A forward-kinematics callable from ``robot.workspace.kinematics``.

    ``{type: gantry, joints: [x, y, z], offset: [...], sign: [...]}`` or
    ``{target: "package.module:function"}`` (a function ``q[J] -> xyz``).
    """
    if not spec:
        return None
    spec = dict(spec)
    kind = spec.pop("type", None)
    target = spec.pop("target", None) or spec.pop("_target_", None)
    if kind == "gantry":
        names = spec.pop("joints")
        missing = [n for n in names if n not in joints]
        if missing:
            raise RobotConfigError(f"workspace.kinematics.joints {missing} are not robot joints {list(joints)}")
        kin = GantryKinematics([list(joints).index(n) for n in names], spec.pop("offset", None), spec.pop("sign", None))
    elif target:
        module, _, attr = str(target).replace(":", ".").rpartition(".")
        kin = getattr(importlib.import_module(module), attr)
    else:
        raise RobotConfigError(f"workspace.kinematics needs type: gantry or target: module:function, got {spec}")
    if spec:
        raise RobotConfigError(f"workspace.kinematics: unknown key(s) {sorted(spec)}")
    return kin


# --------------------------------------------------------------------------------------------
# the wrapper


class SafeRobot(Robot):
    """Wrap ``robot`` so that every command goes through the checks listed in the module docstring."""

    def __init__(self, robot: Robot, config: SafetyConfig | None = None, estop: EStop | None = None) -> None:
        self.robot = robot
        self.config = robot.config
        self.safety = config or SafetyConfig()
        self.action_map = robot.action_map
        self.estop_latch = estop or EStop()
        rc = robot.config
        J = len(rc.joints or [])
        self.lower = np.asarray(rc.per_joint("lower", -np.inf), dtype=np.float64)
        self.upper = np.asarray(rc.per_joint("upper", np.inf), dtype=np.float64)
        mv = rc.per_joint("max_velocity", None)
        self.max_velocity = None if mv is None else np.asarray(mv, dtype=np.float64)
        mr = rc.per_joint("max_relative_target", None)
        self.max_relative = None if mr is None else np.asarray(mr, dtype=np.float64)
        hold = rc.per_joint("hold", "current")
        bad = [h for h in hold if h not in ("current", "last")]
        if bad:
            raise RobotConfigError(f"robot.hold entries must be 'current' or 'last', got {bad}")
        self.hold_last = np.asarray([h == "last" for h in hold], dtype=bool)
        ws = dict(rc.workspace or {})
        self.kinematics = make_kinematics(ws.get("kinematics"), rc.joints or [])
        unknown = sorted(set(ws) - {"lower", "upper", "kinematics"})
        if unknown:
            raise RobotConfigError(f"robot.workspace: unknown key(s) {unknown}; allowed: lower, upper, kinematics")
        self.ws_lower = None if self.kinematics is None else np.asarray(ws["lower"], dtype=np.float64)
        self.ws_upper = None if self.kinematics is None else np.asarray(ws["upper"], dtype=np.float64)
        self.period = rc.period
        self.joint_pos: np.ndarray | None = None
        self.last_obs_time: float | None = None
        self.last_sent: np.ndarray | None = None
        self.step = 0
        self.events: list[SafetyEvent] = []
        self.counts: Counter[str] = Counter()
        self._watchdog: dict[str, bool] = {"watchdog_obs": False, "watchdog_policy": False}
        self._hold_target: np.ndarray | None = None
        self._n_dims = J
        self.estop_latch.on_trigger(self._on_estop)

    # ------------------------------------------------------------------ delegation
    @property
    def observation_features(self) -> dict[str, Feature]:
        return self.robot.observation_features

    @property
    def is_connected(self) -> bool:
        return self.robot.is_connected

    def connect(self) -> None:
        self.robot.connect()
        if self.safety.estop_topic:
            self.robot.add_estop_callback(lambda reason: self.estop_latch.trigger(reason))

    def disconnect(self) -> None:
        self.estop_latch.close()
        self.robot.disconnect()

    def reset_episode(self, seed: int | None = None, timeout: float = 30.0) -> None:
        self.robot.reset_episode(seed, timeout)
        self.last_sent = None
        self._hold_target = None

    def episode_info(self) -> dict[str, Any]:
        return self.robot.episode_info()

    def check_policy(self, shape_meta: Mapping[str, Any], obs_keys: Sequence[str]) -> None:
        self.robot.check_policy(shape_meta, obs_keys)

    def get_observation(self) -> dict[str, Any]:
        obs = self.robot.get_observation()
        self.joint_pos = np.asarray(obs["joint_pos"], dtype=np.float64)
        self.last_obs_time = float(obs["timestamp"])
        return obs

    # ------------------------------------------------------------------ events
    def _event(self, kind: str, reason: str, joints: Sequence[int] = (), requested: Any = None, sent: Any = None) -> None:
        names = tuple(self.robot.joint_names[j] for j in joints)
        ev = SafetyEvent(
            kind, reason, self.step, time.monotonic(), names,
            None if requested is None else [float(x) for x in np.asarray(requested).reshape(-1)],
            None if sent is None else [float(x) for x in np.asarray(sent).reshape(-1)],
        )
        self.counts[kind] += 1
        if len(self.events) < self.safety.max_events:
            self.events.append(ev)
        level = logging.ERROR if kind in ("estop", "nonfinite") else logging.WARNING
        log.log(level, "[step %d] %s: %s%s", self.step, kind, reason, f" (joints {list(names)})" if names else "")

    def _on_estop(self, reason: str) -> None:
        self._event("estop", f"emergency stop latched: {reason}")

    # ------------------------------------------------------------------ e-stop API
    def estop(self, reason: str = "api") -> None:
        self.estop_latch.trigger(reason)

    def reset_estop(self) -> None:
        self.estop_latch.reset()
        self._hold_target = None

    @property
    def stopped(self) -> bool:
        return self.estop_latch.is_set

    # ------------------------------------------------------------------ filtering
    def _current(self) -> np.ndarray:
        if self.joint_pos is None:
            self.get_observation()
        return self.joint_pos  # type: ignore[return-value]

    def hold_target(self) -> np.ndarray:
        """Measured position (``hold: current`` joints) or the last sent target (``hold: last``)."""
        cur = self._current()
        tgt = cur.copy()
        if self.last_sent is not None:
            tgt[self.hold_last] = self.last_sent[self.hold_last]
        return np.clip(tgt, self.lower, self.upper)

    def filter(self, target: np.ndarray) -> np.ndarray | None:
        """The safe version of ``target`` (clamps logged), or None if it must be rejected."""
        req = np.asarray(target, dtype=np.float64).reshape(-1)
        if req.shape != (self._n_dims,):
            raise ValueError(f"send_action: expected {self._n_dims} joint targets for {self.robot.joint_names}, got shape {req.shape}")
        if not np.all(np.isfinite(req)):
            bad = np.flatnonzero(~np.isfinite(req))
            self._event("nonfinite", "NaN/inf in the commanded target: rejected, holding position", bad, req)
            return None
        cur = self._current()
        t = req.copy()
        # joint limits
        c = np.clip(t, self.lower, self.upper)
        if np.any(c != t):
            j = np.flatnonzero(c != t)
            self._event("joint_limit", f"target outside joint limits lower {self.lower[j].tolist()} / upper {self.upper[j].tolist()}: clamped", j, t[j], c[j])
            t = c
        # max relative target (vs the measured position)
        if self.max_relative is not None:
            c = np.clip(t, cur - self.max_relative, cur + self.max_relative)
            if np.any(c != t):
                j = np.flatnonzero(c != t)
                self._event("relative_target", f"step |target - position| larger than max_relative_target {self.max_relative[j].tolist()}: clamped", j, t[j], c[j])
                t = c
        # max velocity (vs the last sent target)
        if self.max_velocity is not None:
            ref = self.last_sent if self.last_sent is not None else cur
            lim = self.max_velocity * self.period
            c = np.clip(t, ref - lim, ref + lim)
            if np.any(c != t):
                j = np.flatnonzero(c != t)
                self._event("velocity", f"commanded velocity above max_velocity {self.max_velocity[j].tolist()} (units/s): clamped", j, t[j], c[j])
                t = c
        # workspace
        if self.kinematics is not None:
            t = self._workspace(t, cur)
        return np.clip(t, self.lower, self.upper)

    def _inside(self, q: np.ndarray) -> bool:
        x = np.asarray(self.kinematics(q))  # type: ignore[misc]
        return bool(np.all(x >= self.ws_lower - 1e-12) and np.all(x <= self.ws_upper + 1e-12))

    def _workspace(self, t: np.ndarray, cur: np.ndarray) -> np.ndarray:
        if self._inside(t):
            return t
        x = np.asarray(self.kinematics(t))  # type: ignore[misc]
        if hasattr(self.kinematics, "project"):
            out = self.kinematics.project(t, self.ws_lower, self.ws_upper)  # type: ignore[union-attr]
        elif self._inside(cur):  # largest fraction of the step that stays inside (bisection)
            lo, hi = 0.0, 1.0
            for _ in range(30):
                mid = 0.5 * (lo + hi)
                if self._inside(cur + mid * (t - cur)):
                    lo = mid
                else:
                    hi = mid
            out = cur + lo * (t - cur)
        else:
            out = cur.copy()
        j = np.flatnonzero(out != t)
        self._event(
            "workspace",
            f"end effector {np.round(x, 4).tolist()} outside workspace [{self.ws_lower.tolist()}, {self.ws_upper.tolist()}]: pulled inside",
            j, t[j], out[j],
        )
        return out

    # ------------------------------------------------------------------ commands
    def _send(self, target: np.ndarray) -> np.ndarray:
        if not self.safety.dry_run:
            self.robot.send_action(target)
        self.last_sent = np.asarray(target, dtype=np.float64).copy()
        self.step += 1
        return self.last_sent

    def send_action(self, target: np.ndarray) -> np.ndarray:
        """Filter and send; returns the target actually commanded (the hold position when stopped)."""
        if self.estop_latch.is_set:
            return self.hold(f"e-stop latched ({self.estop_latch.reason})", log_event=False)
        safe = self.filter(target)
        if safe is None:
            return self.hold("rejected non-finite target", log_event=False)
        self._hold_target = None
        return self._send(safe)

    def hold(self, reason: str, log_event: bool = True) -> np.ndarray:
        """Command the hold position (fixed at the first hold of a stretch of holds)."""
        if self._hold_target is None:
            self._hold_target = self.hold_target()
        if log_event:
            self._event("hold", reason, sent=self._hold_target)
        return self._send(self._hold_target)

    # ------------------------------------------------------------------ watchdog
    def check_watchdog(self, now: float, policy_waiting_s: float = 0.0) -> str | None:
        """Return the active watchdog reason (and log trips / recoveries), or None if all is fresh."""
        obs_dead = self.safety.obs_timeout_periods * self.period
        pol_dead = self.safety.policy_timeout_periods * self.period
        age = float("inf") if self.last_obs_time is None else now - self.last_obs_time
        state = {"watchdog_obs": age > obs_dead, "watchdog_policy": policy_waiting_s > pol_dead}
        reasons = {
            "watchdog_obs": f"no fresh observation for {age * 1e3:.0f} ms (deadline {obs_dead * 1e3:.0f} ms): holding position",
            "watchdog_policy": f"no policy output for {policy_waiting_s * 1e3:.0f} ms (deadline {pol_dead * 1e3:.0f} ms): holding position",
        }
        active = None
        for kind, tripped in state.items():
            if tripped and not self._watchdog[kind]:
                self._event(kind, reasons[kind])
            elif not tripped and self._watchdog[kind]:
                self._event("recovered", f"{kind} cleared")
            self._watchdog[kind] = tripped
            if tripped and active is None:
                active = reasons[kind]
        return active

    def summary(self) -> dict[str, Any]:
        return {"counts": dict(self.counts), "estop": self.estop_latch.reason, "dry_run": self.safety.dry_run}

