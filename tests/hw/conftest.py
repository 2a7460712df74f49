"""Fixtures of the hardware-layer tests: a tiny saved policy, a real roscore, the simulated robot node.

ROS tests run against a real ``roscore`` started here on 127.0.0.1 (a free port) and stopped by
PID; they skip, saying why, only when ROS 1 is not installed (scripts/install_ros.sh installs it).
"""
from __future__ import annotations

import os

import pytest

from hw_helpers import SimNode, ros_ok, tiny_policy


@pytest.fixture(scope="session")
def policy_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("policy") / "policy"
    tiny_policy().save_pretrained(d)
    return d


@pytest.fixture(scope="session")
def roscore():
    """A real roscore on a free loopback port for the whole session; this process's env points at it."""
    ok, why = ros_ok()
    if not ok:
        pytest.skip(why)
    from robotrl.hw.ros1 import RosMaster, ros_env

    master = RosMaster().start()
    keys = ("ROS_MASTER_URI", "ROS_IP", "ROS_HOSTNAME", "ROS_HOME", "ROS_LOG_DIR")
    saved = {k: os.environ.get(k) for k in keys}
    os.environ.update(ros_env(master.uri, base={}, ros_home=master.ros_home))
    try:
        yield master
    finally:
        master.stop()
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


@pytest.fixture
def sim_node(roscore):
    """Factory: start the simulated robot node (a separate process) under a namespace."""
    nodes = []

    def start(namespace: str, **kw) -> SimNode:
        n = SimNode(roscore, namespace, **kw)
        nodes.append(n)
        return n.wait_ready()

    yield start
    for n in nodes:
        n.stop()
