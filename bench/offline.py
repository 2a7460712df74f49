"""Offline RL on generated D4RL-style datasets: normalised scores and gradient steps per second.

    python -m bench.offline --quick        # hopper only, tiny budgets (a few minutes on 2 cores)
    python -m bench.offline                # hopper/halfcheetah/walker2d, medium + medium-replay
    python -m bench.offline --envs Hopper-v5 --steps 100000 --sac-steps 100000 --dataset-size 100000

1. ``robotrl.offline.datasets.generate_d4rl_datasets`` trains SAC per task and writes ``medium`` and
   ``medium-replay`` (cached under ``bench/data/d4rl``; the budget is in the file's metadata);
2. IQL, TD3+BC and A2PR train ``--steps`` gradient steps on each (``robotrl.engine.rl_trainer.train_algo``),
   then evaluate ``--episodes`` episodes per seed: D4RL-normalised score mean and std;
3. on medium-replay, ARSQ (offline, then online with the dataset as demonstrations) against IQL
   fine-tuned online for the same environment steps (``--online-steps``).

The d3rlpy peer (IQL / TD3+BC on the same files, the same gradient steps and seeds) needs its own
virtual environment, as d3rlpy pins gymnasium 1.0: ``bash scripts/install_d3rlpy.sh`` makes
``.venv-d3rlpy``, and ``--d3rlpy PYTHON`` (default: ``.venv-d3rlpy/bin/python`` when it exists; ``none``
to skip) runs ``bench/d3rlpy_runner.py`` with it as a subprocess right after each of our runs. Without
it the peer columns stay empty.

    python -m bench.offline --quick --algos iql td3bc --online-steps 0 --d3rlpy .venv-d3rlpy/bin/python

Budgets are far below the papers' 1M steps: scores are for comparing methods within one run only.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402

from bench.common import row, run_peer_script, write_result  # noqa: E402

BODY = {"Hopper-v5": "hopper", "HalfCheetah-v5": "halfcheetah", "Walker2d-v5": "walker2d"}


def ensure_datasets(env_id: str, out_dir: Path, sac_steps: int, dataset_size: int, seed: int) -> dict[str, str]:
    from robotrl.data import load_dataset
    from robotrl.offline.datasets import D4RLGenConfig, generate_d4rl_datasets

    body = BODY[env_id]
    files = {k: out_dir / f"{body}-{k}-v5.hdf5" for k in ("medium", "medium-replay")}
    if all(p.exists() for p in files.values()):
        meta = load_dataset(files["medium"]).attrs.get("metadata", {})
        if int(meta.get("sac_steps", -1)) == sac_steps:
            return {k: str(p) for k, p in files.items()}
    t = time.time()
    generate_d4rl_datasets(D4RLGenConfig(env_id=env_id, out_dir=str(out_dir), kinds=("medium", "medium-replay"),
                                         sac_steps=sac_steps, start_steps=min(5000, sac_steps // 5),
                                         snapshot_every=max(1000, sac_steps // 10), dataset_size=dataset_size,
                                         seed=seed, progress=False))
    print(f"[bench] generated {body} datasets in {time.time() - t:.0f}s", flush=True)
    return {k: str(p) for k, p in files.items()}


def run(algo: str, env_id: str, kind: str, path: str, steps: int, seed: int, episodes: int, run_root: Path,
        params: dict | None = None, online_steps: int = 0, finetune: dict | None = None) -> dict:
    from robotrl.engine.rl_trainer import train_algo

    body = BODY[env_id]
    cfg = {
        "seed": seed, "progress": False, "num_threads": 1, "resume": False,
        "run_dir": str(run_root / f"{algo}-{body}-{kind}-s{seed}-{steps}-{online_steps}"),
        # A2PR / ARSQ: their authors' per-dataset settings (algo.preset=auto), except the keys given in params
        "algo": {"name": algo, "offline_steps": steps, "online_steps": online_steps, "eval_every": 0,
                 "eval_episodes": episodes, "log_every": 1000, "ckpt_every": 10**9, "params": params or {},
                 "finetune": finetune or {}, "preset": "auto"},
        "dataset": {"name": f"{body}-{kind}-v5", "path": path, "format": "d4rl", "env_id": env_id},
        "eval": {"n_episodes": episodes, "num_envs": min(episodes, 5), "seed": 100_000},
        "train": {"tensorboard": False},
    }
    import shutil

    shutil.rmtree(cfg["run_dir"], ignore_errors=True)
    out = train_algo(cfg, explicit_params=set(params or {}))
    ret = json.loads((Path(cfg["run_dir"]) / "eval" / "metrics.json").read_text())["returns"]
    return {**out, "returns": ret}


PEER_ALGOS = {"iql": "IQL", "td3bc": "TD3+BC"}
DEFAULT_D3RLPY = Path(__file__).resolve().parent.parent / ".venv-d3rlpy" / "bin" / "python"


def run_d3rlpy(python: str, algo: str, env_id: str, path: str, steps: int, seed: int, episodes: int,
               timeout: float | None = None) -> dict:
    """Train and evaluate d3rlpy's ``algo`` on ``path`` in the d3rlpy venv (``bench/d3rlpy_runner.py``)."""
    from robotrl.data.formats.d4rl import REF_SCORES

    lo, hi = REF_SCORES[BODY[env_id]]
    return run_peer_script(python, "d3rlpy_runner.py", [
        "--algo", algo, "--dataset", str(path), "--steps", str(steps), "--seed", str(seed), "--episodes", str(episodes),
        "--eval-seed", "100000", "--env-id", env_id, "--ref-min", repr(lo), "--ref-max", repr(hi), "--threads", "1"],
        timeout=timeout)


def _resolve_d3rlpy(arg: str | None) -> str | None:
    if arg is None:
        return str(DEFAULT_D3RLPY) if DEFAULT_D3RLPY.exists() else None
    if arg.lower() in ("", "none", "off", "no"):
        return None
    if not Path(arg).exists():
        raise SystemExit(f"--d3rlpy {arg}: no such python (bash scripts/install_d3rlpy.sh makes .venv-d3rlpy)")
    return arg


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true")
    p.add_argument("--envs", nargs="+", default=None)
    p.add_argument("--kinds", nargs="+", default=["medium", "medium-replay"])
    p.add_argument("--algos", nargs="+", default=["iql", "td3bc", "a2pr"])
    p.add_argument("--steps", type=int, default=None, help="offline gradient steps per run")
    p.add_argument("--sac-steps", type=int, default=None)
    p.add_argument("--dataset-size", type=int, default=None)
    p.add_argument("--online-steps", type=int, default=None, help="ARSQ vs IQL fine-tuning env steps (0: skip)")
    p.add_argument("--seeds", type=int, default=None)
    p.add_argument("--first-seed", type=int, default=0,
                   help="seeds first..first+seeds-1 (add seeds to an earlier result under another --result)")
    p.add_argument("--a2pr-set", nargs="*", default=[], metavar="KEY=VALUE",
                   help="A2PRConfig fields over its per-dataset preset (an ablation, e.g. detach_target=true)")
    p.add_argument("--episodes", type=int, default=10)
    p.add_argument("--d3rlpy", "--d3rlpy-python", dest="d3rlpy", default=None, metavar="PYTHON",
                   help="python of the d3rlpy venv (peer for iql/td3bc); default .venv-d3rlpy/bin/python if it "
                        "exists; 'none' skips the peer")
    p.add_argument("--data-dir", default=None,
                   help="cache of the generated datasets (default $BENCH_DATA, else data/d4rl_<sac-steps/1000>k)")
    p.add_argument("--result", default="offline",
                   help="name of the result file bench/results/NAME.json (e.g. offline_d3rlpy for a peer-only run)")
    args = p.parse_args(argv)
    if args.a2pr_set and ("a2pr" not in args.algos or args.result == "offline"):
        p.error("--a2pr-set is an ablation: run it with a2pr in --algos and its own --result name")
    d3 = _resolve_d3rlpy(args.d3rlpy)
    d3_version = None
    torch.set_num_threads(1)
    q = args.quick
    envs = args.envs or (["Hopper-v5"] if q else list(BODY))
    steps = args.steps or (3000 if q else 100_000)
    sac_steps = args.sac_steps or (10_000 if q else 100_000)
    dsize = args.dataset_size or (10_000 if q else 100_000)
    online = args.online_steps if args.online_steps is not None else (1000 if q else 50_000)
    seeds = args.seeds or (1 if q else 3)
    data_dir = Path(args.data_dir or os.environ.get("BENCH_DATA") or f"data/d4rl_{sac_steps // 1000}k")
    run_root = Path(os.environ.get("BENCH_RUNS", "/tmp/bench_offline_runs"))
    rows, raw = [], {}
    for env_id in envs:
        files = ensure_datasets(env_id, data_dir, sac_steps, dsize, seed=0)
        for kind in args.kinds:
            scores: dict[str, list[float]] = {}
            for algo in args.algos:
                per_seed, sps, peer_scores, peer_sps = [], [], [], []
                with_peer = d3 is not None and algo in PEER_ALGOS
                for s in range(args.first_seed, args.first_seed + seeds):
                    t = time.time()
                    out = run(algo, env_id, kind, files[kind], steps, s, args.episodes, run_root,
                              params=_params(algo, args.a2pr_set))
                    per_seed.extend(out["normalized_score"] if isinstance(out["normalized_score"], list) else
                                    [float(x) for x in _scores(env_id, out["returns"])])
                    sps.append(out["offline_grad_steps_per_s"])
                    print(f"[bench] {algo} {BODY[env_id]}-{kind} seed {s}: score {out['normalized_score']:.1f} "
                          f"({out['offline_grad_steps_per_s']:.0f} grad steps/s, {time.time() - t:.0f}s)", flush=True)
                    if with_peer:  # right after ours, on the same file, steps, seed and evaluation seeds
                        t = time.time()
                        po = run_d3rlpy(d3, algo, env_id, files[kind], steps, s, args.episodes)
                        d3_version = po["d3rlpy"]
                        peer_scores.extend(po["normalized_scores"])
                        peer_sps.append(po["grad_steps_per_s"])
                        raw.setdefault("d3rlpy", {}).setdefault(f"{env_id}/{kind}", {}).setdefault(algo, []).extend(
                            po["normalized_scores"])
                        print(f"[bench] d3rlpy {po['d3rlpy']} {algo} {BODY[env_id]}-{kind} seed {s}: score "
                              f"{po['normalized_score']:.1f} ({po['grad_steps_per_s']:.0f} grad steps/s, "
                              f"{time.time() - t:.0f}s){' — ' + po['note'] if po.get('note') else ''}", flush=True)
                scores[algo] = per_seed
                ours, ours_sps = float(np.mean(per_seed)), float(np.mean(sps))
                if with_peer:
                    peer = f"d3rlpy {d3_version} {PEER_ALGOS[algo]}"
                    theirs, theirs_sps = float(np.mean(peer_scores)), float(np.mean(peer_sps))
                    case = f"{algo} {BODY[env_id]}-{kind}-v5 vs d3rlpy"
                    rows.append(row(f"{case} ({steps} grad steps)", "normalized_score", ours, peer=peer, peer_value=theirs,
                                    goal="within 10% of d3rlpy or better", met=ours >= theirs - 0.1 * abs(theirs),
                                    std=float(np.std(per_seed)), peer_std=float(np.std(peer_scores)), seeds=seeds,
                                    episodes=args.episodes, grad_steps=steps))
                    rows.append(row(case, "grad_steps/s", ours_sps, peer=peer, peer_value=theirs_sps,
                                    goal=">= 1.5x d3rlpy", met=ours_sps >= 1.5 * theirs_sps,
                                    per_seed=sps, peer_per_seed=peer_sps))
                    continue
                case = f"{algo} {BODY[env_id]}-{kind}-v5 ({steps} grad steps)"
                rows.append(row(case, "normalized_score", ours, peer=None, peer_value=None,
                                goal="within 10% of d3rlpy (peer not run)" if algo in PEER_ALGOS else None,
                                met=None, std=float(np.std(per_seed)), seeds=seeds, episodes=args.episodes))
                rows.append(row(f"{algo} {BODY[env_id]}-{kind}-v5", "grad_steps/s", ours_sps,
                                peer=None, peer_value=None, goal=">= 1.5x d3rlpy (peer not run)" if algo in PEER_ALGOS else None))
            if "a2pr" in scores and "td3bc" in scores:
                a, b = float(np.mean(scores["a2pr"])), float(np.mean(scores["td3bc"]))
                rows.append(row(f"A2PR vs TD3+BC {BODY[env_id]}-{kind}-v5", "normalized_score", a, peer="robotrl TD3+BC",
                                peer_value=b, goal=">= TD3+BC", met=a >= b))
            raw[f"{env_id}/{kind}"] = scores
        if online > 0 and "medium-replay" in args.kinds:
            # the release's per-dataset settings (preset); CPU budget: 2x256 instead of its 3x512
            arsq_p = {"hidden_dims": [256, 256]}
            res = {}
            for algo, params in (("arsq", arsq_p), ("iql", {})):
                vals = []
                for s in range(args.first_seed, args.first_seed + seeds):
                    out = run(algo, env_id, "medium-replay", files["medium-replay"], steps, s, args.episodes, run_root,
                              params=params, online_steps=online)
                    vals.extend(_scores(env_id, out["returns"]))
                res[algo] = vals
                print(f"[bench] {algo} offline->online {BODY[env_id]}-medium-replay: {np.mean(vals):.1f}", flush=True)
            rows.append(row(f"ARSQ vs IQL offline->online {BODY[env_id]}-medium-replay-v5 ({steps} grad + {online} env steps)",
                            "normalized_score", float(np.mean(res["arsq"])), peer="robotrl IQL -> online",
                            peer_value=float(np.mean(res["iql"])), goal="> IQL", met=float(np.mean(res["arsq"])) > float(np.mean(res["iql"])),
                            seeds=seeds, episodes=args.episodes))
    cmd = "python -m bench.offline" + (" --quick" if q else "") + ("" if argv is None else " " + " ".join(a for a in argv if a != "--quick"))
    notes = [f"datasets: robotrl SAC {sac_steps} env steps, {dsize} transitions per medium file (D4RL: 1M); "
             f"offline budgets {steps} gradient steps (papers: 1M). ARSQ uses 2x256 MLPs here (paper 3x512). "
             "A2PR uses its public code's per-dataset settings (robotrl.offline.a2pr.PRESETS)"
             + (f", with {' '.join(args.a2pr_set)}." if args.a2pr_set else "."),
             "d3rlpy peer not run in this result (needs its own venv: gymnasium 1.0 pin; bash scripts/install_d3rlpy.sh)."
             if d3 is None else
             f"d3rlpy {d3_version} peer: bench/d3rlpy_runner.py in .venv-d3rlpy (gymnasium 1.0.0, same torch 2.13 CPU, "
             "1 thread), on the same files, gradient steps, seeds and evaluation episodes (reset seeds 100000+i); "
             "hyper-parameters of d3rlpy's reproduction scripts (= the papers'). Its grad steps/s is d3rlpy's fit loop "
             "(sampling + update), ours train_algo's loop; both exclude evaluation and set-up. d3rlpy drops each "
             "timeout episode's last step (no next observation); we use the files' next_observations. "
             "'within 10%': ours >= d3rlpy - 0.1*|d3rlpy|."]
    path = write_result(args.result, cmd.strip(), rows, q, notes=[n for n in notes if n])
    print(f"[bench] wrote {path}")
    print("[bench] per-seed scores:", json.dumps(raw))


def _params(algo: str, a2pr_set: list[str] | None = None) -> dict | None:
    """A2PR's ``--a2pr-set KEY=VALUE`` overrides (values parsed as YAML) over its per-dataset preset, which
    ``run`` applies (``algo.preset=auto``: alpha 40 on halfcheetah, reg/VAE weights, gamma)."""
    if algo != "a2pr":
        return None
    import yaml

    over = {}
    for kv in a2pr_set or []:
        if "=" not in kv:
            raise SystemExit(f"--a2pr-set expects KEY=VALUE, got {kv!r}")
        k, v = kv.split("=", 1)
        over[k] = yaml.safe_load(v)
    return over


def _scores(env_id: str, returns: list[float]) -> list[float]:
    from robotrl.data.formats.d4rl import normalized_score

    return [float(x) for x in np.atleast_1d(normalized_score(BODY[env_id], np.asarray(returns)))]


if __name__ == "__main__":
    main(sys.argv[1:])
