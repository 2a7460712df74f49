"""Generate D4RL-style datasets on gymnasium's MuJoCo v5 tasks (the public D4RL files cannot be
downloaded here, and Minari has no medium-replay / medium-expert sets).

Recipe (D4RL, Fu et al. 2020, at a configurable, CPU-sized scale):

1. train SAC on the task for ``sac_steps`` environment steps, recording every transition collected
   and a snapshot of the actor (and its evaluation return) every ``snapshot_every`` steps;
2. ``expert`` = the best snapshot; ``medium`` = the first snapshot whose return reaches
   ``medium_fraction`` (about a third) of the expert's;
3. roll out ``dataset_size`` steps of each (stochastic actions, as D4RL did) and of a uniform random
   policy -> ``random``, ``medium``, ``expert``;
4. ``medium-replay`` = every transition SAC collected until the medium snapshot;
   ``medium-expert`` = ``medium`` followed by ``expert``.

Each file is D4RL's flat HDF5 layout (``observations``, ``actions``, ``rewards``, ``terminals``,
``timeouts``, ``next_observations``, ``infos/qpos``, ``infos/qvel``, ``metadata/*``: policy return and
normalised score, seed, steps, generator config), named ``<body>-<kind>-v5.hdf5``.
"""
from __future__ import annotations

import copy
import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from robotrl.data.episode_store import EpisodeStore

__all__ = ["D4RLGenConfig", "generate_d4rl_datasets", "rollout_store", "concat_stores", "KINDS"]

KINDS = ("random", "medium", "expert", "medium-replay", "medium-expert")


@dataclass
class D4RLGenConfig:
    env_id: str = "Hopper-v5"
    out_dir: str = "data/d4rl"
    kinds: tuple[str, ...] = KINDS
    sac_steps: int = 50_000            # D4RL trained SAC for ~1M+ steps; CPU default is small
    start_steps: int = 5_000           # uniform-random warm-up steps of SAC
    snapshot_every: int = 5_000        # env steps between actor snapshots (candidates for 'medium')
    snapshot_eval_episodes: int = 3
    medium_fraction: float = 1.0 / 3.0  # 'medium' = first snapshot with return >= this x expert return
    dataset_size: int = 50_000         # steps of random / medium / expert (D4RL: 1M)
    max_episode_steps: int = 1000
    seed: int = 0
    hidden_dims: tuple[int, ...] = (256, 256)
    batch_size: int = 256
    progress: bool = True
    sac: dict = field(default_factory=dict)  # extra SACConfig fields


def _env(cfg: D4RLGenConfig, seed: int | None = None):
    from robotrl.envs import make_env

    return make_env({"id": cfg.env_id, "max_episode_steps": cfg.max_episode_steps, "seed": seed})


class _EpisodeRecorder:
    """Collects steps with ``infos/qpos`` / ``infos/qvel`` (the state of ``observations[t]``)."""

    def __init__(self) -> None:
        self.episodes: list[dict[str, np.ndarray]] = []
        self.cur: dict[str, list] = self._empty()
        self.steps = 0

    @staticmethod
    def _empty() -> dict[str, list]:
        return {k: [] for k in ("obs/state", "action", "reward", "terminated", "truncated", "next_obs/state",
                                "infos/qpos", "infos/qvel")}

    def add(self, env: Any, obs: np.ndarray, action: np.ndarray, reward: float, term: bool, trunc: bool,
            next_obs: np.ndarray, qpos: np.ndarray, qvel: np.ndarray) -> None:
        c = self.cur
        c["obs/state"].append(obs)
        c["action"].append(action)
        c["reward"].append(np.float32(reward))
        c["terminated"].append(bool(term))
        c["truncated"].append(bool(trunc))
        c["next_obs/state"].append(next_obs)
        c["infos/qpos"].append(qpos)
        c["infos/qvel"].append(qvel)
        self.steps += 1
        if term or trunc:
            self.end()

    def end(self, force_truncate: bool = False) -> None:
        if not self.cur["action"]:
            return
        if force_truncate and not (self.cur["terminated"][-1] or self.cur["truncated"][-1]):
            self.cur["truncated"][-1] = True  # cut by the dataset size: a timeout, as in D4RL
        ep = {k: np.asarray(v) for k, v in self.cur.items()}
        for k in ("obs/state", "next_obs/state", "action", "infos/qpos", "infos/qvel"):
            ep[k] = ep[k].astype(np.float32 if k != "infos/qpos" and k != "infos/qvel" else np.float64)
        self.episodes.append(ep)
        self.cur = self._empty()

    def store(self, attrs: dict | None = None, max_steps: int | None = None) -> EpisodeStore:
        eps, total = [], 0
        for ep in self.episodes:
            n = len(ep["action"])
            if max_steps is not None and total + n > max_steps:
                keep = max_steps - total
                if keep <= 0:
                    break
                ep = {k: v[:keep] for k, v in ep.items()}
                if not (ep["terminated"][-1] or ep["truncated"][-1]):
                    ep["truncated"] = ep["truncated"].copy()
                    ep["truncated"][-1] = True
                n = keep
            eps.append(ep)
            total += n
        data = {k: np.concatenate([e[k] for e in eps]) for k in eps[0]}
        ends = np.cumsum([len(e["action"]) for e in eps])
        return EpisodeStore(data, ends, attrs or {})


def _state(env: Any) -> tuple[np.ndarray, np.ndarray]:
    d = env.unwrapped.data
    return d.qpos.copy(), d.qvel.copy()


def rollout_store(cfg: D4RLGenConfig, policy: Callable[[np.ndarray], np.ndarray] | None, n_steps: int,
                  seed: int, attrs: dict | None = None) -> tuple[EpisodeStore, list[float]]:
    """``n_steps`` environment steps of ``policy`` (``None``: uniform random) -> store, episode returns."""
    env = _env(cfg)
    rec = _EpisodeRecorder()
    rng = np.random.default_rng(seed)
    ep = 0
    obs, _ = env.reset(seed=seed)
    rets, ret = [], 0.0
    while rec.steps < n_steps:
        qpos, qvel = _state(env)
        s = obs["state"]
        a = rng.uniform(-1, 1, env.action_space.shape).astype(np.float32) if policy is None else policy(s)
        obs2, r, term, trunc, _ = env.step(a)
        rec.add(env, s, a, r, term, trunc, obs2["state"], qpos, qvel)
        ret += r
        obs = obs2
        if term or trunc:
            rets.append(ret)
            ret = 0.0
            ep += 1
            obs, _ = env.reset(seed=seed + ep)
    rec.end(force_truncate=True)
    env.close()
    return rec.store(attrs), rets


def _eval_actor(cfg: D4RLGenConfig, sac: Any, episodes: int, seed: int) -> float:
    from robotrl.rl.trainer import evaluate_algo

    return float(evaluate_algo(sac, {"id": cfg.env_id, "max_episode_steps": cfg.max_episode_steps}, episodes,
                               num_envs=1, seed=seed)["mean_return"])


def _train_sac(cfg: D4RLGenConfig) -> tuple[_EpisodeRecorder, list[dict], Any]:
    """SAC with a recorder of every collected step and actor snapshots."""
    from tqdm.auto import tqdm

    from robotrl.data.replay import ReplayBuffer
    from robotrl.rl.base import config_from_dict
    from robotrl.rl.sac import SAC, SACConfig

    env = _env(cfg)
    obs_dim, act_dim = env.observation_space["state"].shape[0], env.action_space.shape[0]
    sc = config_from_dict(SACConfig, {"hidden_dims": cfg.hidden_dims, "batch_size": cfg.batch_size, **cfg.sac}, "sac")
    sac = SAC(obs_dim, act_dim, sc)
    buf = ReplayBuffer(max(cfg.sac_steps, 1), {"obs": {"state": ((obs_dim,), "float32")},
                                              "action": ((act_dim,), "float32")}, seed=cfg.seed, gamma=sc.gamma)
    rec = _EpisodeRecorder()
    rng = np.random.default_rng(cfg.seed)
    snapshots: list[dict] = []
    ep = 0
    obs, _ = env.reset(seed=cfg.seed)
    bar = tqdm(total=cfg.sac_steps, desc=f"SAC {cfg.env_id}", disable=not cfg.progress, dynamic_ncols=True)
    t0 = time.time()
    for step in range(1, cfg.sac_steps + 1):
        s = obs["state"]
        qpos, qvel = _state(env)
        if step <= cfg.start_steps:
            a = rng.uniform(-1, 1, act_dim).astype(np.float32)
        else:
            a = sac.act(s, deterministic=False).astype(np.float32)
        obs2, r, term, trunc, _ = env.step(a)
        rec.add(env, s, a, r, term, trunc, obs2["state"], qpos, qvel)
        buf.extend({"obs": {"state": s[None]}, "action": a[None], "reward": np.array([r], np.float32),
                    "terminated": np.array([term]), "truncated": np.array([trunc]),
                    "next": {"obs": {"state": obs2["state"][None]}}})
        obs = obs2
        if term or trunc:
            ep += 1
            obs, _ = env.reset(seed=cfg.seed + ep)
        if step > cfg.start_steps:
            sac.update(buf.sample(sc.batch_size))
        if step % cfg.snapshot_every == 0 or step == cfg.sac_steps:
            ret = _eval_actor(cfg, sac, cfg.snapshot_eval_episodes, seed=10_000 + step)
            snapshots.append({"step": step, "return": ret, "actor": copy.deepcopy(sac.state_dict()["model"]),
                              "rec_steps": rec.steps})
            bar.set_postfix(ret=f"{ret:.0f}")
        bar.update(1)
    bar.close()
    env.close()
    rec.end(force_truncate=True)
    print(f"[robotrl] SAC on {cfg.env_id}: {cfg.sac_steps} steps in {time.time() - t0:.0f}s; snapshot returns "
          + ", ".join(f"{s['step']}:{s['return']:.0f}" for s in snapshots))
    return rec, snapshots, sac


def generate_d4rl_datasets(cfg: D4RLGenConfig) -> dict[str, Any]:
    """Train SAC and write the requested D4RL-layout files; return a summary (paths, returns, scores)."""
    from robotrl.data import save_dataset
    from robotrl.data.formats.d4rl import normalized_score
    from robotrl.envs.registry import D4RL_NAMES

    bad = sorted(set(cfg.kinds) - set(KINDS))
    if bad:
        raise ValueError(f"unknown dataset kind(s) {bad}; known: {list(KINDS)}")
    body = D4RL_NAMES.get(cfg.env_id.split("-")[0])
    if body is None:
        raise ValueError(f"D4RL-style generation supports {sorted(D4RL_NAMES)} (-v5), got {cfg.env_id!r}")
    torch.manual_seed(cfg.seed)
    np.random.seed(cfg.seed)
    out_dir = Path(cfg.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    gen_cfg = json.dumps(asdict(cfg), default=str)

    def meta(kind: str, policy_return: float | None, extra: dict | None = None) -> dict:
        m = {"kind": kind, "env_id": cfg.env_id, "d4rl_name": f"{body}-{kind}", "generator": "robotrl SAC",
             "seed": cfg.seed, "sac_steps": cfg.sac_steps, "config": gen_cfg}
        if policy_return is not None:
            m["policy_return"] = float(policy_return)
            m["policy_normalized_score"] = float(normalized_score(body, policy_return))
        m.update(extra or {})
        return {"metadata": m}

    summary: dict[str, Any] = {"env_id": cfg.env_id, "files": {}, "policy_returns": {}}
    need_sac = any(k != "random" for k in cfg.kinds)
    stores: dict[str, EpisodeStore] = {}
    if need_sac:
        rec, snaps, sac = _train_sac(cfg)
        best = max(snaps, key=lambda s: s["return"])
        target = cfg.medium_fraction * best["return"]
        medium = next((s for s in snaps if s["return"] >= target), best)
        summary["snapshots"] = [(s["step"], s["return"]) for s in snaps]

        def policy_of(snap: dict) -> Callable[[np.ndarray], np.ndarray]:
            agent = copy.deepcopy(sac)
            agent.load_state_dict(snap["actor"])
            return lambda s: agent.act(s, deterministic=False).astype(np.float32)

        for kind, snap, off in (("expert", best, 1), ("medium", medium, 2)):
            if kind in cfg.kinds or "medium-expert" in cfg.kinds:
                store, rets = rollout_store(cfg, policy_of(snap), cfg.dataset_size, seed=cfg.seed * 7919 + off * 100_000)
                pr = float(np.mean(rets)) if rets else float(snap["return"])
                store.attrs.update(meta(kind, pr, {"policy_step": snap["step"], "num_episodes": store.num_episodes}))
                stores[kind] = store
                summary["policy_returns"][kind] = pr
        if "medium-replay" in cfg.kinds:
            store = rec.store(max_steps=medium["rec_steps"])
            store.attrs.update(meta("medium-replay", None, {"policy_step": medium["step"],
                                                            "medium_policy_return": medium["return"]}))
            stores["medium-replay"] = store
        if "medium-expert" in cfg.kinds:
            me = concat_stores(stores["medium"], stores["expert"])
            me.attrs.update(meta("medium-expert", None, {"medium_policy_return": summary["policy_returns"]["medium"],
                                                         "expert_policy_return": summary["policy_returns"]["expert"]}))
            stores["medium-expert"] = me
    if "random" in cfg.kinds:
        store, rets = rollout_store(cfg, None, cfg.dataset_size, seed=cfg.seed * 7919 + 3 * 100_000)
        store.attrs.update(meta("random", float(np.mean(rets)) if rets else None))
        stores["random"] = store
    for kind in cfg.kinds:
        path = out_dir / f"{body}-{kind}-v5.hdf5"
        save_dataset(stores[kind], path, "d4rl")
        summary["files"][kind] = str(path)
    return summary


def concat_stores(a: EpisodeStore, b: EpisodeStore) -> EpisodeStore:
    """``a``'s episodes followed by ``b``'s (keys both have)."""
    keys = [k for k in a.keys() if k in b.keys()]
    data = {k: np.concatenate([a[k], b[k]]) for k in keys}
    ends = np.concatenate([a.episode_ends, b.episode_ends + a.num_steps])
    return EpisodeStore(data, ends, {})
