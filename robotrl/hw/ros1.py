"""ROS 1 backend (rospy): joint states and observation topics in, joint commands out.

Debian's rospy lives in ``/usr/lib/python3/dist-packages``; it is *appended* to ``sys.path`` here
(only when this module is used), so the virtual environment's numpy keeps precedence.

:class:`ROS1Robot` subscribes

- ``ros.joint_state_topic`` (``sensor_msgs/JointState``; reordered into ``robot.joints`` by name),
- each ``robot.observation`` topic (``std_msgs/Float32MultiArray`` / ``Float64MultiArray``
  vectors, ``sensor_msgs/Image`` cameras),
- optionally ``ros.info_topic`` (task outcome of a simulated robot) and ``ros.estop_topic``
  (``std_msgs/Bool``: true latches the e-stop),

and publishes joint position targets on ``ros.command_topic`` as ``trajectory_msgs/JointTrajectory``
(``command_type: trajectory``, one point reached after one control period), or a
``std_msgs/Float64MultiArray`` of positions (``position``) or velocities (``velocity``), the
messages of ros_control's joint-group controllers.

``connect()`` fails with a clear error, before any command is sent, when the master is
unreachable, a topic has another message type than expected, joint names are missing from the
joint states, no message arrives in time, or nobody subscribes to the command topic.

:class:`RosMaster` starts a real ``roscore`` on a free loopback port and stops it by PID (tests,
benchmarks and ``robot.ros.start_master``).
"""
from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import xmlrpc.client
from pathlib import Path
from typing import Any, Callable
from urllib.parse import urlparse

import numpy as np

from robotrl.hw.robot import Feature, Robot, RobotConfig, RobotConfigError, RobotConnectionError

__all__ = [
    "ROS1Robot",
    "RosMaster",
    "import_rospy",
    "ros_available",
    "master_reachable",
    "free_port",
    "ros_env",
    "MSG_TYPES",
]

ROS_DIST_PACKAGES = "/usr/lib/python3/dist-packages"

#: message type names used here
MSG_TYPES = {
    "joint_state": "sensor_msgs/JointState",
    "trajectory": "trajectory_msgs/JointTrajectory",
    "position": "std_msgs/Float64MultiArray",
    "velocity": "std_msgs/Float64MultiArray",
    "vector": ("std_msgs/Float32MultiArray", "std_msgs/Float64MultiArray"),
    "image": "sensor_msgs/Image",
    "info": "std_msgs/Float64MultiArray",
    "estop": "std_msgs/Bool",
    "reset": "std_msgs/Int64",
}


def import_rospy() -> Any:
    """Import rospy from Debian's ROS 1 packages (appended to ``sys.path``) or raise a clear error."""
    try:
        import rospy  # noqa: F401
    except ImportError:
        if ROS_DIST_PACKAGES not in sys.path and os.path.isdir(ROS_DIST_PACKAGES):
            sys.path.append(ROS_DIST_PACKAGES)
        try:
            import rospy  # noqa: F401
        except ImportError as e:
            raise ImportError(
                "rospy (ROS 1) is not installed: run scripts/install_ros.sh (Debian: apt-get install ros-core "
                f"python3-rospy python3-sensor-msgs python3-trajectory-msgs); {e}"
            ) from e
    import rospy

    return rospy


def ros_available() -> bool:
    """True when ``roscore`` and rospy are installed."""
    if shutil.which("roscore") is None:
        return False
    try:
        import_rospy()
        import sensor_msgs.msg  # noqa: F401
        import trajectory_msgs.msg  # noqa: F401
    except ImportError:
        return False
    return True


def free_port() -> int:
    """A free loopback TCP port *below* the kernel's ephemeral range.

    A port taken from the ephemeral range (bind to port 0) can be handed out again at once to
    another socket, e.g. the XML-RPC server roscore starts for roslaunch before its master binds,
    which then fails with "Address already in use". Ports below the range are only ever taken
    when asked for by number.
    """
    import random

    lo = 32768
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as fh:
            lo = int(fh.read().split()[0])
    except (OSError, ValueError, IndexError):  # pragma: no cover - non-Linux
        pass
    rng = random.Random()
    for _ in range(100):
        port = rng.randrange(max(1025, lo - 12000), lo)
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    with socket.socket() as s:  # fall back to an ephemeral port
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def ros_env(master_uri: str, base: dict[str, str] | None = None, ros_home: str | None = None) -> dict[str, str]:
    """Environment for a ROS process talking to ``master_uri`` on loopback."""
    env = dict(os.environ if base is None else base)
    env["ROS_MASTER_URI"] = master_uri
    host = urlparse(master_uri).hostname or "127.0.0.1"
    if host in ("127.0.0.1", "localhost"):
        env["ROS_IP"] = "127.0.0.1"
        env["ROS_HOSTNAME"] = "127.0.0.1"
    if ros_home:
        env["ROS_HOME"] = ros_home
        env["ROS_LOG_DIR"] = os.path.join(ros_home, "log")
    return env


class _TimeoutTransport(xmlrpc.client.Transport):
    def __init__(self, timeout: float) -> None:
        super().__init__()
        self._timeout = timeout

    def make_connection(self, host: Any) -> Any:
        conn = super().make_connection(host)
        conn.timeout = self._timeout
        return conn


def master_reachable(uri: str, timeout: float = 2.0) -> tuple[bool, str]:
    """(True, pid) if a ROS master answers at ``uri``, else (False, why)."""
    try:
        proxy = xmlrpc.client.ServerProxy(uri, transport=_TimeoutTransport(timeout))
        code, msg, pid = proxy.getPid("/robotrl_probe")
        return code == 1, str(pid if code == 1 else msg)
    except (OSError, xmlrpc.client.Error) as e:
        return False, f"{type(e).__name__}: {e}"


class RosMaster:
    """A real ``roscore`` on ``127.0.0.1:<port>``, started as a child process and stopped by PID."""

    def __init__(self, port: int | None = None, ros_home: str | None = None) -> None:
        self._auto_port = not port
        self.port = int(port) if port else free_port()
        self.uri = f"http://127.0.0.1:{self.port}"
        self._own_home = ros_home is None
        self.ros_home = ros_home or tempfile.mkdtemp(prefix="robotrl-roshome-")
        self.proc: subprocess.Popen | None = None
        self.env = ros_env(self.uri, ros_home=self.ros_home)

    @property
    def pid(self) -> int | None:
        return None if self.proc is None else self.proc.pid

    def start(self, timeout: float = 30.0) -> "RosMaster":
        """Start roscore; with an automatically chosen port, a port lost to a race is replaced (3 tries)."""
        for attempt in range(3):
            try:
                return self._start_once(timeout)
            except RobotConnectionError as e:
                if not (self._auto_port and "Address already in use" in str(e)) or attempt == 2:
                    raise
                self.port = free_port()
                self.uri = f"http://127.0.0.1:{self.port}"
                self.env = ros_env(self.uri, ros_home=self.ros_home)
        raise AssertionError("unreachable")  # pragma: no cover

    def _start_once(self, timeout: float) -> "RosMaster":
        if shutil.which("roscore") is None:
            raise FileNotFoundError("roscore is not installed (run scripts/install_ros.sh)")
        self.proc = subprocess.Popen(
            ["roscore", "-p", str(self.port)], env=self.env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
            start_new_session=True,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                err = self.proc.stderr.read().decode(errors="replace") if self.proc.stderr else ""
                raise RobotConnectionError(f"roscore on port {self.port} exited with code {self.proc.returncode}: {err[-2000:]}")
            ok, _ = master_reachable(self.uri, timeout=1.0)
            if ok:
                return self
            time.sleep(0.1)
        self.stop()
        raise RobotConnectionError(f"roscore on port {self.port} did not answer within {timeout:.0f} s")

    def stop(self, timeout: float = 10.0) -> None:
        """SIGINT to roscore's PID (it shuts its master and rosout down), SIGKILL if it lingers."""
        proc, self.proc = self.proc, None
        if proc is not None and proc.poll() is None:
            try:
                os.kill(proc.pid, signal.SIGINT)
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)  # its own session: roscore, rosmaster, rosout
                proc.wait(timeout=timeout)
            except ProcessLookupError:
                pass
        if proc is not None:
            try:  # children that outlived roscore (same process group, started by us)
                os.killpg(proc.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
            if proc.stderr:
                proc.stderr.close()
        if self._own_home:
            shutil.rmtree(self.ros_home, ignore_errors=True)

    def __enter__(self) -> "RosMaster":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()


# --------------------------------------------------------------------------------------------
# node + message helpers

_node_lock = threading.Lock()


def ensure_node(name: str, master_uri: str) -> Any:
    """Initialise this process's rospy node once (rospy allows one per process) against ``master_uri``."""
    import logging

    rospy = import_rospy()
    with _node_lock:
        if rospy.core.is_initialized():
            import rosgraph

            current = rosgraph.get_master_uri()
            if current.rstrip("/") != master_uri.rstrip("/"):
                raise RobotConnectionError(
                    f"this process's rospy node already talks to the master at {current}; it cannot switch to {master_uri} "
                    "(rospy allows one node per process)"
                )
            return rospy
        for k, v in ros_env(master_uri, base={}).items():
            if k != "ROS_MASTER_URI":
                os.environ.setdefault(k, v)
        os.environ["ROS_MASTER_URI"] = master_uri
        root = logging.getLogger()
        saved = (list(root.handlers), root.level)
        rospy.init_node(name, argv=[], anonymous=True, disable_signals=True)
        root.handlers[:], root.level = saved[0], saved[1]  # rospy reconfigures logging; keep the app's
        return rospy


def msg_class(type_name: str) -> Any:
    import_rospy()
    pkg, name = type_name.split("/")
    module = __import__(f"{pkg}.msg", fromlist=[name])
    return getattr(module, name)


def image_to_array(msg: Any) -> np.ndarray:
    """``sensor_msgs/Image`` (rgb8 / bgr8 / mono8) -> uint8 HWC RGB."""
    enc = msg.encoding.lower()
    ch = {"rgb8": 3, "bgr8": 3, "mono8": 1, "rgba8": 4, "bgra8": 4}.get(enc)
    if ch is None:
        raise ValueError(f"unsupported image encoding {msg.encoding!r} (rgb8, bgr8, mono8, rgba8, bgra8)")
    buf = np.frombuffer(bytes(msg.data), dtype=np.uint8).reshape(msg.height, msg.step)[:, : msg.width * ch]
    img = buf.reshape(msg.height, msg.width, ch)
    if enc.startswith("bgr"):
        img = img[..., [2, 1, 0]]
    elif ch == 4:
        img = img[..., :3]
    elif ch == 1:
        img = np.repeat(img, 3, axis=-1)
    return np.ascontiguousarray(img)


def array_to_image(img: np.ndarray, stamp: Any = None) -> Any:
    Image = msg_class("sensor_msgs/Image")
    img = np.ascontiguousarray(img, dtype=np.uint8)
    m = Image()
    if stamp is not None:
        m.header.stamp = stamp
    m.height, m.width = int(img.shape[0]), int(img.shape[1])
    m.encoding, m.is_bigendian, m.step = "rgb8", 0, int(img.shape[1] * 3)
    m.data = img.tobytes()
    return m


def _parse_sources(rc: RobotConfig) -> dict[str, list[dict[str, Any]]]:
    """``robot.observation`` -> key -> list of parts (each validated)."""
    out: dict[str, list[dict[str, Any]]] = {}
    for key, spec in dict(rc.observation or {}).items():
        parts = spec if isinstance(spec, (list, tuple)) else [spec]
        norm = []
        for p in parts:
            p = dict(p)
            if "topic" in p:
                kind = p.get("type", "image" if key.endswith("image") else "vector")
                if kind not in ("vector", "image"):
                    raise RobotConfigError(f"robot.observation.{key}: type must be 'vector' or 'image', got {kind!r}")
                unknown = sorted(set(p) - {"topic", "type"})
            elif "joint_state" in p:
                kind = "joint_state"
                if p["joint_state"] not in ("position", "velocity", "effort"):
                    raise RobotConfigError(f"robot.observation.{key}: joint_state must be position|velocity|effort")
                missing = [j for j in p.get("joints") or [] if j not in (rc.joints or [])]
                if missing:
                    raise RobotConfigError(f"robot.observation.{key}: joints {missing} are not robot joints {rc.joints}")
                unknown = sorted(set(p) - {"joint_state", "joints"})
            else:
                raise RobotConfigError(f"robot.observation.{key}: each part needs 'topic' or 'joint_state', got {p}")
            if unknown:
                raise RobotConfigError(f"robot.observation.{key}: unknown key(s) {unknown}")
            p["kind"] = kind
            norm.append(p)
        out[key] = norm
    return out


class TopicCache:
    """Latest value + arrival time of every subscribed topic (backend-independent)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.values: dict[str, Any] = {}
        self.times: dict[str, float] = {}
        self.errors: dict[str, str] = {}
        self.counts: dict[str, int] = {}

    def put(self, topic: str, value: Any) -> None:
        with self.lock:
            self.values[topic] = value
            self.times[topic] = time.monotonic()
            self.counts[topic] = self.counts.get(topic, 0) + 1

    def error(self, topic: str, why: str) -> None:
        with self.lock:
            self.errors.setdefault(topic, why)


class TopicRobot(Robot):
    """Shared logic of the ROS backends: joint-state reordering, observation assembly, checks."""

    def __init__(self, config: RobotConfig) -> None:
        super().__init__(config)
        ros = dict(config.ros)
        self.ros_cfg = ros
        self.joint_topic = ros.get("joint_state_topic", "/joint_states")
        self.command_topic = ros.get("command_topic", "/joint_command")
        self.command_type = ros.get("command_type", "trajectory")
        if self.command_type not in ("trajectory", "position", "velocity"):
            raise RobotConfigError(f"robot.ros.command_type must be trajectory|position|velocity, got {self.command_type!r}")
        self.info_topic = ros.get("info_topic")
        self.reset_topic = ros.get("reset_topic")
        self.estop_topic = ros.get("estop_topic")
        self.connect_timeout = float(ros.get("connect_timeout_s", 10.0))
        self.sources = _parse_sources(config)
        self.cache = TopicCache()
        self._estop_cbs: list[Callable[[str], None]] = []
        self._features: dict[str, Feature] | None = None

    # ------------------------------------------------------------------ topics we read
    def obs_topics(self) -> dict[str, str]:
        """topic -> kind (vector | image) of the observation topics."""
        out = {}
        for parts in self.sources.values():
            for p in parts:
                if p["kind"] in ("vector", "image"):
                    out[p["topic"]] = p["kind"]
        return out

    def expected_types(self) -> dict[str, tuple[str, ...]]:
        exp: dict[str, tuple[str, ...]] = {self.joint_topic: (MSG_TYPES["joint_state"],)}
        for t, kind in self.obs_topics().items():
            v = MSG_TYPES[kind]
            exp[t] = v if isinstance(v, tuple) else (v,)
        exp[self.command_topic] = (MSG_TYPES[self.command_type],)
        for key, topic in (("info", self.info_topic), ("estop", self.estop_topic), ("reset", self.reset_topic)):
            if topic:
                exp[topic] = (MSG_TYPES[key],)
        return exp

    def check_types(self, types: dict[str, str], where: str) -> None:
        for topic, want in self.expected_types().items():
            have = types.get(topic)
            if have and have not in want:
                raise RobotConfigError(
                    f"topic {topic} has message type {have} on {where}, but robotrl expects {' or '.join(want)} there; "
                    "fix robot.ros / robot.observation topic names"
                )

    # ------------------------------------------------------------------ callbacks (any backend)
    def on_joint_state(self, names: list[str], position: list[float], velocity: list[float], effort: list[float]) -> None:
        names = list(names)
        idx = {n: i for i, n in enumerate(names)}
        missing = [j for j in self.joint_names if j not in idx]
        if missing:
            self.cache.error(self.joint_topic, f"joint state on {self.joint_topic} lacks joints {missing} (it has {names})")
            return
        order = [idx[j] for j in self.joint_names]
        pos = np.asarray(position, dtype=np.float64)[order]
        vel = np.asarray(velocity, dtype=np.float64)[order] if len(velocity) == len(names) else np.zeros(len(order))
        eff = np.asarray(effort, dtype=np.float64)[order] if len(effort) == len(names) else np.zeros(len(order))
        self.cache.put(self.joint_topic, {"position": pos, "velocity": vel, "effort": eff, "names": names})

    def on_estop(self, value: bool, topic: str) -> None:
        if value:
            for cb in list(self._estop_cbs):
                cb(f"topic {topic}")

    def add_estop_callback(self, callback: Callable[[str], None]) -> bool:
        if not self.estop_topic:
            return False
        self._estop_cbs.append(callback)
        return True

    # ------------------------------------------------------------------ waiting / features
    def wait_for_data(self, since: float | None = None, timeout: float | None = None) -> None:
        """Block until every needed topic has a message (newer than ``since``), or raise."""
        timeout = self.connect_timeout if timeout is None else timeout
        needed = [self.joint_topic, *self.obs_topics()]
        if self.info_topic:
            needed.append(self.info_topic)
        deadline = time.monotonic() + timeout
        while True:
            with self.cache.lock:
                if self.cache.errors:
                    topic, why = next(iter(self.cache.errors.items()))
                    raise RobotConfigError(why)
                late = [t for t in needed if t not in self.cache.times or (since is not None and self.cache.times[t] <= since)]
            if not late:
                return
            if time.monotonic() > deadline:
                raise RobotConnectionError(
                    f"robot {self.config.name!r}: no message on {late} within {timeout:.1f} s"
                    + self.describe_topics(late)
                )
            time.sleep(0.01)

    def describe_topics(self, topics: list[str]) -> str:  # backends add what the graph says
        return ""

    def _assemble(self) -> tuple[dict[str, Any], float]:
        with self.cache.lock:
            values = dict(self.cache.values)
            times = dict(self.cache.times)
        js = values[self.joint_topic]
        obs: dict[str, Any] = {"joint_pos": js["position"].copy(), "joint_vel": js["velocity"].copy()}
        used = [times[self.joint_topic]]
        for key, parts in self.sources.items():
            arrs = []
            for p in parts:
                if p["kind"] == "joint_state":
                    v = js[p["joint_state"]]
                    if p.get("joints"):
                        v = v[[self.joint_names.index(j) for j in p["joints"]]]
                    arrs.append(np.asarray(v, dtype=np.float32))
                else:
                    arrs.append(values[p["topic"]])
                    used.append(times[p["topic"]])
            obs[key] = arrs[0] if len(arrs) == 1 else np.concatenate([np.asarray(a, dtype=np.float32).reshape(-1) for a in arrs])
        return obs, min(used)

    @property
    def observation_features(self) -> dict[str, Feature]:
        if self._features is None:
            raise RuntimeError(f"robot {self.config.name!r}: connect() first (features come from the first messages)")
        return self._features

    def _learn_features(self) -> None:
        obs, _ = self._assemble()
        J = len(self.joint_names)
        af = self.action_features["joint_target"]
        feats = {
            "joint_pos": Feature((J,), "float64", tuple(self.joint_names), af.unit, af.lower, af.upper),
            "joint_vel": Feature((J,), "float64", tuple(self.joint_names)),
        }
        for key in self.sources:
            a = np.asarray(obs[key])
            feats[key] = Feature(tuple(a.shape), str(a.dtype))
        self._features = feats

    def get_observation(self) -> dict[str, Any]:
        if not self._connected:
            raise RuntimeError(f"robot {self.config.name!r}: connect() first")
        obs, t = self._assemble()
        for key in self.sources:
            obs[key] = self._features[key].check(key, obs[key], "the robot's topics")  # type: ignore[index]
        obs["timestamp"] = t  # arrival of the oldest part: stale if any part is stale
        return obs

    def episode_info(self) -> dict[str, Any]:
        if not self.info_topic:
            return {}
        from robotrl.hw.sim_robot import task_info_from_vector

        with self.cache.lock:
            v = self.cache.values.get(self.info_topic)
        return {} if v is None else task_info_from_vector(v)

    def command_payload(self, target: np.ndarray) -> tuple[str, Any]:
        """(kind, values): trajectory positions, position vector or velocity vector."""
        t = np.asarray(target, dtype=np.float64).reshape(-1)
        if t.shape != (len(self.joint_names),):
            raise ValueError(f"send_action: expected {len(self.joint_names)} joint targets, got shape {t.shape}")
        if self.command_type == "velocity":
            with self.cache.lock:
                pos = self.cache.values[self.joint_topic]["position"]
            return "velocity", ((t - pos) / self.config.period).tolist()
        return self.command_type, t.tolist()


class ROS1Robot(TopicRobot):
    """A robot behind a ROS 1 master, through rospy (see the module docstring)."""

    def __init__(self, config: RobotConfig) -> None:
        super().__init__(config)
        self.master_uri = (
            self.ros_cfg.get("master_uri") or os.environ.get("ROS_MASTER_URI") or "http://127.0.0.1:11311"
        )
        self.node_name = self.ros_cfg.get("node_name", "robotrl_deploy")
        self._subs: list[Any] = []
        self._pub = None
        self._reset_pub = None
        self._master: RosMaster | None = None
        self._rospy = None
        self._sim_proc: subprocess.Popen | None = None
        self._sim_log: Path | None = None
        self._sim_log_tmp = False

    # ------------------------------------------------------------------ connect
    def connect(self) -> None:
        if self._connected:
            return
        ok, why = master_reachable(self.master_uri, timeout=min(3.0, self.connect_timeout))
        if not ok and self.ros_cfg.get("start_master"):
            port = urlparse(self.master_uri).port or 11311
            self._master = RosMaster(port).start()
            ok, why = master_reachable(self.master_uri)
        if not ok:
            raise RobotConnectionError(
                f"ROS master at {self.master_uri} is not reachable ({why}); start roscore, or set robot.ros.master_uri / "
                "ROS_MASTER_URI, or robot.ros.start_master=true"
            )
        try:
            self._connect()
        except BaseException:
            self.disconnect()
            raise

    def _connect(self) -> None:
        rospy = ensure_node(self.node_name, self.master_uri)
        self._rospy = rospy
        if self.config.sim_node.get("launch"):
            self._launch_sim_node()
        self.check_types(self._master_types(), f"the master {self.master_uri}")
        # subscribe everything with AnyMsg and decode by the publisher's declared type, so a
        # publisher of the wrong type is reported instead of silently ignored
        self._subscribe(self.joint_topic, self._decode_joint_state)
        for topic, kind in self.obs_topics().items():
            self._subscribe(topic, self._decode_image if kind == "image" else self._decode_vector)
        if self.info_topic:
            self._subscribe(self.info_topic, self._decode_vector)
        if self.estop_topic:
            self._subscribe(self.estop_topic, self._decode_estop)
        cmd_type = MSG_TYPES[self.command_type]
        self._pub = rospy.Publisher(self.command_topic, msg_class(cmd_type), queue_size=1)
        if self.reset_topic:
            self._reset_pub = rospy.Publisher(self.reset_topic, msg_class(MSG_TYPES["reset"]), queue_size=1, latch=False)
        self.wait_for_data()
        self.check_types(self._master_types(), f"the master {self.master_uri}")
        if self.ros_cfg.get("require_command_subscriber", True):
            self._wait_connections(self._pub, self.command_topic)
        if self._reset_pub is not None:
            self._wait_connections(self._reset_pub, self.reset_topic)
        self._learn_features()
        self._connected = True

    def _wait_connections(self, pub: Any, topic: str) -> None:
        deadline = time.monotonic() + self.connect_timeout
        while pub.get_num_connections() == 0:
            if time.monotonic() > deadline:
                raise RobotConnectionError(
                    f"nobody subscribes to {topic} after {self.connect_timeout:.1f} s: is the robot driver running? "
                    "(robot.ros.require_command_subscriber=false to skip this check)"
                )
            time.sleep(0.01)

    def _master_types(self) -> dict[str, str]:
        import rosgraph

        try:
            return dict(rosgraph.Master(self.node_name).getTopicTypes())
        except Exception as e:  # noqa: BLE001
            raise RobotConnectionError(f"ROS master at {self.master_uri} stopped answering: {e}") from e

    def describe_topics(self, topics: list[str]) -> str:
        try:
            import rosgraph

            state = rosgraph.Master(self.node_name).getSystemState()
            pubs = {t: n for t, n in state[0]}
            types = self._master_types()
        except Exception:  # noqa: BLE001
            return ""
        parts = [f"{t}: publishers {pubs.get(t, [])}, type {types.get(t, 'unknown')}" for t in topics]
        return " (" + "; ".join(parts) + ")"

    def _subscribe(self, topic: str, decode: Callable[[str, str, Any], None]) -> None:
        rospy = self._rospy

        def cb(raw: Any, topic: str = topic) -> None:
            declared = raw._connection_header.get("type", "") if getattr(raw, "_connection_header", None) else ""
            try:
                decode(topic, declared, raw)
            except Exception as e:  # noqa: BLE001 - reported at connect / shown in the error
                self.cache.error(topic, f"cannot decode {declared or 'a message'} on {topic}: {e}")

        self._subs.append(rospy.Subscriber(topic, rospy.AnyMsg, cb, queue_size=1))

    def _deserialize(self, topic: str, declared: str, raw: Any, allowed: tuple[str, ...]) -> Any:
        if declared not in allowed:
            self.cache.error(topic, f"topic {topic} carries {declared}, but robotrl expects {' or '.join(allowed)} there")
            raise _Ignored()
        return msg_class(declared)().deserialize(raw._buff)

    def _decode_joint_state(self, topic: str, declared: str, raw: Any) -> None:
        try:
            m = self._deserialize(topic, declared, raw, (MSG_TYPES["joint_state"],))
        except _Ignored:
            return
        self.on_joint_state(m.name, m.position, m.velocity, m.effort)

    def _decode_vector(self, topic: str, declared: str, raw: Any) -> None:
        try:
            m = self._deserialize(topic, declared, raw, MSG_TYPES["vector"])
        except _Ignored:
            return
        self.cache.put(topic, np.asarray(m.data, dtype=np.float32 if "Float32" in declared else np.float64))

    def _decode_image(self, topic: str, declared: str, raw: Any) -> None:
        try:
            m = self._deserialize(topic, declared, raw, (MSG_TYPES["image"],))
        except _Ignored:
            return
        self.cache.put(topic, image_to_array(m))

    def _decode_estop(self, topic: str, declared: str, raw: Any) -> None:
        try:
            m = self._deserialize(topic, declared, raw, (MSG_TYPES["estop"],))
        except _Ignored:
            return
        self.on_estop(bool(m.data), topic)

    # ------------------------------------------------------------------ sim node (robot=sim_ros)
    def _launch_sim_node(self) -> None:
        import json

        from robotrl.hw.sim_robot import sim_env_config

        sn = dict(self.config.sim_node)
        payload = {"robot": _config_dict(self.config), "rate": self.config.control_rate_hz,
                   "realtime": bool(sn.get("realtime", False)), "env": sim_env_config(self.config)}
        cmd = [sys.executable, "-m", "robotrl.hw.sim_ros_node", "--config", json.dumps(payload)]
        env = ros_env(self.master_uri)
        env.setdefault("MUJOCO_GL", "egl")
        env.setdefault("OMP_NUM_THREADS", "1")
        log_path = sn.get("log")
        # the node's output goes to a file (a pipe nobody reads would fill up and block the node)
        if log_path:
            self._sim_log, self._sim_log_tmp = Path(log_path), False
        else:
            fd, name = tempfile.mkstemp(prefix="robotrl-sim-node-", suffix=".log")
            os.close(fd)
            self._sim_log, self._sim_log_tmp = Path(name), True
        with open(self._sim_log, "ab") as out:
            self._sim_proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + float(sn.get("start_timeout_s", 60.0))
        types = {}
        while self.joint_topic not in types:
            if self._sim_proc.poll() is not None:
                err = self._sim_log.read_text(errors="replace")[-3000:]
                raise RobotConnectionError(f"simulated robot node exited with code {self._sim_proc.returncode}: {err}")
            if time.monotonic() > deadline:
                raise RobotConnectionError("simulated robot node did not advertise its joint states in time")
            time.sleep(0.1)
            types = self._master_types()

    # ------------------------------------------------------------------ commands
    def send_action(self, target: np.ndarray) -> np.ndarray:
        if not self._connected or self._pub is None:
            raise RuntimeError(f"robot {self.config.name!r}: connect() first")
        kind, values = self.command_payload(target)
        if kind == "trajectory":
            rospy = self._rospy
            JT = msg_class("trajectory_msgs/JointTrajectory")
            JTP = msg_class("trajectory_msgs/JointTrajectoryPoint")
            m = JT()
            m.joint_names = list(self.joint_names)
            m.points = [JTP(positions=values, time_from_start=rospy.Duration.from_sec(self.config.period))]
        else:
            m = msg_class("std_msgs/Float64MultiArray")(data=values)
        self._pub.publish(m)
        return np.asarray(target, dtype=np.float64)

    def reset_episode(self, seed: int | None = None, timeout: float = 30.0) -> None:
        """Ask a simulated robot to reset (``reset_topic``) and wait for its fresh state."""
        if not self._reset_pub:
            return
        before = self.episode_info().get("episode", -1)
        t = time.monotonic()
        self._reset_pub.publish(msg_class("std_msgs/Int64")(data=-1 if seed is None else int(seed)))
        deadline = t + timeout
        while self.episode_info().get("episode", -1) == before:
            if time.monotonic() > deadline:
                raise RobotConnectionError(f"robot {self.config.name!r} did not reset within {timeout:.0f} s (no new episode on {self.info_topic})")
            time.sleep(0.005)
        self.wait_for_data(since=t, timeout=timeout)

    # ------------------------------------------------------------------ disconnect
    def disconnect(self) -> None:
        for s in self._subs:
            try:
                s.unregister()
            except Exception:  # noqa: BLE001
                pass
        self._subs.clear()
        for p in (self._pub, self._reset_pub):
            if p is not None:
                try:
                    p.unregister()
                except Exception:  # noqa: BLE001
                    pass
        self._pub = self._reset_pub = None
        if self._sim_proc is not None:
            proc, self._sim_proc = self._sim_proc, None
            if proc.poll() is None:
                proc.send_signal(signal.SIGINT)
                try:
                    proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
            if self._sim_log_tmp and self._sim_log is not None:
                self._sim_log.unlink(missing_ok=True)
        if self._master is not None:
            self._master.stop()
            self._master = None
        self._connected = False


class _Ignored(Exception):
    pass


def _config_dict(rc: RobotConfig) -> dict[str, Any]:
    import dataclasses

    return dataclasses.asdict(rc)
