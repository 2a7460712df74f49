"""The d3rlpy peer of ``bench/offline.py``: train d3rlpy's IQL or TD3+BC on one D4RL-layout HDF5 file.

Runs with the python of the d3rlpy virtual environment (``bash scripts/install_d3rlpy.sh``), NOT
robotrl's: d3rlpy pins gymnasium 1.0. It must not import robotrl (that venv has none); it reads the
file with h5py only (``observations``, ``actions``, ``rewards``, ``terminals``, ``timeouts``; d3rlpy
derives next observations from the next row of an episode, so ``next_observations`` is not needed).

    .venv-d3rlpy/bin/python bench/d3rlpy_runner.py --algo iql --dataset data/d4rl/hopper-medium-v5.hdf5 \
        --steps 3000 --seed 0 --episodes 10 --ref-min -20.272305 --ref-max 3234.3

Hyper-parameters: d3rlpy's config defaults plus the settings of its ``reproductions/offline`` scripts
(the papers'): IQL with expectile 0.7, temperature 3, max weight 100, rewards scaled by
``1000 / (max return - min return)`` and the actor's learning rate on a cosine decay over ``--steps``;
TD3+BC with alpha 2.5, policy noise 0.2 / clip 0.5, actor every 2 steps, standardised observations.
Batch 256, 256x256 MLPs, lr 3e-4 in both.

Gradient steps per second: d3rlpy's own ``fit`` loop (sampling + update + its metric bookkeeping), timed
from the first to the last per-step callback, so model building and scaler fitting are excluded; no
evaluation runs inside ``fit``. Evaluation: ``--episodes`` deterministic episodes of ``gymnasium.make(env)``
(``max_episode_steps`` 1000), episode ``i`` reset with seed ``--eval-seed + i`` (robotrl's protocol).
Prints one JSON line (the last line of stdout).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")

ALGOS = ("iql", "td3bc")


def load_d4rl(path: str) -> tuple[dict, dict]:
    """Arrays of a D4RL HDF5 file (float32 observations/actions/rewards, float32 flags) and its metadata."""
    import h5py
    import numpy as np

    with h5py.File(path, "r") as f:
        for k in ("observations", "actions", "rewards", "terminals"):
            if k not in f:
                raise SystemExit(f"{path}: not a D4RL HDF5 file (missing {k!r}; keys {sorted(f.keys())})")
        n = f["observations"].shape[0]
        data = {
            "observations": f["observations"][()].astype(np.float32),
            "actions": f["actions"][()].astype(np.float32),
            "rewards": f["rewards"][()].astype(np.float32).reshape(n),
            "terminals": f["terminals"][()].astype(bool).reshape(n),
            "timeouts": f["timeouts"][()].astype(bool).reshape(n) if "timeouts" in f else np.zeros(n, bool),
        }
        meta = {}
        if "metadata" in f:
            for k, ds in f["metadata"].items():
                v = ds[()]
                meta[k] = v.decode() if isinstance(v, bytes) else (v.item() if hasattr(v, "item") else v)
    # d3rlpy refuses a step flagged both terminal and timeout: the terminal wins (no bootstrap)
    data["timeouts"] &= ~data["terminals"]
    # a trailing step with neither flag (a file cut mid-episode) ends as a timeout
    if n and not (data["terminals"][-1] or data["timeouts"][-1]):
        data["timeouts"][-1] = True
    data["terminals"] = data["terminals"].astype(np.float32)
    data["timeouts"] = data["timeouts"].astype(np.float32)
    return data, meta


def make_algo(name: str, steps: int, device: str = "cpu:0"):
    import d3rlpy

    if name == "iql":
        cfg = d3rlpy.algos.IQLConfig(
            actor_learning_rate=3e-4,
            critic_learning_rate=3e-4,
            actor_optim_factory=d3rlpy.optimizers.AdamFactory(
                lr_scheduler_factory=d3rlpy.optimizers.CosineAnnealingLRFactory(T_max=max(1, steps))),
            batch_size=256,
            weight_temp=3.0,
            max_weight=100.0,
            expectile=0.7,
            reward_scaler=d3rlpy.preprocessing.ReturnBasedRewardScaler(multiplier=1000.0),
        )
    elif name == "td3bc":
        cfg = d3rlpy.algos.TD3PlusBCConfig(
            actor_learning_rate=3e-4,
            critic_learning_rate=3e-4,
            batch_size=256,
            target_smoothing_sigma=0.2,
            target_smoothing_clip=0.5,
            alpha=2.5,
            update_actor_interval=2,
            observation_scaler=d3rlpy.preprocessing.StandardObservationScaler(),
        )
    else:
        raise SystemExit(f"unknown --algo {name!r}; known: {ALGOS}")
    return cfg.create(device=device)


def evaluate(algo, env_id: str, episodes: int, seed: int, max_episode_steps: int = 1000) -> list[float]:
    import gymnasium as gym
    import numpy as np

    env = gym.make(env_id, max_episode_steps=max_episode_steps)
    returns = []
    for i in range(episodes):
        obs, _ = env.reset(seed=seed + i)
        ret, done = 0.0, False
        while not done:
            a = algo.predict(np.asarray(obs, np.float32)[None])[0]
            obs, r, term, trunc, _ = env.step(a)
            ret += float(r)
            done = term or trunc
        returns.append(ret)
    env.close()
    return returns


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--algo", required=True, choices=ALGOS)
    p.add_argument("--dataset", required=True, help="D4RL-layout HDF5 file")
    p.add_argument("--steps", type=int, required=True, help="gradient steps")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--episodes", type=int, default=10)
    p.add_argument("--eval-seed", type=int, default=100_000, help="episode i is reset with eval_seed + i")
    p.add_argument("--env-id", default=None, help="gymnasium id (default: the file's metadata/env_id)")
    p.add_argument("--ref-min", type=float, default=None, help="D4RL random reference return (normalisation)")
    p.add_argument("--ref-max", type=float, default=None, help="D4RL expert reference return (normalisation)")
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args(argv)

    import numpy as np
    import torch

    torch.set_num_threads(args.threads)
    import d3rlpy
    import gymnasium as gym

    data, meta = load_d4rl(args.dataset)
    env_id = args.env_id or meta.get("env_id")
    if not env_id:
        raise SystemExit(f"{args.dataset}: no metadata/env_id; pass --env-id")
    note = None
    if env_id not in gym.registry:  # gymnasium 1.0 has the MuJoCo v5 tasks; fall back to the newest version
        base = env_id.rsplit("-v", 1)[0]
        cands = sorted((k for k in gym.registry if k.rsplit("-v", 1)[0] == base), key=lambda k: int(k.rsplit("-v", 1)[1]))
        if not cands:
            raise SystemExit(f"gymnasium {gym.__version__} has no {env_id!r} nor another version of it")
        note = f"gymnasium {gym.__version__} lacks {env_id}; evaluated on {cands[-1]}"
        env_id = cands[-1]

    d3rlpy.seed(args.seed)
    dataset = d3rlpy.dataset.MDPDataset(observations=data["observations"], actions=data["actions"],
                                        rewards=data["rewards"], terminals=data["terminals"],
                                        timeouts=data["timeouts"])
    algo = make_algo(args.algo, args.steps)
    stamps: list[float] = []

    def callback(_algo, _epoch, _step) -> None:
        if not stamps or _step == args.steps:
            stamps.append(time.perf_counter())

    t0 = time.perf_counter()
    algo.fit(dataset, n_steps=args.steps, n_steps_per_epoch=args.steps, logger_adapter=d3rlpy.logging.NoopAdapterFactory(),
             show_progress=False, save_interval=10**9, callback=callback, experiment_name=f"bench_{args.algo}")
    fit_s = time.perf_counter() - t0
    sps = (args.steps - 1) / max(stamps[-1] - stamps[0], 1e-9) if len(stamps) >= 2 else args.steps / fit_s

    t1 = time.perf_counter()
    returns = evaluate(algo, env_id, args.episodes, args.eval_seed)
    out = {
        "algo": args.algo, "peer": f"d3rlpy {d3rlpy.__version__}", "d3rlpy": d3rlpy.__version__,
        "gymnasium": gym.__version__, "torch": torch.__version__, "env_id": env_id, "dataset": args.dataset,
        "transitions": int(dataset.transition_count), "steps": args.steps, "seed": args.seed,
        "grad_steps_per_s": sps, "fit_s": fit_s, "eval_s": time.perf_counter() - t1,
        "returns": returns, "mean_return": float(np.mean(returns)),
    }
    if args.ref_min is not None and args.ref_max is not None:
        scores = [100.0 * (r - args.ref_min) / (args.ref_max - args.ref_min) for r in returns]
        out.update(normalized_scores=scores, normalized_score=float(np.mean(scores)))
    if note:
        out["note"] = note
    sys.stdout.flush()
    print(json.dumps(out), flush=True)
    return out


if __name__ == "__main__":
    main(sys.argv[1:])
