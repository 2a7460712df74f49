"""Brute-force reference for the replay-buffer tests: a plain list of every transition ever added,
plus naive n-step / sequence computations written as Python loops."""
from __future__ import annotations

import numpy as np


def make_stream(rng: np.random.Generator, n: int, *, obs_dim: int = 3, act_dim: int = 2, p_term: float = 0.08,
                p_trunc: float = 0.08, start: int = 0, image: tuple | None = None) -> dict:
    """``n`` consecutive transitions of one stream with random terminations / truncations.

    Observation ``t`` carries its global step number in column 0 (unique, so tests can tell
    which transition a row came from); after a done the next row starts a new episode whose
    first observation differs from the stored final ``next_obs``.
    """
    steps = np.arange(start, start + n + 1, dtype=np.float32)
    obs = np.concatenate([steps[:, None], rng.standard_normal((n + 1, obs_dim - 1)).astype(np.float32)], axis=1)
    term = rng.random(n) < p_term
    trunc = (rng.random(n) < p_trunc) & ~term
    next_obs = obs[1:].copy()
    done = term | trunc
    # the real final next state of an episode is not the next episode's first obs
    next_obs[done, 0] = -next_obs[done, 0] - 0.5
    batch = {
        "obs": {"state": obs[:-1]},
        "action": rng.standard_normal((n, act_dim)).astype(np.float32),
        "reward": rng.standard_normal(n).astype(np.float32),
        "terminated": term,
        "truncated": trunc,
        "next": {"obs": {"state": next_obs}},
    }
    if image is not None:
        img = rng.integers(0, 256, (n + 1,) + image, dtype=np.uint8)
        nimg = img[1:].copy()
        nimg[done] = 255 - nimg[done]
        batch["obs"]["image"] = img[:-1]
        batch["next"]["obs"]["image"] = nimg
    return batch


def rows(batch: dict) -> list[dict]:
    """Split a nested batch into per-transition dicts with tuple keys."""
    flat = {}

    def rec(prefix, m):
        for k, v in m.items():
            if isinstance(v, dict):
                rec(prefix + (k,), v)
            else:
                flat[prefix + (k,)] = np.asarray(v)

    rec((), batch)
    n = len(flat[("action",)])
    return [{k: v[i] for k, v in flat.items()} for i in range(n)]


class Reference:
    """Every transition in insertion order; global transition ``t`` lives in slot ``t % capacity``."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.items: list[dict] = []

    def extend(self, batch: dict) -> None:
        self.items.extend(rows(batch))

    @property
    def size(self) -> int:
        return min(len(self.items), self.capacity)

    def t_of_slot(self, slot: int) -> int:
        total = len(self.items)
        first = total - self.size
        # the live transition t with t % capacity == slot
        t = first + ((slot - first) % self.capacity)
        assert first <= t < total
        return t

    def segment_end(self, t: int) -> bool:
        """Does transition ``t`` end a segment (done, stream break, newest)?"""
        it = self.items[t]
        if it[("terminated",)] or it[("truncated",)] or t == len(self.items) - 1:
            return True
        nxt = self.items[t + 1]
        return any(not np.array_equal(v, nxt[("obs",) + k[2:]]) for k, v in it.items() if k[0] == "next")

    def nstep(self, t: int, n: int, gamma: float) -> dict:
        ret, k = 0.0, 0
        while True:
            it = self.items[t + k]
            ret += gamma**k * float(it[("reward",)])
            if it[("terminated",)]:
                disc, term = 0.0, True
                break
            if self.segment_end(t + k) or k == n - 1:
                disc, term = gamma ** (k + 1), False
                break
            k += 1
        last = self.items[t + k]
        out = {"reward": ret, "discount": disc, "terminated": term,
               "truncated": bool(last[("truncated",)]) and not term}
        for key, v in last.items():
            if key[0] == "next":
                out[key] = v
        return out

    def window(self, t: int, T: int) -> tuple[list[int], list[bool]]:
        ts, mask = [t], [True]
        valid = True
        for _ in range(1, T):
            if valid and not self.segment_end(ts[-1]):
                ts.append(ts[-1] + 1)
                mask.append(True)
            else:
                valid = False
                ts.append(ts[-1])
                mask.append(False)
        return ts, mask
