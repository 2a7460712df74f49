"""Helpers of the hardware-layer tests: a tiny policy, the simulated robot node, a topic recorder.

ROS tests run against a real ``roscore`` started here on 127.0.0.1 (a free port) and stopped by
PID; they skip, saying why, only when ROS 1 is not installed (scripts/install_ros.sh installs it).
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from robotrl.policies import make_policy

ARMLIFT_SHAPE = {"obs": {"state": [22]}, "action": [4]}
HERE = Path(__file__).resolve().parent


def tiny_policy(seed: int = 0, shape=ARMLIFT_SHAPE, **kw):
    """A small BC policy with a fitted normaliser (no training: deterministic, cheap)."""
    import torch

    torch.manual_seed(seed)
    p = make_policy({"type": "bc", "hidden_dims": [32, 32], "obs_keys": list(shape["obs"]), **kw}, shape)
    rng = np.random.default_rng(seed)
    A = shape["action"][0]
    p.normalizer.fit_key("action", rng.uniform(-1, 1, (256, A)))
    for k, s in shape["obs"].items():
        p.normalizer.fit_key(f"obs/{k}", rng.normal(scale=0.1, size=(256, *s)))
    return p.eval()


def ros_ok() -> tuple[bool, str]:
    from robotrl.hw.ros1 import ros_available

    if ros_available():
        return True, ""
    return False, "ROS 1 (roscore + rospy) is not installed; run scripts/install_ros.sh"


class SimNode:
    """The simulated robot node as a child process (stopped by PID)."""

    def __init__(self, master, namespace: str, task: str = "robotrl/ArmLift-v0", rate: float = 10.0, extra=()):
        from robotrl.hw.ros1 import ros_env

        env = ros_env(master.uri, ros_home=master.ros_home)
        env.setdefault("MUJOCO_GL", "egl")
        env["OMP_NUM_THREADS"] = "1"
        self.namespace = namespace
        import tempfile

        self._log = tempfile.TemporaryFile()  # not a pipe: nobody reads it while the node runs
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "robotrl.hw.sim_ros_node", "--task", task, "--namespace", namespace,
             "--rate", str(rate), *extra],
            env=env, stdout=subprocess.DEVNULL, stderr=self._log,
        )
        self.master = master

    def wait_ready(self, timeout: float = 90.0) -> "SimNode":
        import rosgraph

        deadline = time.monotonic() + timeout
        topic = f"{self.namespace}/joint_states"
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                self._log.seek(0)
                raise RuntimeError(f"sim node died: {self._log.read().decode(errors='replace')[-3000:]}")
            pubs = dict(rosgraph.Master("/probe", master_uri=self.master.uri).getSystemState()[0])
            if topic in pubs:
                return self
            time.sleep(0.1)
        raise TimeoutError(f"sim node did not advertise {topic}")

    def kill(self) -> None:
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGINT)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.kill()
        self._log.close()


class TopicRecorder:
    """A separate subscriber (in this process's rospy node) that records what arrives on a topic."""

    def __init__(self, topic: str, msg_type: str):
        from robotrl.hw.ros1 import import_rospy, msg_class

        rospy = import_rospy()
        self.msgs: list = []
        self.times: list[float] = []
        self.sub = rospy.Subscriber(topic, msg_class(msg_type), self._cb, queue_size=100)

    def _cb(self, m) -> None:
        self.msgs.append(m)
        self.times.append(time.monotonic())

    def close(self) -> None:
        self.sub.unregister()


def ensure_test_node(master) -> None:
    from robotrl.hw.ros1 import ensure_node

    ensure_node("robotrl_tests", master.uri)


class FakeRobot:
    """A hardware-free Robot (for safety-layer tests): fixed joints, records every command sent."""

    def __new__(cls, **cfg):
        from robotrl.hw.robot import Feature, Robot, robot_config_from

        class _Fake(Robot):
            def __init__(self, rc):
                super().__init__(rc)
                self.pos = np.zeros(len(rc.joints))
                self.sent: list[np.ndarray] = []
                self.obs_time = time.monotonic()

            @property
            def observation_features(self):
                return {"joint_pos": Feature((len(self.joint_names),), "float64", tuple(self.joint_names))}

            def connect(self):
                self._connected = True

            def disconnect(self):
                self._connected = False

            def get_observation(self):
                return {"joint_pos": self.pos.copy(), "joint_vel": np.zeros_like(self.pos), "timestamp": self.obs_time}

            def send_action(self, target):
                self.sent.append(np.asarray(target, dtype=float).copy())
                return target

        base = dict(type="sim", name="fake", joints=["j0", "j1", "j2"], lower=[-1, -1, -1], upper=[1, 1, 1],
                    control_rate_hz=10)
        base.update(cfg)
        rc = robot_config_from(base).validate()
        return _Fake(rc)
