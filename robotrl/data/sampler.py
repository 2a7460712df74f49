"""`SequenceSampler`: fixed-length windows over an :class:`EpisodeStore`, with padding.

The windowing rule is Diffusion Policy's: in an episode of length ``L`` the windows start at
``-pad_before, ..., L - sequence_length + pad_after`` (one window per start), and a step of a
window that falls outside the episode repeats the episode's first (before) or last (after)
step. With ``pad_before = n_obs_steps - 1`` and ``pad_after = n_action_steps - 1``
(``docs/conventions.md``) the "current" observation (window index ``To - 1``) runs over steps
``0 .. L - H + To + Ta - 2`` of each episode: all of them when ``H = To + Ta - 1``, and the last
``H - To - Ta + 1`` steps are never current when the horizon is longer (as in Diffusion Policy).
An episode with fewer than ``sequence_length - pad_before - pad_after`` steps has no window.

The index table (one row per window: start/end rows in the store, start/end offsets inside the
window) is built by a Numba kernel; batches are gathered with one vectorised ``np.take`` per key.
"""
from __future__ import annotations

from typing import Any, Iterator, Sequence

import numba
import numpy as np
import torch
from tensordict import TensorDict

from robotrl.data.episode_store import EpisodeStore
from robotrl.data.errors import DataKeyError

__all__ = ["SequenceSampler", "SequenceDataset", "create_indices", "batch_key"]

_OBS_PREFIXES = ("obs/", "next_obs/")


@numba.njit(cache=True)
def _create_indices_kernel(
    episode_ends: np.ndarray, episode_mask: np.ndarray, sequence_length: int, pad_before: int, pad_after: int
) -> np.ndarray:
    n_eps = episode_ends.shape[0]
    total = 0
    for i in range(n_eps):
        if not episode_mask[i]:
            continue
        start = 0 if i == 0 else episode_ends[i - 1]
        length = episode_ends[i] - start
        count = length - sequence_length + pad_after + pad_before + 1
        if count > 0:
            total += count
    out = np.empty((total, 4), dtype=np.int64)
    row = 0
    for i in range(n_eps):
        if not episode_mask[i]:
            continue
        start = 0 if i == 0 else episode_ends[i - 1]
        length = episode_ends[i] - start
        for w in range(-pad_before, length - sequence_length + pad_after + 1):
            buffer_start = max(w, 0) + start
            buffer_end = min(w + sequence_length, length) + start
            start_offset = buffer_start - (w + start)
            end_offset = (w + sequence_length + start) - buffer_end
            out[row, 0] = buffer_start
            out[row, 1] = buffer_end
            out[row, 2] = start_offset
            out[row, 3] = sequence_length - end_offset
            row += 1
    return out


def create_indices(
    episode_ends: np.ndarray,
    sequence_length: int,
    pad_before: int = 0,
    pad_after: int = 0,
    episode_mask: np.ndarray | None = None,
) -> np.ndarray:
    """Window table ``int64 [N, 4]``: ``(buffer_start, buffer_end, sample_start, sample_end)``.

    Window ``r`` copies store rows ``buffer_start:buffer_end`` into window positions
    ``sample_start:sample_end``; positions before/after repeat the first/last copied row.
    ``episode_mask`` (bool per episode) keeps only some episodes' windows.
    """
    ends = np.ascontiguousarray(episode_ends, dtype=np.int64)
    mask = np.ones(len(ends), dtype=np.bool_) if episode_mask is None else np.ascontiguousarray(episode_mask, dtype=np.bool_)
    if mask.shape != ends.shape:
        raise ValueError(f"create_indices: episode_mask has shape {mask.shape}, expected {ends.shape}")
    return _create_indices_kernel(ends, mask, int(sequence_length), int(pad_before), int(pad_after))


def batch_key(store_key: str) -> str | tuple[str, ...]:
    """The TensorDict key of a store key: ``"obs/state"`` -> ``("obs", "state")``,
    ``"next_obs/state"`` -> ``("next", "obs", "state")``, ``"action"`` -> ``"action"``."""
    parts = store_key.split("/")
    if parts[0] == "next_obs":
        return ("next", "obs", *parts[1:])
    return parts[0] if len(parts) == 1 else tuple(parts)


def _to_tensor(arr: np.ndarray) -> torch.Tensor:
    if arr.dtype == np.float64:
        arr = arr.astype(np.float32)
    return torch.from_numpy(np.ascontiguousarray(arr))


class SequenceSampler:
    """Padded fixed-length windows over an :class:`EpisodeStore` (Diffusion Policy's rule).

    Args:
        store: the episodes.
        sequence_length: window length ``H``.
        pad_before: windows may start up to this many steps before an episode (clipped to H-1).
        pad_after: windows may end up to this many steps after an episode (clipped to H-1).
        keys: store keys to return; default all ``obs/*`` keys plus ``action``.
        obs_steps: ``To``; ``obs/*`` and ``next_obs/*`` keys return only the first ``To`` steps
            of the window (default: all ``H``).
        episode_indices: restrict windows to these episodes (e.g. a train split).
        seed: seeds the sampler's own generator, used by :meth:`sample` / :meth:`iter_batches`
            when no ``rng`` is given.

    ``len(sampler)`` is the number of windows; ``sampler[i]`` is window ``i`` as a dict of numpy
    arrays keyed like the store; :meth:`sample` returns a ``TensorDict`` batch with keys
    ``("obs", k)`` ``[B, To, ...]``, ``"action"`` ``[B, H, A]`` and other keys ``[B, H, ...]``.
    float64 becomes float32 in batches; images stay uint8 (HWC).
    """

    def __init__(
        self,
        store: EpisodeStore,
        sequence_length: int,
        pad_before: int = 0,
        pad_after: int = 0,
        keys: Sequence[str] | None = None,
        obs_steps: int | None = None,
        episode_indices: Sequence[int] | np.ndarray | None = None,
        seed: int | None = None,
    ) -> None:
        if int(sequence_length) < 1:
            raise ValueError(f"SequenceSampler: sequence_length must be >= 1, got {sequence_length}")
        if int(pad_before) < 0 or int(pad_after) < 0:
            raise ValueError(f"SequenceSampler: pad_before/pad_after must be >= 0, got {pad_before}/{pad_after}")
        self.store = store
        self.sequence_length = int(sequence_length)
        self.pad_before = min(int(pad_before), self.sequence_length - 1)
        self.pad_after = min(int(pad_after), self.sequence_length - 1)
        if obs_steps is not None and not 1 <= int(obs_steps) <= self.sequence_length:
            raise ValueError(f"SequenceSampler: obs_steps must be in [1, {self.sequence_length}], got {obs_steps}")
        self.obs_steps = self.sequence_length if obs_steps is None else int(obs_steps)
        if keys is None:
            keys = [k for k in store.keys() if k.startswith("obs/")] + (["action"] if "action" in store else [])
        missing = [k for k in keys if k not in store]
        if missing:
            raise DataKeyError(f"SequenceSampler: keys {missing} are not in the store; keys: {store.keys()}")
        if not keys:
            raise ValueError("SequenceSampler: no keys to sample (the store has no obs/* keys and no 'action')")
        self.keys = list(keys)
        mask = None
        if episode_indices is not None:
            mask = np.zeros(store.num_episodes, dtype=np.bool_)
            mask[np.asarray(episode_indices, dtype=np.int64)] = True
        self.indices = create_indices(store.episode_ends, self.sequence_length, self.pad_before, self.pad_after, mask)
        # virtual start row of each window (may be before the episode) and the valid row range
        self._first = self.indices[:, 0] - self.indices[:, 2]
        self._lo = self.indices[:, 0]
        self._hi = self.indices[:, 1] - 1
        self._rng = np.random.default_rng(seed)

    def __len__(self) -> int:
        return int(self.indices.shape[0])

    def __repr__(self) -> str:
        return (
            f"SequenceSampler(windows={len(self)}, sequence_length={self.sequence_length}, pad_before={self.pad_before}, "
            f"pad_after={self.pad_after}, obs_steps={self.obs_steps}, keys={self.keys})"
        )

    def _rng_of(self, rng: np.random.Generator | int | None) -> np.random.Generator:
        if rng is None:
            return self._rng
        if isinstance(rng, np.random.Generator):
            return rng
        return np.random.default_rng(rng)

    def window_rows(self, window_ids: np.ndarray | Sequence[int], steps: int | None = None) -> np.ndarray:
        """Store rows of windows ``window_ids``: int64 ``[B, steps]`` (padding repeats edge rows)."""
        ids = np.asarray(window_ids, dtype=np.int64).reshape(-1)
        n = len(self)
        if ids.size and (ids.min() < -n or ids.max() >= n):
            raise IndexError(f"window index out of range for a sampler of {n} windows")
        ids = np.where(ids < 0, ids + n, ids)
        t = self.sequence_length if steps is None else int(steps)
        rows = self._first[ids, None] + np.arange(t, dtype=np.int64)[None, :]
        return np.clip(rows, self._lo[ids, None], self._hi[ids, None])

    def get_numpy(self, window_ids: np.ndarray | Sequence[int]) -> dict[str, np.ndarray]:
        """Windows ``window_ids`` as ``{store_key: array[B, T, ...]}`` (``T = obs_steps`` for obs keys)."""
        rows = self.window_rows(window_ids)
        b = rows.shape[0]
        out: dict[str, np.ndarray] = {}
        for key in self.keys:
            arr = self.store[key]
            t = self.obs_steps if key.startswith(_OBS_PREFIXES) else self.sequence_length
            flat = rows[:, :t].reshape(-1)
            out[key] = np.take(arr, flat, axis=0).reshape(b, t, *arr.shape[1:])
        return out

    def __getitem__(self, i: int) -> dict[str, np.ndarray]:
        """Window ``i`` as ``{store_key: array[T, ...]}``."""
        return {k: v[0] for k, v in self.get_numpy([int(i)]).items()}

    def get_batch(self, window_ids: np.ndarray | Sequence[int]) -> TensorDict:
        """Windows ``window_ids`` as a ``TensorDict`` with batch size ``[B]`` (keys via :func:`batch_key`)."""
        arrays = self.get_numpy(window_ids)
        b = len(np.asarray(window_ids).reshape(-1))
        td = TensorDict({}, batch_size=[b])
        for key, arr in arrays.items():
            td.set(batch_key(key), _to_tensor(arr))
        return td

    def sample(self, batch_size: int, rng: np.random.Generator | int | None = None) -> TensorDict:
        """``batch_size`` windows drawn uniformly with replacement, as a ``TensorDict`` ``[B]``."""
        if len(self) == 0:
            raise ValueError(f"SequenceSampler.sample: no windows ({self!r}); episodes may be shorter than the window")
        ids = self._rng_of(rng).integers(0, len(self), size=int(batch_size))
        return self.get_batch(ids)

    def iter_batches(
        self,
        batch_size: int,
        shuffle: bool = True,
        rng: np.random.Generator | int | None = None,
        drop_last: bool = False,
    ) -> Iterator[TensorDict]:
        """One epoch over every window (each exactly once), ``batch_size`` at a time."""
        n = len(self)
        order = self._rng_of(rng).permutation(n) if shuffle else np.arange(n)
        bs = int(batch_size)
        if bs < 1:
            raise ValueError(f"iter_batches: batch_size must be >= 1, got {batch_size}")
        for start in range(0, n, bs):
            ids = order[start : start + bs]
            if drop_last and len(ids) < bs:
                break
            yield self.get_batch(ids)

    def as_dataset(self) -> "SequenceDataset":
        """A ``torch.utils.data.Dataset`` view of this sampler (see :class:`SequenceDataset`)."""
        return SequenceDataset(self)


class SequenceDataset(torch.utils.data.Dataset):
    """``torch.utils.data.Dataset`` over a :class:`SequenceSampler`'s windows.

    Item ``i`` is window ``i`` as a ``TensorDict`` with batch size ``[]``. Use it with a
    ``DataLoader(..., collate_fn=SequenceDataset.collate)`` to get ``[B]`` TensorDicts; in a
    single process :meth:`SequenceSampler.iter_batches` is faster (one gather per batch).
    """

    def __init__(self, sampler: SequenceSampler) -> None:
        self.sampler = sampler

    def __len__(self) -> int:
        return len(self.sampler)

    def __getitem__(self, i: int) -> TensorDict:
        return self.sampler.get_batch([int(i)])[0]

    @staticmethod
    def collate(items: Sequence[Any]) -> TensorDict:
        """Stack per-window TensorDicts into a batch ``[B]``."""
        return torch.stack(list(items), dim=0)
