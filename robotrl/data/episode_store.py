"""`EpisodeStore`: every episode of a dataset concatenated per key, plus ``episode_ends``.

This is the layout of diffusion_policy's replay buffer: one numpy array per key holding all
steps of all episodes back to back, and ``episode_ends`` (int64, cumulative, strictly
increasing) saying where each episode stops. Every on-disk format (robomimic, D4RL, Minari)
reads into it and writes from it, and the samplers read from it.

Keys are flat strings (``"obs/state"``, ``"obs/image"``, ``"next_obs/state"``, ``"action"``,
``"reward"``, ``"terminated"``, ``"truncated"``, ``"states"``, ``"infos/qpos"``, ...). Every
array's first dimension is the step axis, of length ``num_steps == episode_ends[-1]``.

``attrs`` holds metadata. A few names have a meaning the store keeps consistent in
:meth:`EpisodeStore.subset`:

* ``"masks"``: ``{filter_name: [episode indices]}`` (robomimic's ``mask/<filter>``),
* ``"episode_names"``: one name per episode (e.g. robomimic's ``demo_7``),
* ``"episode_attrs"``: one dict per episode (per-demo HDF5 attributes, e.g. ``model_file``).

Everything else (``env_args`` ...) is copied as is. Keep attrs JSON-like (dict, list, str,
numbers, bool, None): formats that have no native place for a value store attrs as JSON.
"""
from __future__ import annotations

import copy
from typing import Any, Iterable, Iterator, Mapping, Sequence

import numpy as np

from robotrl.data.errors import DataKeyError, DataShapeError, NonFiniteError

__all__ = ["EpisodeStore", "PER_EPISODE_ATTRS", "FINITE_KEY_PREFIXES"]

#: attrs entries that are lists with one item per episode (filtered by ``subset``).
PER_EPISODE_ATTRS = ("episode_names", "episode_attrs")
#: keys checked for NaN/inf by :meth:`EpisodeStore.check_finite` (floating arrays only).
FINITE_KEY_PREFIXES = ("action", "reward", "obs/", "next_obs/")


def _check_key(key: str) -> str:
    if not isinstance(key, str) or not key or key.startswith("/") or key.endswith("/"):
        raise DataKeyError(f"EpisodeStore keys must be non-empty strings without a leading or trailing '/', got {key!r}")
    return key


def _as_array(key: str, value: Any) -> np.ndarray:
    arr = np.asarray(value)
    if arr.ndim == 0:
        raise DataShapeError(f"key {key!r}: expected an array with a leading step axis, got a scalar {arr!r}")
    if arr.dtype == object:
        raise DataShapeError(f"key {key!r}: object arrays are not supported (got dtype=object, shape {arr.shape})")
    return arr


class EpisodeStore:
    """Columnar storage of episodes: ``store[key]`` is every episode's ``key`` concatenated.

    Args:
        data: ``{key: array}``; every array's first dimension must equal ``episode_ends[-1]``.
        episode_ends: cumulative episode ends (strictly increasing, positive). Required when
            ``data`` is non-empty.
        attrs: metadata (``env_args``, ``masks`` ...), see the module docstring.

    Build one incrementally with :meth:`add_episode` (amortised O(1) per episode; arrays are
    concatenated lazily on first read) or at once with :meth:`from_episodes`.
    """

    def __init__(
        self,
        data: Mapping[str, Any] | None = None,
        episode_ends: Sequence[int] | np.ndarray | None = None,
        attrs: Mapping[str, Any] | None = None,
    ) -> None:
        data = {} if data is None else dict(data)
        if episode_ends is None:
            if data:
                raise DataShapeError("EpisodeStore: episode_ends is required when data is given")
            episode_ends = np.zeros(0, dtype=np.int64)
        ends = np.asarray(episode_ends)
        if ends.ndim != 1 or (ends.size and not np.issubdtype(ends.dtype, np.integer)):
            raise DataShapeError(
                f"EpisodeStore: episode_ends must be a 1-D integer array, got dtype {ends.dtype}, shape {ends.shape}"
            )
        ends = ends.astype(np.int64, copy=True)
        if ends.size:
            if ends[0] <= 0:
                raise DataShapeError(f"EpisodeStore: episode_ends[0] must be > 0 (no empty episodes), got {int(ends[0])}")
            bad = np.flatnonzero(np.diff(ends) <= 0)
            if bad.size:
                i = int(bad[0]) + 1
                raise DataShapeError(
                    "EpisodeStore: episode_ends must be strictly increasing (no empty episodes); "
                    f"episode_ends[{i - 1}]={int(ends[i - 1])}, episode_ends[{i}]={int(ends[i])}"
                )
        n = int(ends[-1]) if ends.size else 0
        arrays: dict[str, np.ndarray] = {}
        for key, value in data.items():
            _check_key(key)
            arr = _as_array(key, value)
            arrays[key] = arr
        mismatched = {k: int(a.shape[0]) for k, a in arrays.items() if a.shape[0] != n}
        if mismatched:
            lengths = ", ".join(f"{k!r}: {v}" for k, v in mismatched.items())
            raise DataShapeError(
                f"EpisodeStore: every key must have episode_ends[-1] = {n} rows; mismatched lengths: {lengths}"
            )
        self._data = arrays
        self._ends = ends
        self._pending: dict[str, list[np.ndarray]] = {}
        self._pending_ends: list[int] = []
        self.attrs: dict[str, Any] = dict(attrs) if attrs is not None else {}

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_episodes(
        cls, episodes: Iterable[Mapping[str, Any]], attrs: Mapping[str, Any] | None = None
    ) -> "EpisodeStore":
        """Build a store from a list of ``{key: array[T, ...]}`` episodes (all with the same keys)."""
        store = cls(attrs=attrs)
        for ep in episodes:
            store.add_episode(ep)
        store._consolidate()
        return store

    def add_episode(self, episode: Mapping[str, Any]) -> None:
        """Append one episode ``{key: array[T, ...]}``.

        Every array must have the same length ``T > 0``; the keys, the per-step shapes and a
        dtype castable (``same_kind``) to the existing one must match earlier episodes. Errors
        name the key, its shape and what was expected.
        """
        if not episode:
            raise DataShapeError("add_episode: the episode has no keys")
        arrays = {_check_key(k): _as_array(k, v) for k, v in episode.items()}
        lengths = {k: int(a.shape[0]) for k, a in arrays.items()}
        if len(set(lengths.values())) != 1:
            desc = ", ".join(f"{k!r}: {v} (shape {arrays[k].shape})" for k, v in lengths.items())
            raise DataShapeError(f"add_episode: all keys must have the same length; got {desc}")
        length = next(iter(lengths.values()))
        if length == 0:
            raise DataShapeError("add_episode: empty episode (length 0)")
        existing = self._key_specs()
        if existing is not None:
            missing = [k for k in existing if k not in arrays]
            extra = [k for k in arrays if k not in existing]
            if missing or extra:
                raise DataKeyError(
                    f"add_episode: keys differ from the store's; missing {missing}, unexpected {extra}"
                )
            for key, arr in arrays.items():
                shape, dtype = existing[key]
                if arr.shape[1:] != shape:
                    raise DataShapeError(
                        f"add_episode: key {key!r} has per-step shape {arr.shape[1:]} (array shape {arr.shape}), "
                        f"the store has {shape}"
                    )
                if arr.dtype != dtype:
                    if not np.can_cast(arr.dtype, dtype, casting="same_kind"):
                        raise DataShapeError(
                            f"add_episode: key {key!r} has dtype {arr.dtype}, cannot cast to the store's {dtype}"
                        )
                    arrays[key] = arr.astype(dtype)
        for key, arr in arrays.items():
            self._pending.setdefault(key, []).append(np.array(arr, copy=True))
        self._pending_ends.append(self._total_steps() + length)

    def _key_specs(self) -> dict[str, tuple[tuple[int, ...], np.dtype]] | None:
        if self._data:
            return {k: (a.shape[1:], a.dtype) for k, a in self._data.items()}
        if self._pending:
            return {k: (c[0].shape[1:], c[0].dtype) for k, c in self._pending.items()}
        if self._ends.size:  # episodes but no keys at all
            return {}
        return None

    def _total_steps(self) -> int:
        if self._pending_ends:
            return self._pending_ends[-1]
        return int(self._ends[-1]) if self._ends.size else 0

    def _consolidate(self) -> None:
        if not self._pending_ends:
            return
        for key, chunks in self._pending.items():
            parts = ([self._data[key]] if key in self._data else []) + chunks
            self._data[key] = np.concatenate(parts, axis=0)
        self._ends = np.concatenate([self._ends, np.asarray(self._pending_ends, dtype=np.int64)])
        self._pending = {}
        self._pending_ends = []

    # ------------------------------------------------------------------ sizes
    @property
    def episode_ends(self) -> np.ndarray:
        """Cumulative episode ends, int64 ``[num_episodes]`` (a read-only view)."""
        self._consolidate()
        view = self._ends.view()
        view.flags.writeable = False
        return view

    @property
    def episode_starts(self) -> np.ndarray:
        """Index of each episode's first step, int64 ``[num_episodes]``."""
        ends = self.episode_ends
        return np.concatenate([np.zeros(1, np.int64), ends[:-1]]) if ends.size else ends.copy()

    @property
    def lengths(self) -> np.ndarray:
        """Number of steps of each episode, int64 ``[num_episodes]``."""
        ends = self.episode_ends
        return np.diff(ends, prepend=np.int64(0))

    @property
    def num_episodes(self) -> int:
        return len(self._ends) + len(self._pending_ends)

    @property
    def num_steps(self) -> int:
        return self._total_steps()

    # ------------------------------------------------------------------ key access
    def keys(self) -> list[str]:
        """The store's keys, in insertion order."""
        self._consolidate()
        return list(self._data.keys())

    def items(self) -> Iterator[tuple[str, np.ndarray]]:
        self._consolidate()
        return iter(list(self._data.items()))

    def __contains__(self, key: object) -> bool:
        self._consolidate()
        return key in self._data

    def __getitem__(self, key: str) -> np.ndarray:
        """The concatenated array of ``key`` (all episodes, ``[num_steps, ...]``)."""
        self._consolidate()
        try:
            return self._data[key]
        except KeyError:
            raise DataKeyError(f"EpisodeStore has no key {key!r}; keys: {list(self._data)}") from None

    def __setitem__(self, key: str, value: Any) -> None:
        """Add or replace a key; its first dimension must equal ``num_steps``."""
        self._consolidate()
        arr = _as_array(_check_key(key), value)
        if arr.shape[0] != self.num_steps:
            raise DataShapeError(
                f"EpisodeStore: key {key!r} has {arr.shape[0]} rows (shape {arr.shape}), expected num_steps = {self.num_steps}"
            )
        self._data[key] = arr

    def __delitem__(self, key: str) -> None:
        self._consolidate()
        if key not in self._data:
            raise DataKeyError(f"EpisodeStore has no key {key!r}; keys: {list(self._data)}")
        del self._data[key]

    # ------------------------------------------------------------------ episodes
    def _episode_index(self, i: int) -> int:
        n = self.num_episodes
        j = int(i)
        if j < 0:
            j += n
        if not 0 <= j < n:
            raise IndexError(f"episode index {i} out of range for a store of {n} episodes")
        return j

    def episode_slice(self, i: int) -> slice:
        """Rows of episode ``i`` in the concatenated arrays (negative ``i`` counts from the end)."""
        j = self._episode_index(i)
        ends = self.episode_ends
        start = int(ends[j - 1]) if j > 0 else 0
        return slice(start, int(ends[j]))

    def episode(self, i: int) -> dict[str, np.ndarray]:
        """Episode ``i`` as ``{key: array[T, ...]}`` (views into the store; copy before mutating)."""
        sl = self.episode_slice(i)
        return {k: a[sl] for k, a in self._data.items()}

    def iter_episodes(self) -> Iterator[dict[str, np.ndarray]]:
        """Yield every episode in order (views, as :meth:`episode`)."""
        for i in range(self.num_episodes):
            yield self.episode(i)

    def subset(self, indices: Sequence[int] | np.ndarray) -> "EpisodeStore":
        """A new store holding the episodes ``indices`` (ints, or a boolean mask), in that order.

        Arrays are copied. ``attrs`` is deep-copied; per-episode attrs (``episode_names``,
        ``episode_attrs``) are filtered and ``masks`` re-indexed (episodes not kept drop out).
        """
        self._consolidate()
        idx = np.asarray(indices)
        if idx.dtype == bool:
            if idx.shape != (self.num_episodes,):
                raise DataShapeError(
                    f"subset: boolean mask has shape {idx.shape}, expected ({self.num_episodes},)"
                )
            idx = np.flatnonzero(idx)
        idx = idx.astype(np.int64).reshape(-1)
        idx = np.array([self._episode_index(i) for i in idx], dtype=np.int64)
        if len(np.unique(idx)) != len(idx):
            raise ValueError(f"subset: duplicate episode indices in {idx.tolist()}")
        lengths = self.lengths[idx]
        starts = self.episode_starts[idx]
        rows = (
            np.concatenate([np.arange(s, s + n, dtype=np.int64) for s, n in zip(starts, lengths)])
            if len(idx)
            else np.zeros(0, np.int64)
        )
        data = {k: np.take(a, rows, axis=0) for k, a in self._data.items()}
        attrs = copy.deepcopy(self.attrs)
        for name in PER_EPISODE_ATTRS:
            if name in attrs and attrs[name] is not None:
                values = list(attrs[name])
                if len(values) != self.num_episodes:
                    raise DataShapeError(
                        f"subset: attrs[{name!r}] has {len(values)} entries, expected one per episode ({self.num_episodes})"
                    )
                attrs[name] = [values[i] for i in idx]
        if attrs.get("masks"):
            remap = {int(old): new for new, old in enumerate(idx)}
            attrs["masks"] = {
                name: [remap[int(i)] for i in members if int(i) in remap]
                for name, members in attrs["masks"].items()
            }
        return EpisodeStore(data, np.cumsum(lengths), attrs)

    def mask(self, name: str) -> np.ndarray:
        """Episode indices of the filter ``name`` in ``attrs["masks"]`` (robomimic ``mask/<name>``)."""
        masks = self.attrs.get("masks") or {}
        if name not in masks:
            raise DataKeyError(f"EpisodeStore has no mask {name!r}; masks: {sorted(masks)}")
        return np.asarray(masks[name], dtype=np.int64)

    # ------------------------------------------------------------------ derived data
    def with_next_obs(self, keys: Sequence[str] | None = None) -> "EpisodeStore":
        """A shallow copy with ``next_obs/<k>`` added for each ``obs/<k>`` that lacks one.

        ``next_obs[t] = obs[t + 1]`` within an episode and the last step repeats itself (no
        boundary is crossed). ``keys`` restricts which ``obs/*`` keys get one.
        """
        self._consolidate()
        obs_keys = [k for k in self._data if k.startswith("obs/")] if keys is None else list(keys)
        nxt = np.arange(1, self.num_steps + 1, dtype=np.int64)
        if self.num_steps:
            nxt[self._ends - 1] = self._ends - 1
        out = EpisodeStore(dict(self._data), self._ends, copy.deepcopy(self.attrs))
        for k in obs_keys:
            if k not in self._data:
                raise DataKeyError(f"with_next_obs: no key {k!r}; keys: {list(self._data)}")
            nk = "next_obs/" + k[len("obs/"):] if k.startswith("obs/") else "next_" + k
            if nk not in out._data:
                out._data[nk] = np.take(self._data[k], nxt, axis=0)
        return out

    def check_finite(self, keys: Sequence[str] | None = None, source: str | None = None) -> None:
        """Raise :class:`NonFiniteError` if a floating key holds NaN/inf.

        By default checks ``action``, ``reward``, ``obs/*`` and ``next_obs/*``. The message
        names ``source`` (the file), the key, the first bad row and its episode/step.
        """
        self._consolidate()
        if keys is None:
            keys = [k for k in self._data if k.startswith(FINITE_KEY_PREFIXES)]
        for key in keys:
            arr = self[key]
            if not np.issubdtype(arr.dtype, np.floating) and not np.issubdtype(arr.dtype, np.complexfloating):
                continue
            ok = np.isfinite(arr).reshape(arr.shape[0], -1).all(axis=1) if arr.size else np.ones(0, bool)
            if not ok.all():
                row = int(np.flatnonzero(~ok)[0])
                ep = int(np.searchsorted(self._ends, row, side="right"))
                step = row - (int(self._ends[ep - 1]) if ep > 0 else 0)
                where = f"{source}: " if source else ""
                bad = arr[row]
                kind = "NaN" if np.isnan(bad).any() else "inf"
                raise NonFiniteError(
                    f"{where}key {key!r} contains {kind} at index {row} (episode {ep}, step {step}); "
                    "all actions/rewards/observations must be finite (pass check_finite=False to skip this check)"
                )

    # ------------------------------------------------------------------ misc
    def copy(self) -> "EpisodeStore":
        """A deep copy (arrays and attrs)."""
        self._consolidate()
        return EpisodeStore({k: a.copy() for k, a in self._data.items()}, self._ends.copy(), copy.deepcopy(self.attrs))

    def __repr__(self) -> str:
        self._consolidate()
        fields = ", ".join(f"{k}: {a.dtype}{list(a.shape[1:])}" for k, a in self._data.items())
        return f"EpisodeStore(num_episodes={self.num_episodes}, num_steps={self.num_steps}, keys={{{fields}}})"
