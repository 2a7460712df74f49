"""Train a verifier for a trained policy on that policy's own training data.

- TACO / CFN (:func:`collect_policy_features` + :func:`train_cfn`): for each training window, draw
  ``num_candidates`` chunks from the policy (one batched call per batch of windows, observation
  encoded once) and keep the feature of the candidate closest (MSE over the whole horizon, in the
  policy's normalised action units) to the demonstrated chunk -- the "high-fidelity" feature of that
  sample; then regress each sample's Rademacher coins with Adam.
- V-GPS (:func:`train_value_verifier`): IQL on chunk transitions built from the EpisodeStore.

:func:`train_verifier` does either from a policy checkpoint + dataset and writes the verifier and a
ready-to-evaluate :class:`VerifiedPolicy` checkpoint.
"""
from __future__ import annotations

import copy
import dataclasses
import json
import math
import time
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import torch
from tqdm.auto import tqdm

from robotrl.utils.config import dataclass_from_dict
from robotrl.verifiers.cfn import CFNConfig, CFNVerifier
from robotrl.verifiers.value import ValueConfig, ValueVerifier


# --------------------------------------------------------------------------------------------- configs
@dataclasses.dataclass
class CFNTrainConfig:
    """TACO's CFN training: ``num_candidates`` draws per sample (high-fidelity selection), Adam."""

    num_candidates: int = 16
    max_samples: int = 4096        # training windows used (evenly strided subset when the data has more)
    sample_batch_size: int = 64    # windows per sample_actions call (x num_candidates chunks)
    epochs: int = 16
    batch_size: int = 256
    lr: float = 3e-4
    weight_decay: float = 0.0
    seed: int = 0
    episodes: str = "all"          # "all" (the policy's whole training set, as TACO) | "success" (successful episodes only)

    def __post_init__(self) -> None:
        if self.episodes not in ("all", "success"):
            raise ValueError(f"CFNTrainConfig.episodes must be 'all' or 'success', got {self.episodes!r}")


@dataclasses.dataclass
class ValueTrainConfig:
    """IQL on chunk transitions (defaults: the paper's locomotion settings, smaller nets)."""

    steps: int = 5000
    batch_size: int = 256
    lr: float = 3e-4
    gamma: float = 0.99
    expectile: float = 0.8
    polyak: float = 0.005
    reward_scale: float = 1.0
    seed: int = 0


def _policy_sampler(policy: Any, store: Any, episode_indices: np.ndarray | None = None):
    from robotrl.data import SequenceSampler

    pc = policy.config
    return SequenceSampler(
        store, sequence_length=pc.horizon, pad_before=pc.n_obs_steps - 1, pad_after=pc.n_action_steps - 1,
        keys=[f"obs/{k}" for k in pc.obs_keys] + ["action"], obs_steps=pc.n_obs_steps, episode_indices=episode_indices,
    )


def successful_episodes(store: Any) -> np.ndarray:
    """Indices of the episodes that succeed: a positive reward at some step (the bundled tasks' sparse
    success reward) -- or, where the data records it, ``infos/is_success``."""
    key = "infos/is_success" if "infos/is_success" in store else "reward"
    if key not in store:
        raise KeyError(f"cannot tell successful episodes apart: the dataset has neither 'reward' nor "
                       f"'infos/is_success' (keys {sorted(store.keys())})")
    flag = np.asarray(store[key]).astype(np.float64) > 0
    ends = np.asarray(store.episode_ends)
    starts = np.concatenate([[0], ends[:-1]])
    return np.array([i for i, (a, b) in enumerate(zip(starts, ends)) if flag[a:b].any()], dtype=np.int64)


# --------------------------------------------------------------------------------------------- CFN
@torch.no_grad()
def collect_policy_features(policy: Any, store: Any, num_candidates: int = 16, max_samples: int | None = 4096,
                            batch_size: int = 64, seed: int = 0, progress: bool = True,
                            episodes: str = "all") -> dict[str, torch.Tensor]:
    """High-fidelity features ``[S, F]`` of the policy on its training windows (of every episode, or of
    the successful ones with ``episodes="success"``).

    Returns ``{"features", "window_ids", "distance"}`` (``distance``: the chosen candidate's MSE to the
    demonstrated chunk in normalised units).
    """
    if not hasattr(policy, "feature_dim"):
        raise ValueError(f"{type(policy).__name__} exposes no features (sample_actions(..., return_features=True))")
    if episodes not in ("all", "success"):
        raise ValueError(f"episodes must be 'all' or 'success', got {episodes!r}")
    subset = successful_episodes(store) if episodes == "success" else None
    if subset is not None and len(subset) == 0:
        raise ValueError("episodes='success': the dataset has no successful episode")
    sampler = _policy_sampler(policy, store, subset)
    n = len(sampler)
    ids = np.arange(n)
    if max_samples is not None and n > max_samples:
        ids = np.unique(np.linspace(0, n - 1, int(max_samples)).round().astype(np.int64))
    policy.eval()
    torch.manual_seed(seed)
    feats, dists = [], []
    for s in tqdm(range(0, len(ids), batch_size), desc="verifier features", disable=not progress, dynamic_ncols=True):
        batch = sampler.get_batch(ids[s : s + batch_size])
        obs = {k: batch["obs", k] for k in policy.config.obs_keys}
        actions, f = policy.sample_actions(obs, num_samples=num_candidates, return_features=True)
        target = policy.normalizer.normalize("action", batch["action"].float().to(actions.device))
        cand = policy.normalizer.normalize("action", actions)
        d = (cand - target[:, None]).pow(2).mean(dim=(-1, -2))  # [b, M]
        best = d.argmin(1)
        feats.append(f[torch.arange(len(best)), best].float().cpu())
        dists.append(d.min(1).values.cpu())
    return {"features": torch.cat(feats), "window_ids": torch.as_tensor(ids), "distance": torch.cat(dists)}


def train_cfn(features: torch.Tensor, model: CFNConfig | Mapping[str, Any] | None = None,
              train: CFNTrainConfig | Mapping[str, Any] | None = None, progress: bool = True,
              log: list | None = None) -> CFNVerifier:
    """Fit a CFN verifier on ``[S, F]`` features: sample ``i`` regresses ``coins(i)`` (MSE)."""
    features = torch.as_tensor(features).float()
    if features.ndim != 2 or features.shape[0] < 1:
        raise ValueError(f"train_cfn: features must be [S, F] with S >= 1, got {tuple(features.shape)}")
    if not isinstance(model, CFNConfig):
        model = dict(model or {})
        model.setdefault("feature_dim", int(features.shape[1]))
        model = CFNConfig.from_dict(model)
    if model.feature_dim != features.shape[1]:
        raise ValueError(f"train_cfn: CFNConfig.feature_dim={model.feature_dim} but features are {tuple(features.shape)}")
    tc = train if isinstance(train, CFNTrainConfig) else dataclass_from_dict(CFNTrainConfig, train)
    gen = torch.Generator().manual_seed(tc.seed)
    torch.manual_seed(tc.seed)
    verifier = CFNVerifier(model)
    cfn = verifier.cfn
    s = features.shape[0]
    coins = verifier.coins(np.arange(s))
    # prime the prior's running statistics on the whole training set, then keep updating them
    cfn.prior_out(features * model.feature_scale, update_stats=True)
    params = [p for p in cfn.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=tc.lr, weight_decay=tc.weight_decay)
    steps_per_epoch = max(1, math.ceil(s / tc.batch_size))
    cfn.train()
    bar = tqdm(range(tc.epochs), desc="train CFN", disable=not progress, dynamic_ncols=True)
    for epoch in bar:
        perm = torch.randperm(s, generator=gen)
        total = 0.0
        for k in range(steps_per_epoch):
            idx = perm[k * tc.batch_size : (k + 1) * tc.batch_size]
            loss = (cfn(features[idx]) - coins[idx]).pow(2).mean()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total += float(loss.detach()) * len(idx)
        bar.set_postfix(loss=f"{total / s:.4f}")
        if log is not None:
            log.append({"epoch": epoch + 1, "cfn_loss": total / s})
    return verifier.eval()


# --------------------------------------------------------------------------------------------- value
def chunk_transitions(store: Any, obs_keys: tuple[str, ...], n_action_steps: int, gamma: float,
                      reward_scale: float = 1.0) -> dict[str, np.ndarray]:
    """Chunk transitions of every step ``t`` of every episode: ``s_t``, ``a_{t:t+Ta}`` (the episode's last
    action repeats past its end), ``r = sum_k gamma^k r_{t+k}``, ``s_{t+Ta}`` (clamped to the last
    next-observation), ``discount = gamma^k`` until the chunk's end (0 if the episode terminates in it)."""
    for key in [f"obs/{k}" for k in obs_keys] + ["action", "reward"]:
        if key not in store:
            raise KeyError(f"value verifier training needs key {key!r} in the dataset; it has {sorted(store.keys())}")
    ta = int(n_action_steps)
    obs = np.concatenate([np.asarray(store[f"obs/{k}"], dtype=np.float32) for k in obs_keys], axis=-1)
    has_next = all(f"next_obs/{k}" in store for k in obs_keys)
    nxt = (np.concatenate([np.asarray(store[f"next_obs/{k}"], dtype=np.float32) for k in obs_keys], axis=-1)
           if has_next else None)
    act = np.asarray(store["action"], dtype=np.float32)
    rew = np.asarray(store["reward"], dtype=np.float32) * reward_scale
    term = np.asarray(store["terminated"], dtype=bool) if "terminated" in store else np.zeros(len(rew), bool)
    ends = np.asarray(store.episode_ends)
    starts = np.concatenate([[0], ends[:-1]])
    out: dict[str, list] = {"obs": [], "chunk": [], "reward": [], "next_obs": [], "discount": []}
    for st, en in zip(starts, ends):
        length = en - st
        t = np.arange(length)
        k = np.arange(ta)
        rows = st + np.minimum(t[:, None] + k[None, :], length - 1)          # [L, Ta]
        valid = (t[:, None] + k[None, :]) < length
        r = (rew[rows] * valid * gamma ** k[None, :]).sum(1)
        done = (term[rows] & valid).any(1)
        n_steps = np.minimum(ta, length - t)                                  # steps actually in the episode
        last = st + t + n_steps - 1
        if nxt is not None:
            s_next = nxt[last]
        else:  # no next_obs stored: the next step's observation (the last one repeats at the very end)
            s_next = obs[np.minimum(last + 1, en - 1)]
        out["obs"].append(obs[st + t])
        out["chunk"].append(act[rows].reshape(length, -1))
        out["reward"].append(r)
        out["next_obs"].append(s_next)
        out["discount"].append(np.where(done, 0.0, gamma ** n_steps))
    return {k: np.concatenate(v).astype(np.float32) for k, v in out.items()}


def train_value_verifier(store: Any, policy: Any, model: Mapping[str, Any] | None = None,
                         train: ValueTrainConfig | Mapping[str, Any] | None = None, progress: bool = True,
                         log: list | None = None) -> ValueVerifier:
    """IQL chunk critic for ``policy`` (its obs keys, ``To``, ``Ta``, action size) on ``store``."""
    tc = train if isinstance(train, ValueTrainConfig) else dataclass_from_dict(ValueTrainConfig, train)
    pc = policy.config
    obs_keys = tuple(pc.obs_keys)
    model = dict(model or {})
    for k in ("obs_keys", "obs_dims", "action_dim", "n_obs_steps", "n_action_steps", "normalizer"):
        if k in model:
            raise ValueError(f"value verifier: {k!r} is taken from the policy / data, not the config")
    cfg = ValueConfig.from_dict({
        **model, "policy_type": getattr(policy, "name", ""), "obs_keys": obs_keys,
        "obs_dims": [int(policy.shape_meta["obs"][k][0]) for k in obs_keys], "action_dim": int(policy.action_dim),
        "n_obs_steps": pc.n_obs_steps, "n_action_steps": pc.n_action_steps,
    })
    torch.manual_seed(tc.seed)
    gen = torch.Generator().manual_seed(tc.seed)
    verifier = ValueVerifier(cfg)
    for k in obs_keys:
        verifier.normalizer.fit_key(f"obs/{k}", store[f"obs/{k}"], "zscore")
    verifier.normalizer.fit_key("action", store["action"], "minmax")
    verifier.config.normalizer = verifier.normalizer.spec()

    data = chunk_transitions(store, obs_keys, pc.n_action_steps, tc.gamma, tc.reward_scale)

    def norm_obs(x: np.ndarray) -> torch.Tensor:
        parts, i = [], 0
        t = torch.from_numpy(x)
        for k, d in zip(obs_keys, cfg.obs_dims):
            parts.append(verifier.normalizer.normalize(f"obs/{k}", t[:, i : i + d]))
            i += d
        return torch.cat(parts, -1)

    s, s2 = norm_obs(data["obs"]), norm_obs(data["next_obs"])
    a = verifier.normalizer.normalize("action", torch.from_numpy(data["chunk"]).reshape(len(s), cfg.n_action_steps, -1))
    a = a.flatten(1)
    r, disc = torch.from_numpy(data["reward"]), torch.from_numpy(data["discount"])
    target_q = copy.deepcopy(verifier.q).requires_grad_(False)
    q_opt = torch.optim.Adam(verifier.q.parameters(), lr=tc.lr)
    v_opt = torch.optim.Adam(verifier.v.parameters(), lr=tc.lr)
    verifier.train()
    bar = tqdm(range(tc.steps), desc="train value verifier", disable=not progress, dynamic_ncols=True)
    for step in bar:
        idx = torch.randint(len(s), (tc.batch_size,), generator=gen)
        sb, ab = s[idx], a[idx]
        with torch.no_grad():
            tq = torch.stack([q(torch.cat([sb, ab], -1)).squeeze(-1) for q in target_q]).min(0).values
        v = verifier.value(sb)
        u = tq - v
        v_loss = (torch.abs(tc.expectile - (u < 0).float()) * u.pow(2)).mean()
        v_opt.zero_grad(set_to_none=True)
        v_loss.backward()
        v_opt.step()
        with torch.no_grad():
            y = r[idx] + disc[idx] * verifier.value(s2[idx])
        q = verifier.q_values(sb, ab)
        q_loss = (q - y[None]).pow(2).mean(1).sum()
        q_opt.zero_grad(set_to_none=True)
        q_loss.backward()
        q_opt.step()
        with torch.no_grad():
            for p_t, p in zip(target_q.parameters(), verifier.q.parameters()):
                p_t.lerp_(p, tc.polyak)
        if (step + 1) % 500 == 0 or step == tc.steps - 1:
            m = {"step": step + 1, "q_loss": float(q_loss.detach()), "v_loss": float(v_loss.detach()), "q": float(q.detach().mean())}
            bar.set_postfix(q=f"{m['q']:.3f}", q_loss=f"{m['q_loss']:.4f}")
            if log is not None:
                log.append(m)
    return verifier.eval()


# --------------------------------------------------------------------------------------------- top level
def train_verifier(policy_checkpoint: str | Path, dataset: str | Path, kind: str, out_dir: str | Path,
                   model: Mapping[str, Any] | None = None, train: Mapping[str, Any] | None = None,
                   num_samples: int = 32, selection: str = "greedy", temperature: float = 1.0,
                   dataset_format: str | None = None, progress: bool = True,
                   verified_name: str = "verified_policy") -> dict[str, Any]:
    """Train a ``kind`` (``taco``/``cfn`` or ``value``) verifier for the policy at ``policy_checkpoint`` on
    ``dataset``; write ``out_dir/verifier`` (standalone), ``out_dir/<verified_name>`` (a ``VerifiedPolicy``
    checkpoint for ``robotrl-eval``) and ``out_dir/train_log.jsonl``. Returns a summary dict."""
    from robotrl.data import load_dataset
    from robotrl.policies import load_policy
    from robotrl.verifiers.verified_policy import VerifiedPolicy

    out_dir = Path(out_dir)
    policy = load_policy(policy_checkpoint).eval()
    store = load_dataset(dataset, format=dataset_format)
    t0 = time.time()
    log: list[dict] = []
    extra: dict[str, Any] = {}
    if kind in ("taco", "cfn"):
        tc = dataclass_from_dict(CFNTrainConfig, train)
        feats = collect_policy_features(policy, store, tc.num_candidates, tc.max_samples, tc.sample_batch_size,
                                        tc.seed, progress, tc.episodes)
        m = dict(model or {})
        m.setdefault("policy_type", policy.name)
        verifier = train_cfn(feats["features"], m, tc, progress, log)
        extra = {"feature_samples": int(feats["features"].shape[0]),
                 "mean_best_candidate_mse": float(feats["distance"].mean())}
    elif kind == "value":
        verifier = train_value_verifier(store, policy, model, train, progress, log)
    else:
        raise ValueError(f"unknown verifier kind {kind!r}; known: 'taco' (alias 'cfn'), 'value'")
    seconds = time.time() - t0
    verifier.save_pretrained(out_dir / "verifier")
    wrapped = VerifiedPolicy(policy, verifier, num_samples=num_samples, selection=selection, temperature=temperature)
    wrapped.save_pretrained(out_dir / verified_name)
    summary = {"kind": kind, "policy_checkpoint": str(policy_checkpoint), "dataset": str(dataset),
               "verifier": str(out_dir / "verifier"), "verified_policy": str(out_dir / verified_name),
               "train_seconds": round(seconds, 1), "num_samples": num_samples, "selection": selection,
               "last_log": log[-1] if log else None, **extra}
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "train_log.jsonl").write_text("".join(json.dumps(r) + "\n" for r in log))
    return summary


__all__ = ["CFNTrainConfig", "ValueTrainConfig", "successful_episodes", "collect_policy_features", "train_cfn", "chunk_transitions",
           "train_value_verifier", "train_verifier"]
