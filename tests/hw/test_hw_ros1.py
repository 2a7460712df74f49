"""ROS 1 backend and the simulated robot node, against a real roscore started by the tests."""
import json
import os
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

from hw_helpers import TopicRecorder, ensure_test_node, tiny_policy
from robotrl.hw import RobotConfigError, RobotConnectionError, Runner, RunnerConfig, SafeRobot, SafetyConfig, make_robot
from robotrl.hw.ros1 import free_port, import_rospy, msg_class

TASK = "robotrl/ArmLift-v0"
pytestmark = pytest.mark.filterwarnings("ignore:notifyAll:DeprecationWarning")
ARM_JOINTS = ["arm_x", "arm_y", "arm_z", "finger_left", "finger_right"]
NO_SOURCES = dict(estop_key=False, estop_signal=None)


class Publisher(threading.Thread):
    """Publishes messages at a fixed rate from this process's node until stopped."""

    def __init__(self, topic, msg_type, make_msg, rate=20.0):
        super().__init__(daemon=True)
        rospy = import_rospy()
        self.pub = rospy.Publisher(topic, msg_class(msg_type), queue_size=1)
        self.make_msg, self.period, self.halt = make_msg, 1.0 / rate, threading.Event()

    def run(self):
        while not self.halt.is_set():
            self.pub.publish(self.make_msg())
            time.sleep(self.period)

    def stop(self):
        self.halt.set()
        self.join(timeout=5)
        self.pub.unregister()


def _ros_sim(roscore, ns, **ros):
    return make_robot({"type": "ros1", "task": TASK, "name": ns.strip("/"), "sim_node": {"namespace": ns},
                       "ros": {"master_uri": roscore.uri, "connect_timeout_s": 30, **ros}})


def test_observations_arrive_with_the_right_names_and_order(roscore):
    ensure_test_node(roscore)
    JointState, F32 = msg_class("sensor_msgs/JointState"), msg_class("std_msgs/Float32MultiArray")

    def js():  # the driver's own order, with an extra joint the robot config does not use
        return JointState(name=["c", "extra", "a", "b"], position=[3.0, 9.0, 1.0, 2.0], velocity=[-3.0, -9.0, -1.0, -2.0])

    pubs = [Publisher("/t_order/joint_states", "sensor_msgs/JointState", js),
            Publisher("/t_order/obs/state", "std_msgs/Float32MultiArray", lambda: F32(data=[0.5, 0.25]))]
    for p in pubs:
        p.start()
    cfg = {"type": "ros1", "name": "order", "joints": ["a", "b", "c"], "lower": [-5] * 3, "upper": [5] * 3,
           "observation": {"state": {"topic": "/t_order/obs/state"},
                           "proprio": [{"joint_state": "position", "joints": ["c", "a"]}, {"joint_state": "velocity"}]},
           "ros": {"master_uri": roscore.uri, "joint_state_topic": "/t_order/joint_states",
                   "command_topic": "/t_order/cmd", "require_command_subscriber": False}}
    try:
        robot = make_robot(cfg)
        robot.connect()
        obs = robot.get_observation()
        np.testing.assert_allclose(obs["joint_pos"], [1.0, 2.0, 3.0])
        np.testing.assert_allclose(obs["joint_vel"], [-1.0, -2.0, -3.0])
        np.testing.assert_allclose(obs["proprio"], [3.0, 1.0, -1.0, -2.0, -3.0])
        np.testing.assert_allclose(obs["state"], [0.5, 0.25])
        feats = robot.observation_features
        assert feats["joint_pos"].names == ("a", "b", "c") and feats["state"].shape == (2,)
        assert robot.action_features["joint_target"].names == ("a", "b", "c")
        robot.disconnect()
        # a configured joint the robot does not publish: clear error at connect
        cfg["joints"] = ["a", "b", "wrist"]
        cfg["observation"] = {"state": {"topic": "/t_order/obs/state"}}
        with pytest.raises(RobotConfigError, match=r"lacks joints \['wrist'\]"):
            make_robot(cfg).connect()
    finally:
        for p in pubs:
            p.stop()


def test_wrong_message_type_and_unreachable_master_fail_at_connect(roscore):
    ensure_test_node(roscore)
    String = msg_class("std_msgs/String")
    pub = Publisher("/t_wrong/joint_states", "std_msgs/String", lambda: String(data="not a joint state"))
    pub.start()
    rec = TopicRecorder("/t_wrong/joint_command", "trajectory_msgs/JointTrajectory")
    try:
        robot = make_robot({"type": "ros1", "name": "wrong", "joints": ["a"], "observation": {},
                            "ros": {"master_uri": roscore.uri, "joint_state_topic": "/t_wrong/joint_states",
                                    "command_topic": "/t_wrong/joint_command"}})
        with pytest.raises(RobotConfigError, match="/t_wrong/joint_states has message type std_msgs/String .* expects sensor_msgs/JointState"):
            robot.connect()
        assert not robot.is_connected and rec.msgs == []  # nothing was ever commanded
    finally:
        pub.stop()
        rec.close()
    dead = f"http://127.0.0.1:{free_port()}"
    robot = make_robot({"type": "ros1", "name": "nowhere", "joints": ["a"], "ros": {"master_uri": dead, "connect_timeout_s": 2}})
    t = time.monotonic()
    with pytest.raises(RobotConnectionError, match=f"ROS master at {dead} is not reachable"):
        robot.connect()
    assert time.monotonic() - t < 20


def test_commands_reach_a_separate_subscriber_at_the_configured_rate_and_episodes_record(roscore, sim_node, tmp_path):
    from robotrl.data.io import load_dataset

    ensure_test_node(roscore)
    sim_node("/sim_a")
    rec = TopicRecorder("/sim_a/joint_command", "trajectory_msgs/JointTrajectory")
    safe = SafeRobot(_ros_sim(roscore, "/sim_a"), SafetyConfig(**NO_SOURCES))
    safe.connect()
    try:
        assert safe.robot.joint_names == ARM_JOINTS
        path = tmp_path / "ros.hdf5"
        runner = Runner(safe, tiny_policy(), RunnerConfig(n_episodes=1, max_steps=30, seed=5, record_path=str(path), progress=False))
        s = runner.run()
        time.sleep(0.3)
    finally:
        safe.disconnect()
        rec.close()
    assert s["steps"] == [30]
    assert len(rec.msgs) >= 28 and list(rec.msgs[0].joint_names) == ARM_JOINTS
    period = float(np.median(np.diff(rec.times)))
    assert 0.075 < period < 0.125, f"commands arrive every {period * 1e3:.0f} ms, configured 100 ms"
    sent = np.stack([m.points[0].positions for m in rec.msgs])
    st = load_dataset(path)
    assert st.num_episodes == 1 and len(st["action"]) == 30
    np.testing.assert_allclose(st["joint_target"][-len(sent):], sent[-30:], atol=1e-12)  # recorded = received
    assert np.all(np.diff(st["timestamp"]) > 0)
    # the sim node applied them: the recorded observations moved and the task reported steps
    assert np.ptp(st["obs/joint_pos"][:, :3], axis=0).max() > 1e-3


def test_killing_the_sim_robot_trips_the_watchdog_within_two_periods_and_the_robot_holds(roscore, sim_node):
    ensure_test_node(roscore)
    node = sim_node("/sim_w")
    rec = TopicRecorder("/sim_w/joint_command", "trajectory_msgs/JointTrajectory")
    safe = SafeRobot(_ros_sim(roscore, "/sim_w"), SafetyConfig(**NO_SOURCES))
    safe.connect()
    kill_step = 10

    def on_step(e):
        if e["step"] == kill_step:
            node.kill()  # the publisher dies mid-run

    runner = Runner(safe, tiny_policy(), RunnerConfig(n_episodes=1, max_steps=kill_step + 12, progress=False), on_step=on_step)
    try:
        runner.run()
        time.sleep(0.3)
    finally:
        safe.disconnect()
        rec.close()
    log = runner.step_log
    tripped = [e["step"] for e in log if e["watchdog"]]
    assert tripped, "the watchdog never tripped"
    first = tripped[0]
    obs_t = [e["obs_time"] for e in log]
    last_fresh = max(k for k in range(1, len(log)) if obs_t[k] > obs_t[k - 1])
    assert first - last_fresh <= 2, f"watchdog tripped {first - last_fresh} control steps after the last fresh observation"
    assert tripped == list(range(first, len(log)))  # it stays tripped while the robot is silent
    holds = np.stack([log[k]["sent"] for k in tripped])
    assert np.ptp(holds, axis=0).max() == 0.0  # one fixed hold position
    assert safe.counts["watchdog_obs"] == 1 and "no fresh observation" in [e for e in safe.events if e.kind == "watchdog_obs"][0].reason
    received = np.stack([m.points[0].positions for m in rec.msgs[-3:]])
    np.testing.assert_allclose(received, np.repeat(holds[:1], 3, axis=0))  # what went out on the wire is the hold


def test_estop_topic_latches_until_reset(roscore, sim_node):
    ensure_test_node(roscore)
    sim_node("/sim_e")
    Bool = msg_class("std_msgs/Bool")
    rospy = import_rospy()
    pub = rospy.Publisher("/sim_e/estop", Bool, queue_size=1)
    safe = SafeRobot(_ros_sim(roscore, "/sim_e", estop_topic="/sim_e/estop"), SafetyConfig(**NO_SOURCES))
    safe.connect()
    deadline = time.monotonic() + 10
    while pub.get_num_connections() == 0 and time.monotonic() < deadline:
        time.sleep(0.01)

    def on_step(e):
        if e["step"] == 5:
            pub.publish(Bool(data=True))

    runner = Runner(safe, tiny_policy(), RunnerConfig(n_episodes=3, max_steps=40, progress=False), on_step=on_step)
    try:
        s = runner.run()
        pub.publish(Bool(data=False))  # false does not clear a latched e-stop
        time.sleep(0.3)
        assert safe.stopped and "topic /sim_e/estop" in safe.estop_latch.reason
        assert s["ended_by"] == ["estop"] and s["episodes"] == 1 and runner.results[0].steps < 40
        hold = safe.send_action(safe.hold_target() + 0.01)
        np.testing.assert_allclose(hold, safe.last_sent)
        assert not np.allclose(hold, safe.hold_target() + 0.01)
        safe.reset_estop()
        safe.get_observation()
        target = safe.hold_target().copy()
        target[0] += 0.001
        np.testing.assert_allclose(safe.send_action(target), target)  # commands flow again after reset
    finally:
        safe.disconnect()
        pub.unregister()


def test_robotrl_deploy_over_the_ros_master(roscore, policy_dir, tmp_path):
    """The console script: sim_ros robot (node launched by deploy) over the test's roscore; dry run sends nothing."""
    from hydra import compose, initialize_config_dir

    from robotrl.cli import CONF_DIR
    from robotrl.cli.deploy import deploy
    from robotrl.data.io import load_dataset

    ensure_test_node(roscore)
    common = [f"checkpoint={policy_dir}", f"task={TASK}", "robot=sim_ros", f"robot.ros.master_uri={roscore.uri}",
              "robot.ros.start_master=false", "progress=false", "safety.estop_key=false"]
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        cfg = compose("deploy", overrides=common + ["robot.sim_node.namespace=/sim_cli", "n_episodes=2", "max_steps=12",
                                                   f"record={tmp_path / 'rec.hdf5'}", f"out_dir={tmp_path / 'out'}"])
    s = deploy(cfg)
    assert s["episodes"] == 2 and s["steps"] == [12, 12] and s["safety"]["estop"] is None
    assert load_dataset(tmp_path / "rec.hdf5").num_episodes == 2

    rec = TopicRecorder("/sim_dry/joint_command", "trajectory_msgs/JointTrajectory")
    env = dict(os.environ, OMP_NUM_THREADS="1")
    exe = os.path.join(os.path.dirname(sys.executable), "robotrl-deploy")
    cmd = [exe] if os.path.exists(exe) else [sys.executable, "-m", "robotrl.cli.deploy"]
    out = subprocess.run(cmd + common + ["robot.sim_node.namespace=/sim_dry", "dry_run=true", "max_steps=10",
                                         f"out_dir={tmp_path / 'dry'}"],
                         env=env, capture_output=True, text=True, timeout=240)
    rec.close()
    assert out.returncode == 0, out.stderr[-3000:]
    assert "DRY RUN" in out.stdout and "robotrl-deploy summary" in out.stdout
    summary = json.loads((tmp_path / "dry" / "summary.json").read_text())
    assert summary["steps"] == [10] and summary["safety"]["dry_run"] is True
    assert rec.msgs == []  # computed, never sent

    bad = subprocess.run(cmd + [f"checkpoint={policy_dir}", f"task={TASK}", "robot=sim_ros", "progress=false",
                                f"robot.ros.master_uri=http://127.0.0.1:{free_port()}", "robot.ros.start_master=false"],
                         env=env, capture_output=True, text=True, timeout=240)
    assert bad.returncode == 2 and "is not reachable" in bad.stderr


def test_camera_images_arrive_as_uint8_hwc(roscore, sim_node):
    from robotrl.hw.ros1 import array_to_image, image_to_array

    img = np.random.default_rng(0).integers(0, 255, (6, 5, 3), dtype=np.uint8)
    np.testing.assert_array_equal(image_to_array(array_to_image(img)), img)
    bgr = array_to_image(img)
    bgr.encoding, bgr.data = "bgr8", img[..., ::-1].tobytes()
    np.testing.assert_array_equal(image_to_array(bgr), img)

    ensure_test_node(roscore)
    sim_node("/sim_i", extra=("--image",))
    robot = make_robot({"type": "ros1", "task": TASK, "sim_node": {"namespace": "/sim_i"}, "env": {"image": True},
                        "ros": {"master_uri": roscore.uri, "connect_timeout_s": 60}})
    robot.connect()
    try:
        obs = robot.get_observation()
        assert obs["image"].shape == (84, 84, 3) and obs["image"].dtype == np.uint8 and obs["image"].std() > 1
        assert robot.observation_features["image"].shape == (84, 84, 3)
        assert obs["state"].shape == (22,)
    finally:
        robot.disconnect()
