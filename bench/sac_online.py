"""Online SAC learning curve, robotrl vs d3rlpy, on a gymnasium MuJoCo task (the SAC behind the datasets).

    python -m bench.sac_online --env-id Hopper-v5 --steps 30000 [--d3rlpy .venv-d3rlpy/bin/python]

Ours: the SAC loop of the D4RL-style dataset generator (``robotrl.offline.datasets``: ``--start-steps``
uniform-random steps, then one update per env step, SAC defaults), evaluated every ``--eval-every``
steps on ``--episodes`` deterministic episodes (reset seeds ``10000 + step + i``). Peer: d3rlpy's SAC
with its defaults in its own venv (``bench/d3rlpy_sac_runner.py``), same steps, start steps and
evaluation protocol. Learning-quality check only (1 seed each by default): it tells whether a slow
curve is our SAC or the task at this budget. Result: ``bench/results/sac_online_<env>.json`` and a plot.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402

from bench import d3rlpy_sac_runner  # noqa: E402  (only its option parser: the run is in the d3rlpy venv)
from bench.common import BENCH_DIR, RESULTS_DIR, row, run_peer_script, write_result  # noqa: E402


def ours(env_id: str, steps: int, start: int, every: int, episodes: int, seed: int) -> list[list[float]]:
    import torch

    from robotrl.offline.datasets import D4RLGenConfig, _train_sac

    torch.set_num_threads(1)
    torch.manual_seed(seed)
    cfg = D4RLGenConfig(env_id=env_id, sac_steps=steps, start_steps=start, snapshot_every=every,
                        snapshot_eval_episodes=episodes, seed=seed, progress=False)
    _, snaps, _ = _train_sac(cfg)
    return [[s["step"], float(s["return"])] for s in snaps]


def peer(python: str, a: argparse.Namespace) -> dict:
    """d3rlpy's SAC with the same options, in its venv (a temporary working directory for its log folders)."""
    args = [f"--{k.replace('_', '-')}={getattr(a, k)}" for k in vars(d3rlpy_sac_runner.parser().parse_args([]))]
    with tempfile.TemporaryDirectory() as cwd:
        return run_peer_script(python, "d3rlpy_sac_runner.py", args, cwd=cwd)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0], parents=[d3rlpy_sac_runner.parser(False)])
    p.add_argument("--d3rlpy", default=".venv-d3rlpy/bin/python", help="python of the d3rlpy venv ('none': skip)")
    a = p.parse_args(argv)
    if a.d3rlpy != "none" and not Path(a.d3rlpy).exists():
        raise SystemExit(f"--d3rlpy {a.d3rlpy}: not found (bash scripts/install_d3rlpy.sh, or --d3rlpy none)")
    mine = ours(a.env_id, a.steps, a.start_steps, a.eval_every, a.episodes, a.seed)
    print(f"[bench] robotrl SAC {a.env_id}: {mine}", flush=True)
    theirs = peer(a.d3rlpy, a) if a.d3rlpy != "none" else None
    if theirs:
        print(f"[bench] d3rlpy SAC {a.env_id}: {theirs['curve']}", flush=True)
    last = lambda c: float(np.mean([r for _, r in c[-2:]]))  # noqa: E731  (mean of the last two evaluations)
    name = a.env_id.split("-")[0].lower()
    plot = RESULTS_DIR / f"sac_online_{name}.png"
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3.2))
    ax.plot(*zip(*mine), marker="o", label="robotrl SAC")
    if theirs:
        ax.plot(*zip(*theirs["curve"]), marker="s", label=f"d3rlpy {theirs['d3rlpy']} SAC")
    ax.set(xlabel="env steps", ylabel=f"return ({a.episodes} episodes)", title=f"SAC online, {a.env_id}, seed {a.seed}")
    ax.legend()
    fig.tight_layout()
    fig.savefig(plot, dpi=100)
    rows = [row(f"SAC {a.env_id}, return after {a.steps} env steps (mean of the last 2 evaluations)", "return",
                last(mine), peer=f"d3rlpy {theirs['d3rlpy']} SAC" if theirs else None,
                peer_value=last(theirs["curve"]) if theirs else None, goal=None, met=None)]
    cmd = "python -m bench.sac_online " + " ".join(sys.argv[1:] if argv is None else argv)
    notes = [f"robotrl curve: {mine}", f"d3rlpy curve: {theirs['curve'] if theirs else 'not run'}",
             f"1 seed ({a.seed}), {a.episodes} deterministic evaluation episodes per point; plot: {plot.relative_to(BENCH_DIR.parent)}"]
    print(f"[bench] wrote {write_result(f'sac_online_{name}', cmd, rows, False, notes=notes)}")


if __name__ == "__main__":
    main()
