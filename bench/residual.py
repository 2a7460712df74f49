"""Residual RL vs RLPD from a weak BC base, sparse reward: bundled ArmLift and robosuite Lift / Can.

    python -m bench.residual [--task armlift|lift|can] [--quick] [--part residual|rlpd|all] [--steps N]

1. A few scripted demonstrations (``robotrl/ArmLift-v0``: 10; ``robosuite/Lift``: see TASKS;
   robosuite's waypoint experts are :mod:`robotrl.envs.experts.robosuite`), a deliberately weak
   BC base (chunk 16 / execute 8, a few hundred gradient steps) evaluated on 50 seeded episodes
   (seeds 100000+). robosuite episodes end on the success frame (``terminate_on_success``) and are
   capped at a short horizon.
2. Residual TD3 on the frozen base (:mod:`robotrl.residual`) and RLPD from scratch
   (:mod:`robotrl.rl.rlpd`) with the same demonstrations, env-step budget and UTD, sparse reward.
3. Success-vs-env-steps curves (20 seeded episodes per point) -> ``bench/results/residual_curve.png``;
   the final residual policy is reloaded from its checkpoint and evaluated on 50 seeded episodes.

``--part`` runs one arm only (so the two can run in parallel processes); the result JSON is
written once both parts exist under ``runs/bench_residual[_<task>]``.
"""
from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402

from bench.common import row, write_result  # noqa: E402

EVAL_SEED = 100_000
TASKS = {
    "armlift": {"env": {"id": "robotrl/ArmLift-v0", "reward_type": "sparse"}, "demos": 10, "bc_steps": 300,
                "out": "runs/bench_residual", "result": "residual", "plot": "residual_curve.png",
                "title": "ArmLift-v0, sparse reward, 10 demos", "label": "ArmLift-v0 sparse"},
    # 8 demos, BC fitted 2000 steps -> base 0.32-0.40 (demos of before kwargs.model_seed; rebuilt from scratch
    # since, with seeded model builds, the base scores 0.54); residual scale 0.2 (0.1 saturated: 0.74 at 100k vs
    # 0.88); rotation dims stay the base's (ResidualConfig.residual_dims); the note's small actor lr and long
    # warm-up (10k noisy-base env steps, then critic-only updates); TD targets clamped to [0, 1]
    # (ResidualTD3Config.target_bounds: without it the random-pair min drives the sparse-reward critic below 0
    # on online states); "steps": the 100k env-step budget (~2 h on one core)
    "lift": {"env": {"id": "robosuite/Lift", "max_episode_steps": 100, "kwargs": {"terminate_on_success": True}},
             "demos": 8, "bc_steps": 2000, "out": "runs/bench_residual_lift", "result": "residual_lift",
             "plot": "residual_curve_lift.png", "title": "robosuite Lift (Panda, OSC), sparse reward",
             "label": "robosuite Lift sparse",
             "policy": {"residual_dims": (0, 1, 2, 6), "action_scale": 0.2},
             "td3": {"actor_lr": 3e-6, "critic_lr": 1e-4, "target_bounds": (0.0, 1.0)},
             "warmup_env_steps": 10000, "warmup_updates": 5000, "eval_every": 5000, "steps": 100_000},
    "can": {"env": {"id": "robosuite/PickPlaceCan", "max_episode_steps": 250,
                    "kwargs": {"terminate_on_success": True}},
            "demos": 10, "bc_steps": 2000, "out": "runs/bench_residual_can", "result": "residual_can",
            "plot": "residual_curve_can.png", "title": "robosuite PickPlaceCan (Panda, OSC), sparse reward",
            "label": "robosuite PickPlaceCan sparse",
            "policy": {"residual_dims": (0, 1, 2, 6), "action_scale": 0.2},
            "td3": {"actor_lr": 3e-6, "critic_lr": 1e-4, "target_bounds": (0.0, 1.0)},
            "warmup_env_steps": 10000, "warmup_updates": 5000, "eval_every": 5000, "steps": 100_000},
}
TASK = TASKS["armlift"]
ENV = TASK["env"]
OUT = Path(TASK["out"])
#: where the parts (part_*.json, residual_run / rlpd_run) go: OUT for the task's main result, OUT/<NAME> for
#: --result NAME, so another recipe never feeds (or is fed by) the main result; demos and base stay in OUT
PARTS = OUT


def select_task(name: str, demos: int | None = None, bc_steps: int | None = None) -> None:
    """Point the module-level ENV / OUT / TASK at one of TASKS (the CLI's --task)."""
    global TASK, ENV, OUT, PARTS
    TASK = dict(TASKS[name], name=name)
    if demos:
        TASK["demos"] = demos
    if bc_steps:
        TASK["bc_steps"] = bc_steps
    ENV, OUT = TASK["env"], Path(TASK["out"])
    PARTS = OUT


def _setup(quick: bool):
    from robotrl.data import SequenceSampler, load_dataset
    from robotrl.engine.collect import collect_demos
    from robotrl.policies import load_policy, make_policy
    from robotrl.policies.base import shape_meta_from_store

    OUT.mkdir(parents=True, exist_ok=True)
    PARTS.mkdir(parents=True, exist_ok=True)
    n_demos = TASK["demos"]
    demos = OUT / (f"armlift_demos{n_demos}.hdf5" if ENV["id"] == "robotrl/ArmLift-v0" else f"demos{n_demos}.hdf5")
    if not demos.exists():
        collect_demos(ENV, n_demos, demos, seed=0, progress=False)
    store = load_dataset(demos)
    base_dir = OUT / ("base_policy" if TASK.get("name", "armlift") == "armlift" else f"base_d{n_demos}_s{TASK['bc_steps']}")
    if not (base_dir / "model.safetensors").exists():
        torch.manual_seed(0)
        pol = make_policy({"type": "bc", "n_obs_steps": 2, "horizon": 16, "n_action_steps": 8},
                          shape_meta_from_store(store, ("state",)))
        pol.fit_normalizer(store)
        sampler = SequenceSampler(store, sequence_length=16, pad_before=1, pad_after=7, keys=["obs/state", "action"],
                                  obs_steps=2)
        opt = torch.optim.AdamW(pol.parameters(), 1e-3)
        gen = np.random.default_rng(0)
        for _ in range(TASK["bc_steps"]):
            loss, _ = pol.loss(sampler.sample(128, gen))
            opt.zero_grad()
            loss.backward()
            opt.step()
        pol.save_pretrained(base_dir)
    return store, load_policy(base_dir), base_dir


def run_residual_part(quick: bool, steps: int) -> dict:
    from robotrl.envs import make_env
    from robotrl.policies import load_policy
    from robotrl.residual import ResidualPolicy, ResidualTD3Config, ResidualTrainConfig, run_residual
    from robotrl.residual.trainer import evaluate_policy_seeded

    store, base, _ = _setup(quick)
    env_fn = lambda: make_env(ENV)  # noqa: E731
    base_eval = evaluate_policy_seeded(base, env_fn, 50, seed=EVAL_SEED)
    st = store["obs/state"]
    pol = ResidualPolicy.from_base(base, state_mean=st.mean(0), state_std=st.std(0), **TASK.get("policy", {}))
    cfg = ResidualTrainConfig(total_env_steps=steps, warmup_env_steps=min(TASK.get("warmup_env_steps", 1000), steps // 4),
                              warmup_updates=TASK.get("warmup_updates", 500),
                              utd=2, eval_every=TASK.get("eval_every", max(steps // 6, 500)), eval_episodes=20, eval_seed=EVAL_SEED,
                              progress=False)
    partial = {"base_success_50": base_eval["success_rate"], "curve": [], "steps": steps, "partial": True}

    def log(step: int, m: dict) -> None:  # keep what is reached if the run is cut short
        if "eval/success_rate" in m:
            partial["curve"].append({"env_steps": step, "success_rate": m["eval/success_rate"]})
            (PARTS / "part_residual_partial.json").write_text(json.dumps(partial, indent=1))

    out = run_residual(pol, env_fn, store, cfg, ResidualTD3Config(**TASK.get("td3", {"actor_lr": 1e-4})), run_dir=PARTS / "residual_run", log=log)
    final = evaluate_policy_seeded(load_policy(out["checkpoint"]), env_fn, 50, seed=EVAL_SEED)
    res = {"base_success_50": base_eval["success_rate"], "final_success_50": final["success_rate"],
           "curve": out["curve"], "env_steps_per_s": out["env_steps_per_s"], "updates_per_s": out["updates_per_s"],
           "updates": out["updates"], "wall_seconds": out["wall_seconds"], "steps": steps}
    (PARTS / "part_residual.json").write_text(json.dumps(res, indent=1))
    return res


def run_rlpd_part(quick: bool, steps: int) -> dict:
    from robotrl.rl.rlpd import RLPDConfig, run_rlpd

    store, _, _ = _setup(quick)
    t0 = time.time()
    run_dir = PARTS / "rlpd_run"
    if run_dir.exists():
        import shutil

        shutil.rmtree(run_dir)
    out = run_rlpd(ENV, store, steps, run_dir, RLPDConfig(utd=2, start_steps=min(500, steps // 4)), seed=0,
                   eval_every=max(steps // 5, 500), eval_episodes=20, eval_seed=EVAL_SEED, progress=False,
                   ckpt_every=0)  # a timed run: no periodic buffer checkpoints
    wall = time.time() - t0
    res = {"curve": out["curve"], "final_success_20": out["curve"][-1]["mean_return"] if out["curve"] else None,
           "env_steps_per_s": steps / wall, "updates_per_s": out["updates_per_s"], "updates": out["updates"],
           "wall_seconds": wall, "steps": steps, "utd": 2}
    (PARTS / "part_rlpd.json").write_text(json.dumps(res, indent=1))
    return res


def _cli_command(run_dir: Path) -> str:
    """The ``robotrl-train`` command that made ``run_dir`` (from Hydra's ``hydra/overrides.yaml``)."""
    import yaml

    ov = run_dir / "hydra" / "overrides.yaml"
    return "robotrl-train " + " ".join(f"'{o}'" if any(ch in o for ch in "[],") else o
                                       for o in (yaml.safe_load(ov.read_text()) if ov.exists() else []))


def record_run(run_dir: Path) -> tuple[dict, str]:
    """The residual part from a finished ``robotrl-train algo=residual`` run (its curve, final 50-episode
    evaluation and loop speed) and the command that made it (from ``<run_dir>/hydra/overrides.yaml``)."""
    ev_path, curve_path = run_dir / "eval" / "metrics.json", run_dir / "residual_curve.json"
    for f in (ev_path, curve_path):
        if not f.exists():
            raise SystemExit(f"--record-run {run_dir}: no {f.name} ({f}); is the run finished?")
    ev, out = json.loads(ev_path.read_text()), json.loads(curve_path.read_text())
    res = {"base_success_50": ev["base_success_rate"], "final_success_50": ev["success_rate"], "curve": out["curve"],
           "env_steps_per_s": out["env_steps_per_s"], "updates_per_s": out["updates_per_s"], "updates": out["updates"],
           "wall_seconds": out["wall_seconds"], "steps": out["env_steps"]}
    return res, _cli_command(run_dir)


def record_rlpd(run_dir: Path) -> tuple[dict, str]:
    """The RLPD part from a ``robotrl-train algo=rlpd`` run: its evaluation curve (20 episodes each; sparse
    reward, so the mean return is the success rate; resumes resolved), the env steps reached, the update
    rate and the run's UTD (from its recorded config)."""
    from robotrl.engine.logger import metric_series, read_metrics

    if not (run_dir / "metrics.jsonl").exists():
        raise SystemExit(f"--record-rlpd {run_dir}: no metrics.jsonl there")
    rows_m = read_metrics(run_dir)
    curve = [{"env_steps": s, "mean_return": v} for s, v in metric_series(rows_m, "online_eval/mean_return")]
    ups = [v for _, v in metric_series(rows_m, "online_train/updates_per_s")]
    steps = [s for s, _ in metric_series(rows_m, "online_rollout/episode_return")]
    oc = json.loads((run_dir / "online_config.json").read_text()) if (run_dir / "online_config.json").exists() else {}
    res = {"curve": curve, "final_success_20": curve[-1]["mean_return"] if curve else None,
           "env_steps_per_s": None, "updates_per_s": float(np.median(ups)) if ups else None,
           "steps": max(steps + [c["env_steps"] for c in curve], default=0), "utd": oc.get("utd")}
    return res, _cli_command(run_dir)


def merge_seeds(results: list[dict]) -> dict:
    """One residual part from several seeds' runs: means of the final 50-episode success, the base's success
    and the loop speeds; the curve is the per-step mean over the seeds that reached that step; the per-seed
    values are kept (``per_seed``) for the table and the plot."""
    if len(results) == 1:
        return dict(results[0], per_seed=[results[0]])
    steps = sorted({p["env_steps"] for r in results for p in r["curve"]})
    curve = []
    for s in steps:
        vals = [p["success_rate"] for r in results for p in r["curve"] if p["env_steps"] == s]
        curve.append({"env_steps": s, "success_rate": float(np.mean(vals)), "n_seeds": len(vals)})
    mean = lambda k: float(np.mean([r[k] for r in results]))  # noqa: E731
    return {"base_success_50": mean("base_success_50"), "final_success_50": mean("final_success_50"),
            "final_success_50_std": float(np.std([r["final_success_50"] for r in results])),
            "curve": curve, "env_steps_per_s": mean("env_steps_per_s"), "updates_per_s": mean("updates_per_s"),
            "updates": mean("updates"), "wall_seconds": mean("wall_seconds"), "steps": min(r["steps"] for r in results),
            "per_seed": results}


def plot(res: dict, rl: dict, path: Path, title: str = "ArmLift-v0, sparse reward, 10 demos") -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.6))
    seeds = res.get("per_seed") or [res]
    if len(seeds) > 1:
        for i, r in enumerate(seeds):
            ax.plot([p["env_steps"] for p in r["curve"]], [p["success_rate"] for p in r["curve"]], "-", color="C0",
                    alpha=0.3, lw=1, label="residual TD3, each seed" if i == 0 else None)
    ax.plot([p["env_steps"] for p in res["curve"]], [p["success_rate"] for p in res["curve"]], "o-", color="C0",
            label="residual TD3 (frozen BC base)" + (f", mean of {len(seeds)} seeds" if len(seeds) > 1 else ""))
    if rl["curve"]:
        ax.plot([0] + [p["env_steps"] for p in rl["curve"]], [0.0] + [p["mean_return"] for p in rl["curve"]], "s-", color="C1",
                label="RLPD from scratch (same demos)")
    ax.axhline(res["base_success_50"], color="gray", ls="--", label="BC base")
    ax.set(xlabel="environment steps", ylabel="success rate (20 seeded episodes)", ylim=(-0.02, 1.02),
           title=title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main() -> None:
    global PARTS
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--part", choices=("residual", "rlpd", "all"), default="all")
    ap.add_argument("--steps", type=int, default=None, help="env steps per arm (default: per task; --quick 1000)")
    ap.add_argument("--allow-partial", action="store_true", help="merge with a cut-short RLPD run")
    ap.add_argument("--task", choices=tuple(TASKS), default="armlift")
    ap.add_argument("--demos", type=int, default=None, help="number of scripted demos (default: per task)")
    ap.add_argument("--bc-steps", type=int, default=None, help="BC base gradient steps (default: per task)")
    ap.add_argument("--base-only", action="store_true", help="make and evaluate the BC base, then stop")
    ap.add_argument("--record-run", type=Path, nargs="+", default=None, metavar="RUN_DIR",
                    help="take the residual part from finished robotrl-train algo=residual runs (CLI) instead; "
                         "several runs (seeds) are averaged")
    ap.add_argument("--record-rlpd", type=Path, default=None, metavar="RUN_DIR",
                    help="take the RLPD part from a robotrl-train algo=rlpd run (resumable across sessions)")
    ap.add_argument("--note", action="append", default=[], help="extra note for the result (repeatable)")
    ap.add_argument("--result", default=None, metavar="NAME",
                    help="result name (default: the task's, e.g. residual_lift); its plot is residual_curve_<NAME without "
                         "'residual_'>.png, "
                         "so another recipe's runs can be recorded beside the task's main result")
    ap.set_defaults(part="all")
    a = ap.parse_args()
    torch.set_num_threads(1)
    select_task(a.task, a.demos, a.bc_steps)
    if a.result:
        if a.result == TASK["result"]:
            ap.error(f"--result {a.result} is the task's default name; leave it out")
        TASK["result"], TASK["plot"] = a.result, f"residual_curve_{a.result.removeprefix('residual_')}.png"
        PARTS = OUT / a.result
    steps = a.steps or (1000 if a.quick else TASK.get("steps", 4000))
    if a.base_only:
        from robotrl.envs import make_env
        from robotrl.residual.trainer import evaluate_policy_seeded

        _, base, base_dir = _setup(a.quick)
        m = evaluate_policy_seeded(base, lambda: make_env(ENV), 50, seed=EVAL_SEED)
        print(f"[bench.residual] {a.task}: BC base {base_dir} success {m['success_rate']:.2f} over 50 episodes")
        return
    record_cmd = ""
    if a.record_run is not None:
        recs = [record_run(d) for d in a.record_run]
        res_rec, record_cmd = merge_seeds([r for r, _ in recs]), recs[0][1]
        for d, (_, c) in zip(a.record_run[1:], recs[1:]):
            seed = next((w for w in c.split() if w.startswith("seed=")), "seed=?")
            record_cmd += f"; and the same with run_dir={d} {seed}"
        PARTS.mkdir(parents=True, exist_ok=True)
        (PARTS / "part_residual.json").write_text(json.dumps(res_rec, indent=1))
    elif a.part in ("residual", "all") and not a.allow_partial:
        run_residual_part(a.quick, steps)
    rlpd_cmd = ""
    if a.record_rlpd is not None:
        rl_rec, rlpd_cmd = record_rlpd(a.record_rlpd)
        PARTS.mkdir(parents=True, exist_ok=True)
        (PARTS / "part_rlpd.json").write_text(json.dumps(rl_rec, indent=1))
    elif a.part in ("rlpd", "all") and not a.allow_partial and a.record_run is None:
        run_rlpd_part(a.quick, steps)
    pr, pl = PARTS / "part_residual.json", PARTS / "part_rlpd.json"
    cut = ""
    if (a.allow_partial or a.record_run is not None) and pr.exists() and not pl.exists() \
            and (PARTS / "rlpd_run" / "metrics.jsonl").exists():
        rl, _ = record_rlpd(PARTS / "rlpd_run")
        last = rl["steps"]
        cut = f"RLPD was stopped at env step ~{last} (its last evaluation is reported), not run to the residual's budget."
    elif a.record_run is not None and pr.exists() and not pl.exists():
        rl = {"curve": [], "final_success_20": None, "env_steps_per_s": None, "updates_per_s": None, "steps": 0}
        cut = "RLPD was not run on this task (no RLPD run to record): the peer cells are empty."
    elif not (pr.exists() and pl.exists()):
        print(f"[bench.residual] waiting for the other part ({pr.exists()=}, {pl.exists()=})")
        return
    else:
        rl = json.loads(pl.read_text())
    res = json.loads(pr.read_text())
    from bench.common import RESULTS_DIR

    plot(res, rl, RESULTS_DIR / TASK["plot"], TASK["title"])
    n = res["steps"]
    per_seed = res.get("per_seed") or [res]
    rl_steps = rl.get("steps") or 0
    utd = f"UTD {float(rl['utd']):g}" if rl.get("utd") is not None else "UTD 2"
    # a ratio across unequal budgets says nothing: the peer label names RLPD's steps and the ratio is dropped
    peer_label = ("RLPD (robotrl.rl.rlpd): not run" if not rl.get("curve")
                  else f"RLPD (robotrl.rl.rlpd), same demos/steps/{utd}" if rl_steps == n
                  else f"RLPD (robotrl.rl.rlpd), same demos, {utd}, {rl_steps} env steps (residual: {n})")
    main_row = row(f"{TASK['label']}, {TASK['demos']} demos, weak BC base {res['base_success_50']:.2f}: success after {n} env steps",
            "success_rate", res["final_success_50"], peer=peer_label,
            peer_value=rl["final_success_20"], goal=">= 0.9 within 100k env steps", peer_env_steps=rl.get("steps"),
            met=bool(res["final_success_50"] >= 0.9), seeds=len(per_seed), episodes=50, peer_episodes=20,
            base_success_rate=res["base_success_50"], env_steps=n,
            **({"per_seed": [r["final_success_50"] for r in per_seed],
                "per_seed_base": [r["base_success_50"] for r in per_seed],
                "std": res["final_success_50_std"]} if len(per_seed) > 1 else {}))
    if rl_steps != n:
        main_row["ratio"] = None
    rows = [
        main_row,
        row(f"residual TD3 training loop, {TASK['label']} (UTD 2, 10x256x256 critic ensemble, batch 256)", "env_steps/s",
            res["env_steps_per_s"], peer="RLPD loop (same UTD)", peer_value=rl["env_steps_per_s"]),
        row("residual TD3 gradient updates", "updates/s", res["updates_per_s"], peer="RLPD (SAC, 10 critics)",
            peer_value=rl["updates_per_s"]),
    ]
    notes = [f"residual curve: {res['curve']}", f"RLPD curve (mean return = success rate, sparse): {rl['curve']}",
             "2 shared CPU cores (load ~5-9 from other jobs); UTD 2 instead of the note's 4 and 2x256 networks "
             "instead of 2x1024 to fit the CPU budget.", f"plot: bench/results/{TASK['plot']}"]
    if cut:
        notes.append(cut)
    if a.record_rlpd is not None:
        if rl["steps"] < n:
            notes.append(f"RLPD run {a.record_rlpd} has reached env step {rl['steps']} of {n} so far (resumable; its "
                         "last evaluation is reported)")
    notes += a.note
    cmd = "python -m bench.residual" + (f" --task {a.task}" if a.task != "armlift" else "") + (" --quick" if a.quick else "") + (f" --steps {a.steps}" if a.steps else "") + (f" --result {a.result}" if a.result else "")
    if record_cmd:
        cmd += f" --record-run {' '.join(map(str, a.record_run))}  (residual: {record_cmd})"
    if rlpd_cmd:
        cmd += f" --record-rlpd {a.record_rlpd}  (RLPD: {rlpd_cmd})"
    write_result(TASK["result"], cmd, rows, a.quick, notes=notes, regenerate=False)
    print(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
