"""rosbridge backend (roslibpy): the same robot over a rosbridge websocket, for ROS 1 or ROS 2.

Config (``conf/robot/rosbridge_example.yaml``): ``ros.rosbridge_url`` (``ws://host:9090``),
``ros.ros_version`` (1 or 2: message type names ``pkg/Msg`` vs ``pkg/msg/Msg`` and duration
fields ``secs/nsecs`` vs ``sec/nanosec``), and the same topics, observation mapping and command
types as the ROS 1 backend (:mod:`robotrl.hw.ros1`).

``connect()`` checks, before any command: the server answers (TCP, then the websocket), topic
types from ``/rosapi/topics`` match what robotrl expects, the first joint state carries every
configured joint, every observation topic delivers, and (unless
``require_command_subscriber: false``) ``/rosapi/subscribers`` lists a subscriber to the command
topic.

roslibpy runs Twisted's reactor in a background thread; a reactor cannot be restarted, so
``disconnect()`` closes the websocket but leaves the reactor running for later connections.
"""
from __future__ import annotations

import base64
import socket
import time
from typing import Any
from urllib.parse import urlparse

import numpy as np

from robotrl.hw.robot import RobotConfig, RobotConfigError, RobotConnectionError
from robotrl.hw.ros1 import MSG_TYPES, TopicRobot

__all__ = ["RosbridgeRobot", "ros2_type", "decode_image_dict"]


def ros2_type(name: str) -> str:
    """``sensor_msgs/JointState`` -> ``sensor_msgs/msg/JointState``."""
    pkg, _, msg = name.partition("/")
    return name if msg.startswith("msg/") else f"{pkg}/msg/{msg}"


def _norm_type(name: str) -> str:
    return name.replace("/msg/", "/")


def decode_image_dict(m: dict[str, Any]) -> np.ndarray:
    """A rosbridge ``sensor_msgs/Image`` (``data`` base64 or a list) -> uint8 HWC RGB."""
    data = m["data"]
    raw = base64.b64decode(data) if isinstance(data, str) else bytes(bytearray(data))
    enc = str(m.get("encoding", "rgb8")).lower()
    ch = {"rgb8": 3, "bgr8": 3, "mono8": 1, "rgba8": 4, "bgra8": 4}.get(enc)
    if ch is None:
        raise ValueError(f"unsupported image encoding {enc!r}")
    h, w, step = int(m["height"]), int(m["width"]), int(m.get("step", 0) or int(m["width"]) * ch)
    img = np.frombuffer(raw, np.uint8).reshape(h, step)[:, : w * ch].reshape(h, w, ch)
    if enc.startswith("bgr"):
        img = img[..., [2, 1, 0]]
    elif ch == 4:
        img = img[..., :3]
    elif ch == 1:
        img = np.repeat(img, 3, axis=-1)
    return np.ascontiguousarray(img)


class RosbridgeRobot(TopicRobot):
    """A robot behind a rosbridge websocket server (see the module docstring)."""

    def __init__(self, config: RobotConfig) -> None:
        super().__init__(config)
        url = self.ros_cfg.get("rosbridge_url", "ws://127.0.0.1:9090")
        u = urlparse(url)
        if u.scheme not in ("ws", "wss") or not u.hostname:
            raise RobotConfigError(f"robot.ros.rosbridge_url must look like ws://host:9090, got {url!r}")
        self.url = url
        self.host, self.port, self.secure = u.hostname, u.port or 9090, u.scheme == "wss"
        self.ros_version = int(self.ros_cfg.get("ros_version", 1))
        if self.ros_version not in (1, 2):
            raise RobotConfigError(f"robot.ros.ros_version must be 1 or 2, got {self.ros_version}")
        self.ros: Any = None
        self._topics: list[Any] = []
        self._cmd: Any = None
        self._reset: Any = None

    def _t(self, name: str) -> str:
        return ros2_type(name) if self.ros_version == 2 else name

    # ------------------------------------------------------------------ connect
    def connect(self) -> None:
        if self._connected:
            return
        try:
            socket.create_connection((self.host, self.port), timeout=min(3.0, self.connect_timeout)).close()
        except OSError as e:
            raise RobotConnectionError(
                f"rosbridge server at {self.url} is not reachable ({e}); start rosbridge_server on the robot or fix "
                "robot.ros.rosbridge_url"
            ) from e
        import roslibpy

        self.ros = roslibpy.Ros(host=self.host, port=self.port, is_secure=self.secure)
        try:
            self.ros.run(timeout=self.connect_timeout)
        except Exception as e:  # noqa: BLE001 - roslibpy raises its own timeout type
            self._stop_trying()
            raise RobotConnectionError(f"rosbridge server at {self.url} did not complete the websocket handshake: {e}") from e
        try:
            self._connect()
        except BaseException:
            self.disconnect()
            raise

    def _stop_trying(self) -> None:
        factory = getattr(self.ros, "factory", None)
        if factory is not None and hasattr(factory, "stopTrying"):
            try:
                factory.stopTrying()
            except Exception:  # noqa: BLE001
                pass

    def _service(self, name: str, srv_type: str, args: dict[str, Any] | None = None) -> dict[str, Any]:
        import roslibpy

        try:
            svc = roslibpy.Service(self.ros, name, self._t(srv_type).replace("/msg/", "/srv/") if self.ros_version == 2 else srv_type)
            return dict(svc.call(roslibpy.ServiceRequest(args or {}), timeout=self.connect_timeout))
        except Exception as e:  # noqa: BLE001
            raise RobotConnectionError(f"rosbridge server at {self.url}: service {name} failed ({e}); is rosapi running?") from e

    def _graph_types(self) -> dict[str, str]:
        r = self._service("/rosapi/topics", "rosapi/Topics")
        return {t: _norm_type(ty) for t, ty in zip(r.get("topics", []), r.get("types", []))}

    def _connect(self) -> None:
        import roslibpy

        types = self._graph_types()
        self.check_types(types, f"the rosbridge server {self.url}")

        def sub(topic: str, msg_type: str, handler: Any) -> None:
            t = roslibpy.Topic(self.ros, topic, self._t(msg_type), queue_length=1)

            def cb(m: dict[str, Any], topic: str = topic) -> None:
                try:
                    handler(topic, m)
                except Exception as e:  # noqa: BLE001
                    self.cache.error(topic, f"cannot decode the message on {topic}: {e}")

            t.subscribe(cb)
            self._topics.append(t)

        sub(self.joint_topic, MSG_TYPES["joint_state"], lambda topic, m: self.on_joint_state(
            m.get("name", []), m.get("position", []), m.get("velocity", []), m.get("effort", [])))
        for topic, kind in self.obs_topics().items():
            if kind == "image":
                sub(topic, MSG_TYPES["image"], lambda topic, m: self.cache.put(topic, decode_image_dict(m)))
            else:
                vtype = types.get(topic, MSG_TYPES["vector"][0])
                dtype = np.float64 if "Float64" in vtype else np.float32
                sub(topic, vtype, lambda topic, m, dtype=dtype: self.cache.put(topic, np.asarray(m["data"], dtype=dtype)))
        if self.info_topic:
            sub(self.info_topic, MSG_TYPES["info"], lambda topic, m: self.cache.put(topic, np.asarray(m["data"], dtype=np.float64)))
        if self.estop_topic:
            sub(self.estop_topic, MSG_TYPES["estop"], lambda topic, m: self.on_estop(bool(m.get("data")), topic))
        self._cmd = roslibpy.Topic(self.ros, self.command_topic, self._t(MSG_TYPES[self.command_type]), queue_size=1)
        self._cmd.advertise()
        if self.reset_topic:
            self._reset = roslibpy.Topic(self.ros, self.reset_topic, self._t(MSG_TYPES["reset"]))
            self._reset.advertise()
        self.wait_for_data()
        self.check_types(self._graph_types(), f"the rosbridge server {self.url}")
        if self.ros_cfg.get("require_command_subscriber", True):
            deadline = time.monotonic() + self.connect_timeout
            while not self._service("/rosapi/subscribers", "rosapi/Subscribers", {"topic": self.command_topic}).get("subscribers"):
                if time.monotonic() > deadline:
                    raise RobotConnectionError(
                        f"nobody subscribes to {self.command_topic} on {self.url} after {self.connect_timeout:.1f} s: "
                        "is the robot driver running? (robot.ros.require_command_subscriber=false to skip this check)"
                    )
                time.sleep(0.05)
        self._learn_features()
        self._connected = True

    def describe_topics(self, topics: list[str]) -> str:
        try:
            types = self._graph_types()
        except RobotConnectionError:
            return ""
        return " (" + "; ".join(f"{t}: type {types.get(t, 'not advertised')}" for t in topics) + ")"

    # ------------------------------------------------------------------ commands
    def _duration(self, s: float) -> dict[str, int]:
        sec = int(s)
        nsec = int(round((s - sec) * 1e9))
        return {"sec": sec, "nanosec": nsec} if self.ros_version == 2 else {"secs": sec, "nsecs": nsec}

    def send_action(self, target: np.ndarray) -> np.ndarray:
        if not self._connected or self._cmd is None:
            raise RuntimeError(f"robot {self.config.name!r}: connect() first")
        import roslibpy

        kind, values = self.command_payload(target)
        if kind == "trajectory":
            msg = {
                "joint_names": list(self.joint_names),
                "points": [{"positions": values, "velocities": [], "accelerations": [], "effort": [],
                            "time_from_start": self._duration(self.config.period)}],
            }
        else:
            msg = {"layout": {"dim": [], "data_offset": 0}, "data": values}
        self._cmd.publish(roslibpy.Message(msg))
        return np.asarray(target, dtype=np.float64)

    def reset_episode(self, seed: int | None = None, timeout: float = 30.0) -> None:
        if self._reset is None:
            return
        import roslibpy

        before = self.episode_info().get("episode", -1)
        t = time.monotonic()
        self._reset.publish(roslibpy.Message({"data": -1 if seed is None else int(seed)}))
        while self.episode_info().get("episode", -1) == before:
            if time.monotonic() > t + timeout:
                raise RobotConnectionError(f"robot {self.config.name!r} did not reset within {timeout:.0f} s")
            time.sleep(0.005)
        self.wait_for_data(since=t, timeout=timeout)

    # ------------------------------------------------------------------ disconnect
    def disconnect(self) -> None:
        for t in self._topics:
            try:
                t.unsubscribe()
            except Exception:  # noqa: BLE001
                pass
        self._topics.clear()
        for t in (self._cmd, self._reset):
            if t is not None:
                try:
                    t.unadvertise()
                except Exception:  # noqa: BLE001
                    pass
        self._cmd = self._reset = None
        if self.ros is not None:
            self._stop_trying()
            try:
                if self.ros.is_connected:
                    self.ros.close()
            except Exception:  # noqa: BLE001
                pass
            self.ros = None
        self._connected = False
