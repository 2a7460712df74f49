"""``robotrl-deploy``: run a trained policy on a robot (real or simulated) behind the safety layer.

    robotrl-deploy checkpoint=runs/armlift-bc-s0 robot=sim_ros n_episodes=20
    robotrl-deploy checkpoint=... robot=my_arm dry_run=true

Order of checks, all before any command is sent: the checkpoint loads; the robot config is valid
and its action map covers exactly the policy's action; the robot connects (master / server
reachable, topic types right, joint names present, messages arriving); its observations have the
policy's keys and shapes. Then the runner drives it at ``robot.control_rate_hz`` with a progress
bar (rate, jitter, safety events) and prints a summary (also ``<out_dir>/summary.json``; every
safety event in ``<out_dir>/safety_events.jsonl``).
"""
from __future__ import annotations

import json
import logging
import os
import sys
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("MUJOCO_GL", "egl")

import hydra  # noqa: E402
from omegaconf import DictConfig, OmegaConf  # noqa: E402

from robotrl.cli import CONF_DIR  # noqa: E402

log = logging.getLogger("robotrl.deploy")


def resolve_checkpoint(path: str | os.PathLike) -> tuple[Path, dict[str, Any] | None]:
    """(policy dir, the training run's config or None) for a run dir or a policy dir."""
    p = Path(path)
    if (p / "checkpoints" / "policy" / "config.json").is_file():
        run_dir, policy_dir = p, p / "checkpoints" / "policy"
    elif (p / "config.json").is_file() and (p / "model.safetensors").is_file():
        policy_dir = p
        run_dir = p.parent.parent if p.parent.name == "checkpoints" else None
    else:
        raise FileNotFoundError(
            f"checkpoint={path}: neither a run dir (with checkpoints/policy/config.json) nor a policy dir "
            "(config.json + model.safetensors)"
        )
    run_cfg = None
    if run_dir is not None and (run_dir / "config.json").is_file():
        run_cfg = json.loads((run_dir / "config.json").read_text())
    return policy_dir, run_cfg


def build(cfg: DictConfig | dict[str, Any]) -> tuple[Any, Any, Any, dict[str, Any], Path]:
    """Policy, SafeRobot (not connected), RunnerConfig, env args and output dir from a deploy config."""
    from robotrl.hw import RunnerConfig, SafeRobot, SafetyConfig, make_robot, robot_config_from
    from robotrl.hw.robot import RobotConfigError
    from robotrl.policies import load_policy
    from robotrl.policies.base import is_image_key

    c = OmegaConf.to_container(cfg, resolve=True) if isinstance(cfg, DictConfig) else dict(cfg)
    policy_dir, run_cfg = resolve_checkpoint(c["checkpoint"])
    policy = load_policy(policy_dir)
    policy.eval()
    rc = robot_config_from(c["robot"])
    simulated = rc.type == "sim" or bool(rc.sim_node.get("launch"))
    env_args: dict[str, Any] = {}
    if simulated:
        env = dict((run_cfg or {}).get("env") or {})
        env.pop("name", None)
        task = c.get("task") or rc.task or (rc.env or {}).get("id") or env.get("id")
        if not task:
            raise RobotConfigError(
                f"simulated robot {rc.name!r}: no task; pass task=robotrl/ArmLift-v0 (the checkpoint has no run config)"
            )
        if task != env.get("id"):  # the training env is another task: keep only its image size
            env = {k: v for k, v in env.items() if k == "image_size"}
        env.update(rc.env or {})  # the robot config's overrides (max_episode_steps, kwargs ...)
        env["id"] = task
        if any(is_image_key(k) for k in policy.config.obs_keys):
            env["image"] = True
        rc.task, rc.env = task, env
        env_args = {"env_name": task, "type": "robotrl", "env_kwargs": env}
    robot = make_robot(rc)
    if robot.action_map.action_dim != policy.action_dim:
        raise RobotConfigError(
            f"robot {rc.name!r}: joints {robot.joint_names} with action_map index {robot.action_map.index} read "
            f"{robot.action_map.action_dim} action entries, but the policy at {policy_dir} outputs {policy.action_dim}; "
            "the robot config does not fit this policy"
        )
    safety = SafetyConfig.from_dict({**dict(c.get("safety") or {}), "dry_run": bool(c.get("dry_run", False))})
    safe = SafeRobot(robot, safety)
    out_dir = c.get("out_dir")
    if out_dir is None:
        base = policy_dir.parent.parent if policy_dir.parent.name == "checkpoints" else policy_dir
        out_dir = base / "deploy" / time.strftime("%Y%m%d-%H%M%S")
    rcfg = RunnerConfig(
        n_episodes=int(c.get("n_episodes", 1)),
        max_steps=c.get("max_steps"),
        seed=c.get("seed", 100_000),
        background_inference=bool(c.get("background_inference", False)),
        prefetch_steps=None if c.get("prefetch_steps") is None else int(c["prefetch_steps"]),
        align_chunks=bool(c.get("align_chunks", True)),
        on_watchdog=str(c.get("on_watchdog", "hold")),
        stop_on_success=bool(c.get("stop_on_success", True)),
        record_path=c.get("record"),
        progress=bool(c.get("progress", True)),
    )
    return policy, safe, rcfg, env_args, Path(out_dir)


def format_summary(s: dict[str, Any]) -> str:
    loop, safety = s["loop"], s["safety"]
    sr = "n/a (the robot reports no outcome)" if s["success_rate"] is None else f"{s['success_rate']:.3f}"
    lines = [
        "=" * 64,
        "robotrl-deploy summary" + ("  [DRY RUN: nothing was sent]" if safety.get("dry_run") else ""),
        f"  episodes          {s['episodes']}  ended by {dict((k, s['ended_by'].count(k)) for k in set(s['ended_by']))}",
        f"  success rate      {sr}",
        f"  control rate      {loop['achieved_hz']} Hz (target {loop['target_hz']}), {loop['steps']} steps, {loop['overruns']} overruns",
        f"  loop jitter       p50 {loop['jitter_ms_p50']} ms, p99 {loop['jitter_ms_p99']} ms, max {loop['jitter_ms_max']} ms",
        f"  send jitter       p50 {loop['send_jitter_ms_p50']} ms, p99 {loop['send_jitter_ms_p99']} ms",
        f"  inference         p50 {loop['inference_ms_p50']} ms, p99 {loop['inference_ms_p99']} ms "
        f"({loop['inference_count']} chunks, background={s['background_inference']})",
        f"  safety events     {safety['counts'] or 'none'}",
        f"  e-stop            {safety['estop'] or 'not triggered'}",
    ]
    if s.get("record_path"):
        lines.append(f"  recorded to       {s['record_path']}")
    lines.append("=" * 64)
    return "\n".join(lines)


def deploy(cfg: DictConfig | dict[str, Any]) -> dict[str, Any]:
    """Build, check, connect, run, disconnect; return the summary (also written to out_dir)."""
    import torch

    from robotrl.hw import Runner
    from robotrl.utils.atomic import atomic_path

    c = OmegaConf.to_container(cfg, resolve=True) if isinstance(cfg, DictConfig) else dict(cfg)
    torch.set_num_threads(int(c.get("num_threads", 1) or 1))
    logging.getLogger("robotrl.hw").setLevel(getattr(logging, str(c.get("log_level", "WARNING")).upper()))
    if not logging.getLogger().handlers:
        logging.basicConfig(format="%(levelname)s %(name)s: %(message)s")
    policy, safe, rcfg, env_args, out_dir = build(c)
    sc = safe.safety
    summary: dict[str, Any]
    safe.connect()
    try:
        runner = Runner(safe, policy, rcfg, env_args=env_args)
        runner.check()  # observation keys and shapes, before any command
        sources = ["api"]
        if sc.estop_signal and safe.estop_latch.install_signal(sc.estop_signal):
            sources.append(f"signal {sc.estop_signal} (kill -{sc.estop_signal[3:]} {os.getpid()})")
        if sc.estop_key and safe.estop_latch.start_key_listener():
            sources.append("key 'e'/space")
        if sc.estop_topic and safe.robot.config.ros.get("estop_topic"):
            sources.append(f"topic {safe.robot.config.ros['estop_topic']}")
        print(
            f"[robotrl-deploy] {safe.config.name} ({safe.config.type}) at {safe.config.control_rate_hz:g} Hz, "
            f"joints {safe.joint_names}; e-stop: {', '.join(sources)}" + ("; DRY RUN" if sc.dry_run else ""),
            flush=True,
        )
        summary = runner.run()
        summary["results"] = [r.as_dict() for r in runner.results]
        summary["checkpoint"] = str(c["checkpoint"])
        summary["robot"] = {"name": safe.config.name, "type": safe.config.type, "task": safe.config.task}
        out_dir.mkdir(parents=True, exist_ok=True)
        with atomic_path(out_dir / "summary.json") as tmp:
            tmp.write_text(json.dumps(summary, indent=2, default=str))
        with atomic_path(out_dir / "safety_events.jsonl") as tmp:
            tmp.write_text("".join(json.dumps(e.as_dict()) + "\n" for e in safe.events))
        summary["out_dir"] = str(out_dir)
    finally:
        safe.disconnect()
    print(format_summary(summary), flush=True)
    print(f"[robotrl-deploy] summary: {out_dir / 'summary.json'}", flush=True)
    return summary


@hydra.main(config_path=CONF_DIR, config_name="deploy", version_base="1.3")
def main(cfg: DictConfig) -> None:
    from robotrl.hw.robot import RobotConfigError, RobotConnectionError

    try:
        deploy(cfg)
    except (RobotConfigError, RobotConnectionError, FileNotFoundError) as e:
        print(f"[robotrl-deploy] error: {e}", file=sys.stderr, flush=True)
        sys.exit(2)


if __name__ == "__main__":
    main()
