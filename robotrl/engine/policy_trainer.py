"""Train a policy from demonstrations: data -> sampler -> policy.loss -> EMA -> eval -> checkpoint.

One loop for every policy (the loop never knows which one it trains). It

- collects demonstrations with the env's scripted expert when the dataset file is missing,
- trains stage by stage (``policy.stages``: CARP trains its tokenizer, then its transformer),
- evaluates the EMA weights every ``train.eval_every`` steps in vectorised envs,
- logs scalars to TensorBoard and ``metrics.jsonl`` and redraws ``learning_curve.png``,
- writes ``checkpoints/last.pt`` atomically (model, EMA, optimiser, scheduler, RNG, step) so a
  killed run resumes exactly where its last checkpoint was, and ``checkpoints/policy/`` (the EMA
  policy via ``save_pretrained``) for ``robotrl-eval`` and deployment,
- ends with a final evaluation that writes ``eval/metrics.json`` and ``eval/video.mp4``.
"""
from __future__ import annotations

import hashlib
import json
import math
import time
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf
from tqdm.auto import tqdm

from robotrl.engine.checkpoint import load_checkpoint, save_checkpoint
from robotrl.engine.evaluation import evaluate, write_eval_json
from robotrl.engine.logger import Logger
from robotrl.engine.plots import plot_learning_curve
from robotrl.nn.ema import EMA
from robotrl.policies.base import is_image_key, shape_meta_from_store
from robotrl.policies.factory import make_policy
from robotrl.utils.seeding import rng_state, seed_everything, set_rng_state

#: config sections whose change makes an old checkpoint in run_dir incompatible
_IDENTITY_KEYS = ("env", "dataset", "policy", "seed")


def env_config(cfg_env: Mapping[str, Any], obs_keys: tuple[str, ...] | list[str] = ()) -> dict[str, Any]:
    """The ``make_env`` config from the ``env`` group (drops the display ``name``; adds images if needed)."""
    env = dict(cfg_env)
    env.pop("name", None)
    if any(is_image_key(k) for k in obs_keys):
        env["image"] = True
    return env


def ensure_dataset(dataset_cfg: Mapping[str, Any], env_cfg: Mapping[str, Any], progress: bool = True):
    """Load the dataset; collect it with the scripted expert first when the file is missing."""
    from robotrl.data import load_dataset

    path = Path(dataset_cfg["path"])
    collect = dataset_cfg.get("collect") or {}
    if not path.exists():
        if not collect.get("enabled", True):
            raise FileNotFoundError(f"dataset {path} does not exist and dataset.collect.enabled=false")
        from robotrl.engine.collect import collect_demos

        print(f"[robotrl] dataset {path} is missing: collecting {collect.get('n_episodes', 100)} expert episodes")
        summary = collect_demos(
            env_cfg,
            n_episodes=int(collect.get("n_episodes", 100)),
            path=path,
            keep=collect.get("keep", "success"),
            noise=float(collect.get("noise", 0.0)),
            suboptimal=bool(collect.get("suboptimal", False)),
            seed=int(collect.get("seed", 0)),
            progress=progress,
            post_success_steps=_opt_int(collect.get("post_success_steps")),
        )
        print(f"[robotrl] collected: {json.dumps(summary)}")
    store = load_dataset(path, format=dataset_cfg.get("format"))
    want = _opt_int(collect.get("post_success_steps"))
    if want is not None:  # an existing file collected another way would silently train another recipe
        expert = store.attrs.get("expert")
        have = expert.get("post_success_steps") if isinstance(expert, Mapping) else "unknown (not collected by robotrl)"
        if have != want:
            raise ValueError(f"dataset {path}: dataset.collect.post_success_steps={want}, but the file was collected "
                             f"with post_success_steps={have}; use another dataset.path (the file is collected when "
                             "missing) or drop the setting")
    return store


def _opt_int(x: Any) -> int | None:
    return None if x is None else int(x)


def _config_hash(cfg: Mapping[str, Any]) -> str:
    ident = {k: cfg.get(k) for k in _IDENTITY_KEYS}
    # collect keys added later with a null default (post_success_steps) must not change the hash of the
    # runs started before them: null collect entries are left out
    ds = ident.get("dataset")
    if isinstance(ds, Mapping) and isinstance(ds.get("collect"), Mapping):
        ident["dataset"] = dict(ds, collect={k: v for k, v in ds["collect"].items() if v is not None})
    return hashlib.sha1(json.dumps(ident, sort_keys=True, default=str).encode()).hexdigest()[:12]


def resolve_device(name: str | None) -> torch.device:
    """``cpu`` (default), ``cuda``/``cuda:N``, or ``auto`` (CUDA when available); a clear error otherwise."""
    name = str(name or "cpu")
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(name)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(f"device={name!r} asked for, but torch {torch.__version__} sees no CUDA device "
                           "(this project pins the CPU build; use device=cpu or device=auto)")
    return dev


def _cosine_with_warmup(warmup: int, total: int):
    def f(step: int) -> float:
        if step < warmup:
            return (step + 1) / max(1, warmup)
        progress = (step - warmup) / max(1, total - warmup)
        return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))

    return f


def train_policy(cfg: DictConfig | Mapping[str, Any]) -> dict[str, Any]:
    """Run (or resume) one training run; return the final evaluation metrics."""
    c = OmegaConf.to_container(cfg, resolve=True) if isinstance(cfg, DictConfig) else dict(cfg)
    tr, ev = c["train"], c["eval"]
    run_dir = Path(c["run_dir"])
    ckpt_path = run_dir / "checkpoints" / "last.pt"
    policy_dir = run_dir / "checkpoints" / "policy"
    run_dir.mkdir(parents=True, exist_ok=True)
    if c.get("num_threads"):
        torch.set_num_threads(int(c["num_threads"]))
    gen = seed_everything(int(c["seed"]))
    progress = bool(c.get("progress", True))

    obs_keys = tuple(c["policy"].get("obs_keys", ("state",)))
    env_cfg = env_config(c["env"], obs_keys)
    store = ensure_dataset(c["dataset"], env_cfg, progress)

    device = resolve_device(c.get("device"))
    policy = make_policy(c["policy"], shape_meta_from_store(store, obs_keys))
    policy.fit_normalizer(store)
    policy.to(device)
    pc = policy.config
    from robotrl.data import SequenceSampler

    sampler = SequenceSampler(
        store,
        sequence_length=pc.horizon,
        pad_before=pc.n_obs_steps - 1,
        pad_after=pc.n_action_steps - 1,
        keys=[f"obs/{k}" for k in obs_keys] + ["action"],
        obs_steps=pc.n_obs_steps,
    )
    ema = EMA(policy, max_decay=float(tr.get("ema_decay", 0.9999))) if tr.get("ema", True) else None
    (run_dir / "config.json").write_text(json.dumps(c, indent=2, default=str))
    chash = _config_hash(c)

    # ------------------------------------------------------------------ resume
    state: dict[str, Any] = {"global_step": 0, "stage_index": 0, "stage_step": 0, "best_success": None,
                             "train_seconds": 0.0}
    resume_blob = None
    if ckpt_path.exists() and c.get("resume", True):
        resume_blob = load_checkpoint(ckpt_path)
        if resume_blob.get("config_hash") != chash:
            raise ValueError(
                f"{ckpt_path} belongs to a run with another env/dataset/policy/seed config; "
                f"pass run_dir=<new folder> or resume=false to start over"
            )
        policy.load_state_dict(resume_blob["policy"])
        if ema is not None and resume_blob.get("ema") is not None:
            ema.load_state_dict(resume_blob["ema"])
        state.update(resume_blob["state"])
        set_rng_state(resume_blob["rng"], gen)
        print(f"[robotrl] resuming {run_dir} from step {state['global_step']} (stage {policy.stages[state['stage_index']]})")
    logger = Logger(run_dir, tensorboard=bool(tr.get("tensorboard", True)))

    eval_policy = ema.shadow if ema is not None else policy
    stages = policy.stages
    t_start = time.time()
    limit = tr.get("time_limit_s")  # wall-clock bound on this invocation's training (then final eval)
    seconds_before = float(state.get("train_seconds") or 0.0)  # training wall-clock of earlier invocations
    out_of_time = False
    try:
        for si in range(state["stage_index"], len(stages)):
            stage = stages[si]
            policy.set_stage(stage)
            eval_policy.set_stage(stage)
            n_steps = policy.stage_steps(stage, int(tr["steps"]))
            params, over = policy.optim_groups(stage)
            opt = torch.optim.AdamW(
                params,
                lr=float(over.get("lr", tr["lr"])),
                betas=tuple(over.get("betas", tr.get("betas", (0.9, 0.999)))),
                weight_decay=float(over.get("weight_decay", tr.get("weight_decay", 1e-6))),
            )
            sched = torch.optim.lr_scheduler.LambdaLR(
                opt, _cosine_with_warmup(int(over.get("warmup_steps", tr.get("warmup_steps", 500))), n_steps)
            )
            if resume_blob is not None and resume_blob["state"]["stage_index"] == si:
                opt.load_state_dict(resume_blob["optimizer"])
                sched.load_state_dict(resume_blob["scheduler"])
            start = state["stage_step"] if si == state["stage_index"] else 0
            last_stage = si == len(stages) - 1
            policy.train()
            bar = tqdm(range(start, n_steps), desc=f"train {policy.name}:{stage}", disable=not progress,
                       initial=start, total=n_steps, dynamic_ncols=True)
            for i in bar:
                batch = sampler.sample(int(tr["batch_size"]), gen)
                if device.type != "cpu":
                    batch = batch.to(device, non_blocking=True)
                loss, metrics = policy.loss(batch)
                if not torch.isfinite(loss):
                    raise FloatingPointError(f"non-finite loss {float(loss)} at step {state['global_step']} (stage {stage})")
                opt.zero_grad(set_to_none=True)
                loss.backward()
                clip = over.get("grad_clip", tr.get("grad_clip"))
                if clip:
                    metrics["grad_norm"] = float(torch.nn.utils.clip_grad_norm_(
                        [q for g in opt.param_groups for q in g["params"]], float(clip)))
                opt.step()
                sched.step()
                if ema is not None:
                    ema.update(policy)
                state["global_step"] += 1
                state["stage_step"] = i + 1
                state["stage_index"] = si
                g = state["global_step"]
                if g % int(tr.get("log_every", 100)) == 0 or i == n_steps - 1:
                    metrics["lr"] = sched.get_last_lr()[0]
                    logger.log(g, metrics, prefix=f"train" if stage == stages[-1] else f"train_{stage}")
                    bar.set_postfix(loss=f"{metrics['loss']:.4f}")
                if last_stage and tr.get("eval_every") and g % int(tr["eval_every"]) == 0 and i < n_steps - 1:
                    m = evaluate(eval_policy, env_cfg, n_episodes=int(ev.get("n_episodes_during_train", 20)),
                                 num_envs=int(ev.get("num_envs", 10)), seed=int(ev.get("seed", 100_000)),
                                 max_episode_steps=ev.get("max_episode_steps"), progress=False,
                                 stop_on_success=bool(ev.get("stop_on_success", False)))
                    logger.log(g, {"success_rate": m["success_rate"], "mean_return": m["mean_return"]}, prefix="eval")
                    plot_learning_curve(run_dir, title=f"{policy.name} on {env_cfg['id']}")
                    policy.train()
                    bar.write(f"[robotrl] step {g}: success {m['success_rate']:.2f}, return {m['mean_return']:.2f}")
                out_of_time = limit is not None and time.time() - t_start > float(limit)
                if g % int(tr.get("ckpt_every", 1000)) == 0 or i == n_steps - 1 or out_of_time:
                    state["train_seconds"] = seconds_before + time.time() - t_start
                    _save(ckpt_path, policy, ema, opt, sched, state, gen, chash)
                if out_of_time:
                    bar.write(f"[robotrl] train.time_limit_s={limit} reached at step {g} (stage {stage}): "
                              "evaluating now; run again to continue training")
                    break
            bar.close()
            if out_of_time:
                break
            if si < len(stages) - 1:
                # the next stage trains on what this one produced: continue from the EMA weights
                if ema is not None:
                    policy.load_state_dict(ema.shadow.state_dict())
                state["stage_index"], state["stage_step"] = si + 1, 0
                resume_blob = None
                _save(ckpt_path, policy, ema, opt, sched, state, gen, chash)
    finally:
        logger.close()
    train_seconds = time.time() - t_start

    # ------------------------------------------------------------------ final evaluation
    eval_policy.save_pretrained(policy_dir)
    logger = Logger(run_dir, tensorboard=bool(tr.get("tensorboard", True)))
    video = run_dir / "eval" / "video.mp4" if ev.get("video", True) else None
    m = evaluate(eval_policy, env_cfg, n_episodes=int(ev["n_episodes"]), num_envs=int(ev.get("num_envs", 10)),
                 seed=int(ev.get("seed", 100_000)), video_path=video, max_episode_steps=ev.get("max_episode_steps"),
                 progress=progress, stop_on_success=bool(ev.get("stop_on_success", False)))
    logger.log(state["global_step"], {"success_rate": m["success_rate"], "mean_return": m["mean_return"]}, prefix="eval")
    logger.close()
    curve = plot_learning_curve(run_dir, title=f"{policy.name} on {env_cfg['id']}")
    out = {
        "success_rate": float(m["success_rate"]),
        "mean_return": float(m["mean_return"]),
        "n_episodes": int(ev["n_episodes"]),
        "steps": state["global_step"],
        "stopped_by_time_limit": out_of_time,
        "device": str(device),
        "train_seconds_this_session": round(train_seconds, 1),
        "train_seconds": round(seconds_before + train_seconds, 1),  # all invocations of this run
        "checkpoint": str(policy_dir),
        "video": str(video) if video else None,
        "learning_curve": str(curve),
        "tensorboard": str(run_dir / "tb"),
    }
    write_eval_json(run_dir / "eval" / "metrics.json", m, extra={"env": env_cfg["id"], "policy": policy.name, **out})
    return out


def _save(path: Path, policy, ema, opt, sched, state, gen, chash) -> None:
    save_checkpoint(
        path,
        {
            "policy": policy.state_dict(),
            "ema": ema.state_dict() if ema is not None else None,
            "optimizer": opt.state_dict(),
            "scheduler": sched.state_dict(),
            "state": dict(state),
            "rng": rng_state(gen),
            "config_hash": chash,
        },
    )
