"""A tiny deterministic chain MDP with a known optimal value, for the offline-RL tests.

States 0..N-1 (one-hot observations), a 1-D action in [-1, 1]: ``a > 0`` moves right, otherwise
left (0 stays). Reaching state N-1 pays 1 and terminates; episodes are truncated after H steps.
With discount g, ``Q*(s, right) = g**(N-2-s)`` and ``Q*(s, left) = g * V*(max(s-1, 0))``.
The behaviour data are uniform random actions, so the best policy (always right) beats it.
"""
from __future__ import annotations

import numpy as np
import torch

from robotrl.data.episode_store import EpisodeStore

N, H, GAMMA = 5, 15, 0.9


def onehot(s: int) -> np.ndarray:
    o = np.zeros(N, np.float32)
    o[s] = 1.0
    return o


def v_star(s: int) -> float:
    return GAMMA ** (N - 2 - s)


def q_star(s: int, right: bool) -> float:
    return v_star(s) if right else GAMMA * v_star(max(s - 1, 0))


def step(s: int, a: float) -> tuple[int, float, bool]:
    s2 = s + 1 if a > 0 else max(s - 1, 0)
    return s2, float(s2 == N - 1), s2 == N - 1


def behaviour_store(n_episodes: int = 150, seed: int = 0, low: float = -1.0) -> EpisodeStore:
    """Episodes of uniform random actions in ``[low, 1]`` (``low > 0``: the optimal policy)."""
    rng = np.random.default_rng(seed)
    cols = {k: [] for k in ("obs/state", "action", "reward", "terminated", "truncated", "next_obs/state")}
    ends = []
    for _ in range(n_episodes):
        s = 0
        for t in range(H):
            a = rng.uniform(low, 1, 1).astype(np.float32)
            s2, r, term = step(s, float(a[0]))
            trunc = (t == H - 1) and not term
            for k, v in (("obs/state", onehot(s)), ("action", a), ("reward", np.float32(r)), ("terminated", term),
                         ("truncated", trunc), ("next_obs/state", onehot(s2))):
                cols[k].append(v)
            s = s2
            if term or trunc:
                break
        ends.append(len(cols["action"]))
    data = {k: np.asarray(v) for k, v in cols.items()}
    return EpisodeStore(data, np.asarray(ends), {})


def expert_store(n_episodes: int = 10, seed: int = 0) -> EpisodeStore:
    return behaviour_store(n_episodes, seed, low=0.2)


def discounted_return(policy, start: int = 0) -> float:
    """Discounted return of ``policy(obs) -> action`` from ``start`` (deterministic MDP)."""
    s, g = start, 0.0
    for t in range(H):
        a = float(np.asarray(policy(onehot(s))).reshape(-1)[0])
        s, r, term = step(s, a)
        g += GAMMA**t * r
        if term:
            break
    return g


def behaviour_return(store: EpisodeStore) -> float:
    r = store["reward"].astype(np.float64)
    out = []
    for sl in (store.episode_slice(i) for i in range(store.num_episodes)):
        rr = r[sl]
        out.append(float(np.sum(rr * GAMMA ** np.arange(len(rr)))))
    return float(np.mean(out))


def critic_error(q_fn, action: float = 0.8) -> float:
    """Mean |Q(s, a) - Q*(s, a)| over the non-terminal states for a fixed action (right when > 0)."""
    errs = []
    for s in range(N - 1):
        with torch.no_grad():
            q = float(q_fn(torch.as_tensor(onehot(s))[None], torch.tensor([[action]], dtype=torch.float32)))
        errs.append(abs(q - q_star(s, action > 0)))
    return float(np.mean(errs))


