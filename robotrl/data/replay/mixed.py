"""Mixed sampling: a fixed share of every batch from demonstrations, the rest from online data
(RLPD's symmetric sampling, residual RL's 50/50 batches), gathered in one output allocation."""
from __future__ import annotations

from typing import Any

import numpy as np
import torch
from tensordict import TensorDict

from robotrl.data.replay.buffer import (
    ReplayBuffer,
    ReplayBufferError,
    _build_plan,
    _make_td,
    _plan_views,
)


class MixedSampler:
    """Draw ``round(batch_size * demo_fraction)`` transitions from ``demo`` and the rest from ``online``.

    Args:
        online: the online ``ReplayBuffer`` (may be prioritised).
        demo: a ``ReplayBuffer`` of demonstrations, or an ``EpisodeStore`` (converted with
            ``ReplayBuffer.from_episode_store``). Both must store the same fields, shapes, dtypes.
        demo_fraction: share of each batch taken from ``demo`` (0.5 for RLPD).

    ``sample`` returns the demo rows first, then the online rows, with ``"from_demo"`` (bool),
    ``"index"`` (slots in the buffer each row came from), ``"discount"`` and, if either buffer is
    prioritised, ``"weight"`` (1 for rows of a uniform buffer). Route new priorities back with
    ``update_priorities(batch["index"], priority, batch["from_demo"])``.
    """

    def __init__(self, online: ReplayBuffer, demo: Any, demo_fraction: float = 0.5) -> None:
        if not isinstance(demo, ReplayBuffer):
            demo = ReplayBuffer.from_episode_store(demo, spec=online.spec, seed=int(online._rng[0] % (1 << 62)))
        if not 0.0 <= demo_fraction <= 1.0:
            raise ReplayBufferError(f"demo_fraction must be in [0, 1], got {demo_fraction}")
        if online.spec is None or demo.spec is None:
            raise ReplayBufferError("MixedSampler: both buffers need data (or a spec) first")
        so, sd = online.spec, demo.spec
        for k in set(so) | set(sd):
            if k not in so or k not in sd:
                where = "online" if k not in so else "demo"
                raise ReplayBufferError(f"MixedSampler: field {k!r} missing from the {where} buffer")
            if so[k] != sd[k]:
                raise ReplayBufferError(f"MixedSampler: field {k!r} differs: online {so[k].shape} {so[k].dtype}, "
                                        f"demo {sd[k].shape} {sd[k].dtype}")
        self.online = online
        self.demo = demo
        self.demo_fraction = float(demo_fraction)
        self._plans: dict = {}

    def split(self, batch_size: int) -> tuple[int, int]:
        """``(n_demo, n_online)`` for a batch of ``batch_size``."""
        n_demo = int(round(batch_size * self.demo_fraction))
        return n_demo, batch_size - n_demo

    def _plan(self, B: int):
        plan = self._plans.get(B)
        if plan is None:
            weighted = self.online.prioritized or self.demo.prioritized
            extras = [("index", np.int64, (B,)), ("discount", np.float32, (B,)), ("from_demo", np.bool_, (B,))]
            if weighted:
                extras.append(("weight", np.float32, (B,)))
            plan = _build_plan(self.online._spec, self.online._obs_keys, (B,), extras)
            plan.parallel = self.online._plan((B,), "flat").parallel
            # per-buffer output offsets in each buffer's own field order
            bases = {}
            for name, buf in (("online", self.online), ("demo", self.demo)):
                bases[name] = (np.array([plan.offsets[k] for k in buf._keys], dtype=np.int64),
                               np.array([plan.offsets[("next",) + k] for k in buf._obs_keys], dtype=np.int64))
            plan = (plan, bases, weighted)
            self._plans[B] = plan
        return plan

    def sample(self, batch_size: int, *, n_step: int | None = None, gamma: float | None = None) -> TensorDict:
        """One batch with exactly ``split(batch_size)`` demo / online rows (see the class doc)."""
        B = int(batch_size)
        if B < 1:
            raise ReplayBufferError(f"sample: batch_size must be >= 1, got {batch_size}")
        n_demo, n_online = self.split(B)
        plan, bases, weighted = self._plan(B)
        out = self.online._alloc_out(plan)
        views = _plan_views(out, plan)
        idx = views[plan.special["index"]]
        w = views[plan.special["weight"]] if weighted else None
        from_demo = views[plan.special["from_demo"]]
        from_demo[:n_demo] = True
        from_demo[n_demo:] = False
        for buf, lo, hi, name in ((self.demo, 0, n_demo, "demo"), (self.online, n_demo, B, "online")):
            if hi == lo:
                continue
            buf._check_ready(f"MixedSampler.sample ({name} buffer)")
            n_live = buf._size
            if buf.prioritized:
                buf._sample_indices(idx[lo:hi], w[lo:hi])
                n_live = 0
            elif w is not None:
                w[lo:hi] = 1.0
            n = buf.n_step if n_step is None else int(n_step)
            g = buf.gamma if gamma is None else float(gamma)
            buf._gather_nstep(n_live, idx[lo:hi], lo, n, g, out, bases[name][0], bases[name][1], views, plan)
        return _make_td(views, plan, self.online.device, self.online.pin_memory)

    def update_priorities(self, index: Any, priority: Any, from_demo: Any) -> None:
        """Send new priorities to the buffer each row came from (uniform buffers ignore them)."""
        to_np = lambda x: x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)  # noqa: E731
        idx, p, d = to_np(index).reshape(-1), to_np(priority).reshape(-1), to_np(from_demo).reshape(-1).astype(bool)
        for buf, sel in ((self.demo, d), (self.online, ~d)):
            if buf.prioritized and sel.any():
                buf.update_priorities(idx[sel], p[sel])
