"""rosbridge backend (roslibpy) against the loopback rosbridge-protocol TEST DOUBLE
(tests/hw/rosbridge_test_double.py): no rosbridge server installs here."""
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from hw_helpers import tiny_policy
from robotrl.hw import RobotConfigError, RobotConnectionError, Runner, RunnerConfig, SafeRobot, SafetyConfig, make_robot
from robotrl.hw.ros1 import free_port

roslibpy = pytest.importorskip("roslibpy")
DOUBLE = Path(__file__).with_name("rosbridge_test_double.py")
JOINTS = ["j0", "j1", "j2", "j3"]


@pytest.fixture(scope="module")
def bridge():
    """The rosbridge-protocol test double on a free loopback port (stopped by PID)."""
    port = free_port()
    proc = subprocess.Popen([sys.executable, str(DOUBLE), "--port", str(port)], stdout=subprocess.PIPE, text=True)
    line = proc.stdout.readline()
    if "READY" not in line:
        proc.kill()
        pytest.fail(f"rosbridge test double did not start: {line!r}")
    yield f"ws://127.0.0.1:{port}"
    os.kill(proc.pid, signal.SIGTERM)
    proc.wait(timeout=10)


class FakeArm:
    """The robot side, another rosbridge client: publishes joint states, records commands."""

    def __init__(self, url, ns, js_type="sensor_msgs/JointState", rate=50.0):
        host, port = url[5:].split(":")
        self.ros = roslibpy.Ros(host=host, port=int(port))
        self.ros.run(timeout=10)
        self.js = roslibpy.Topic(self.ros, f"{ns}/joint_states", js_type)
        self.js.advertise()
        self.cmds, self.times = [], []
        self.cmd = roslibpy.Topic(self.ros, f"{ns}/joint_command", "trajectory_msgs/JointTrajectory")
        self.cmd.subscribe(self._on_cmd)
        self.pos = np.array([0.1, 0.2, 0.3, 0.4])
        self.js_type, self.period, self.halt = js_type, 1.0 / rate, threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _on_cmd(self, m):
        self.cmds.append(m)
        self.times.append(time.monotonic())
        self.pos = np.asarray([m["points"][0]["positions"][JOINTS.index(n)] for n in ["j0", "j1", "j2", "j3"]])

    def _run(self):
        order = [2, 0, 3, 1]  # the driver's own joint order
        while not self.halt.is_set():
            if self.js_type == "sensor_msgs/JointState":
                msg = {"name": [JOINTS[i] for i in order], "position": [float(self.pos[i]) for i in order],
                       "velocity": [float(-i) for i in order], "effort": []}
            else:
                msg = {"data": "wrong type"}
            self.js.publish(roslibpy.Message(msg))
            time.sleep(self.period)

    def close(self):
        self.halt.set()
        self.thread.join(timeout=5)
        self.cmd.unsubscribe()
        self.js.unadvertise()
        self.ros.close()


def _cfg(url, ns, **kw):
    return {"type": "rosbridge", "name": "rb", "joints": JOINTS, "lower": [-1] * 4, "upper": [1] * 4,
            "max_relative_target": 0.05, "action_map": {"index": [0, 1, 2, 3], "mode": "delta", "scale": 0.01},
            "observation": {"state": [{"joint_state": "position"}, {"joint_state": "velocity"}]},
            "ros": {"rosbridge_url": url, "joint_state_topic": f"{ns}/joint_states",
                    "command_topic": f"{ns}/joint_command", "connect_timeout_s": 10, **kw}}


def test_rosbridge_robot_observes_in_order_and_commands_at_rate(bridge):
    arm = FakeArm(bridge, "/rb1")
    robot = make_robot(_cfg(bridge, "/rb1"))
    safe = SafeRobot(robot, SafetyConfig(estop_key=False, estop_signal=None))
    try:
        safe.connect()
        obs = safe.get_observation()
        np.testing.assert_allclose(obs["joint_pos"], [0.1, 0.2, 0.3, 0.4])
        np.testing.assert_allclose(obs["state"], [0.1, 0.2, 0.3, 0.4, 0, -1, -2, -3])
        policy = tiny_policy(shape={"obs": {"state": [8]}, "action": [4]})
        s = Runner(safe, policy, RunnerConfig(n_episodes=1, max_steps=20, progress=False)).run()
        time.sleep(0.3)
        assert s["steps"] == [20] and s["success_rate"] is None  # a real robot reports no outcome
        assert len(arm.cmds) >= 18 and arm.cmds[0]["joint_names"] == JOINTS
        period = float(np.median(np.diff(arm.times)))
        assert 0.075 < period < 0.125, f"commands every {period * 1e3:.0f} ms, configured 100 ms"
        pos = np.asarray([c["points"][0]["positions"] for c in arm.cmds])
        assert np.all(np.abs(pos) <= 1.0)
    finally:
        safe.disconnect()
        arm.close()


def test_rosbridge_bad_inputs_fail_at_connect(bridge):
    arm = FakeArm(bridge, "/rb2", js_type="std_msgs/String")
    try:
        with pytest.raises(RobotConfigError, match="/rb2/joint_states has message type std_msgs/String"):
            make_robot(_cfg(bridge, "/rb2")).connect()
        assert arm.cmds == []
    finally:
        arm.close()
    dead = f"ws://127.0.0.1:{free_port()}"
    with pytest.raises(RobotConnectionError, match=f"rosbridge server at {dead} is not reachable"):
        make_robot(_cfg(dead, "/rb3")).connect()
    with pytest.raises(RobotConfigError, match="rosbridge_url must look like ws://host:9090"):
        make_robot(_cfg("http://x", "/rb4"))
