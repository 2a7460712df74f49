"""Deploy policies to robots: the ``Robot`` interface, ROS backends, the simulated robot, the
safety layer and the fixed-rate runner. See ``docs/deploy.md``.

The ROS backends import rospy / roslibpy only when a robot of that type is built.
"""
from robotrl.hw.robot import (
    ActionMap,
    Feature,
    Robot,
    RobotConfig,
    RobotConfigError,
    RobotConnectionError,
    make_robot,
    robot_config_from,
)
from robotrl.hw.safety import EStop, SafeRobot, SafetyConfig, SafetyEvent
from robotrl.hw.runner import LoopStats, Runner, RunnerConfig

__all__ = [
    "ActionMap",
    "Feature",
    "Robot",
    "RobotConfig",
    "RobotConfigError",
    "RobotConnectionError",
    "make_robot",
    "robot_config_from",
    "EStop",
    "SafeRobot",
    "SafetyConfig",
    "SafetyEvent",
    "LoopStats",
    "Runner",
    "RunnerConfig",
]
