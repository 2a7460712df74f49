"""The fixed-rate control loop that drives a (safety-wrapped) robot with a policy.

Every tick (period ``1 / control_rate_hz``, scheduled on absolute times so errors do not
accumulate):

1. read the newest observation, check the watchdog (stale observation / late policy) and the
   e-stop, and read the task outcome where the robot reports one (simulated robots);
2. take the next action from the **action-chunk queue**. When the queue is empty the policy
   predicts a chunk (``policy.predict_chunk`` on the last ``n_obs_steps`` observations) — inline,
   or, with ``background_inference``, in a worker thread started ``prefetch_steps`` before the
   queue runs dry, its first ``(adoption step - observation step)`` actions dropped so the chunk
   stays aligned in time;
3. map the action to joint targets (``robot.action_map``), send it through the safety layer
   (which may clamp it, reject it or hold), and record what was actually sent.

Loop statistics: tick period and send period (their deviation from the nominal period is the
jitter), inference latency; p50 / p99 / max in :meth:`LoopStats.summary`.
"""
from __future__ import annotations

import concurrent.futures as cf
import dataclasses
import logging
import math
import sys
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

import numpy as np
import torch

from robotrl.hw.recorder import FLAG_BITS, EpisodeRecorder
from robotrl.hw.robot import RobotConfigError
from robotrl.hw.safety import SafeRobot

__all__ = ["RunnerConfig", "Runner", "LoopStats", "EpisodeResult"]

log = logging.getLogger("robotrl.hw.runner")


@dataclass
class RunnerConfig:
    """How episodes are run.

    Attributes:
        n_episodes: episodes to run.
        max_steps: control steps per episode (``None``: until the robot reports the episode over;
            a robot that reports nothing then runs 300 steps).
        seed: episode ``i`` resets the (simulated) scene with ``seed + i``.
        background_inference: predict the next chunk in a worker thread while this one executes.
        prefetch_steps: with background inference, start it when this many actions are left
            (``None``: 1 + the recent worst inference latency in control periods, at least 2).
        align_chunks: drop the actions of a background chunk whose time has already passed.
        stop_on_success: end an episode when the robot reports success.
        on_watchdog: ``hold`` (keep holding while tripped) or ``stop`` (end the episode).
        record_path: robomimic HDF5 file to append each episode to (``None``: no recording).
        progress: show a progress bar with rate, jitter and safety events.
        reset_timeout_s: how long ``reset_episode`` may take.
        settle_steps: control periods to wait after a reset before the first command.
    """

    n_episodes: int = 1
    max_steps: int | None = None
    seed: int = 100_000
    background_inference: bool = False
    prefetch_steps: int | None = None
    align_chunks: bool = True
    stop_on_success: bool = True
    on_watchdog: str = "hold"
    record_path: str | None = None
    progress: bool = True
    reset_timeout_s: float = 30.0
    settle_steps: int = 0

    @classmethod
    def from_dict(cls, d: Mapping[str, Any] | None) -> "RunnerConfig":
        d = dict(d or {})
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise RobotConfigError(f"runner: unknown key(s) {unknown}; known: {sorted(names)}")
        out = cls(**d)
        if out.on_watchdog not in ("hold", "stop"):
            raise RobotConfigError(f"runner.on_watchdog must be 'hold' or 'stop', got {out.on_watchdog!r}")
        return out


def _pct(x: list[float], q: float) -> float | None:
    return float(np.percentile(np.asarray(x), q)) if x else None


@dataclass
class LoopStats:
    """Timing of the control loop (seconds)."""

    period: float
    tick_periods: list[float] = field(default_factory=list)
    send_periods: list[float] = field(default_factory=list)
    inference: list[float] = field(default_factory=list)
    overruns: int = 0
    steps: int = 0

    def summary(self) -> dict[str, Any]:
        tick_j = [abs(p - self.period) for p in self.tick_periods]
        send_j = [abs(p - self.period) for p in self.send_periods]
        ms = lambda v: None if v is None else round(1e3 * v, 3)  # noqa: E731
        mean_p = float(np.mean(self.tick_periods)) if self.tick_periods else None
        return {
            "steps": self.steps,
            "target_hz": round(1.0 / self.period, 3),
            "achieved_hz": None if not mean_p else round(1.0 / mean_p, 3),
            "period_ms_p50": ms(_pct(self.tick_periods, 50)),
            "period_ms_p99": ms(_pct(self.tick_periods, 99)),
            "jitter_ms_p50": ms(_pct(tick_j, 50)),
            "jitter_ms_p99": ms(_pct(tick_j, 99)),
            "jitter_ms_max": ms(max(tick_j) if tick_j else None),
            "send_jitter_ms_p50": ms(_pct(send_j, 50)),
            "send_jitter_ms_p99": ms(_pct(send_j, 99)),
            "send_jitter_ms_max": ms(max(send_j) if send_j else None),
            "inference_ms_p50": ms(_pct(self.inference, 50)),
            "inference_ms_p99": ms(_pct(self.inference, 99)),
            "inference_count": len(self.inference),
            "overruns": self.overruns,
        }


@dataclass
class EpisodeResult:
    index: int
    seed: int | None
    steps: int
    success: bool | None
    ret: float | None
    ended_by: str  # success | done | max_steps | estop | watchdog | interrupted
    safety_counts: dict[str, int]

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


class Runner:
    """Runs a policy on a :class:`SafeRobot` at the robot's control rate."""

    def __init__(
        self,
        robot: SafeRobot,
        policy: Any,
        config: RunnerConfig | None = None,
        env_args: Mapping[str, Any] | None = None,
        on_step: Callable[[dict[str, Any]], None] | None = None,
    ) -> None:
        if not isinstance(robot, SafeRobot):
            raise TypeError("Runner drives a SafeRobot (wrap the robot: SafeRobot(robot, SafetyConfig(...)))")
        self.robot = robot
        self.policy = policy
        self.cfg = config or RunnerConfig()
        self.period = robot.config.period
        self.obs_keys = list(policy.config.obs_keys)
        self.n_obs = int(policy.config.n_obs_steps)
        self.stats = LoopStats(self.period)
        self.results: list[EpisodeResult] = []
        self.on_step = on_step
        self.env_args = dict(env_args or {})
        self.recorder = EpisodeRecorder(self.cfg.record_path, self.env_args) if self.cfg.record_path else None
        self._pool: cf.ThreadPoolExecutor | None = None
        self.interrupted = False
        self.step_log: list[dict[str, Any]] = []  # per-tick timing/status of the last episode

    # ------------------------------------------------------------------ checks
    def check(self) -> None:
        """Robot vs policy: action size, observation keys and shapes (before any command)."""
        self.robot.check_policy(self.policy.shape_meta, self.obs_keys)

    # ------------------------------------------------------------------ inference
    def _infer(self, hist: dict[str, np.ndarray], step: int) -> tuple[np.ndarray, int, float]:
        t0 = time.perf_counter()
        with torch.no_grad():
            chunk = self.policy.predict_chunk({k: v[None] for k, v in hist.items()})
        chunk = chunk.detach().cpu().numpy()[0].astype(np.float64)
        return chunk, step, time.perf_counter() - t0

    def _prefetch(self) -> int:
        if self.cfg.prefetch_steps is not None:
            return int(self.cfg.prefetch_steps)
        recent = self.stats.inference[-20:]
        worst = max(recent) if recent else self.period
        return max(2, 1 + math.ceil(worst / self.period))

    def _stack(self, history: deque) -> dict[str, np.ndarray]:
        return {k: np.stack([h[k] for h in history]) for k in self.obs_keys}

    # ------------------------------------------------------------------ episodes
    def run(self) -> dict[str, Any]:
        """Run ``n_episodes`` (connect first); return the summary."""
        self.check()
        self.policy.eval()
        switch = sys.getswitchinterval()
        if self.cfg.background_inference:
            self._pool = cf.ThreadPoolExecutor(max_workers=1, thread_name_prefix="robotrl-infer")
            # the loop thread gets the GIL back within ~1 ms of waking instead of 5 ms
            sys.setswitchinterval(0.001)
        try:
            for i in range(int(self.cfg.n_episodes)):
                if self.robot.stopped or self.interrupted:
                    break
                self.results.append(self.run_episode(i))
        except KeyboardInterrupt:
            self.interrupted = True
            log.warning("interrupted: holding position")
            try:
                self.robot.hold("interrupted (Ctrl-C)")
            except Exception:  # noqa: BLE001 - best effort on the way out
                pass
        finally:
            if self._pool is not None:
                self._pool.shutdown(wait=True)
                self._pool = None
            sys.setswitchinterval(switch)
        return self.summary()

    def run_episode(self, index: int) -> EpisodeResult:
        cfg, robot = self.cfg, self.robot
        seed = None if cfg.seed is None else int(cfg.seed) + index
        robot.reset_episode(seed, cfg.reset_timeout_s)
        counts_before = dict(robot.counts)
        for _ in range(int(cfg.settle_steps)):
            time.sleep(self.period)
        max_steps = cfg.max_steps
        reports = bool(robot.episode_info())
        if max_steps is None:
            max_steps = 10**9 if reports else 300
        history: deque = deque(maxlen=self.n_obs)
        queue: deque = deque()
        future: cf.Future | None = None
        policy_wait_since: float | None = None
        ended_by = "max_steps"
        self.step_log = []
        pbar = None
        if cfg.progress:
            from tqdm.auto import tqdm

            pbar = tqdm(total=None if max_steps >= 10**9 else max_steps, desc=f"episode {index}", leave=False, unit="step")
        t0 = time.monotonic()
        next_t = t0
        last_tick = last_send = None
        step = 0
        info: dict[str, Any] = {}
        try:
            while True:
                # ---------------------------------------------------------- wait for the tick
                now = time.monotonic()
                if next_t > now:
                    time.sleep(next_t - now)
                tick = time.monotonic()
                if last_tick is not None:
                    self.stats.tick_periods.append(tick - last_tick)
                last_tick = tick
                next_t += self.period
                if tick - next_t > self.period:  # fell more than a period behind: skip, do not burst
                    self.stats.overruns += 1
                    next_t = tick + self.period

                # ---------------------------------------------------------- observe
                obs = robot.get_observation()
                info = robot.episode_info()
                if step > 0 and self.recorder is not None and info:
                    self.recorder.set_last("reward", info.get("reward", 0.0))
                    self.recorder.set_last("terminated", info.get("terminated", False))
                    self.recorder.set_last("truncated", info.get("truncated", False))
                if info and step > 0:
                    if cfg.stop_on_success and info.get("is_success"):
                        ended_by = "success"
                        break
                    if info.get("terminated") or info.get("truncated"):
                        ended_by = "done"
                        break
                if robot.stopped:
                    robot.send_action(robot.hold_target())  # latched: the safety layer holds
                    ended_by = "estop"
                    break
                if step >= max_steps:
                    break
                frame = {k: np.asarray(obs[k]) for k in self.obs_keys}
                history.append(frame)
                while len(history) < self.n_obs:
                    history.append(frame)
                joint_pos = np.asarray(obs["joint_pos"], dtype=np.float64)

                # ---------------------------------------------------------- next action
                action = None
                if queue:
                    action = queue.popleft()
                elif self._pool is None:
                    chunk, _, dt = self._infer(self._stack(history), step)
                    self.stats.inference.append(dt)
                    queue.extend(chunk)
                    action = queue.popleft()
                else:
                    if future is None:
                        future = self._pool.submit(self._infer, self._stack(history), step)
                    try:
                        chunk, s0, dt = future.result(timeout=0.5 * self.period if step > 0 else 60.0)
                    except cf.TimeoutError:
                        chunk = None
                    if chunk is not None:
                        future = None
                        self.stats.inference.append(dt)
                        drop = min(step - s0, len(chunk) - 1) if cfg.align_chunks else 0
                        queue.extend(chunk[drop:])
                        action = queue.popleft()
                if self._pool is not None and future is None and len(queue) <= self._prefetch():
                    future = self._pool.submit(self._infer, self._stack(history), step)
                if action is None:
                    policy_wait_since = policy_wait_since or tick
                else:
                    policy_wait_since = None
                waiting = 0.0 if policy_wait_since is None else tick - policy_wait_since
                n_before = sum(robot.counts.values())
                kinds_before = dict(robot.counts)
                wd = robot.check_watchdog(tick, waiting)

                # ---------------------------------------------------------- command
                if wd is not None:
                    if cfg.on_watchdog == "stop":
                        robot.hold(wd, log_event=False)
                        ended_by = "watchdog"
                        break
                    sent = robot.hold(wd, log_event=False)
                elif action is None:
                    sent = None  # waiting for the first chunk within the deadline: no new command
                else:
                    target = robot.action_map.to_target(action, joint_pos)
                    sent = robot.send_action(target)
                t_send = time.monotonic()
                if sent is not None:
                    if last_send is not None:
                        self.stats.send_periods.append(t_send - last_send)
                    last_send = t_send
                self.stats.steps += 1
                flags = 0
                for kind, n in robot.counts.items():
                    if n > kinds_before.get(kind, 0):
                        flags |= FLAG_BITS.get(kind, 0)
                if wd is not None or (sent is not None and robot.stopped):
                    flags |= FLAG_BITS["hold"]
                if robot.safety.dry_run:
                    flags |= FLAG_BITS["dry_run"]
                entry = {
                    "step": step, "tick": tick - t0, "obs_time": float(obs["timestamp"]) - t0,
                    "send": t_send - t0, "sent": None if sent is None else np.asarray(sent).copy(),
                    "action": None if action is None else np.asarray(action).copy(), "watchdog": wd,
                    "flags": flags, "new_events": sum(robot.counts.values()) - n_before,
                }
                self.step_log.append(entry)
                if self.on_step is not None:
                    self.on_step(entry)
                if self.recorder is not None and sent is not None:
                    rec = {f"obs/{k}": frame[k] for k in self.obs_keys}
                    rec["obs/joint_pos"] = joint_pos
                    rec["obs/joint_vel"] = np.asarray(obs["joint_vel"], dtype=np.float64)
                    rec["action"] = robot.action_map.to_action(sent, joint_pos).astype(np.float32)
                    rec["joint_target"] = np.asarray(sent, dtype=np.float64)
                    pa = np.full(robot.action_map.action_dim, np.nan) if action is None else action
                    rec["policy_action"] = np.asarray(pa, dtype=np.float32)
                    rec["safety_flags"] = np.int64(flags)
                    rec["timestamp"] = tick - t0
                    rec["obs_timestamp"] = float(obs["timestamp"]) - t0
                    rec["send_timestamp"] = t_send - t0
                    rec["reward"] = 0.0
                    rec["terminated"] = False
                    rec["truncated"] = False
                    self.recorder.add_step(rec)
                step += 1
                if pbar is not None:
                    pbar.update(1)
                    if step % 5 == 0:
                        s = self.stats
                        recent = s.tick_periods[-20:]
                        hz = 1.0 / float(np.mean(recent)) if recent else 0.0
                        jit = 1e3 * max((abs(p - self.period) for p in recent), default=0.0)
                        pbar.set_postfix(hz=f"{hz:.1f}", jitter_ms=f"{jit:.1f}", safety=sum(robot.counts.values()),
                                         estop="LATCHED" if robot.stopped else "no")
            if ended_by == "max_steps" and reports:  # the outcome of the last command
                time.sleep(self.period)
                info = robot.episode_info()
                if self.recorder is not None and info:
                    self.recorder.set_last("reward", info.get("reward", 0.0))
                    self.recorder.set_last("terminated", info.get("terminated", False))
                    self.recorder.set_last("truncated", True)
        except KeyboardInterrupt:
            ended_by = "interrupted"
            self.interrupted = True
            robot.hold("interrupted (Ctrl-C)")
        finally:
            if pbar is not None:
                pbar.close()
            if future is not None:
                future.cancel()
        counts = {k: v - counts_before.get(k, 0) for k, v in robot.counts.items() if v - counts_before.get(k, 0)}
        success = bool(info.get("is_success")) if info else None
        res = EpisodeResult(index, seed, step, success, info.get("return") if info else None, ended_by, counts)
        if self.recorder is not None:
            self.recorder.end_episode({"seed": -1 if seed is None else seed, "success": bool(success), "ended_by": ended_by})
        log.info("episode %d: %s", index, res.as_dict())
        return res

    # ------------------------------------------------------------------ summary
    def summary(self) -> dict[str, Any]:
        succ = [r.success for r in self.results if r.success is not None]
        return {
            "episodes": len(self.results),
            "success_rate": float(np.mean(succ)) if succ else None,
            "successes": succ,
            "ended_by": [r.ended_by for r in self.results],
            "steps": [r.steps for r in self.results],
            "loop": self.stats.summary(),
            "safety": self.robot.summary(),
            "background_inference": bool(self.cfg.background_inference),
            "record_path": self.cfg.record_path,
            "interrupted": self.interrupted,
        }
