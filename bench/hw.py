"""Hardware layer: deployment over a real ROS master vs direct evaluation, and control-loop timing.

    python -m bench.hw            # 100 demos, 5000 BC steps, 50 episodes each way, 60 s timing runs
    python -m bench.hw --quick    # 50 demos, 2000 steps, 20 episodes each way, 20 s timing runs

1. Train BC on ``robotrl/ArmLift-v0`` with ``robotrl-train`` (bounded steps).
2. Direct evaluation (``robotrl.engine.evaluation.evaluate``) on seeds 100000..100000+N-1.
3. Start a real ``roscore`` (loopback, free port); ``robotrl-deploy robot=sim_ros`` launches the
   simulated robot as a separate ROS node and runs the same N seeds through the master at 10 Hz
   behind the safety layer. Goal: success within 10 points of direct evaluation.
4. Timing at 20 Hz over the ROS master (``robotrl-deploy``, one long episode per run): loop-period
   jitter p99 and inference latency, with and without background inference, for the trained BC
   policy and for a diffusion policy (UNet, DDIM 10 steps; untrained weights: timing only).
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("MUJOCO_GL", "egl")

from bench.common import row, write_result  # noqa: E402

TASK = "robotrl/ArmLift-v0"
ROOT = Path(__file__).resolve().parents[1]


def _bin(name: str) -> list[str]:
    exe = Path(sys.executable).parent / name
    if exe.exists():
        return [str(exe)]
    module = {"robotrl-train": "robotrl.cli.train", "robotrl-deploy": "robotrl.cli.deploy"}[name]
    return [sys.executable, "-m", module]


def _run(cmd: list[str], timeout: float, env: dict[str, str] | None = None) -> str:
    print("[bench.hw] $", " ".join(cmd), flush=True)
    t = time.time()
    p = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)
    if p.returncode != 0:
        raise RuntimeError(f"command failed ({p.returncode}): {' '.join(cmd)}\n{p.stdout[-3000:]}\n{p.stderr[-3000:]}")
    print(f"[bench.hw]   done in {time.time() - t:.0f} s", flush=True)
    return p.stdout


def diffusion_policy_dir(work: Path, run_dir: Path) -> Path:
    """An untrained diffusion policy with the BC policy's shapes and normaliser (timing only)."""
    from robotrl.data.io import load_dataset
    from robotrl.policies import load_policy, make_policy

    bc = load_policy(run_dir / "checkpoints" / "policy")
    p = make_policy({"type": "diffusion", "obs_keys": list(bc.config.obs_keys), "n_obs_steps": bc.config.n_obs_steps,
                     "horizon": 16, "n_action_steps": 8, "sampler": "ddim", "num_inference_steps": 10}, bc.shape_meta)
    p.fit_normalizer(load_dataset(work / "armlift_demos.hdf5"))
    out = work / "diffusion_timing" / "policy"
    p.save_pretrained(out)
    return out


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--out", default=None, help="work folder (default: a temp dir)")
    ap.add_argument("--skip-timing", action="store_true")
    args = ap.parse_args(argv)
    demos, steps, episodes, timing_s = (50, 2000, 20, 20) if args.quick else (100, 5000, 50, 60)
    work = Path(args.out or tempfile.mkdtemp(prefix="bench_hw_")).resolve()
    work.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, OMP_NUM_THREADS="1", MUJOCO_GL="egl")
    run_dir = work / "armlift-bc"
    notes = []

    # 1. train ----------------------------------------------------------------------------
    if not (run_dir / "checkpoints" / "policy" / "config.json").is_file():
        _run(_bin("robotrl-train") + [
            "env=armlift", "policy=bc", f"run_dir={run_dir}", f"dataset.path={work / 'armlift_demos.hdf5'}",
            f"dataset.collect.n_episodes={demos}", f"train.steps={steps}", f"train.eval_every={steps}",
            "eval.n_episodes=10", "eval.video=false", "progress=false", "num_threads=2",
        ], timeout=3600, env=env)

    # 2. direct evaluation -----------------------------------------------------------------
    import numpy as np
    import torch

    from robotrl.engine.evaluation import evaluate
    from robotrl.hw.ros1 import RosMaster
    from robotrl.policies import load_policy

    torch.set_num_threads(1)
    policy = load_policy(run_dir / "checkpoints" / "policy")
    t = time.time()
    direct = evaluate(policy, {"id": TASK}, n_episodes=episodes, num_envs=5, seed=100_000, progress=False)
    print(f"[bench.hw] direct evaluation: {direct['success_rate']:.3f} over {episodes} episodes ({time.time() - t:.0f} s)")

    rows = []
    with RosMaster() as master:
        common = [f"checkpoint={run_dir}", "robot=sim_ros", f"robot.ros.master_uri={master.uri}",
                  "robot.ros.start_master=false", "progress=false", "safety.estop_key=false"]
        # 3. deployment over the ROS master -------------------------------------------------
        out = work / "deploy_parity"
        _run(_bin("robotrl-deploy") + common + [
            f"n_episodes={episodes}", "seed=100000", f"out_dir={out}", f"record={work / 'deployed.hdf5'}",
        ], timeout=3600, env=env)
        dep = json.loads((out / "summary.json").read_text())
        d_succ = np.asarray(direct["successes"], dtype=bool)
        p_succ = np.asarray(dep["successes"], dtype=bool)
        agree = int((d_succ == p_succ).sum())
        gap = abs(dep["success_rate"] - direct["success_rate"])
        rows.append(row(
            f"ArmLift BC ({steps} steps, {demos} demos): robotrl-deploy robot=sim_ros over roscore, 10 Hz",
            "success_rate", dep["success_rate"], "direct evaluation (robotrl.engine.evaluate)", direct["success_rate"],
            goal="within 10 points of direct evaluation", met=bool(gap <= 0.10 + 1e-9),
            episodes=episodes, seeds=1, same_outcome_episodes=agree,
            safety_events=dep["safety"]["counts"], loop_jitter_ms_p99=dep["loop"]["jitter_ms_p99"],
        ))
        notes.append(f"per-episode outcome identical on {agree}/{episodes} seeds; safety events {dep['safety']['counts'] or 'none'}")

        # 4. timing at 20 Hz ----------------------------------------------------------------
        if not args.skip_timing:
            diff_dir = diffusion_policy_dir(work, run_dir)
            n = int(timing_s * 20)
            long_ep = (f"robot.env={{max_episode_steps:{n + 50},kwargs:{{terminate_on_success:false}}}}")
            for name, ckpt in (("BC", run_dir), ("diffusion UNet DDIM-10 (untrained, timing only)", diff_dir)):
                for bg in (False, True):
                    out = work / f"timing_{'diff' if ckpt == diff_dir else 'bc'}_{'bg' if bg else 'sync'}"
                    _run(_bin("robotrl-deploy") + [c for c in common if not c.startswith("checkpoint=")] + [
                        f"checkpoint={ckpt}", f"task={TASK}", "robot.control_rate_hz=20",
                        long_ep, "stop_on_success=false", "n_episodes=1", f"max_steps={n}",
                        f"background_inference={str(bg).lower()}", f"out_dir={out}",
                    ], timeout=timing_s * 4 + 300, env=env)
                    s = json.loads((out / "summary.json").read_text())["loop"]
                    case = f"20 Hz x {timing_s} s over roscore, {name}, {'background' if bg else 'inline'} inference"
                    rows.append(row(case, "loop period jitter p99 (ms)", s["jitter_ms_p99"], goal="< 5 ms (10% of the period)",
                                    met=bool(s["jitter_ms_p99"] is not None and s["jitter_ms_p99"] < 5.0),
                                    send_jitter_ms_p99=s["send_jitter_ms_p99"], achieved_hz=s["achieved_hz"],
                                    overruns=s["overruns"], steps=s["steps"]))
                    rows.append(row(case, "inference latency p50 / p99 (ms)", s["inference_ms_p99"],
                                    inference_ms_p50=s["inference_ms_p50"], inference_ms_p99=s["inference_ms_p99"],
                                    chunks=s["inference_count"]))
    notes.append("jitter = |tick-to-tick period - 50 ms|; send jitter = the same between commands leaving the runner "
                 "(inline inference delays the send of the tick that computes a chunk)")
    cmd = "python -m bench.hw" + (" --quick" if args.quick else "")
    path = write_result("hw", cmd, rows, args.quick, notes=notes)
    print(json.dumps(rows, indent=1))
    print(f"[bench.hw] wrote {path}")


if __name__ == "__main__":
    main()
