"""The simulated robot as a separate ROS 1 node: a bundled MuJoCo task behind real topics.

    python -m robotrl.hw.sim_ros_node --task robotrl/ArmLift-v0 [--namespace /robotrl_sim]
        [--rate 10] [--image] [--realtime] [--command-type trajectory|position|velocity]

(``robotrl-deploy robot=sim_ros`` starts it for you.) It publishes, under its namespace,

- ``joint_states`` (``sensor_msgs/JointState``: the task's joints, positions and velocities),
- ``obs/<key>`` (``std_msgs/Float32MultiArray``) for each low-dimensional observation key and,
  with ``--image``, ``camera/<key>`` (``sensor_msgs/Image``, rgb8),
- ``task_info`` (``std_msgs/Float64MultiArray``: episode, step, reward, return, is_success,
  terminated, truncated),

and applies joint position targets from ``joint_command`` (``trajectory_msgs/JointTrajectory``
or ``std_msgs/Float64MultiArray``) and resets on ``reset`` (``std_msgs/Int64`` seed, -1 = none).

Timing: by default simulated time advances one control period per command received (lockstep,
the state published right after the step is the state a real robot would show one period
later); without commands the scene holds still and the state is re-published at ``--rate``.
With ``--realtime`` the physics runs at ``--rate`` whatever arrives, holding the last target.
SIGINT / SIGTERM stop it.
"""
from __future__ import annotations

import argparse
import json
import os
import queue
import signal
import sys
import time
from typing import Any

import numpy as np

os.environ.setdefault("MUJOCO_GL", "egl")


def _parse(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--task", default=None, help="bundled task id (default robotrl/ArmLift-v0)")
    ap.add_argument("--namespace", default=None)
    ap.add_argument("--rate", type=float, default=None, help="control / publish rate (Hz)")
    ap.add_argument("--image", action="store_true", help="also publish camera images")
    ap.add_argument("--realtime", action="store_true", help="step at --rate instead of once per command")
    ap.add_argument("--command-type", default=None, choices=["trajectory", "position", "velocity"])
    ap.add_argument("--seed", type=int, default=0, help="seed of the first episode")
    ap.add_argument("--config", default=None, help="JSON {robot: RobotConfig fields, env: make_env config, rate, realtime}")
    return ap.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    from robotrl.hw.robot import robot_config_from
    from robotrl.hw.ros1 import array_to_image, import_rospy, msg_class
    from robotrl.hw.sim_robot import SimTask, apply_task_preset, task_info_vector

    args = _parse(argv)
    payload: dict[str, Any] = json.loads(args.config) if args.config else {}
    robot = dict(payload.get("robot") or {"type": "ros1"})
    robot["type"] = "ros1"
    robot["task"] = args.task or robot.get("task") or (payload.get("env") or {}).get("id") or "robotrl/ArmLift-v0"
    env = dict(payload.get("env") or {})
    if args.image:
        env["image"] = True
    env["id"] = robot["task"]
    robot["env"] = env
    if args.namespace:
        robot["sim_node"] = {**(robot.get("sim_node") or {}), "namespace": args.namespace}
    rc = apply_task_preset(robot_config_from(robot))
    rate = float(args.rate or payload.get("rate") or rc.control_rate_hz)
    realtime = bool(args.realtime or payload.get("realtime"))
    command_type = args.command_type or rc.ros.get("command_type", "trajectory")
    ns = str(rc.sim_node.get("namespace", "/robotrl_sim")).rstrip("/")
    period = 1.0 / rate

    rospy = import_rospy()
    rospy.init_node("robotrl_sim", argv=[], anonymous=True, disable_signals=True)
    task = SimTask(rc)
    joints = list(rc.joints or [])

    JointState = msg_class("sensor_msgs/JointState")
    F32 = msg_class("std_msgs/Float32MultiArray")
    F64 = msg_class("std_msgs/Float64MultiArray")
    pub_js = rospy.Publisher(rc.ros["joint_state_topic"], JointState, queue_size=1)
    pub_info = rospy.Publisher(rc.ros["info_topic"], F64, queue_size=1)
    pub_obs: dict[str, Any] = {}
    for key in task.observation_space.spaces:
        if key.endswith("image"):
            pub_obs[key] = rospy.Publisher(f"{ns}/camera/{key}", msg_class("sensor_msgs/Image"), queue_size=1)
        else:
            pub_obs[key] = rospy.Publisher(f"{ns}/obs/{key}", F32, queue_size=1)

    inbox: queue.Queue = queue.Queue()

    def on_traj(m: Any) -> None:
        if not m.points:
            return
        idx = {n: i for i, n in enumerate(m.joint_names)}
        if any(j not in idx for j in joints):
            rospy.logwarn_throttle(5, f"sim robot: trajectory joints {list(m.joint_names)} lack some of {joints}; ignored")
            return
        pos = np.asarray(m.points[0].positions, dtype=np.float64)
        inbox.put(("target", pos[[idx[j] for j in joints]]))

    def on_vector(m: Any) -> None:
        v = np.asarray(m.data, dtype=np.float64)
        if v.shape != (len(joints),):
            rospy.logwarn_throttle(5, f"sim robot: command of size {v.size} for {len(joints)} joints; ignored")
            return
        inbox.put(("velocity" if command_type == "velocity" else "target", v))

    if command_type == "trajectory":
        rospy.Subscriber(rc.ros["command_topic"], msg_class("trajectory_msgs/JointTrajectory"), on_traj, queue_size=10)
    else:
        rospy.Subscriber(rc.ros["command_topic"], F64, on_vector, queue_size=10)
    rospy.Subscriber(rc.ros["reset_topic"], msg_class("std_msgs/Int64"), lambda m: inbox.put(("reset", int(m.data))), queue_size=10)

    stop = {"flag": False}

    def _stop(signum: int, frame: Any) -> None:
        stop["flag"] = True

    signal.signal(signal.SIGINT, _stop)
    signal.signal(signal.SIGTERM, _stop)

    def publish() -> None:
        stamp = rospy.Time.now()
        js = JointState()
        js.header.stamp = stamp
        js.name = joints
        js.position = task.joint_pos().tolist()
        js.velocity = task.joint_vel().tolist()
        for key, pub in pub_obs.items():
            v = task.obs[key]
            if key.endswith("image"):
                pub.publish(array_to_image(v, stamp))
            else:
                pub.publish(F32(data=np.asarray(v, dtype=np.float32).reshape(-1).tolist()))
        pub_info.publish(F64(data=task_info_vector(task.info())))
        pub_js.publish(js)  # last: a reader that sees this joint state also has the rest

    task.reset(seed=args.seed)
    last_target = task.joint_pos()
    next_t = time.monotonic()
    publish()
    print(f"[sim_ros_node] {rc.task} on {ns} at {rate:g} Hz ({'realtime' if realtime else 'lockstep'})", flush=True)
    while not stop["flag"] and not rospy.is_shutdown():
        timeout = max(0.0, next_t + period - time.monotonic())
        try:
            kind, value = inbox.get(timeout=timeout)
        except queue.Empty:
            kind, value = None, None
        if kind == "reset":
            task.reset(seed=None if value < 0 else value)
            last_target = task.joint_pos()
            while not inbox.empty():  # commands of the previous episode are void
                inbox.get_nowait()
            publish()
            next_t = time.monotonic()
            continue
        if kind == "velocity":
            value = task.joint_pos() + value * period
            kind = "target"
        if kind == "target":
            last_target = value
            if not realtime:
                task.apply(value)
                publish()
                next_t = time.monotonic()
                continue
        if time.monotonic() >= next_t + period:  # a period without commands (lockstep) / a tick (realtime)
            if realtime:
                task.apply(last_target)
            publish()
            next_t = time.monotonic()
    task.close()
    rospy.signal_shutdown("sim_ros_node stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
