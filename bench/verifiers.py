"""Test-time verifiers on mixed-quality demonstrations: base policy vs + TACO (CFN) vs + value (V-GPS).

    python -m bench.verifiers [--quick] [--runs-dir DIR] [--skip-training]

Measures, in one process:

- data: ``robotrl/ArmLift-v0``, 50 expert episodes + 50 episodes of the expert's suboptimal mode
  (half speed, sloppy grasps in about half of them), every episode kept (``keep=all``);
- Diffusion Policy (UNet, DDIM 10) and CARP trained on it with ``robotrl-train``'s loop (EMA weights);
- for each: the base policy alone, + TACO (CFN pseudo-counts on the policy's features over all its
  training data, as the paper; N = 32 candidates, greedy), + TACO with the CFN fitted on the
  successful episodes only, and + the value verifier (IQL chunk critic, N = 32, greedy), all on
  the same seeded evaluation episodes (seeds 100000..);
- latency of one decision at batch 1: N = 32 verified (sampling + scoring) vs the base policy's N = 1.

Training runs, verifiers and per-variant evaluations live in ``--runs-dir`` and are reused by later
invocations (``--re-eval`` evaluates again).
Writes ``bench/results/verifiers.json``.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("MUJOCO_GL", "egl")
os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402

from bench.common import load_average, row, write_result  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
CONF = ROOT / "conf"
ENV = {"name": "armlift", "id": "robotrl/ArmLift-v0", "image": False, "image_size": 84, "reward_type": "sparse",
       "max_episode_steps": None, "kwargs": {}}
#: policy -> (config group, steps, quick steps)
POLICIES = {"diffusion": ("diffusion_unet", 3000, 400), "carp": ("carp", 3000, 600)}
N_CANDIDATES = 32


def make_mixed_dataset(path: Path, n_each: int = 50) -> dict:
    """``n_each`` expert + ``n_each`` suboptimal-mode episodes (all kept) in one robomimic file."""
    from robotrl.data import EpisodeStore, load_dataset, save_dataset
    from robotrl.engine.collect import collect_demos

    path.parent.mkdir(parents=True, exist_ok=True)
    env = {k: v for k, v in ENV.items() if k != "name"}
    s1 = collect_demos(env, n_each, path.parent / "expert.hdf5", keep="all", seed=0, progress=False)
    s2 = collect_demos(env, n_each, path.parent / "subopt.hdf5", keep="all", suboptimal=True, seed=5000, progress=False)
    a, b = load_dataset(path.parent / "expert.hdf5"), load_dataset(path.parent / "subopt.hdf5")
    store = EpisodeStore.from_episodes(list(a.iter_episodes()) + list(b.iter_episodes()), attrs=a.attrs)
    save_dataset(store, path, format="robomimic")
    return {"expert": s1, "suboptimal": s2}


def train_base(key: str, runs_dir: Path, data: Path, quick: bool, skip_training: bool) -> Path | None:
    """Train (or reuse) the base policy; returns its save_pretrained folder."""
    from hydra import compose, initialize_config_dir

    from robotrl.engine.policy_trainer import train_policy

    group, steps, qsteps = POLICIES[key]
    run_dir = runs_dir / (f"quick-{key}" if quick else key)
    pdir = run_dir / "checkpoints" / "policy"
    if (pdir / "model.safetensors").is_file() and (run_dir / "eval" / "metrics.json").is_file():
        return pdir
    if skip_training:
        return None
    overrides = [
        "env=armlift", f"policy={group}", f"dataset.path={data}", f"run_dir={run_dir}",
        f"train.steps={qsteps if quick else steps}", "train.batch_size=64", "train.eval_every=0",
        "eval.n_episodes=10", "eval.video=false", "num_threads=1", "progress=false", "train.tensorboard=false", "seed=0",
    ]
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose(config_name="train", overrides=overrides)
    train_policy(cfg)
    return pdir


def train_verifiers(policy, store, vdir: Path, quick: bool) -> dict:
    """TACO (CFN) and value verifiers for ``policy`` (reused from ``vdir`` when present)."""
    from robotrl.verifiers import load_verifier
    from robotrl.verifiers.train import collect_policy_features, train_cfn, train_value_verifier

    out, info = {}, {}
    for name, episodes in (("taco", "all"), ("taco_success", "success")):
        if (vdir / name / "verifier.json").is_file():
            out[name] = load_verifier(vdir / name)
            continue
        t0 = time.time()
        feats = collect_policy_features(policy, store, num_candidates=8, max_samples=256 if quick else 1024,
                                        batch_size=64, seed=0, progress=False, episodes=episodes)
        v = train_cfn(feats["features"], {"policy_type": policy.name}, {"epochs": 16, "batch_size": 256},
                      progress=False)
        v.save_pretrained(vdir / name)
        out[name] = v
        info[f"{name}_train_seconds"] = round(time.time() - t0, 1)
        info[f"{name}_feature_samples"] = int(feats["features"].shape[0])
    if (vdir / "value" / "verifier.json").is_file():
        out["value"] = load_verifier(vdir / "value")
    else:
        t0 = time.time()
        v = train_value_verifier(store, policy, {"hidden_dims": [256, 256]},
                                 {"steps": 500 if quick else 4000, "batch_size": 256}, progress=False)
        v.save_pretrained(vdir / "value")
        out["value"] = v
        info["value_train_seconds"] = round(time.time() - t0, 1)
    if info:
        (vdir / "train_info.json").write_text(json.dumps(info))
    return out


def latency_ms(fn, repeats: int) -> float:
    fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return 1000 * statistics.median(times)


def latency_only(device: str, quick: bool) -> None:
    """N = 32 verified vs N = 1 latency on ``device`` with freshly initialised policies and verifiers.

    Timing does not depend on the weights, so this runs where no trained run exists (a GPU
    machine): the policies are the default configs for ArmLift's shapes, the CFN is fitted for one
    epoch on random features of the policy's feature size.
    """
    from robotrl.envs import make_env
    from robotrl.policies import make_policy
    from robotrl.verifiers import VerifiedPolicy
    from robotrl.verifiers.train import train_cfn
    import yaml

    env = make_env({k: v for k, v in ENV.items() if k != "name"})
    obs0, _ = env.reset(seed=0)
    env.close()
    S, A = obs0["state"].shape[0], env.action_space.shape[0]
    dev = torch.device(device)
    rows, res = [], {}
    reps = 10 if quick else 50
    for key, (group, _, _) in POLICIES.items():
        cfg = yaml.safe_load((CONF / "policy" / f"{group}.yaml").read_text())
        pol = make_policy(cfg, {"obs": {"state": [S]}, "action": [A]})
        rng = np.random.default_rng(0)
        pol.normalizer.fit_key("action", rng.uniform(-1, 1, (100, A)))
        pol.normalizer.fit_key("obs/state", rng.normal(size=(100, S)))
        pol = pol.to(dev).eval()
        obs = {"state": np.repeat(obs0["state"][None, None], pol.config.n_obs_steps, axis=1).astype(np.float32)}
        _, feats = pol.sample_actions(obs, num_samples=4, return_features=True)
        ver = train_cfn(torch.randn(512, feats.shape[-1]), {"policy_type": pol.name}, {"epochs": 1}, progress=False)
        vp = VerifiedPolicy(pol, ver, num_samples=N_CANDIDATES).to(dev).eval()
        sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)
        n1 = latency_ms(lambda: (pol.predict_chunk(obs), sync()), reps)
        n32 = latency_ms(lambda: (vp.predict_chunk(obs), sync()), reps)
        res[key] = {"n1_ms": n1, "n32_taco_ms": n32}
        goal = "<= 2x (diffusion, shared encoding)" if key == "diffusion" else "report"
        rows.append(row(f"{key} on {device}: one decision at batch 1, N={N_CANDIDATES} + taco vs N=1",
                        "ms (lower is better)", n32, peer=f"{key} N=1", peer_value=n1, goal=goal,
                        met=bool(n32 <= 2 * n1) if key == "diffusion" else None))
        print(f"[bench.verifiers] latency {key} on {device}: N=1 {n1:.2f} ms, N=32+TACO {n32:.2f} ms", flush=True)
    cmd = f"python -m bench.verifiers --latency-only --device {device}" + (" --quick" if quick else "")
    path = write_result(f"verifiers_latency_{dev.type}", cmd, rows, quick,
                        notes=["untrained default configs (timing only), ArmLift-v0 state shapes, DDIM 10 / CARP greedy;"
                               f" median of {reps} decisions after one warm-up"])
    print(f"wrote {path}")


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--latency-only", action="store_true", help="only N=32 vs N=1 latency, untrained weights")
    ap.add_argument("--device", default="cpu", help="with --latency-only: cpu | cuda")
    ap.add_argument("--quick", action="store_true", help="short trainings, 10 episodes")
    ap.add_argument("--runs-dir", default=str(ROOT / "runs" / "bench_verifiers"))
    ap.add_argument("--skip-training", action="store_true", help="only evaluate runs that exist")
    ap.add_argument("--episodes", type=int, default=None)
    ap.add_argument("--re-eval", action="store_true", help="ignore evaluations cached in the runs dir")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    if args.latency_only:
        latency_only(args.device, args.quick)
        return
    from robotrl.data import load_dataset
    from robotrl.engine.evaluation import evaluate
    from robotrl.policies import load_policy
    from robotrl.verifiers import VerifiedPolicy

    runs_dir = Path(args.runs_dir)
    data = runs_dir / "data" / "armlift_mixed.hdf5"
    notes = []
    if not data.exists():
        summary = make_mixed_dataset(data)
        notes.append(f"data: {json.dumps(summary)}")
    store = load_dataset(data)
    episodes = args.episodes or (10 if args.quick else 50)
    env_cfg = {k: v for k, v in ENV.items() if k != "name"}
    rows, results = [], {}
    for key in POLICIES:
        pdir = train_base(key, runs_dir, data, args.quick, args.skip_training)
        if pdir is None:
            notes.append(f"{key}: no trained run in {runs_dir}, skipped")
            continue
        base = load_policy(pdir).eval()
        verifiers = train_verifiers(base, store, runs_dir / (f"quick-{key}" if args.quick else key) / "verifiers",
                                    args.quick)
        res = {}
        variants = {"base": base}
        for vname, ver in verifiers.items():
            variants[vname] = VerifiedPolicy(base, ver, num_samples=N_CANDIDATES).eval()
        cache = pdir.parent.parent / f"bench_eval_{episodes}.json"   # evaluations are reused by later invocations
        cached = json.loads(cache.read_text()) if cache.is_file() and not args.re_eval else {}
        for name, pol in variants.items():
            if name in cached:
                res[name] = cached[name]
                print(f"[bench.verifiers] {key} {name} (cached): {res[name]}", flush=True)
                continue
            torch.manual_seed(0)
            t0 = time.time()
            m = evaluate(pol, env_cfg, n_episodes=episodes, num_envs=10, seed=100_000, progress=False)
            res[name] = {"success_rate": float(m["success_rate"]), "mean_return": float(m["mean_return"]),
                         "eval_seconds": round(time.time() - t0, 1)}
            print(f"[bench.verifiers] {key} {name}: {res[name]}", flush=True)
            cache.write_text(json.dumps({**cached, **{k: v for k, v in res.items() if k in variants}}, indent=1))
        # latency of one decision at batch 1
        obs = {"state": store["obs/state"][:2][None].astype(np.float32)}
        reps = 5 if args.quick else 15
        res["latency_ms_n1"] = latency_ms(lambda: base.predict_chunk(obs), reps)
        for vname in verifiers:
            res[f"latency_ms_{vname}_n32"] = latency_ms(lambda: variants[vname].predict_chunk(obs), reps)
        results[key] = res
        b = res["base"]["success_rate"]
        for vname, label in (("taco", "TACO (CFN on all demos)"),
                             ("taco_success", "TACO (CFN on successful demos only)"),
                             ("value", "value verifier (IQL chunk critic)")):
            if vname not in res:
                continue
            s = res[vname]["success_rate"]
            rows.append(row(f"ArmLift-v0 mixed demos: {key} + {label}, N={N_CANDIDATES}", "success_rate", s,
                            peer=f"{key} alone", peer_value=b, goal=">= +0.10 over the base policy",
                            met=bool(s - b >= 0.10 - 1e-9), seeds=1, episodes=episodes,
                            delta=round(s - b, 3)))
        for vname in verifiers:
            lat = res[f"latency_ms_{vname}_n32"]
            goal = "<= 2x (diffusion, shared encoding)" if key == "diffusion" else "report"
            rows.append(row(f"{key}: one decision at batch 1, N={N_CANDIDATES} + {vname} vs N=1", "ms (lower is better)",
                            lat, peer=f"{key} N=1", peer_value=res["latency_ms_n1"], goal=goal,
                            met=bool(lat <= 2 * res["latency_ms_n1"]) if key == "diffusion" else None))
    notes.append("CFN: features of 1024 evenly strided training windows (256 with --quick) x 8 draws each "
                 "(high-fidelity selection), 16 epochs; value verifier: IQL chunk critic, 4000 steps (500 quick), "
                 "expectile 0.8, gamma 0.99; all verifiers greedy over N=32")
    notes.append(f"per-variant results: {json.dumps(results)}")
    notes.append("1 training seed per policy (EMA weights); every variant evaluated on the same seeds 100000..; "
                 f"load average at the end: {load_average()} (2 cores shared)")
    cmd = "python -m bench.verifiers" + (" --quick" if args.quick else "")
    path = write_result("verifiers", cmd, rows, args.quick, notes=notes)
    print(json.dumps(results, indent=1))
    print(f"wrote {path}")


if __name__ == "__main__":
    main(sys.argv[1:])
