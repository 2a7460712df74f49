"""The d3rlpy peer of ``bench/sac_online.py``: d3rlpy's SAC trained online on a gymnasium MuJoCo task.

Runs with the python of the d3rlpy virtual environment (``bash scripts/install_d3rlpy.sh``), NOT
robotrl's (d3rlpy pins gymnasium 1.0); it must not import robotrl.

    .venv-d3rlpy/bin/python bench/d3rlpy_sac_runner.py --env-id Hopper-v5 --steps 30000 --eval-every 5000

d3rlpy's ``SACConfig`` defaults (lr 3e-4 everywhere, batch 256, 2 critics, tau 0.005, initial
temperature 1.0, 256x256 MLPs), ``fit_online`` with ``--start-steps`` uniform-random steps before the
first update, one update per env step. Every ``--eval-every`` env steps: ``--episodes`` deterministic
episodes, episode ``i`` reset with seed ``10000 + step + i`` (the protocol of robotrl's SAC snapshots).
Prints one JSON line (the last line of stdout): ``{"curve": [[step, mean_return], ...], ...}``.
"""
from __future__ import annotations

import argparse
import json
import os
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")


def parser(add_help: bool = True) -> argparse.ArgumentParser:
    """The run's options; ``bench/sac_online.py`` takes the same ones (``parents=[parser(False)]``)."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0], add_help=add_help)
    p.add_argument("--env-id", default="Hopper-v5")
    p.add_argument("--steps", type=int, default=30000)
    p.add_argument("--start-steps", type=int, default=5000)
    p.add_argument("--eval-every", type=int, default=5000)
    p.add_argument("--episodes", type=int, default=5)
    p.add_argument("--seed", type=int, default=0)
    return p


def main() -> None:
    a = parser().parse_args()

    import d3rlpy
    import gymnasium as gym
    import numpy as np
    import torch
    from d3rlpy_runner import evaluate  # same folder (the script's own directory is on sys.path)

    torch.set_num_threads(1)
    d3rlpy.seed(a.seed)
    env = gym.make(a.env_id, max_episode_steps=1000)
    env.reset(seed=a.seed)
    env.action_space.seed(a.seed)  # d3rlpy's random warm-up steps sample from it
    sac = d3rlpy.algos.SACConfig(batch_size=256).create(device="cpu:0")
    buf = d3rlpy.dataset.create_fifo_replay_buffer(limit=a.steps, env=env)
    curve: list[list[float]] = []

    def callback(algo, epoch: int, total_step: int) -> None:
        if total_step % a.eval_every == 0:
            curve.append([total_step, float(np.mean(evaluate(algo, a.env_id, a.episodes, seed=10_000 + total_step)))])
            print(f"[d3rlpy sac] {a.env_id} step {total_step}: return {curve[-1][1]:.0f}", flush=True)

    t0 = time.time()
    sac.fit_online(env, buf, n_steps=a.steps, n_steps_per_epoch=a.steps, update_start_step=a.start_steps,
                   random_steps=a.start_steps, show_progress=False, save_interval=10**9,
                   logger_adapter=d3rlpy.logging.NoopAdapterFactory(), callback=callback)
    print(json.dumps({"d3rlpy": d3rlpy.__version__, "env_id": a.env_id, "steps": a.steps, "seed": a.seed,
                      "curve": curve, "wall_s": time.time() - t0}))


if __name__ == "__main__":
    main()
