"""Proportional prioritised replay (Schaul et al., 2016) on Numba sum- and min-trees.

A transition ``i`` with priority ``p_i`` (e.g. ``|TD error|``) is stored as ``q_i = (p_i + eps) **
alpha`` and drawn with probability ``P(i) = q_i / sum_j q_j``. Importance weights correct the bias:
``w_i = (N * P(i)) ** -beta / max_j (N * P(j)) ** -beta = (q_i / q_min) ** -beta`` (the maximum is
over the stored transitions, read from the min-tree). New transitions get the largest priority seen
so far, so each is likely to be replayed at least once.
"""
from __future__ import annotations

from typing import Any, Mapping

import numpy as np
import torch

from robotrl.data.replay import _kernels as K
from robotrl.data.replay.buffer import ReplayBuffer, ReplayBufferError


class PrioritizedReplayBuffer(ReplayBuffer):
    """``ReplayBuffer`` whose ``sample`` draws transitions proportionally to ``priority ** alpha``.

    Args (besides those of ``ReplayBuffer``):
        alpha: how much prioritisation is used (0: uniform).
        beta: importance-sampling exponent (1: full correction); change it with ``buffer.beta = ...``
            to anneal.
        eps: added to priorities so no transition gets probability 0.
        stratified: draw one sample from each of ``B`` equal slices of the priority mass (as in
            Schaul et al.; lower variance), else ``B`` independent draws.

    ``sample`` adds ``"weight"`` (float32 importance weights) and ``"index"``; pass the index back
    with new priorities to ``update_priorities``.
    """

    prioritized = True

    def __init__(self, capacity: int, spec: Mapping | None = None, *, alpha: float = 0.6, beta: float = 0.4,
                 eps: float = 1e-6, stratified: bool = True, **kwargs: Any) -> None:
        if alpha < 0:
            raise ReplayBufferError(f"alpha must be >= 0, got {alpha}")
        if beta < 0:
            raise ReplayBufferError(f"beta must be >= 0, got {beta}")
        self.alpha = float(alpha)
        self.beta = float(beta)
        self.eps = float(eps)
        self.stratified = bool(stratified)
        self.max_priority = 1.0
        super().__init__(capacity, spec, **kwargs)

    def _init_extra(self) -> None:
        self._sum_tree = np.zeros(2 * self.capacity, dtype=np.float64)
        self._min_tree = np.full(2 * self.capacity, np.inf, dtype=np.float64)

    def _extra_nbytes(self) -> int:
        return int(self._sum_tree.nbytes + self._min_tree.nbytes)

    def _on_write(self, start: int, count: int) -> None:
        K.tree_set_range(self._sum_tree, self._min_tree, self.capacity, start, count,
                         (self.max_priority + self.eps) ** self.alpha)

    def _sample_indices(self, idx: np.ndarray, weight: np.ndarray | None) -> None:
        w = weight if weight is not None else np.empty(idx.shape[0], np.float32)
        K.tree_sample(self._rng, self._sum_tree, self._min_tree, self.capacity, self._size, idx, w,
                      self.beta, self.stratified)

    def update_priorities(self, index: np.ndarray | torch.Tensor, priority: np.ndarray | torch.Tensor) -> None:
        """Set the priorities (e.g. ``|TD error|``, >= 0) of the transitions at ``index`` slots."""
        idx = np.ascontiguousarray(_np(index), dtype=np.int64).reshape(-1)
        p = np.asarray(_np(priority), dtype=np.float64).reshape(-1)
        if p.shape[0] != idx.shape[0]:
            raise ReplayBufferError(f"update_priorities: {idx.shape[0]} indices but {p.shape[0]} priorities")
        if not np.all(np.isfinite(p)) or (p.size and p.min() < 0):
            raise ReplayBufferError("update_priorities: priorities must be finite and >= 0")
        self._check_index(idx, "update_priorities")
        if p.size:
            self.max_priority = max(self.max_priority, float(p.max()))
        K.tree_set(self._sum_tree, self._min_tree, self.capacity, idx, (p + self.eps) ** self.alpha)

    def priorities(self, index: np.ndarray | None = None) -> np.ndarray:
        """Stored ``(p + eps) ** alpha`` of ``index`` slots (all written slots by default)."""
        idx = np.arange(self._size) if index is None else np.asarray(index, dtype=np.int64)
        return self._sum_tree[self.capacity + idx].copy()

    # ------------------------------------------------------------------ persistence
    def _meta(self) -> dict:
        meta = super()._meta()
        meta.update(alpha=self.alpha, beta=self.beta, eps=self.eps, stratified=self.stratified,
                    max_priority=self.max_priority)
        return meta

    def _state_arrays(self) -> dict[str, np.ndarray]:
        arrs = super()._state_arrays()
        if self._spec is not None:
            arrs["sum_tree"] = self._sum_tree
            arrs["min_tree"] = self._min_tree
        return arrs

    @classmethod
    def _from_meta(cls, meta: dict, **kw: Any) -> "PrioritizedReplayBuffer":
        buf = cls(meta["capacity"], None, seed=meta["seed"], n_step=meta["n_step"], gamma=meta["gamma"],
                  check_continuity=meta["check_continuity"], alpha=meta["alpha"], beta=meta["beta"],
                  eps=meta["eps"], stratified=meta["stratified"], **kw)
        buf.max_priority = meta["max_priority"]
        return buf

    def _load_extra(self, arr: Any, meta: dict) -> None:
        self._sum_tree[:] = arr("sum_tree")
        self._min_tree[:] = arr("min_tree")


def _np(x: Any) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        return x.detach().cpu().numpy()
    return np.asarray(x)
