"""``train_algo(cfg)``: offline RL on a D4RL-style dataset, optional online fine-tuning, evaluation.

    robotrl-train algo=iql dataset=d4rl/hopper-medium-v2 dataset.path=/data/hopper_medium-v2.hdf5
    robotrl-train algo=arsq dataset=d4rl/hopper-medium-replay-v5 algo.online_steps=50000
    robotrl-train algo=sac algo.env_id=Hopper-v5 algo.online_steps=100000

Steps: load the dataset (any format ``robotrl.data.load_dataset`` reads) and refuse it if its
observation/action size does not match the environment (naming file, key, expected and actual
shape); build the algorithm from ``algo.name`` and ``algo.params`` (its dataclass, unknown keys
refused); train ``algo.offline_steps`` gradient steps, evaluating the D4RL-normalised score every
``algo.eval_every`` steps and checkpointing atomically (a killed run resumes); then, if
``algo.online_steps > 0``, fine-tune online with :class:`robotrl.rl.OnlineTrainer` (keeping the
dataset in the batches, or WSRL-style with ``algo.finetune.warmup=policy`` and
``algo.finetune.offline_ratio=0``); finally evaluate ``eval.n_episodes`` episodes and write
``eval/metrics.json`` and ``learning_curve.png``.
"""
from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any, Iterable, Mapping

import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf

from robotrl.engine.checkpoint import load_checkpoint, save_checkpoint
from robotrl.engine.logger import Logger
from robotrl.utils.seeding import rng_state, seed_everything, set_rng_state

__all__ = ["train_algo", "ALGORITHMS", "make_algorithm", "apply_preset", "explicit_param_overrides"]


def _registry() -> dict[str, tuple[type, type, bool]]:
    """name -> (class, config dataclass, needs a dataset)."""
    from robotrl.offline.a2pr import A2PR, A2PRConfig
    from robotrl.offline.arsq import ARSQ, ARSQConfig
    from robotrl.offline.cql import CQL, CQLConfig
    from robotrl.offline.iql import IQL, IQLConfig
    from robotrl.offline.td3bc import TD3BC, TD3BCConfig
    from robotrl.rl.sac import SAC, SACConfig
    from robotrl.rl.td3 import TD3, TD3Config

    return {
        "iql": (IQL, IQLConfig, True), "td3bc": (TD3BC, TD3BCConfig, True), "cql": (CQL, CQLConfig, True),
        "a2pr": (A2PR, A2PRConfig, True), "arsq": (ARSQ, ARSQConfig, True),
        "sac": (SAC, SACConfig, False), "td3": (TD3, TD3Config, False),
    }


ALGORITHMS = ("iql", "td3bc", "cql", "a2pr", "arsq", "sac", "td3")

_ALGO_KEYS = {"name", "params", "offline_steps", "online_steps", "eval_every", "eval_episodes", "log_every",
              "ckpt_every", "env_id", "finetune", "preset"}


def _preset_table(name: str) -> Mapping[str, Mapping[str, Any]] | None:
    """The per-dataset settings (``PRESETS``) of an algorithm that has them (A2PR, ARSQ), else None."""
    if name == "a2pr":
        from robotrl.offline.a2pr import PRESETS

        return PRESETS
    if name == "arsq":
        from robotrl.offline.arsq import PRESETS

        return PRESETS
    return None


def apply_preset(name: str, preset: str | None, dataset_name: str, params: Mapping[str, Any],
                 explicit: Iterable[str] = ()) -> tuple[dict[str, Any], dict[str, Any]]:
    """``params`` with the algorithm's per-dataset settings filled in; returns ``(params, applied)``.

    ``preset``: ``None`` / ``"none"`` (nothing applied), ``"auto"`` (look up ``dataset_name``,
    e.g. ``hopper-medium-replay-v5``) or a D4RL-style name to look up instead. The user's values win:
    keys named in ``explicit`` (the ``algo.params.*`` set on the command line) and keys whose value
    differs from the algorithm's dataclass default (set in a config file, a dict, ...). ``applied``
    lists only the values that changed. An explicit preset name the algorithm does not know is an
    error; ``auto`` on an unknown dataset applies nothing.
    """
    import dataclasses

    params = dict(params)
    mode = "none" if preset is None else str(preset).strip()
    if mode.lower() in ("none", "null", "false", ""):
        return params, {}
    auto = mode.lower() == "auto"
    from robotrl.offline.common import dataset_preset

    table = _preset_table(name)
    if table is None:
        if auto:
            return params, {}
        raise ValueError(f"algo.preset={preset!r}: algo {name!r} has no per-dataset presets (a2pr and arsq do)")
    values = dataset_preset(table, dataset_name if auto else mode)
    if not values and not auto:
        raise ValueError(f"algo.preset={preset!r}: no {name} preset of that name; known: {sorted(table)}")
    fields = {f.name: f.default for f in dataclasses.fields(_registry()[name][1])}

    def same(a: Any, b: Any) -> bool:
        norm = lambda x: tuple(x) if isinstance(x, (list, tuple)) else x  # noqa: E731
        return norm(a) == norm(b)

    keep = set(explicit) | {k for k, v in params.items() if k in fields and not same(v, fields[k])}
    applied = {k: v for k, v in values.items() if k not in keep and not same(params.get(k, fields.get(k)), v)}
    params.update(applied)
    return params, applied


def _config_dict(cfg: Any) -> dict[str, Any]:
    import dataclasses

    return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(cfg).items()}


def _check_resumed_params(path: Path, saved: Mapping[str, Any] | None, now: Mapping[str, Any],
                          defaults: Mapping[str, Any] | None = None) -> None:
    """A resumed run must have the hyper-parameters it was started with (``max_steps`` may grow with
    ``algo.offline_steps``); checkpoints written before parameters were recorded are not checked, and a
    parameter added since (absent from ``saved``) counts as unchanged while it keeps its ``defaults`` value."""
    if saved is None:
        return
    defaults = defaults or {}
    diff = {k: (saved.get(k), now.get(k)) for k in set(saved) | set(now)
            if k != "max_steps" and saved.get(k) != now.get(k)
            and not (k not in saved and k in defaults and now.get(k) == defaults[k])}
    if diff:
        detail = ", ".join(f"{k}: {a!r} then, {b!r} now" for k, (a, b) in sorted(diff.items()))
        raise ValueError(f"{path} was trained with other algo.params ({detail}); set them back "
                         "(algo.params.<key>=..., or algo.preset=none / another preset), or use another run_dir")


def explicit_param_overrides(overrides: Iterable[str]) -> set[str]:
    """The ``algo.params.<key>`` names set in Hydra command-line overrides (``algo.params.alpha=40``,
    ``+algo.params.x=1``, ``++algo.params.x=1``); values given as a whole dict count through
    :func:`apply_preset`'s differs-from-default rule."""
    out = set()
    for o in overrides:
        lhs = str(o).split("=", 1)[0].lstrip("+~")
        if lhs.startswith("algo.params."):
            out.add(lhs[len("algo.params."):].split(".", 1)[0])
    return out


def make_algorithm(name: str, obs_dim: int, act_dim: int, params: Mapping[str, Any] | None = None) -> Any:
    """Build an algorithm by name from its dataclass fields (unknown fields refused)."""
    from robotrl.rl.base import config_from_dict

    reg = _registry()
    if name not in reg:
        raise ValueError(f"unknown algo.name {name!r}; known: {sorted(reg)}")
    cls, cfg_cls, _ = reg[name]
    return cls(obs_dim, act_dim, config_from_dict(cfg_cls, params, f"algo.params ({name})"))


def _env_cfg(c: Mapping[str, Any]) -> dict[str, Any]:
    a, d = c["algo"], c.get("dataset") or {}
    if a.get("env_id"):
        return {"id": a["env_id"]}
    if d.get("env_id"):
        return {"id": d["env_id"]}
    from robotrl.engine.policy_trainer import env_config

    return env_config(c["env"])


def _load_dataset(dcfg: Mapping[str, Any], env_cfg: Mapping[str, Any]):
    from robotrl.data import load_dataset
    from robotrl.offline.common import D4RL_ENV_VERSIONS, check_dataset_env

    path = Path(str(dcfg.get("path", "")))
    if not path.exists():
        body = str(dcfg.get("d4rl_name", "")).split("-")[0]
        raise FileNotFoundError(
            f"dataset file {str(path)!r} does not exist. Pass dataset.path=<your D4RL HDF5 file>, or generate "
            f"D4RL-style data with: robotrl-collect mode=d4rl d4rl.env_id={env_cfg['id']} d4rl.out_dir={path.parent}"
            + (f" (writes {body}-<kind>-v5.hdf5)" if body else "")
        )
    store = load_dataset(path, format=dcfg.get("format"))
    check_dataset_env(store, env_cfg, source=str(path))
    name = str(dcfg.get("d4rl_name") or dcfg.get("name") or "")
    body = name.split("-")[0]
    if body in D4RL_ENV_VERSIONS and not name.endswith("-v5"):
        orig, new = D4RL_ENV_VERSIONS[body]
        print(f"[robotrl] {name} was recorded on {orig}; evaluating on gymnasium {new} "
              f"(same observation/action layout, newer MuJoCo: returns are close but not identical)")
    return store


def train_algo(cfg: DictConfig | Mapping[str, Any], explicit_params: Iterable[str] | None = None) -> dict[str, Any]:
    """Run (or resume) offline training + optional online fine-tuning; return the final evaluation.

    ``algo.preset`` (A2PR, ARSQ; ``auto`` in their configs) fills in the per-dataset settings of the
    authors' code for the dataset's D4RL name; ``explicit_params`` names the ``algo.params`` keys
    set on the command line, which the preset leaves alone (as it does values that differ from the
    algorithm's defaults). A resumed run must resolve to the parameters it was started with.
    """
    from tqdm.auto import tqdm

    from robotrl.offline.common import TransitionSampler, episode_returns, locomotion_reward_scale, top_return_episodes
    from robotrl.rl.trainer import OnlineConfig, OnlineTrainer, evaluate_algo, mix_batches, plot_rl_curve

    c = OmegaConf.to_container(cfg, resolve=True) if isinstance(cfg, DictConfig) else dict(cfg)
    a = dict(c["algo"])
    unknown = sorted(set(a) - _ALGO_KEYS)
    if unknown:
        raise ValueError(f"unknown algo key(s) {unknown}; known: {sorted(_ALGO_KEYS)}")
    name = a["name"]
    reg = _registry()
    if name not in reg:
        raise ValueError(f"unknown algo.name {name!r}; known: {sorted(reg)}")
    _, _, offline = reg[name]
    params = dict(a.get("params") or {})
    dname = str((c.get("dataset") or {}).get("d4rl_name") or (c.get("dataset") or {}).get("name") or "")
    params, applied = apply_preset(name, a.get("preset"), dname, params, explicit_params or ())
    if applied:
        which = dname if str(a.get("preset")).strip().lower() == "auto" else a.get("preset")
        print(f"[robotrl] {name}: per-dataset settings for {which}: " + " ".join(f"{k}={v}" for k, v in applied.items())
              + " (algo.preset=none to keep the config's)")
        c["algo"] = {**a, "params": params}
        c["preset_applied"] = applied
    run_dir = Path(c["run_dir"])
    run_dir.mkdir(parents=True, exist_ok=True)
    if c.get("num_threads"):
        torch.set_num_threads(int(c["num_threads"]))
    seed = int(c.get("seed", 0))
    gen = seed_everything(seed)
    progress = bool(c.get("progress", True))
    ev = c.get("eval") or {}
    env_cfg = _env_cfg(c)
    offline_steps = int(a.get("offline_steps", 0)) if offline else 0
    online_steps = int(a.get("online_steps", 0))
    (run_dir / "config.json").write_text(json.dumps(c, indent=2, default=str))

    from robotrl.envs import make_env

    env = make_env(env_cfg)
    obs_dim, act_dim = int(env.observation_space["state"].shape[0]), int(env.action_space.shape[0])
    env.close()
    if "max_steps" in reg[name][1].__dataclass_fields__ and params.get("max_steps") is None:
        params["max_steps"] = max(offline_steps, 1)
    algo = make_algorithm(name, obs_dim, act_dim, params)
    acfg = algo.cfg
    gamma = float(getattr(acfg, "gamma", 0.99))
    batch_size = int(getattr(acfg, "batch_size", 256))

    sampler = demo = None
    reward_scale = 1.0
    demo_threshold = None
    if offline:
        store = _load_dataset(c["dataset"], env_cfg)
        if getattr(acfg, "normalize_reward", False):
            reward_scale = locomotion_reward_scale(store)
        sampler = TransitionSampler.from_store(store, gamma=gamma, seed=seed)
        sampler.reward = sampler.reward * reward_scale
        if getattr(acfg, "normalize_obs", False):
            algo.set_obs_stats(*sampler.obs_stats())
        if name == "arsq":
            eps = top_return_episodes(store, acfg.demo_percentile)
            demo = TransitionSampler.from_store(store.subset(eps), gamma=gamma, seed=seed + 1)
            demo_threshold = float(episode_returns(store)[eps].mean())
            print(f"[robotrl] ARSQ demo buffer: {len(eps)} of {store.num_episodes} episodes "
                  f"(return >= {acfg.demo_percentile:.0f}th percentile, mean {demo_threshold:.1f}), {len(demo)} transitions")

    eval_every = int(a.get("eval_every", 10_000))
    eval_episodes = int(a.get("eval_episodes", 10))
    log_every = int(a.get("log_every", 1000))
    ckpt_every = int(a.get("ckpt_every", 10_000))
    eval_num_envs = int(ev.get("num_envs", 5))
    eval_seed = int(ev.get("seed", 100_000))
    ckpt_path = run_dir / "checkpoints" / "offline_last.pt"
    step = 0
    if offline and ckpt_path.exists() and c.get("resume", True):
        blob = load_checkpoint(ckpt_path)
        if blob.get("algo_name") != name:
            raise ValueError(f"{ckpt_path} was written by algo {blob.get('algo_name')!r}, not {name!r}; "
                             "use another run_dir or resume=false")
        _check_resumed_params(ckpt_path, blob.get("params"), _config_dict(acfg), _config_dict(type(acfg)()))
        algo.load_state_dict(blob["algo"])
        step = int(blob["step"])
        set_rng_state(blob["rng"], gen)
        sampler.gen.set_state(blob["sampler_rng"])
        if demo is not None and blob.get("demo_rng") is not None:
            demo.gen.set_state(blob["demo_rng"])
        print(f"[robotrl] resuming {run_dir} at offline step {step}")

    def save(step: int) -> None:
        save_checkpoint(ckpt_path, {"algo": algo.state_dict(), "step": step, "rng": rng_state(gen), "algo_name": name,
                                    "params": _config_dict(acfg), "sampler_rng": sampler.gen.get_state(),
                                    "demo_rng": demo.gen.get_state() if demo is not None else None})

    def sample() -> Any:
        if demo is None:
            return sampler.sample(batch_size)
        n_demo = int(round(batch_size * acfg.demo_ratio))
        return mix_batches([(sampler.sample(batch_size - n_demo), False), (demo.sample(n_demo), True)])

    title = f"{name} on {c.get('dataset', {}).get('name', env_cfg['id']) if offline else env_cfg['id']}"
    t0 = time.time()
    steps_per_s = None
    if offline and step < offline_steps:
        logger = Logger(run_dir, tensorboard=bool(c.get("train", {}).get("tensorboard", True)))
        bar = tqdm(range(step, offline_steps), initial=step, total=offline_steps, desc=f"offline {name}",
                   disable=not progress, dynamic_ncols=True)
        s0 = step
        eval_time = 0.0
        try:
            for step in range(step + 1, offline_steps + 1):
                metrics = algo.update(sample())
                bar.update(1)
                if step % log_every == 0 or step == offline_steps:
                    if not all(np.isfinite(v) for v in metrics.values()):
                        raise FloatingPointError(f"non-finite metrics at offline step {step}: {metrics}")
                    metrics["grad_steps_per_s"] = (step - s0) / max(time.time() - t0 - eval_time, 1e-9)
                    logger.log(step, metrics, prefix="offline_train")
                if eval_every and step % eval_every == 0 and step < offline_steps:
                    te = time.time()
                    m = evaluate_algo(algo, env_cfg, eval_episodes, num_envs=eval_num_envs, seed=eval_seed)
                    logger.log(step, _scalars(m), prefix="offline_eval")
                    plot_rl_curve(run_dir, title=title)
                    bar.set_postfix(score=f"{m['normalized_score']:.1f}" if m["normalized_score"] is not None
                                    else f"{m['mean_return']:.1f}")
                    eval_time += time.time() - te
                if step % ckpt_every == 0 or step == offline_steps:
                    save(step)
        finally:
            bar.close()
            logger.close()
        steps_per_s = (offline_steps - s0) / max(time.time() - t0 - eval_time, 1e-9)  # gradient steps only

    online_out = None
    if online_steps > 0:
        ft = {k: v for k, v in (a.get("finetune") or {}).items() if v is not None}
        ft.setdefault("offline_ratio", 0.5 if offline and name != "arsq" else 0.0)
        ft.setdefault("start_steps", 0 if offline else 5000)
        ft.setdefault("utd", float(getattr(acfg, "utd", 1.0)))
        ft.setdefault("n_step", int(getattr(acfg, "n_step", 1)))
        if name == "arsq":  # the release's online phase: demo half + the dataset ∪ online data for the rest
            ft.setdefault("demo_ratio", acfg.demo_ratio)
            ft.setdefault("offline_union", bool(offline))
            if acfg.demo_grow:
                ft.setdefault("grow_demo_threshold", demo_threshold)
        ocfg = OnlineConfig(
            total_env_steps=online_steps, batch_size=batch_size, gamma=gamma, seed=seed, progress=progress,
            eval_every=eval_every, eval_episodes=eval_episodes, eval_num_envs=eval_num_envs, eval_seed=eval_seed,
            log_every=log_every, ckpt_every=ckpt_every, reward_scale=reward_scale,
            tensorboard=bool(c.get("train", {}).get("tensorboard", True)),
        )
        from robotrl.rl.base import config_from_dict
        import dataclasses

        ocfg = config_from_dict(OnlineConfig, {**dataclasses.asdict(ocfg), **ft}, "algo.finetune")
        trainer = OnlineTrainer(algo, env_cfg, ocfg, run_dir,
                                offline_buffer=sampler if (ocfg.offline_ratio > 0 or ocfg.offline_union) else None,
                                demo_buffer=demo if ocfg.demo_ratio > 0 else None, step_offset=offline_steps)
        online_out = trainer.run()

    # ---- final evaluation
    n_final = int(ev.get("n_episodes", 10))
    m = evaluate_algo(algo, env_cfg, n_final, num_envs=eval_num_envs, seed=eval_seed)
    logger = Logger(run_dir, tensorboard=False)
    logger.log(offline_steps + online_steps, _scalars(m), prefix="online_eval" if online_steps else "offline_eval")
    logger.close()
    curve = plot_rl_curve(run_dir, title=title)
    torch.save(algo.state_dict(), run_dir / "checkpoints" / "final_algo.pt")
    out = {
        "algo": name, "env": env_cfg["id"], "dataset": (c.get("dataset") or {}).get("path") if offline else None,
        "offline_steps": offline_steps, "online_steps": online_steps,
        "mean_return": m["mean_return"], "std_return": m["std_return"],
        "normalized_score": m["normalized_score"], "normalized_score_std": m["normalized_score_std"],
        "n_episodes": n_final, "offline_grad_steps_per_s": steps_per_s,
        "online": {k: v for k, v in (online_out or {}).items() if k != "last_eval"} or None,
        "learning_curve": str(curve), "checkpoint": str(run_dir / "checkpoints" / "final_algo.pt"),
    }
    (run_dir / "eval").mkdir(exist_ok=True)
    (run_dir / "eval" / "metrics.json").write_text(json.dumps({**out, "returns": m["returns"]}, indent=2, default=str))
    return out


def _scalars(m: Mapping[str, Any]) -> dict[str, float]:
    out = {"mean_return": m["mean_return"], "std_return": m["std_return"]}
    if m.get("normalized_score") is not None:
        out.update(normalized_score=m["normalized_score"], normalized_score_std=m["normalized_score_std"])
    return out
