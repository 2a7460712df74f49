"""Bundled tasks: scripted-expert success and BC success, per task (the README's task table).

    python -m bench.bundled            # 100 demos, 5000 BC steps, 50 eval episodes per task
    python -m bench.bundled --quick    # 30 demos, 1500 steps, 20 episodes

For each bundled task: collect demonstrations with the scripted expert (seeds 0..), report the
expert's success over its attempts and over 50 fresh seeded episodes, train BC (``policy=bc``) through
the same trainer as ``robotrl-train`` and evaluate it on held-out seeds (100000..). The peer column is
the scripted expert itself.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("MUJOCO_GL", "egl")

from bench.common import row, write_result  # noqa: E402

TASKS = {"pusht": "robotrl/PushT-v0", "twopaths": "robotrl/TwoPaths-v0", "armlift": "robotrl/ArmLift-v0"}


def expert_success(env_id: str, n: int, seed: int = 100_000) -> float:
    from robotrl.engine.collect import rollout_expert
    from robotrl.envs import make_env
    from robotrl.envs.experts import make_expert

    env = make_env({"id": env_id})
    expert = make_expert(env_id, seed=0)
    ok = sum(rollout_expert(env, expert, seed=seed + i)[1] for i in range(n))
    env.close()
    return ok / n


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--tasks", nargs="*", default=list(TASKS))
    ap.add_argument("--out", default=None, help="work folder (default: a temp dir)")
    args = ap.parse_args(argv)
    demos, steps, episodes = (30, 1500, 20) if args.quick else (100, 5000, 50)
    work = Path(args.out or tempfile.mkdtemp(prefix="bench_bundled_"))
    from omegaconf import OmegaConf

    from robotrl.engine.policy_trainer import train_policy

    rows = []
    for name in args.tasks:
        env_id = TASKS[name]
        t0 = time.time()
        exp = expert_success(env_id, episodes)
        with open(Path(__file__).resolve().parents[1] / "conf" / "train.yaml") as fh:
            base = OmegaConf.load(fh)
        cfg = OmegaConf.merge(
            {k: v for k, v in OmegaConf.to_container(base, resolve=False).items() if k not in ("defaults", "hydra")},
            {
                "env": OmegaConf.load(Path(__file__).resolve().parents[1] / "conf" / "env" / f"{name}.yaml"),
                "policy": OmegaConf.load(Path(__file__).resolve().parents[1] / "conf" / "policy" / "bc.yaml"),
                "dataset": OmegaConf.load(Path(__file__).resolve().parents[1] / "conf" / "dataset" / "demos.yaml"),
            },
            {
                "run_dir": str(work / f"{name}-bc"),
                "progress": False,
                "dataset": {"path": str(work / f"{name}.hdf5"), "collect": {"n_episodes": demos}},
                "train": {"steps": steps, "eval_every": 0},
                "eval": {"n_episodes": episodes, "video": False},
            },
        )
        out = train_policy(cfg)
        print(f"{name}: expert {exp:.2f}, BC {out['success_rate']:.2f} ({time.time() - t0:.0f} s)", flush=True)
        rows.append(row(f"{env_id} expert", "success_rate", exp, peer=None, goal=">= 0.95", met=exp >= 0.95,
                        episodes=episodes, seeds=1))
        rows.append(row(f"{env_id} BC ({demos} demos, {steps} steps)", "success_rate", out["success_rate"],
                        peer="scripted expert", peer_value=exp, episodes=episodes, seeds=1))
    cmd = "python -m bench.bundled" + (" --quick" if args.quick else "")
    path = write_result("bundled", cmd, rows, args.quick)
    print(json.dumps(rows, indent=1))
    print(f"wrote {path}")


if __name__ == "__main__":
    sys.exit(main())
