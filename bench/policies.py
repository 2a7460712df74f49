"""Policies on the multimodal TwoPaths task: BC vs Diffusion Policy vs CARP, and inference speed.

    python -m bench.policies [--quick] [--runs-dir DIR] [--skip-training]

Measures, in one process:

- success rate of BC (MSE), Diffusion Policy (UNet, DDIM 10) and CARP on ``robotrl/TwoPaths-v0``
  (seeded evaluation episodes, EMA weights), each trained with ``robotrl-train``'s loop on the same
  100 expert demonstrations (left / right, 50/50). Training runs live in ``--runs-dir`` and are
  resumed (so a second invocation only re-evaluates);
- inference latency at batch 1: CARP (4 cached passes) vs diffusion with 100 DDPM steps and with
  10 DDIM steps;
- parameter counts of the default configs (``conf/policy/*.yaml``);
- N = 32 candidates drawn in one batched call vs 32 separate calls.

Writes ``bench/results/policies.json``.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("MUJOCO_GL", "egl")
os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402
import yaml  # noqa: E402

from bench.common import load_average, row, write_result  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
CONF = ROOT / "conf"
STATE_SHAPE = {"obs": {"state": [8]}, "action": [2]}  # TwoPaths

#: (run name, policy config group, steps, batch size, extra overrides) -- full / quick
TRAIN = {
    "bc": ("bc", 3000, 64, []),
    "diffusion": ("diffusion_unet", 4000, 64, []),
    "carp": ("carp", 16000, 64, []),
    "diffusion_transformer": ("diffusion_transformer", 24000, 64, []),  # 10k: 0.84, 24k: 0.98 (session 12)
}
QUICK_STEPS = {"bc": 300, "diffusion": 300, "carp": 800, "diffusion_transformer": 300}


def _policy(name: str):
    from robotrl.policies import make_policy

    cfg = yaml.safe_load((CONF / "policy" / f"{name}.yaml").read_text())
    p = make_policy(cfg, STATE_SHAPE)
    rng = np.random.default_rng(0)
    p.normalizer.fit_key("action", rng.uniform(-1, 1, (100, 2)))
    p.normalizer.fit_key("obs/state", rng.normal(size=(100, 8)))
    return p.eval()


def _median_ms(fn, repeats: int, warmup: int = 2) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(times)


def bench_speed(quick: bool) -> list[dict]:
    rows = []
    rep = 5 if quick else 20
    dp, carp, dpt = _policy("diffusion_unet"), _policy("carp"), _policy("diffusion_transformer")
    obs1 = {"state": np.random.randn(1, 2, 8).astype(np.float32)}
    t_carp = _median_ms(lambda: carp.sample_actions(obs1), rep)
    t_ddpm = _median_ms(lambda: dp.sample_actions(obs1, sampler="ddpm", num_inference_steps=100), max(3, rep // 4))
    t_ddim = _median_ms(lambda: dp.sample_actions(obs1, sampler="ddim", num_inference_steps=10), rep)
    for peer, val in (("diffusion UNet, 100 DDPM steps", t_ddpm), ("diffusion UNet, 10 DDIM steps", t_ddim)):
        rows.append(row("one action chunk (H=16), batch 1: CARP vs " + peer, "ms per chunk (lower is better)", t_carp,
                        peer=peer, peer_value=val, goal="CARP faster (paper: ~10x vs DDPM-100)", met=t_carp < val))
    n = {k: sum(q.numel() for q in p.parameters()) for k, p in (("dp", dp), ("carp", carp), ("dpt", dpt))}
    rows.append(row("parameters, default configs (state obs, A=2)", "parameters", n["carp"], peer="diffusion UNet (64,128,256)",
                    peer_value=n["dp"], goal="CARP much smaller (paper: 0.65M vs 65.9M)", met=n["carp"] < n["dp"] / 2,
                    diffusion_transformer_params=n["dpt"]))
    obsn = {"state": np.random.randn(1, 2, 8).astype(np.float32)}
    for label, p in (("diffusion UNet DDIM-10", dp), ("CARP top-k", carp)):
        one = _median_ms(lambda: p.sample_actions(obsn, num_samples=32), max(3, rep // 2))
        many = _median_ms(lambda: [p.sample_actions(obsn, num_samples=1) for _ in range(32)], max(3, rep // 4), warmup=1)
        rows.append(row(f"{label}: 32 candidates in one call vs 32 calls (batch 1)", "ms for 32 chunks (lower is better)",
                        one, peer="32 separate sample_actions calls", peer_value=many, goal="one call >= 4x faster",
                        met=many >= 4 * one))
    return rows


def _train_and_eval(key: str, runs_dir: Path, quick: bool, episodes: int, skip_training: bool) -> dict:
    from hydra import compose, initialize_config_dir

    from robotrl.engine.policy_trainer import train_policy

    group, steps, bs, extra = TRAIN[key]
    steps = QUICK_STEPS[key] if quick else steps
    name = f"{key}-{'quick' if quick else 'full'}"
    run_dir = runs_dir / name
    overrides = [
        "env=twopaths", f"policy={group}", f"run_dir={run_dir}", f"dataset.path={runs_dir / 'twopaths_demos.hdf5'}",
        f"train.steps={steps}", f"train.batch_size={bs}", "train.eval_every=0", "train.log_every=250",
        "train.ckpt_every=1000", f"eval.n_episodes={episodes}", "eval.video=false", "num_threads=1", "progress=false",
        "seed=0", *extra,
    ]
    if skip_training and not (run_dir / "checkpoints" / "last.pt").exists():
        return {"success_rate": None, "steps": 0}
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose(config_name="train", overrides=overrides)
    t0 = time.time()
    out = train_policy(cfg)
    out["wall_seconds"] = round(time.time() - t0, 1)
    return out


def bench_success(quick: bool, runs_dir: Path, skip_training: bool) -> list[dict]:
    episodes = 20 if quick else 50
    res = {k: _train_and_eval(k, runs_dir, quick, episodes, skip_training) for k in TRAIN}
    bc = res["bc"]["success_rate"]
    rows = [row("TwoPaths-v0: BC (MSE chunks)", "success_rate", bc, peer="expert demos", peer_value=1.0,
                goal="fails on bimodal demos (reference)", met=None, seeds=1, episodes=episodes,
                train_steps=res["bc"].get("steps"))]
    for key, label in (("diffusion", "Diffusion Policy (UNet, DDIM 10)"), ("carp", "CARP (greedy)"),
                       ("diffusion_transformer", "Diffusion Policy (transformer, DDIM 10)")):
        s = res[key]["success_rate"]
        rows.append(row(f"TwoPaths-v0: {label}", "success_rate", s, peer="BC (MSE), same data and run", peer_value=bc,
                        goal=">= 0.9 and > BC", met=None if s is None else bool(s >= 0.9 and (bc is None or s > bc)),
                        seeds=1, episodes=episodes, train_steps=res[key].get("steps"),
                        train_seconds=res[key].get("train_seconds") or None))
    return rows


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="short training (a sanity check, not a result)")
    ap.add_argument("--runs-dir", default=str(ROOT / "runs" / "bench_policies"), help="where training runs are kept")
    ap.add_argument("--skip-training", action="store_true", help="only evaluate runs that already exist")
    ap.add_argument("--speed-only", action="store_true", help="latency / parameter rows only")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    torch.manual_seed(0)
    rows = bench_speed(args.quick)
    for r in rows:
        print(r)
    if not args.speed_only:
        rows += bench_success(args.quick, Path(args.runs_dir), args.skip_training)
    cmd = "python -m bench.policies" + " ".join([""] + (argv if argv is not None else sys.argv[1:]))
    path = write_result("policies", cmd, rows, args.quick,
                        notes=[f"load average at the end: {load_average()} (2 cores shared)",
                               "success: 1 training seed per policy, EMA weights, eval seeds 100000.."])
    for r in rows:
        print(r)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
