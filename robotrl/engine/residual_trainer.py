"""``robotrl-train algo=residual base_policy=<checkpoint> env=...``: residual RL on a frozen policy.

Also ``algo=rlpd`` (the from-scratch baseline with the same demonstrations). Both

- load (or collect) the demonstrations of the ``dataset`` group,
- train, log scalars to ``metrics.jsonl`` / TensorBoard,
- evaluate on ``eval.n_episodes`` seeded episodes (seeds ``eval.seed + i``) and write
  ``eval/metrics.json``;

``algo=residual`` saves the fine-tuned policy (base + residual) as ONE policy checkpoint in
``<run_dir>/checkpoints/policy`` that ``robotrl-eval`` and deployment load like any policy.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf

__all__ = ["train_residual", "train_rlpd"]


def _plain(cfg: DictConfig | Mapping[str, Any]) -> dict[str, Any]:
    return OmegaConf.to_container(cfg, resolve=True) if isinstance(cfg, DictConfig) else dict(cfg)


def _split_algo(algo: Mapping[str, Any], allowed: tuple[str, ...]) -> dict[str, Any]:
    algo = dict(algo)
    algo.pop("name", None)
    unknown = sorted(set(algo) - set(allowed))
    if unknown:
        raise ValueError(f"algo: unknown section(s) {unknown}; known: {list(allowed)}")
    return algo


def train_residual(cfg: DictConfig | Mapping[str, Any]) -> dict[str, Any]:
    """Fine-tune ``cfg.base_policy`` with residual TD3 (``conf/algo/residual.yaml``); return the summary."""
    from robotrl.cli.eval import resolve_checkpoint
    from robotrl.engine.evaluation import write_eval_json
    from robotrl.engine.logger import Logger
    from robotrl.engine.policy_trainer import ensure_dataset, env_config
    from robotrl.envs import make_env
    from robotrl.policies import load_policy
    from robotrl.residual import (ResidualPolicy, ResidualTD3Config, ResidualTrainConfig, check_base_matches_env,
                                  evaluate_policy_seeded, run_residual)
    from robotrl.rl.base import config_from_dict

    c = _plain(cfg)
    if not c.get("base_policy"):
        raise ValueError("algo=residual needs base_policy=<policy checkpoint dir or training run dir>")
    if c.get("num_threads"):
        torch.set_num_threads(int(c["num_threads"]))
    algo = _split_algo(c["algo"], ("policy", "td3", "train"))
    policy_dir, _ = resolve_checkpoint(c["base_policy"])
    base = load_policy(policy_dir).eval()
    pc = dict(algo.get("policy") or {})
    known = {"hidden_dims", "layer_norm", "action_scale", "image_keys", "encoder_channels", "encoder_feature_dim",
             "shift_pad", "state_std_min", "state_clip", "residual_dims"}
    unknown = sorted(set(pc) - known)
    if unknown:
        raise ValueError(f"algo.policy: unknown key(s) {unknown}; known: {sorted(known)}")
    image_keys = tuple(pc.pop("image_keys", None) or ())
    env_cfg = env_config(c["env"], tuple(base.config.obs_keys) + image_keys)
    probe = make_env(env_cfg)
    try:
        check_base_matches_env(base, probe, where=f"base policy {policy_dir}")
        low, high = probe.action_space.low, probe.action_space.high
        missing = [k for k in image_keys if k not in probe.observation_space.spaces]
        if missing:
            raise KeyError(f"algo.policy.image_keys {missing}: the environment {env_cfg['id']} has no such observation "
                           f"(it has {sorted(probe.observation_space.spaces)})")
        image_shapes = {k: tuple(probe.observation_space[k].shape) for k in image_keys}
    finally:
        probe.close()
    store = ensure_dataset(c["dataset"], env_cfg, bool(c.get("progress", True)))
    st = np.asarray(store["obs/state"], np.float64)
    policy = ResidualPolicy.from_base(base, action_low=low, action_high=high, state_mean=st.mean(0), state_std=st.std(0),
                                      hidden_dims=tuple(pc.get("hidden_dims", (256, 256))),
                                      layer_norm=bool(pc.get("layer_norm", True)),
                                      action_scale=float(pc.get("action_scale", 0.2)), image_shapes=image_shapes,
                                      **{k: pc[k] for k in ("encoder_channels", "encoder_feature_dim", "shift_pad",
                                                            "state_std_min", "state_clip", "residual_dims")
                                         if k in pc})
    tcfg = config_from_dict(ResidualTrainConfig, {"seed": int(c.get("seed", 0)), "progress": bool(c.get("progress", True)),
                                                  **(algo.get("train") or {})}, where="algo.train")
    acfg = config_from_dict(ResidualTD3Config, algo.get("td3"), where="algo.td3")
    run_dir = Path(c["run_dir"])
    if (run_dir / "checkpoints" / "policy").resolve() == policy_dir.resolve() or run_dir.resolve() in policy_dir.resolve().parents:
        raise ValueError(f"run_dir={run_dir} holds the base policy {policy_dir}: the residual run would overwrite it; "
                         "pass run_dir=<new folder> (e.g. runs/<env>-residual-s<seed>)")
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "config.json").write_text(__import__("json").dumps(c, indent=2, default=str))
    logger = Logger(run_dir, tensorboard=bool((c.get("train") or {}).get("tensorboard", True)))

    def log(step: int, m: dict) -> None:
        logger.log(step, m)

    env_fn = lambda: make_env(env_cfg)  # noqa: E731
    try:
        out = run_residual(policy, env_fn, store, tcfg, acfg, run_dir=run_dir, log=log)
    finally:
        logger.close()
    ev = c.get("eval") or {}
    n = int(ev.get("n_episodes", 50))
    tuned = load_policy(out["checkpoint"])
    m = evaluate_policy_seeded(tuned, env_fn, n, seed=int(ev.get("seed", 100_000)))
    mb = evaluate_policy_seeded(base, env_fn, n, seed=int(ev.get("seed", 100_000)))
    summary = {"success_rate": m["success_rate"], "base_success_rate": mb["success_rate"], "n_episodes": n,
               "env_steps": out["env_steps"], "updates": out["updates"], "env_steps_per_s": out["env_steps_per_s"],
               "updates_per_s": out["updates_per_s"], "checkpoint": out["checkpoint"], "base_policy": str(policy_dir)}
    write_eval_json(run_dir / "eval" / "metrics.json", m, extra={"env": env_cfg["id"], "policy": "residual", **summary})
    _plot(out["curve"], mb["success_rate"], run_dir / "learning_curve.png", env_cfg["id"])
    return summary


def _plot(curve: list[dict], base_rate: float, path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3.2))
    if curve:
        ax.plot([p["env_steps"] for p in curve], [p["success_rate"] for p in curve], "o-", label="residual")
    ax.axhline(base_rate, color="gray", ls="--", label="base")
    ax.set(xlabel="env steps", ylabel="success rate", ylim=(-0.02, 1.02), title=title)
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def train_rlpd(cfg: DictConfig | Mapping[str, Any]) -> dict[str, Any]:
    """RLPD from scratch on the ``dataset`` demonstrations (``conf/algo/rlpd.yaml``)."""
    from robotrl.engine.policy_trainer import ensure_dataset, env_config
    from robotrl.rl.base import config_from_dict
    from robotrl.rl.rlpd import RLPDConfig, run_rlpd

    c = _plain(cfg)
    if c.get("num_threads"):
        torch.set_num_threads(int(c["num_threads"]))
    algo = _split_algo(c["algo"], ("rlpd", "train"))
    env_cfg = env_config(c["env"], ("state",))
    store = ensure_dataset(c["dataset"], env_cfg, bool(c.get("progress", True)))
    rc = config_from_dict(RLPDConfig, algo.get("rlpd"), where="algo.rlpd")
    tr = dict(algo.get("train") or {})
    known = {"total_env_steps", "eval_every", "eval_episodes", "ckpt_every"}
    unknown = sorted(set(tr) - known)
    if unknown:
        raise ValueError(f"algo.train: unknown key(s) {unknown}; known: {sorted(known)}")
    ev = c.get("eval") or {}
    out = run_rlpd(env_cfg, store, int(tr.get("total_env_steps", 100_000)), c["run_dir"], rc, seed=int(c.get("seed", 0)),
                   eval_every=int(tr.get("eval_every", 5_000)), eval_episodes=int(tr.get("eval_episodes", 20)),
                   eval_seed=int(ev.get("seed", 100_000)), progress=bool(c.get("progress", True)),
                   ckpt_every=int(tr.get("ckpt_every", 10_000)))
    return {k: v for k, v in out.items() if k != "last_eval"}
