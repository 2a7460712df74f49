"""Safety layer: limits, relative-target and velocity clamps, workspace, NaN rejection, e-stop, watchdog."""
import io
import logging
import os
import signal
import time

import numpy as np
import pytest

from hw_helpers import FakeRobot
from robotrl.hw import ActionMap, RobotConfigError, SafeRobot, SafetyConfig, make_robot, robot_config_from
from robotrl.hw.safety import EStop, GantryKinematics

NO_SOURCES = dict(estop_key=False, estop_signal=None)


def _safe(**cfg):
    r = FakeRobot(**cfg)
    s = SafeRobot(r, SafetyConfig(**NO_SOURCES))
    s.connect()
    s.get_observation()
    return r, s


def test_out_of_limit_and_too_large_steps_are_clamped_and_logged(caplog):
    r, s = _safe(max_relative_target=[0.1, 0.1, 0.1], max_velocity=[10.0, 10.0, 0.5])
    with caplog.at_level(logging.WARNING, logger="robotrl.hw.safety"):
        sent = s.send_action(np.array([5.0, 0.05, -0.3]))
    # j0: limit 1 then relative 0.1; j1 untouched; j2: relative 0.1 then velocity 0.5 * 0.1 s = 0.05
    np.testing.assert_allclose(sent, [0.1, 0.05, -0.05])
    np.testing.assert_allclose(r.sent[-1], sent)
    assert s.counts["joint_limit"] == 1 and s.counts["relative_target"] == 1 and s.counts["velocity"] == 1
    kinds = {e.kind: e for e in s.events}
    assert kinds["joint_limit"].joints == ("j0",) and kinds["joint_limit"].requested == [5.0]
    assert "max_relative_target" in kinds["relative_target"].reason
    assert kinds["velocity"].joints == ("j2",)
    assert "joint_limit" in caplog.text and "clamped" in caplog.text
    # within limits: sent unchanged, nothing logged
    n = len(s.events)
    r.pos = np.array([0.1, 0.05, -0.05])
    s.get_observation()
    np.testing.assert_allclose(s.send_action(np.array([0.12, 0.0, -0.06])), [0.12, 0.0, -0.06])
    assert len(s.events) == n


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_nonfinite_action_is_never_sent(bad):
    r, s = _safe(hold=["current", "current", "last"])
    r.pos = np.array([0.2, -0.3, 0.4])
    s.get_observation()
    s.send_action(np.array([0.2, -0.3, 0.5]))
    sent = s.send_action(np.array([0.0, bad, 0.0]))
    assert np.all(np.isfinite(sent)) and all(np.all(np.isfinite(x)) for x in r.sent)
    np.testing.assert_allclose(sent, [0.2, -0.3, 0.5])  # hold: measured pos, last target for the 'last' joint
    assert s.counts["nonfinite"] == 1 and s.events[-1].joints == ("j1",)


def test_workspace_gantry_projection_and_generic_fk():
    r, s = _safe(workspace={"lower": [-0.5, -0.5, 0.0], "upper": [0.5, 0.5, 0.8],
                            "kinematics": {"type": "gantry", "joints": ["j0", "j1", "j2"]}})
    sent = s.send_action(np.array([0.9, 0.2, -0.2]))
    np.testing.assert_allclose(sent, [0.5, 0.2, 0.0])
    assert s.counts["workspace"] == 1 and "outside workspace" in s.events[-1].reason

    # a non-linear map (planar 2-link arm) -> the step is pulled back along its direction
    r2, s2 = _safe(workspace={"lower": [-10, 0.0, -10], "upper": [10, 1.5, 10],
                              "kinematics": {"target": "test_hw_safety:two_link_fk"}})
    sent = s2.send_action(np.array([0.0, 0.0, 0.0]))  # inside: unchanged
    np.testing.assert_allclose(sent, 0.0)
    r2.pos = np.array([0.5, 0.5, 0.0])
    s2.get_observation()
    sent = s2.send_action(np.array([1.0, 1.0, 0.0]))
    assert two_link_fk(sent)[1] <= 1.5 + 1e-6
    assert two_link_fk(sent)[1] > 1.49  # as far as allowed
    assert s2.counts["workspace"] == 1


def two_link_fk(q):
    q = np.asarray(q, float)
    x = np.cos(q[0]) + np.cos(q[0] + q[1])
    y = np.sin(q[0]) + np.sin(q[0] + q[1])
    return np.array([x, y, q[2]])


def test_estop_latches_from_api_signal_and_key_until_reset():
    r, s = _safe()
    s.send_action(np.array([0.01, 0.0, 0.0]))
    r.pos = np.array([0.01, 0.0, 0.0])
    s.get_observation()
    s.estop("test")
    for _ in range(3):
        sent = s.send_action(np.array([0.02, 0.0, 0.0]))
        np.testing.assert_allclose(sent, [0.01, 0.0, 0.0])  # holds, whatever is asked
    assert s.stopped and s.counts["estop"] == 1 and "test" in s.estop_latch.reason
    s.estop("again")
    assert s.estop_latch.reason == "test"  # latched: the first reason stays
    s.reset_estop()
    np.testing.assert_allclose(s.send_action(np.array([0.02, 0.0, 0.0])), [0.02, 0.0, 0.0])

    e = EStop()
    assert e.install_signal("SIGUSR1")
    try:
        os.kill(os.getpid(), signal.SIGUSR1)
        deadline = time.monotonic() + 5
        while not e.is_set and time.monotonic() < deadline:
            time.sleep(0.01)
        assert e.is_set and "SIGUSR1" in e.reason
    finally:
        e.close()
    k = EStop()
    k.start_key_listener(io.StringIO("xxe "))
    k._key_thread.join(timeout=5)
    assert k.is_set and k.reason == "key 'e'"
    k.reset()
    assert not k.is_set


def test_watchdog_trips_holds_and_recovers():
    r, s = _safe()
    now = time.monotonic()
    r.obs_time = now
    s.get_observation()
    assert s.check_watchdog(now + 0.05) is None
    why = s.check_watchdog(now + 0.2)  # 1.5 periods = 150 ms deadline
    assert why and "no fresh observation" in why and s.counts["watchdog_obs"] == 1
    s.check_watchdog(now + 0.3)
    assert s.counts["watchdog_obs"] == 1  # one event per trip, not per tick
    assert "no policy output" in s.check_watchdog(now + 0.05, policy_waiting_s=0.5)
    r.obs_time = now + 0.3
    s.get_observation()
    assert s.check_watchdog(now + 0.31) is None and s.counts["recovered"] == 2


def test_action_map_roundtrip_and_config_errors():
    am = ActionMap(5, index=[0, 1, 2, 3, 3], mode=["delta"] * 3 + ["absolute"] * 2,
                   scale=[0.02, 0.02, 0.02, -0.0225, -0.0225], offset=[0, 0, 0, 0.0225, 0.0225])
    q = np.array([0.1, -0.05, 0.12, 0.03, 0.03])
    a = np.array([0.5, -1.0, 0.25, 0.3])
    t = am.to_target(a, q)
    np.testing.assert_allclose(t, [0.11, -0.07, 0.125, 0.01575, 0.01575])
    np.testing.assert_allclose(am.to_action(t, q), a)
    with pytest.raises(RobotConfigError, match="unknown robot config key.*'joint_names' \\(did you mean 'joints'"):
        robot_config_from({"type": "sim", "joint_names": ["a"]})
    with pytest.raises(RobotConfigError, match="lower has 2 entries for 3 joints"):
        make_robot({"type": "ros1", "joints": ["a", "b", "c"], "lower": [0, 0], "upper": [1, 1, 1]})
    with pytest.raises(RobotConfigError, match="action_map.scale has 2 entries for 3 joints"):
        make_robot({"type": "ros1", "joints": ["a", "b", "c"], "action_map": {"scale": [1, 1]}})
    with pytest.raises(RobotConfigError, match="robot.type 'ros3' unknown"):
        make_robot({"type": "ros3", "joints": ["a"]})


def test_gantry_kinematics():
    k = GantryKinematics([0, 2], offset=[0.0, 0.1])
    np.testing.assert_allclose(k(np.array([0.3, 9.0, 0.2])), [0.3, 0.3])
    np.testing.assert_allclose(k.project(np.array([0.9, 9.0, 0.2]), np.array([-0.5, 0.0]), np.array([0.5, 0.25])), [0.5, 9.0, 0.15])
