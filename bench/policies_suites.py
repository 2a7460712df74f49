"""Diffusion Policy and CARP on task suites: Meta-World MT1 (state) and a bundled task from images.

    python -m bench.policies_suites metaworld [--device cuda] [--jobs 10] [--quick]
    python -m bench.policies_suites images    [--device cuda] [--jobs 2]  [--quick]

``metaworld``: the five MT1 tasks of the issue (pick-place, push, door-open, drawer-close,
button-press), 50 scripted demonstrations each (metaworld's own scripted policies, successful
episodes only, seeds 0..), Diffusion Policy (UNet, DDIM 10) and CARP (greedy) trained with
``robotrl-train``'s loop, evaluated on 50 seeded episodes (seeds 100000.., disjoint from the
demos; success = ``info["success"]`` at any step of the 500-step episode; episodes end at their
first success to save time, which does not change the success rate).

``images``: ``robotrl/TwoPaths-v0`` from the 84x84 top-down camera + proprioception (agent
position and velocity; the goal is only in the image), 100 demonstrations, the image variants
of both policies (``policy=diffusion_unet_image | carp_image``: ResNet-18-style encoder written
here, GroupNorm, spatial softmax, random crop), 50 seeded episodes.

``--policies carp_qk`` adds CARP with the official code's QK-normalised attention (``policy.qk_norm=true``) as
a policy of its own (own run dirs and rows).

Every (task, policy) pair is one training run in ``--runs-dir`` (resumed if it exists); ``--jobs``
runs them in parallel processes (1 torch thread each). Writes
``bench/results/policies_<suite>.json`` with each run's success rate, steps and wall-clock;
``--merge`` replaces only the runs of this invocation in an existing result file.

On one GPU, many processes share it well only under CUDA MPS (``nvidia-cuda-mps-control -d``
before the run): without it, 12 processes were time-sliced to ~8 steps/s each; with it, 8
processes each ran 20-25 steps/s. ``--time-limit`` bounds each run's training wall-clock (the run
then evaluates what it has; the result records the steps actually done).
"""
from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("MUJOCO_GL", "egl")
os.environ.setdefault("OMP_NUM_THREADS", "1")

from bench.common import RESULTS_DIR, load_average, row, write_result  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
CONF = ROOT / "conf"

MW_TASKS = ("pick-place", "push", "door-open", "drawer-close", "button-press")
#: policy key -> (config group, training steps full / quick, extra overrides)
MW_POLICIES = {
    "diffusion": ("diffusion_unet", 20_000, 400, []),
    "carp": ("carp", 20_000, 600, []),
    # the official CARP code's QK-normalised attention (robotrl's default is plain scaled dot-product)
    "carp_qk": ("carp", 20_000, 600, ["policy.qk_norm=true"]),
}
IMG_POLICIES = {
    "diffusion": ("diffusion_unet_image", 20_000, 300, []),
    "carp": ("carp_image", 20_000, 500, []),
    "carp_qk": ("carp_image", 20_000, 500, ["policy.qk_norm=true"]),
}
LABELS = {"diffusion": "Diffusion Policy (UNet, DDIM 10)", "carp": "CARP (greedy)",
          "carp_qk": "CARP (greedy, QK-norm attention)"}


def _compose(overrides: list[str]):
    from hydra import compose, initialize_config_dir

    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return compose(config_name="train", overrides=overrides)


def _env_overrides(suite: str, task: str, runs_dir: Path, n_demos: int, post_success: int | None = None) -> list[str]:
    if suite == "metaworld":
        # demos cut k steps after success are another file (a full-length one is never reused for them)
        name = f"mw_{task}_demos.hdf5" if post_success is None else f"mw_{task}_demos_ps{post_success}.hdf5"
        return ["env=metaworld", f"env.id=metaworld/{task}-v3", f"env.name={task}",
                f"dataset.path={runs_dir / name}", f"dataset.collect.n_episodes={n_demos}",
                f"dataset.collect.post_success_steps={'null' if post_success is None else post_success}"]
    return [f"env={task}", f"dataset.path={runs_dir / f'{task}_image_demos.hdf5'}",
            f"dataset.collect.n_episodes={n_demos}"]


def run_dir_for(runs_dir: Path, suite: str, task: str, key: str, post_success: int | None = None) -> Path:
    """One training run's folder; runs on demos cut after success are other runs (a full-demo
    checkpoint is never resumed for them)."""
    return runs_dir / (f"{suite}-{task}-{key}" + ("" if post_success is None else f"-ps{post_success}"))


def result_name(suite: str, post_success: int | None = None) -> str:
    """bench/results/<name>.json: another demo recipe is another result (never mixed into the full-demo
    one, nor merged with it by ``--merge``)."""
    return f"policies_{suite}" + ("" if post_success is None else f"_ps{post_success}")


def _collect(args: tuple) -> str:
    """Collect one task's demonstrations (before training jobs share the file)."""
    suite, task, runs_dir, n_demos, policy_group, post_success = args
    from robotrl.engine.policy_trainer import ensure_dataset, env_config

    cfg = _compose(_env_overrides(suite, task, Path(runs_dir), n_demos, post_success) + [f"policy={policy_group}"])
    from omegaconf import OmegaConf

    c = OmegaConf.to_container(cfg, resolve=True)
    store = ensure_dataset(c["dataset"], env_config(c["env"], tuple(c["policy"]["obs_keys"])), progress=False)
    return f"{task}: {store.num_episodes} episodes, {store.num_steps} frames"


def _train(args: tuple) -> dict:
    suite, task, key, group, steps, extra, runs_dir, n_demos, episodes, device, batch_size, video, limit, post_success = args
    import torch

    torch.set_num_threads(1)
    from robotrl.engine.policy_trainer import train_policy

    run_dir = run_dir_for(Path(runs_dir), suite, task, key, post_success)
    overrides = _env_overrides(suite, task, Path(runs_dir), n_demos, post_success) + [
        f"policy={group}", f"run_dir={run_dir}", f"train.steps={steps}", f"train.batch_size={batch_size}",
        "train.eval_every=0", "train.log_every=500", "train.ckpt_every=2000", f"eval.n_episodes={episodes}",
        "eval.num_envs=10", f"eval.video={str(video).lower()}", f"train.time_limit_s={limit or 'null'}",
        "eval.stop_on_success=true", "num_threads=1", "progress=false",
        "seed=0", f"device={device}", *extra,
    ]
    t0 = time.time()
    out = train_policy(_compose(overrides))
    out.update(task=task, policy=key, wall_seconds=round(time.time() - t0, 1), run_dir=str(run_dir))
    print(f"[bench] {suite} {task} {key}: success {out['success_rate']:.2f} ({out['steps']} steps, "
          f"{out['wall_seconds']} s on {out['device']})", flush=True)
    return out


def run_suite(suite: str, quick: bool, runs_dir: Path, jobs: int, device: str, tasks: list[str],
              policies: list[str], steps: int | None, batch_size: int, video: bool = True,
              time_limit: float | None = None, post_success: int | None = None) -> list[dict]:
    table = MW_POLICIES if suite == "metaworld" else IMG_POLICIES
    n_demos = 50 if suite == "metaworld" else 100
    episodes = 20 if quick else 50
    runs_dir.mkdir(parents=True, exist_ok=True)
    ctx = mp.get_context("spawn")
    first_group = table[policies[0]][0]
    with ctx.Pool(min(jobs, len(tasks))) as pool:
        for msg in pool.imap_unordered(_collect, [(suite, t, str(runs_dir), n_demos, first_group, post_success)
                                                    for t in tasks]):
            print("[bench] demos", msg, flush=True)
    specs = []
    for t in tasks:
        for key in policies:
            group, full, q, extra = table[key]
            n = steps or (q if quick else full)
            specs.append((suite, t, key, group, n, extra, str(runs_dir), n_demos, episodes, device, batch_size, video,
                          time_limit, post_success))
    with ctx.Pool(min(jobs, len(specs))) as pool:
        results = list(pool.imap_unordered(_train, specs))
    return results


def build_rows(suite: str, results: list[dict]) -> list[dict]:
    """Per-run rows and, per policy, the average over the suite's tasks."""
    results = sorted(results, key=lambda r: (r["task"], r["policy"]))
    rows = []
    for key in LABELS:
        rs = [r for r in results if r["policy"] == key]
        if not rs:
            continue
        label = LABELS[key]
        for r in rs:
            rows.append(row(f"{suite}: {r['task']}: {label}", "success_rate", r["success_rate"],
                            episodes=r.get("n_episodes"), train_steps=r["steps"], wall_seconds=r["wall_seconds"],
                            device=r["device"], stopped_by_time_limit=r.get("stopped_by_time_limit"),
                            invocation=r.get("invocation")))
        mean = sum(r["success_rate"] for r in rs) / len(rs)
        name = (f"average over {len(rs)} MT1 tasks" if suite == "metaworld"
                else "TwoPaths-v0 from 84x84 images + proprio")
        rows.append(row(f"{suite}: {label}, {name}", "success_rate", mean, goal=">= 0.8", met=bool(mean >= 0.8),
                        seeds=1))
    return rows


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("suite", choices=["metaworld", "images"])
    ap.add_argument("--quick", action="store_true", help="short training (a sanity check, not a result)")
    ap.add_argument("--runs-dir", default=None, help="training runs (default runs/bench_<suite>)")
    ap.add_argument("--jobs", type=int, default=2, help="parallel training processes")
    ap.add_argument("--device", default="cpu", help="cpu | cuda | auto")
    ap.add_argument("--tasks", nargs="*", default=None, help="subset of tasks (metaworld)")
    ap.add_argument("--policies", nargs="*", default=["diffusion", "carp"], choices=list(LABELS),
                    help="carp_qk: CARP with the official code's QK-normalised attention (policy.qk_norm=true)")
    ap.add_argument("--steps", type=int, default=None, help="training steps per run (default per policy)")
    ap.add_argument("--batch-size", type=int, default=256)
    ap.add_argument("--merge", action="store_true",
                    help="keep the other runs of the existing result file (rerun only some tasks/policies)")
    ap.add_argument("--no-video", action="store_true", help="skip the evaluation videos")
    ap.add_argument("--time-limit", type=float, default=None, help="seconds of training per run (then evaluate)")
    ap.add_argument("--post-success-steps", type=int, default=None, metavar="K",
                    help="metaworld: demos end K steps after their first success (default: the full 500 steps)")
    args = ap.parse_args(argv)
    if args.post_success_steps is not None and args.suite != "metaworld":
        ap.error("--post-success-steps applies to the metaworld suite (the images task ends at success)")
    runs_dir = Path(args.runs_dir or ROOT / "runs" / f"bench_{args.suite}")
    tasks = args.tasks or (list(MW_TASKS) if args.suite == "metaworld" else ["twopaths"])
    t0 = time.time()
    results = run_suite(args.suite, args.quick, runs_dir, args.jobs, args.device, tasks, args.policies,
                        args.steps, args.batch_size, not args.no_video, args.time_limit, args.post_success_steps)
    cmd = "python -m bench.policies_suites" + " ".join([""] + (argv if argv is not None else sys.argv[1:]))
    for r in results:
        r["invocation"] = cmd
    name = result_name(args.suite, args.post_success_steps)
    notes = [f"{cmd}: {len(results)} runs in {args.jobs} parallel processes, {time.time() - t0:.0f} s in all; "
             f"load average at the end {load_average()}"]
    if args.merge:
        # keep the other (task, policy) runs of the existing result file, replace the ones rerun here
        old = json.loads((RESULTS_DIR / f"{name}.json").read_text())
        done = {(r["task"], r["policy"]) for r in results}
        results = [r for r in old.get("runs", []) if (r["task"], r["policy"]) not in done] + results
        notes = old.get("notes", []) + notes
        cmd = old["command"] + " ; " + cmd
    else:
        notes.append("1 training seed per (task, policy); EMA weights; eval seeds 100000.. (demos: 0..)")
        if args.suite == "metaworld":
            notes.append("Meta-World v3 (metaworld 3.1.1) MT1, task layouts drawn per seed from MT1's 50; "
                         "episodes of 500 steps ended at first success")
            if args.post_success_steps is not None:
                notes.append(f"demonstrations end {args.post_success_steps} steps after their first success "
                             "(--post-success-steps; default: the full 500 steps)")
    rows = build_rows(args.suite, results)
    path = write_result(name, cmd, rows, args.quick, notes=notes, runs=results)
    for r in rows:
        print(r)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
