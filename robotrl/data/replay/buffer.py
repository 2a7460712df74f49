"""Preallocated circular replay buffer with Numba gathers, implicit next observations and n-step /
sequence sampling.

Storage
-------
Every field (``("obs", name)``, ``"action"``, ``"reward"``, ``"terminated"``, ``"truncated"`` and
any extra such as ``"log_prob"``) is a ``[capacity, *shape]`` block of one flat ``uint8``
allocation. Next observations are **not** duplicated: the next observation of slot ``i`` is the
observation of slot ``i + 1`` unless slot ``i`` ends a segment. A segment ends where

* ``terminated`` or ``truncated`` is set (an episode end),
* the given ``("next", "obs", k)`` differs from the following row's ``("obs", k)`` (a stream break,
  e.g. interleaved environments; checked when ``check_continuity=True``), or
* the transition is the newest one in the buffer.

Only at segment ends is the real next observation kept, in a small FIFO *side storage*
(``next_ptr[i]`` points into it). Side entries are created and overwritten in the same order as
the main slots, so the side storage is a ring that grows (doubling) only if more segment ends are
alive at once than it has rows. With episodes of length ``L`` memory is about
``1 + 1/L`` times the raw bytes plus 8 bytes per slot for ``next_ptr``.

When the next ``extend`` continues the newest transition (its first ``obs`` equals the stored
``next_obs``), the provisional side entry is dropped again, so per-step ``extend`` calls cost no
extra memory.

Sampling
--------
``sample`` draws slots uniformly (or by priority, see ``PrioritizedReplayBuffer``) and gathers
all fields, next observations and n-step returns in one Numba call into one output allocation,
which is wrapped without copies into a ``TensorDict``. ``sample_sequence`` returns windows
``[B, T, ...]`` that never cross an episode, with a ``"mask"``.

Persistence
-----------
``save(path)`` writes a directory atomically (``robotrl.utils.atomic.atomic_path``);
``ReplayBuffer.load(path)`` restores the buffer, including its RNG state, so a resumed run
continues to sample and extend exactly as the original would have.
"""
from __future__ import annotations

import json
import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

import numba
import numpy as np
import torch
from tensordict import TensorDict

from robotrl.data.replay import _kernels as K

Key = tuple  # tuple[str, ...]

OBS = "obs"
NEXT = "next"
_ALIGN = 64
_PARALLEL_BYTES = 1 << 19  # gathers moving more than this per call use the prange kernels
_SIDE_MAX_START_ROWS = 1024  # side storage starts at capacity/64 rows (8..1024) and doubles when full
_FORMAT_VERSION = 1
_POOL_SIZE = 4  # output buffers kept per batch layout
_FREE_REFS = 3  # getrefcount of a pooled buffer nobody else holds: pool list + loop variable + argument


# -------------------------------------------------------------------------------------- errors
class ReplayBufferError(ValueError):
    """Bad input to a replay buffer (wrong shape, dtype, size ...)."""


class MissingFieldError(ReplayBufferError, KeyError):
    """A batch lacks a field the buffer stores."""

    def __str__(self) -> str:  # KeyError would print the repr of the message
        return str(self.args[0]) if self.args else ""


# ---------------------------------------------------------------------------------- key helpers
def _as_key(k: Any) -> Key:
    if isinstance(k, tuple):
        return tuple(str(x) for x in k)
    if isinstance(k, str):
        return tuple(k.split("/")) if "/" in k else (k,)
    raise ReplayBufferError(f"field names must be str or tuple of str, got {k!r}")


def _key_str(k: Key) -> str:
    return k[0] if len(k) == 1 else repr(k)


def _to_numpy(v: Any, key: Key) -> np.ndarray:
    if isinstance(v, torch.Tensor):
        v = v.detach()
        if v.device.type != "cpu":
            v = v.cpu()
        return v.numpy()
    if isinstance(v, np.ndarray):
        return v
    try:
        return np.asarray(v)
    except Exception as exc:  # pragma: no cover - exotic inputs
        raise ReplayBufferError(f"field {_key_str(key)}: cannot convert {type(v).__name__} to an array") from exc


def flatten_batch(batch: Any) -> dict[Key, np.ndarray]:
    """Flatten a dict / TensorDict (nested, tuple keys or ``"a/b"`` keys) to ``{tuple key: array}``."""
    out: dict[Key, np.ndarray] = {}
    if isinstance(batch, TensorDict) or hasattr(batch, "items") and hasattr(batch, "batch_size"):
        for k, v in batch.items(include_nested=True, leaves_only=True):
            key = _as_key(k)
            out[key] = _to_numpy(v, key)
        return out
    if not isinstance(batch, Mapping):
        raise ReplayBufferError(f"extend expects a dict or TensorDict of arrays, got {type(batch).__name__}")

    def rec(prefix: Key, m: Mapping) -> None:
        for k, v in m.items():
            key = prefix + _as_key(k)
            if isinstance(v, Mapping) or isinstance(v, TensorDict):
                rec(key, v if isinstance(v, Mapping) else v.to_dict())
            else:
                out[key] = _to_numpy(v, key)

    rec((), batch)
    return out


def _np_dtype(d: Any) -> np.dtype:
    if isinstance(d, torch.dtype):
        return torch.empty(0, dtype=d).numpy().dtype
    return np.dtype(d)


def _fmt_shape(shape: tuple) -> str:
    return "(N, " + ", ".join(map(str, shape)) + ")" if shape else "(N,)"


def _squeeze_ones(shape: tuple) -> tuple:
    return tuple(s for s in shape if s != 1)


# -------------------------------------------------------------------------------------- spec
@dataclass(frozen=True)
class FieldSpec:
    """Shape (per transition) and dtype of one stored field."""

    shape: tuple
    dtype: np.dtype

    @property
    def row_bytes(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64)) * self.dtype.itemsize


_DEFAULTS = {
    ("reward",): FieldSpec((), np.dtype(np.float32)),
    ("terminated",): FieldSpec((), np.dtype(np.bool_)),
    ("truncated",): FieldSpec((), np.dtype(np.bool_)),
}


def make_spec(spec: Mapping) -> dict[Key, FieldSpec]:
    """Normalise a user spec ``{key: (shape, dtype) | FieldSpec}`` (nested dicts, tuple keys or
    ``"obs/state"`` keys) into ``{tuple key: FieldSpec}`` with observation fields first."""
    flat: dict[Key, FieldSpec] = {}

    def rec(prefix: Key, m: Mapping) -> None:
        for k, v in m.items():
            key = prefix + _as_key(k)
            if isinstance(v, Mapping):
                rec(key, v)
            elif isinstance(v, FieldSpec):
                flat[key] = FieldSpec(tuple(int(s) for s in v.shape), _np_dtype(v.dtype))
            elif isinstance(v, (tuple, list)) and len(v) == 2:
                shape, dtype = v
                if isinstance(shape, int):
                    shape = (shape,)
                flat[key] = FieldSpec(tuple(int(s) for s in shape), _np_dtype(dtype))
            else:
                raise ReplayBufferError(f"spec for field {_key_str(key)} must be (shape, dtype), got {v!r}")

    rec((), spec)
    for k, v in _DEFAULTS.items():
        flat.setdefault(k, v)
    return _order_and_check(flat)


def infer_spec(data: Mapping[Key, np.ndarray]) -> dict[Key, FieldSpec]:
    """Spec from a first batch: per-row shapes and dtypes (float64 stored as float32)."""
    flat: dict[Key, FieldSpec] = {}
    for k, a in data.items():
        if k[0] == NEXT:
            continue
        if a.ndim < 1:
            raise ReplayBufferError(f"field {_key_str(k)}: expected a batch [N, ...], got a scalar")
        dt = np.dtype(np.float32) if a.dtype == np.float64 else a.dtype
        if k in _DEFAULTS:
            dt = _DEFAULTS[k].dtype
            shape = ()
        else:
            shape = tuple(a.shape[1:])
        flat[k] = FieldSpec(shape, dt)
    for k, v in _DEFAULTS.items():
        flat.setdefault(k, v)
    return _order_and_check(flat)


def _order_and_check(flat: dict[Key, FieldSpec]) -> dict[Key, FieldSpec]:
    if ("action",) not in flat:
        raise MissingFieldError("replay buffer spec: missing field 'action'")
    obs = [k for k in flat if k[0] == OBS and len(k) >= 2]
    if not obs:
        raise MissingFieldError("replay buffer spec: needs at least one observation field ('obs', name)")
    for k in flat:
        if k[0] == NEXT:
            raise ReplayBufferError(f"spec field {_key_str(k)}: next observations are stored implicitly, do not declare them")
        if flat[k].row_bytes == 0:
            raise ReplayBufferError(f"spec field {_key_str(k)}: empty shape {flat[k].shape}")
    for k in (("reward",), ("terminated",), ("truncated",)):
        if int(np.prod(flat[k].shape, dtype=np.int64)) != 1:
            raise ReplayBufferError(f"spec field {_key_str(k)}: expected one value per transition, got shape {flat[k].shape}")
    if flat[("reward",)].dtype.kind != "f":
        raise ReplayBufferError(f"spec field 'reward': expected a float dtype, got {flat[('reward',)].dtype}")
    for k in (("terminated",), ("truncated",)):
        if flat[k].dtype != np.bool_:
            raise ReplayBufferError(f"spec field {_key_str(k)}: expected dtype bool, got {flat[k].dtype}")
    rest = [k for k in flat if k not in obs]
    return {k: flat[k] for k in obs + rest}


def _row_words(a: np.ndarray) -> np.ndarray:
    """``[N, ...]`` contiguous array -> ``[N, words]`` view of uint64 (or uint8) words for comparisons."""
    flat = np.ascontiguousarray(a).reshape(a.shape[0], -1).view(np.uint8)
    return flat.view(np.uint64) if flat.shape[1] % 8 == 0 else flat


def _align(n: int) -> int:
    return (n + _ALIGN - 1) // _ALIGN * _ALIGN


def _check_cast(key: Key, a: np.ndarray, dtype: np.dtype) -> None:
    """Raise unless ``a`` can be stored as ``dtype`` without losing meaning."""
    if a.dtype == dtype or np.can_cast(a.dtype, dtype, "same_kind"):
        return
    if dtype == np.bool_ and a.dtype.kind in "iuf":
        if a.size == 0 or np.all((a == 0) | (a == 1)):
            return
        raise ReplayBufferError(f"field {_key_str(key)}: expected dtype bool (or 0/1 values), got {a.dtype} with other values")
    if dtype.kind in "iu" and a.dtype.kind in "iub":
        info = np.iinfo(dtype)
        if a.size == 0 or (a.min() >= info.min and a.max() <= info.max):
            return
        raise ReplayBufferError(f"field {_key_str(key)}: expected dtype {dtype}, got {a.dtype} with values outside [{info.min}, {info.max}]")
    raise ReplayBufferError(f"field {_key_str(key)}: expected dtype {dtype}, got {a.dtype} which cannot be cast safely")


# -------------------------------------------------------------------------------------- plans
@dataclass
class _Plan:
    """Byte layout of one output batch (all fields of a sample in one allocation)."""

    batch_shape: tuple
    rows: int
    nbytes: int
    offsets: dict  # key -> byte offset (fields and ("next", "obs", k)); extras by name
    o_base: np.ndarray = field(default=None)
    no_base: np.ndarray = field(default=None)
    leaves: list = field(default_factory=list)  # (path, offset, dtype, shape)
    tree: dict = field(default_factory=dict)
    special: dict = field(default_factory=dict)  # top-level name -> leaf number
    parallel: bool = False
    pool: list = field(default_factory=list)  # output buffers, reused once nothing references them

    def flat(self, views: list, name: str) -> np.ndarray:
        """1-D view of a one-value-per-row leaf (``reward``, ``mask`` ...)."""
        v = views[self.special[name]]
        return v if v.ndim == 1 else v.reshape(-1)


def _build_plan(spec: dict[Key, FieldSpec], obs_keys: list[Key], batch_shape: tuple,
                extras: Iterable[tuple[str, np.dtype, tuple]]) -> _Plan:
    rows = int(np.prod(batch_shape))
    off = 0
    offsets: dict = {}
    leaves = []
    for k, fs in spec.items():
        offsets[k] = off
        leaves.append((k, off, fs.dtype, batch_shape + fs.shape))
        off = _align(off + rows * fs.row_bytes)
    for k in obs_keys:
        nk = (NEXT,) + k
        fs = spec[k]
        offsets[nk] = off
        leaves.append((nk, off, fs.dtype, batch_shape + fs.shape))
        off = _align(off + rows * fs.row_bytes)
    for name, dt, shape in extras:
        offsets[name] = off
        leaves.append(((name,), off, np.dtype(dt), shape))
        off = _align(off + int(np.prod(shape)) * np.dtype(dt).itemsize)
    plan = _Plan(batch_shape, rows, max(off, _ALIGN), offsets)
    plan.o_base = np.array([offsets[k] for k in spec], dtype=np.int64)
    plan.no_base = np.array([offsets[(NEXT,) + k] for k in obs_keys], dtype=np.int64)
    plan.leaves = leaves
    tree: dict = {}
    for i, (path, *_rest) in enumerate(leaves):
        node = tree
        for p in path[:-1]:
            node = node.setdefault(p, {})
        node[path[-1]] = i
    plan.tree = tree
    plan.special = {path[0]: i for i, (path, *_r) in enumerate(leaves) if len(path) == 1}
    return plan


def _new_td(source: dict, batch_size: torch.Size) -> TensorDict:
    try:
        return TensorDict._new_unsafe(source, batch_size=batch_size)
    except AttributeError:  # pragma: no cover - older/newer tensordict
        return TensorDict(source, batch_size=batch_size)


def _plan_views(out: np.ndarray, plan: _Plan) -> list[np.ndarray]:
    return [np.ndarray(shape, dtype, buffer=out, offset=off) for _p, off, dtype, shape in plan.leaves]


def _td_from_tree(node: dict, tens: list, bs: torch.Size) -> TensorDict:
    return _new_td({k: (tens[v] if isinstance(v, int) else _td_from_tree(v, tens, bs)) for k, v in node.items()}, bs)


def _make_td(views: list[np.ndarray], plan: _Plan, device: torch.device | None, non_blocking: bool) -> TensorDict:
    bs = torch.Size(plan.batch_shape)
    tens = [torch.from_numpy(v) for v in views]
    td = _td_from_tree(plan.tree, tens, bs)  # module-level recursion: a recursive closure would
    # form a reference cycle that keeps the batch (and its pooled buffer) alive until gc runs
    if device is not None:
        td = td.to(device, non_blocking=non_blocking)
    return td


# -------------------------------------------------------------------------------------- buffer
class ReplayBuffer:
    """Preallocated circular replay buffer of transitions with named fields.

    Args:
        capacity: number of transitions kept; the oldest are overwritten first.
        spec: ``{key: (shape, dtype)}`` per field (nested ``{"obs": {"state": ((17,), "float32")}}``,
            tuple keys or ``"obs/state"``). ``reward`` (float32), ``terminated`` and ``truncated``
            (bool) default to scalars. ``None``: inferred from the first ``extend`` (float64 stored
            as float32).
        seed: seed of the buffer's own RNG (xoshiro256** in Numba); ``None`` draws one from the OS.
        n_step, gamma: defaults of ``sample`` (n-step returns computed at sample time).
        device: where sampled batches go (``None``/``"cpu"``: stay on the CPU).
        pin_memory: allocate sampled batches in pinned memory (fast, asynchronous host-to-device
            copies; needs CUDA).
        check_continuity: compare each given ``next_obs`` with the following ``obs`` to detect
            stream breaks; with ``False`` only ``terminated | truncated`` end a segment (cheaper,
            but then every ``extend`` must continue the previous one's stream).
        parallel: gather large batches (> 512 kB, e.g. images) with Numba ``prange`` over all
            cores. Off by default: on small shared machines (2 cores with other jobs) the thread
            hand-offs made image sampling ~10x slower in our benchmark; turn it on where cores
            are free.

    ``extend`` expects transitions of one environment stream in time order (episodes contiguous).
    Interleaved streams stay correct when ``check_continuity`` is on, but every switch between
    streams then ends a segment (n-step returns and sequences stop there); use one buffer per
    stream, or extend per-stream chunks, to avoid that.
    """

    prioritized = False

    def __init__(self, capacity: int, spec: Mapping | None = None, *, seed: int | None = None,
                 n_step: int = 1, gamma: float = 0.99, device: str | torch.device | None = None,
                 pin_memory: bool = False, check_continuity: bool = True, parallel: bool = False) -> None:
        capacity = int(capacity)
        if capacity < 1:
            raise ReplayBufferError(f"capacity must be >= 1, got {capacity}")
        if int(n_step) < 1:
            raise ReplayBufferError(f"n_step must be >= 1, got {n_step}")
        self.capacity = capacity
        self.n_step = int(n_step)
        self.gamma = float(gamma)
        self.device = None if device is None or torch.device(device).type == "cpu" else torch.device(device)
        self.pin_memory = bool(pin_memory)
        self.check_continuity = bool(check_continuity)
        self.parallel = bool(parallel)
        self._rng = np.zeros(4, dtype=np.uint64)
        if seed is None:
            seed = int(np.random.SeedSequence().generate_state(1, dtype=np.uint64)[0])
        self.seed = int(seed)
        K.rng_seed(self._rng, np.uint64(self.seed % (1 << 64)))
        self._spec: dict[Key, FieldSpec] | None = None
        self._pos = 0
        self._size = 0
        self._tail_pending = False
        self._plans: dict = {}
        if spec is not None:
            self._init_storage(make_spec(spec))

    # ------------------------------------------------------------------ storage setup
    def _init_storage(self, spec: dict[Key, FieldSpec], side_rows: int | None = None) -> None:
        self._spec = spec
        self._keys = list(spec)
        self._obs_keys = [k for k in spec if k[0] == OBS]
        self._field_index = {k: i for i, k in enumerate(self._keys)}
        self._obs_f = np.array([self._field_index[k] for k in self._obs_keys], dtype=np.int64)
        self._f_rb = np.array([spec[k].row_bytes for k in self._keys], dtype=np.int64)
        self._f_all = np.arange(len(self._keys), dtype=np.int64)
        walked = {("reward",), ("terminated",), ("truncated",)}  # written by the n-step walk
        self._f_copy = np.array([i for i, k in enumerate(self._keys) if k not in walked], dtype=np.int64)
        bases, off = [], 0
        for k in self._keys:
            bases.append(off)
            off = _align(off + self.capacity * spec[k].row_bytes)
        self._f_base = np.array(bases, dtype=np.int64)
        self._buf = np.zeros(max(off, _ALIGN), dtype=np.uint8)
        self._views = {
            k: np.ndarray((self.capacity,) + spec[k].shape, spec[k].dtype, buffer=self._buf, offset=int(b))
            for k, b in zip(self._keys, self._f_base)
        }
        self._reward = self._views[("reward",)].reshape(self.capacity)
        self._term = self._views[("terminated",)].reshape(self.capacity)
        self._trunc = self._views[("truncated",)].reshape(self.capacity)
        self._next_ptr = np.full(self.capacity, -1, dtype=np.int64)
        self._side_head = 0  # absolute index of the oldest live side entry
        self._side_tail = 0  # absolute index of the next side entry
        self._alloc_side(side_rows or int(np.clip(self.capacity // 64, 8, _SIDE_MAX_START_ROWS)))
        self._init_extra()

    def _init_extra(self) -> None:
        """Hook for subclasses (priority trees)."""

    def _alloc_side(self, rows: int) -> None:
        bases, off = [], 0
        for k in self._obs_keys:
            bases.append(off)
            off = _align(off + rows * self._spec[k].row_bytes)
        self._side_rows = int(rows)
        self._s_base = np.array(bases, dtype=np.int64)
        self._side = np.zeros(max(off, _ALIGN), dtype=np.uint8)
        self._side_views = {
            k: np.ndarray((rows,) + self._spec[k].shape, self._spec[k].dtype, buffer=self._side, offset=int(b))
            for k, b in zip(self._obs_keys, self._s_base)
        }

    def _grow_side(self, needed: int) -> None:
        rows = self._side_rows
        while rows < needed:
            rows *= 2
        old_views, old_rows = self._side_views, self._side_rows
        live = np.arange(self._side_head, self._side_tail, dtype=np.int64)
        self._alloc_side(rows)
        for k in self._obs_keys:
            self._side_views[k][live % rows] = old_views[k][live % old_rows]

    # ------------------------------------------------------------------ properties
    def __len__(self) -> int:
        return self._size

    @property
    def spec(self) -> dict[Key, FieldSpec] | None:
        """``{tuple key: FieldSpec}`` of the stored fields (``None`` before the first extend)."""
        return None if self._spec is None else dict(self._spec)

    @property
    def obs_keys(self) -> list[Key]:
        return list(self._obs_keys) if self._spec is not None else []

    @property
    def nbytes(self) -> int:
        """Bytes held by the buffer's arrays (storage, next pointers, side storage, trees)."""
        if self._spec is None:
            return 0
        return int(self._buf.nbytes + self._next_ptr.nbytes + self._side.nbytes + self._extra_nbytes())

    def _extra_nbytes(self) -> int:
        return 0

    @property
    def raw_bytes_per_transition(self) -> int:
        """Bytes of one transition's fields (observations once, not their next copies)."""
        return int(sum(fs.row_bytes for fs in self._spec.values())) if self._spec else 0

    def __repr__(self) -> str:
        fields = ", ".join(f"{_key_str(k)}: {fs.shape} {fs.dtype}" for k, fs in (self._spec or {}).items())
        return f"{type(self).__name__}(size={self._size}/{self.capacity}, fields={{{fields}}})"

    # ------------------------------------------------------------------ extend
    def _validate(self, data: dict[Key, np.ndarray]) -> tuple[dict[Key, np.ndarray], dict[Key, np.ndarray], int]:
        n = None
        first = None
        arrays: dict[Key, np.ndarray] = {}
        nexts: dict[Key, np.ndarray] = {}
        wanted = [(k, k) for k in self._keys] + [((NEXT,) + k, k) for k in self._obs_keys]
        for key, skey in wanted:
            fs = self._spec[skey]
            if key not in data:
                raise MissingFieldError(
                    f"extend: missing field {_key_str(key)} (expected shape {_fmt_shape(fs.shape)} dtype "
                    f"{fs.dtype}); got fields {sorted(map(_key_str, data))}")
            a = data[key]
            if a.ndim < 1:
                raise ReplayBufferError(f"extend: field {_key_str(key)} must be a batch [N, ...], got a scalar")
            if n is None:
                n, first = a.shape[0], key
            elif a.shape[0] != n:
                raise ReplayBufferError(
                    f"extend: field {_key_str(key)} has {a.shape[0]} rows but {_key_str(first)} has {n}")
            if tuple(a.shape[1:]) != fs.shape:
                if _squeeze_ones(a.shape[1:]) != _squeeze_ones(fs.shape):
                    raise ReplayBufferError(
                        f"extend: field {_key_str(key)} expected shape {_fmt_shape(fs.shape)} = "
                        f"{(n,) + fs.shape}, got {tuple(a.shape)}")
                a = a.reshape((n,) + fs.shape)
            _check_cast(key, a, fs.dtype)
            a = np.ascontiguousarray(a, dtype=fs.dtype)
            if key[0] == NEXT:
                nexts[skey] = a
            else:
                arrays[key] = a
        if n > self.capacity:
            raise ReplayBufferError(f"extend: batch of {n} transitions is larger than the capacity {self.capacity}")
        return arrays, nexts, int(n)

    def extend(self, batch: Mapping | TensorDict) -> None:
        """Append ``N`` transitions (``[N, ...]`` arrays or tensors, nested or tuple keys).

        Needs every stored field plus ``("next", "obs", k)`` for every observation ``k``. Extra
        keys are ignored. The batch is validated before anything is written: a rejected batch
        leaves the buffer unchanged.
        """
        data = flatten_batch(batch)
        if self._spec is None:
            self._init_storage(infer_spec(data))
        arrays, nexts, n = self._validate(data)
        if n == 0:
            return
        cap = self.capacity
        done = arrays[("terminated",)].reshape(n) | arrays[("truncated",)].reshape(n)
        boundary = done.copy()
        boundary[-1] = True
        if self.check_continuity and n > 1:
            for k in self._obs_keys:
                eq = K.rows_equal(_row_words(nexts[k][:-1]), _row_words(arrays[k][1:]))
                boundary[:-1] |= ~eq
        # does the batch continue the newest stored transition? then drop its provisional side entry
        pop = False
        if self._size > 0 and self._tail_pending:
            pop = True
            if self.check_continuity:
                srow = (self._side_tail - 1) % self._side_rows
                for k in self._obs_keys:
                    if not K.rows_equal(_row_words(arrays[k][:1]), _row_words(self._side_views[k][srow:srow + 1]))[0]:
                        pop = False
                        break
        prev = (self._pos - 1) % cap
        # side entries freed by overwriting the oldest slots
        over = max(0, self._size + n - cap)
        oldest = (self._pos - self._size) % cap
        over_slots = (oldest + np.arange(over, dtype=np.int64)) % cap
        ptrs = self._next_ptr[over_slots]
        if pop:
            ptrs = ptrs[over_slots != prev]
        freed = int(np.count_nonzero(ptrs >= 0))
        m = int(np.count_nonzero(boundary))
        needed = (self._side_tail - int(pop)) - (self._side_head + freed) + m
        if needed > self._side_rows:
            self._grow_side(needed)
        # ---- mutation starts here (nothing below can fail on bad input)
        if pop:
            self._side_tail -= 1
            self._next_ptr[prev] = -1
        self._side_head += freed
        slots = (self._pos + np.arange(n, dtype=np.int64)) % cap
        self._write_rows(slots, arrays)
        ptr = np.full(n, -1, dtype=np.int64)
        brows = np.flatnonzero(boundary)
        abs_idx = self._side_tail + np.arange(m, dtype=np.int64)
        ptr[brows] = abs_idx
        self._next_ptr[slots] = ptr
        srows = abs_idx % self._side_rows
        for k in self._obs_keys:
            self._side_views[k][srows] = nexts[k][brows]
        self._side_tail += m
        start = self._pos
        self._pos = (self._pos + n) % cap
        self._size = min(self._size + n, cap)
        self._tail_pending = not bool(done[-1])
        self._on_write(start, n)

    def _write_rows(self, slots: np.ndarray, arrays: dict[Key, np.ndarray]) -> None:
        n = slots.shape[0]
        start = int(slots[0])
        first = min(n, self.capacity - start)
        for k in self._keys:
            v, a = self._views[k], arrays[k]
            v[start:start + first] = a[:first]
            if first < n:
                v[: n - first] = a[first:]

    def _on_write(self, start: int, count: int) -> None:
        """Hook for subclasses: ``count`` slots from ``start`` (circular) were (over)written."""

    # ------------------------------------------------------------------ sampling internals
    def _check_ready(self, what: str = "sample") -> None:
        if self._size == 0:
            raise ReplayBufferError(f"{what}: the buffer is empty")

    def _plan(self, batch_shape: tuple, kind: str) -> _Plan:
        key = (batch_shape, kind)
        plan = self._plans.get(key)
        if plan is None:
            B = batch_shape[0]
            extras = [("index", np.int64, (B,))]
            if kind == "seq":
                extras.append(("mask", np.bool_, batch_shape))
            else:
                extras.append(("discount", np.float32, (B,)))
            if self.prioritized:
                extras.append(("weight", np.float32, (B,)))
            plan = _build_plan(self._spec, self._obs_keys, batch_shape, extras)
            plan.parallel = self.parallel and (
                plan.rows * (int(self._f_rb.sum()) + int(self._f_rb[self._obs_f].sum())) > _PARALLEL_BYTES)
            if len(self._plans) > 32:
                self._plans.clear()
            self._plans[key] = plan
        return plan

    def _alloc_out(self, plan: _Plan) -> np.ndarray:
        """The output buffer of one batch.

        A batch's tensors are views of this buffer and keep a reference to it; once a caller has
        dropped every tensor of an earlier batch, only ``plan.pool`` still refers to its buffer,
        and it is reused. Fresh multi-MB allocations (image batches) are returned to the OS on
        free and page-fault again on every call, which cost ~40 ms per image batch on our VMs.
        Pinned buffers are left to PyTorch's caching host allocator, which knows when an
        asynchronous copy from them has finished.
        """
        if self.pin_memory:
            return torch.empty(plan.nbytes, dtype=torch.uint8, pin_memory=True).numpy()
        for buf in plan.pool:
            if sys.getrefcount(buf) <= _FREE_REFS:
                return buf
        buf = np.empty(plan.nbytes, dtype=np.uint8)
        if len(plan.pool) < _POOL_SIZE:
            plan.pool.append(buf)
        return buf

    def _sample_indices(self, idx: np.ndarray, weight: np.ndarray | None) -> None:
        """Fill ``idx`` (and ``weight`` for prioritised buffers) with drawn slots."""
        K.uniform_indices(self._rng, idx, self._size)

    def _gather_nstep(self, n_live: int, idx: np.ndarray, row0: int, n_step: int, gamma: float,
                      out: np.ndarray, o_base: np.ndarray, no_base: np.ndarray, views: list, plan: _Plan) -> None:
        """Gather rows (drawing ``idx`` uniformly first when ``n_live > 0``) into ``out``."""
        fn = K.gather_nstep_parallel if plan.parallel and numba.get_num_threads() > 1 else K.gather_nstep
        fn(self._rng, n_live, idx, row0, n_step, gamma, self.capacity, self._reward, self._term, self._trunc,
           self._next_ptr, self._buf, self._f_base, self._f_rb, self._f_copy, out, o_base, self._obs_f, self._side, self._s_base,
           self._side_rows, no_base, plan.flat(views, "reward"), plan.flat(views, "terminated"),
           plan.flat(views, "truncated"), views[plan.special["discount"]])

    # ------------------------------------------------------------------ public sampling
    def sample(self, batch_size: int, *, n_step: int | None = None, gamma: float | None = None) -> TensorDict:
        """Sample ``batch_size`` transitions as a ``TensorDict`` of batch size ``[B]``.

        Keys: every stored field at the sampled step, ``("next", "obs", k)``, ``"discount"``
        (``gamma**k`` to apply to the bootstrap value, 0 where the return ended in a
        termination), ``"index"`` (slots, for ``update_priorities``) and, for prioritised
        buffers, ``"weight"``. With ``n_step > 1``, ``"reward"`` is the discounted sum of up to
        ``n_step`` rewards (stopping at a termination, truncation or episode end),
        ``"terminated"`` / ``"truncated"`` describe how it ended, and ``("next", "obs", k)`` is the
        observation to bootstrap from.
        """
        if self._size == 0:
            self._check_ready()
        plan = self._plans.get(((batch_size,), "flat"))
        if plan is None:
            if int(batch_size) < 1:
                raise ReplayBufferError(f"sample: batch_size must be >= 1, got {batch_size}")
            plan = self._plan((int(batch_size),), "flat")
        n = self.n_step if n_step is None else int(n_step)
        if n < 1:
            raise ReplayBufferError(f"sample: n_step must be >= 1, got {n_step}")
        g = self.gamma if gamma is None else float(gamma)
        out = self._alloc_out(plan)
        views = [np.ndarray(shape, dtype, buffer=out, offset=off) for _p, off, dtype, shape in plan.leaves]
        idx = views[plan.special["index"]]
        n_live = self._size
        if self.prioritized:
            self._sample_indices(idx, views[plan.special["weight"]])
            n_live = 0
        self._gather_nstep(n_live, idx, 0, n, g, out, plan.o_base, plan.no_base, views, plan)
        return _make_td(views, plan, self.device, self.pin_memory)

    def sample_sequence(self, batch_size: int, length: int) -> TensorDict:
        """Sample ``batch_size`` windows of ``length`` consecutive steps: batch size ``[B, T]``.

        A window starts at a uniformly drawn transition and never crosses the end of its episode
        (or stream break / newest transition): later steps repeat the last valid step and have
        ``"mask"`` False. ``"index"`` ``[B]`` holds the start slots.
        """
        self._check_ready("sample_sequence")
        B, T = int(batch_size), int(length)
        if B < 1 or T < 1:
            raise ReplayBufferError(f"sample_sequence: batch_size and length must be >= 1, got {batch_size}, {length}")
        plan = self._plan((B, T), "seq")
        out = self._alloc_out(plan)
        views = [np.ndarray(shape, dtype, buffer=out, offset=off) for _p, off, dtype, shape in plan.leaves]
        fn = K.gather_sequence_parallel if plan.parallel and numba.get_num_threads() > 1 else K.gather_sequence
        fn(self._rng, self._size, views[plan.special["index"]], 0, T, self.capacity, self._next_ptr, self._buf,
           self._f_base, self._f_rb, self._f_all, out, plan.o_base, self._obs_f, self._side, self._s_base, self._side_rows,
           plan.no_base, plan.flat(views, "mask"))
        return _make_td(views, plan, self.device, self.pin_memory)

    # ------------------------------------------------------------------ inspection helpers
    def get(self, index: np.ndarray | torch.Tensor | Iterable[int]) -> dict[Key, np.ndarray]:
        """Copies of the stored fields (and next observations) at ``index`` slots (for tests/debugging)."""
        idx = np.asarray(index, dtype=np.int64).reshape(-1)
        self._check_index(idx, "get")
        res = {k: self._views[k][idx].copy() for k in self._keys}
        for k in self._obs_keys:
            nxt = np.empty((idx.shape[0],) + self._spec[k].shape, self._spec[k].dtype)
            for r, i in enumerate(idx):
                p = self._next_ptr[i]
                nxt[r] = self._side_views[k][p % self._side_rows] if p >= 0 else self._views[k][(i + 1) % self.capacity]
            res[(NEXT,) + k] = nxt
        return res

    def _check_index(self, idx: np.ndarray, what: str) -> None:
        if idx.size and (idx.min() < 0 or idx.max() >= self._size):
            bad = idx[(idx < 0) | (idx >= self._size)][0]
            raise ReplayBufferError(f"{what}: index {int(bad)} is not a written slot (buffer holds {self._size})")

    def live_slots(self) -> np.ndarray:
        """Slots in insertion order, oldest first."""
        return (self._pos - self._size + np.arange(self._size, dtype=np.int64)) % self.capacity

    # ------------------------------------------------------------------ persistence
    def _meta(self) -> dict:
        return {
            "format_version": _FORMAT_VERSION,
            "class": type(self).__name__,
            "capacity": self.capacity,
            "seed": self.seed,
            "n_step": self.n_step,
            "gamma": self.gamma,
            "check_continuity": self.check_continuity,
            "spec": [[list(k), list(fs.shape), fs.dtype.str] for k, fs in (self._spec or {}).items()],
            "pos": self._pos,
            "size": self._size,
            "tail_pending": self._tail_pending,
            "side_head": getattr(self, "_side_head", 0),
            "side_tail": getattr(self, "_side_tail", 0),
            "side_rows": getattr(self, "_side_rows", 0),
        }

    def _state_arrays(self) -> dict[str, np.ndarray]:
        arrs = {"rng": self._rng.copy()}
        if self._spec is None:
            return arrs
        n = self._size  # before the first wrap slots [0, size) are the written ones
        for i, k in enumerate(self._keys):
            arrs[f"field{i}"] = self._views[k][:n]
        arrs["next_ptr"] = self._next_ptr[:n]
        live = np.arange(self._side_head, self._side_tail, dtype=np.int64) % self._side_rows
        for j, k in enumerate(self._obs_keys):
            arrs[f"side{j}"] = self._side_views[k][live]
        return arrs

    def save(self, path: str | os.PathLike) -> None:
        """Write the buffer (data, pointers, RNG state, priorities) to directory ``path`` atomically."""
        from robotrl.utils.atomic import atomic_path

        with atomic_path(path) as tmp:
            tmp.mkdir(parents=True, exist_ok=False)
            for name, a in self._state_arrays().items():
                with open(tmp / f"{name}.npy", "wb") as fh:
                    np.save(fh, np.ascontiguousarray(a), allow_pickle=False)
                    fh.flush()
                    os.fsync(fh.fileno())
            (tmp / "meta.json").write_text(json.dumps(self._meta(), indent=1))

    @classmethod
    def load(cls, path: str | os.PathLike, *, device: str | torch.device | None = None,
             pin_memory: bool = False) -> "ReplayBuffer":
        """Restore a buffer written by ``save`` (returns the saved class, e.g. a prioritised one)."""
        path = Path(path)
        meta_file = path / "meta.json"
        if not meta_file.is_file():
            raise FileNotFoundError(f"{path}: not a saved replay buffer (no meta.json)")
        meta = json.loads(meta_file.read_text())
        if meta.get("format_version") != _FORMAT_VERSION:
            raise ReplayBufferError(f"{meta_file}: format_version {meta.get('format_version')} unsupported (expected {_FORMAT_VERSION})")
        from robotrl.data.replay.prioritized import PrioritizedReplayBuffer

        classes = {"ReplayBuffer": ReplayBuffer, "PrioritizedReplayBuffer": PrioritizedReplayBuffer}
        klass = classes.get(meta["class"])
        if klass is None or not issubclass(klass, cls):
            raise ReplayBufferError(f"{meta_file}: holds a {meta['class']}, cannot load it as {cls.__name__}")
        buf = klass._from_meta(meta, device=device, pin_memory=pin_memory)

        def arr(name: str) -> np.ndarray:
            f = path / f"{name}.npy"
            if not f.is_file():
                raise FileNotFoundError(f"{f}: missing array file of a saved replay buffer")
            return np.load(f, allow_pickle=False)

        buf._rng[:] = arr("rng")
        if meta["spec"]:
            spec = {tuple(k): FieldSpec(tuple(s), np.dtype(d)) for k, s, d in meta["spec"]}
            buf._init_storage(spec, side_rows=meta["side_rows"])
            n = meta["size"]
            for i, k in enumerate(buf._keys):
                a = arr(f"field{i}")
                if a.shape != (n,) + spec[k].shape or a.dtype != spec[k].dtype:
                    raise ReplayBufferError(f"{path}/field{i}.npy: expected shape {(n,) + spec[k].shape} dtype "
                                            f"{spec[k].dtype}, got {a.shape} {a.dtype}")
                buf._views[k][:n] = a
            buf._next_ptr[:n] = arr("next_ptr")
            buf._side_head, buf._side_tail = meta["side_head"], meta["side_tail"]
            live = np.arange(buf._side_head, buf._side_tail, dtype=np.int64) % buf._side_rows
            for j, k in enumerate(buf._obs_keys):
                buf._side_views[k][live] = arr(f"side{j}")
            buf._pos, buf._size, buf._tail_pending = meta["pos"], meta["size"], meta["tail_pending"]
            buf._load_extra(arr, meta)
        return buf

    @classmethod
    def _from_meta(cls, meta: dict, **kw: Any) -> "ReplayBuffer":
        return cls(meta["capacity"], None, seed=meta["seed"], n_step=meta["n_step"], gamma=meta["gamma"],
                   check_continuity=meta["check_continuity"], **kw)

    def _load_extra(self, arr: Any, meta: dict) -> None:
        """Hook for subclasses to restore their extra state."""

    # ------------------------------------------------------------------ construction helpers
    @classmethod
    def from_episode_store(cls, store: Any, capacity: int | None = None, **kwargs: Any) -> "ReplayBuffer":
        """Build a buffer holding every transition of an ``EpisodeStore`` (e.g. demonstrations).

        Keys ``"obs/<k>"``, ``"action"``, ``"reward"``, ``"terminated"``, ``"truncated"`` (missing
        reward/flags default to 0/False) and any other flat key become fields (``"infos/qpos"``
        -> ``("infos", "qpos")``). Next observations come from ``"next_obs/<k>"`` where the store
        has them; otherwise from the following step, and the last step of an episode that did not
        terminate is dropped (its next observation is unknown) with the step before it marked
        truncated.
        """
        episode_ends = np.asarray(store.episode_ends, dtype=np.int64)
        keys = list(store.keys())
        data = {k: np.asarray(store[k]) for k in keys}
        total = int(episode_ends[-1]) if episode_ends.size else 0
        obs = {k[4:]: v for k, v in data.items() if k.startswith("obs/")}
        if not obs:
            raise MissingFieldError(f"from_episode_store: no 'obs/<name>' keys in the store (keys: {keys})")
        if "action" not in data:
            raise MissingFieldError(f"from_episode_store: no 'action' key in the store (keys: {keys})")
        reward = data.get("reward", np.zeros(total, np.float32)).reshape(total)
        term = data.get("terminated", np.zeros(total, bool)).reshape(total).astype(bool)
        trunc = data.get("truncated", np.zeros(total, bool)).reshape(total).astype(bool)
        has_next = all(f"next_obs/{k}" in data for k in obs)
        starts = np.concatenate([[0], episode_ends[:-1]]) if total else np.zeros(0, np.int64)
        keep = np.ones(total, dtype=bool)
        nxt_idx = np.arange(total, dtype=np.int64) + 1
        new_trunc = trunc.copy()
        for s, e in zip(starts, episode_ends):
            if e <= s:
                continue
            last = e - 1
            nxt_idx[last] = last  # placeholder (used only where terminated, discount 0)
            if not has_next and not term[last]:
                keep[last] = False
                if last - 1 >= s:
                    new_trunc[last - 1] = True
        batch: dict[Key, np.ndarray] = {}
        for k, v in data.items():
            if k.startswith("next_obs/") or k in ("reward", "terminated", "truncated"):
                continue
            batch[_as_key(k)] = v[keep]
        for k, v in obs.items():
            batch[(NEXT, OBS) + _as_key(k)] = (data[f"next_obs/{k}"] if has_next else v[nxt_idx])[keep]
        ep_last = np.zeros(total, dtype=bool)
        ep_last[episode_ends[episode_ends > 0] - 1] = True
        done_trunc = new_trunc | (ep_last & ~term)  # every episode end is a segment end
        batch[("reward",)] = reward[keep]
        batch[("terminated",)] = term[keep]
        batch[("truncated",)] = done_trunc[keep] & ~term[keep]
        n = int(keep.sum())
        if not has_next:
            # the step before a dropped last step ends its episode too
            dropped_prev = np.zeros(total, dtype=bool)
            dropped = np.flatnonzero(~keep)
            dropped_prev[dropped[dropped > 0] - 1] = True
            batch[("truncated",)] = (batch[("truncated",)] | dropped_prev[keep]) & ~batch[("terminated",)]
        spec = kwargs.pop("spec", None)
        buf = cls(capacity or max(n, 1), spec, **kwargs)
        if n:
            chunk = buf.capacity
            for s in range(0, n, chunk):
                buf.extend({k: v[s:s + chunk] for k, v in batch.items()})
        return buf
