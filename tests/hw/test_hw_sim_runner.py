"""In-process simulated robot + runner: exact equivalence with a direct rollout, recording, dry run,
background inference, and robot/policy mismatches caught before anything is sent."""
from collections import deque

import numpy as np
import pytest

from hw_helpers import tiny_policy
from robotrl.hw import RobotConfigError, Runner, RunnerConfig, SafeRobot, SafetyConfig, make_robot
from robotrl.hw.recorder import FLAG_BITS

TASK = "robotrl/ArmLift-v0"
NO_SOURCES = dict(estop_key=False, estop_signal=None)


def _direct_rollout(policy, seed, steps):
    """What evaluation does: chunks of n_action_steps from the last n_obs_steps observations."""
    from robotrl.envs import make_env

    env = make_env({"id": TASK})
    obs, _ = env.reset(seed=seed)
    hist = deque([obs["state"]] * policy.config.n_obs_steps, maxlen=policy.config.n_obs_steps)
    queue, states = deque(), []
    for _ in range(steps):
        states.append(obs["state"].copy())
        if not queue:
            queue.extend(policy.predict_chunk({"state": np.stack(hist)[None]})[0].numpy())
        obs, *_ = env.step(queue.popleft())
        hist.append(obs["state"])
    env.close()
    return np.stack(states)


def _sim(**safety):
    robot = make_robot({"type": "sim", "task": TASK})
    safe = SafeRobot(robot, SafetyConfig(**NO_SOURCES, **safety))
    safe.connect()
    return robot, safe


def test_deploying_to_the_sim_robot_reproduces_a_direct_rollout_and_records_it(tmp_path):
    from robotrl.data.io import load_dataset

    policy = tiny_policy(seed=3)
    direct = _direct_rollout(policy, seed=7, steps=25)
    robot, safe = _sim()
    path = tmp_path / "deployed.hdf5"
    runner = Runner(safe, policy, RunnerConfig(n_episodes=1, max_steps=25, seed=7, record_path=str(path), progress=False))
    summary = runner.run()
    safe.disconnect()
    assert summary["episodes"] == 1 and summary["steps"] == [25]
    store = load_dataset(path)  # the robomimic file loads back through robotrl.data
    assert store.num_episodes == 1 and len(store["action"]) == 25
    assert (store["safety_flags"] == 0).all()  # nothing clamped, so the comparison is exact
    np.testing.assert_allclose(store["obs/state"], direct, atol=1e-6)
    # "action" is the policy-space equivalent of the joint target actually sent
    np.testing.assert_allclose(store["action"], store["policy_action"], atol=1e-5)
    np.testing.assert_allclose(np.stack(robot.sent), store["joint_target"])
    assert np.all(np.diff(store["timestamp"]) > 0) and np.all(store["send_timestamp"] >= store["timestamp"])
    assert store["obs/joint_pos"].shape == (25, 5)
    # appending a second deployment grows the same file
    robot2, safe2 = _sim()
    Runner(safe2, policy, RunnerConfig(n_episodes=2, max_steps=5, record_path=str(path), progress=False)).run()
    safe2.disconnect()
    assert load_dataset(path).num_episodes == 3


def test_clamped_commands_are_recorded_as_sent(tmp_path):
    from robotrl.data.io import load_dataset

    policy = tiny_policy(seed=1)
    robot = make_robot({"type": "sim", "task": TASK, "max_relative_target": [0.004, 0.004, 0.004, 0.05, 0.05]})
    safe = SafeRobot(robot, SafetyConfig(**NO_SOURCES))
    safe.connect()
    path = tmp_path / "clamped.hdf5"
    Runner(safe, policy, RunnerConfig(n_episodes=1, max_steps=10, record_path=str(path), progress=False)).run()
    safe.disconnect()
    st = load_dataset(path)
    clamped = (st["safety_flags"] & FLAG_BITS["relative_target"]) > 0
    assert clamped.any() and safe.counts["relative_target"] == clamped.sum()
    step = np.abs(st["joint_target"][:, :3] - st["obs/joint_pos"][:, :3])
    assert step.max() <= 0.004 + 1e-9
    # the recorded action reproduces the sent target, not the (larger) policy output
    assert np.abs(st["action"][:, :3]).max() <= 0.2 + 1e-6
    np.testing.assert_allclose(np.stack(robot.sent), st["joint_target"])


def test_dry_run_computes_but_sends_nothing():
    policy = tiny_policy()
    robot, safe = _sim(dry_run=True)
    runner = Runner(safe, policy, RunnerConfig(n_episodes=1, max_steps=8, progress=False))
    s = runner.run()
    assert robot.sent == [] and s["safety"]["dry_run"]
    assert all(e["sent"] is not None for e in runner.step_log)  # computed and filtered every step
    safe.disconnect()


def test_background_inference_keeps_the_queue_full():
    policy = tiny_policy()
    robot, safe = _sim()
    runner = Runner(safe, policy, RunnerConfig(n_episodes=1, max_steps=30, background_inference=True,
                                               prefetch_steps=2, progress=False))
    s = runner.run()
    safe.disconnect()
    assert s["background_inference"] and s["loop"]["inference_count"] >= 30 // 8
    assert len(robot.sent) == 30  # an action every tick: no gap while the next chunk was computed
    assert s["loop"]["inference_ms_p50"] is not None and s["loop"]["jitter_ms_p99"] is not None


def test_robot_policy_mismatch_is_an_error_before_any_command():
    policy2 = tiny_policy(shape={"obs": {"state": [22]}, "action": [2]})
    robot, safe = _sim()
    with pytest.raises(RobotConfigError, match="policy's action has size 2"):
        Runner(safe, policy2, RunnerConfig(progress=False)).run()
    policy8 = tiny_policy(shape={"obs": {"state": [8]}, "action": [4]})
    with pytest.raises(RobotConfigError, match=r"observation 'state' has shape \(22,\), the policy expects \(8,\)"):
        Runner(safe, policy8, RunnerConfig(progress=False)).run()
    assert robot.sent == []
    safe.disconnect()


def test_deploy_entry_point_with_the_in_process_sim(policy_dir, tmp_path):
    from hydra import compose, initialize_config_dir

    from robotrl.cli import CONF_DIR
    from robotrl.cli.deploy import deploy

    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        cfg = compose("deploy", overrides=[
            f"checkpoint={policy_dir}", f"task={TASK}", "n_episodes=2", "max_steps=6", "progress=false",
            f"out_dir={tmp_path / 'out'}", f"record={tmp_path / 'rec.hdf5'}", "safety.estop_key=false",
        ])
    s = deploy(cfg)
    assert s["episodes"] == 2 and s["steps"] == [6, 6] and s["robot"]["task"] == TASK
    assert (tmp_path / "out" / "summary.json").is_file() and (tmp_path / "rec.hdf5").is_file()
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        bad = compose("deploy", overrides=[f"checkpoint={policy_dir}", "task=robotrl/TwoPaths-v0", "progress=false"])
    with pytest.raises(RobotConfigError, match="outputs 4; the robot config does not fit this policy"):
        deploy(bad)
