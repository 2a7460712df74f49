"""D4RL HDF5 datasets (read and write), ``qlearning_dataset`` and D4RL-normalised scores.

Layout (one flat HDF5 file, every dataset ``[N, ...]`` over all steps)::

    observations        -> "obs/state"
    actions             -> "action"
    rewards             -> "reward"
    terminals           -> "terminated"
    timeouts            -> "truncated"     (optional)
    next_observations   -> "next_obs/state" (optional)
    infos/<k>           -> "infos/<k>"      (e.g. infos/qpos, infos/qvel)
    metadata/<k>        -> attrs["metadata"][k]
    <any other [N,...]> -> its path (so other store keys round-trip, e.g. "obs/image")

Episodes end after every step with ``terminals | timeouts``; a trailing partial episode (no flag
on the last step) is kept. When writing, a store episode (other than the last) whose last step
has neither flag is written with ``timeouts = 1`` there, so the boundary survives; a flag in the
middle of an episode cannot be represented and is an error.
"""
from __future__ import annotations

import os
import re
from typing import Any, Sequence

import h5py
import numpy as np

from robotrl.data.episode_store import EpisodeStore
from robotrl.data.errors import DataFormatError, DataKeyError, DataShapeError
from robotrl.data.formats._common import ROBOTRL_ATTRS, dumps, iter_datasets, loads, open_h5, to_python
from robotrl.utils.atomic import atomic_path

__all__ = ["read", "write", "is_d4rl", "qlearning_dataset", "normalized_score", "REF_SCORES", "NATIVE_TO_STORE"]

FORMAT = "d4rl"
EXPECTED = "a D4RL HDF5 file (top-level datasets 'observations', 'actions', 'rewards', 'terminals')"
NATIVE_TO_STORE = {
    "observations": "obs/state",
    "actions": "action",
    "rewards": "reward",
    "terminals": "terminated",
    "timeouts": "truncated",
    "next_observations": "next_obs/state",
}
STORE_TO_NATIVE = {v: k for k, v in NATIVE_TO_STORE.items()}
_REQUIRED = ("observations", "actions", "rewards", "terminals")

#: D4RL reference returns (``d4rl/infos.py``): body name -> (random score, expert score).
REF_SCORES: dict[str, tuple[float, float]] = {
    "halfcheetah": (-280.178953, 12135.0),
    "hopper": (-20.272305, 3234.3),
    "walker2d": (1.629008, 4592.3),
    "ant": (-325.6, 3879.7),
}


def is_d4rl(f: h5py.File) -> bool:
    """True if an open HDF5 file has D4RL's flat layout (top-level ``observations`` and ``actions``)."""
    return isinstance(f.get("observations"), h5py.Dataset) and isinstance(f.get("actions"), h5py.Dataset)


def read(path: str | os.PathLike, *, check_finite: bool = True) -> EpisodeStore:
    """Read a D4RL HDF5 file into an :class:`EpisodeStore`, split into episodes on ``terminals | timeouts``."""
    spath = str(path)
    with open_h5(path, EXPECTED) as f:
        if not is_d4rl(f):
            raise DataFormatError(
                f"{spath!r} is not a D4RL HDF5 file: expected top-level datasets 'observations' and 'actions', "
                f"found top-level keys {sorted(f.keys())}"
            )
        for name in _REQUIRED:
            if not isinstance(f.get(name), h5py.Dataset):
                raise DataKeyError(f"{spath!r}: missing key {name!r} (a D4RL file needs {list(_REQUIRED)})")
        n = int(f["observations"].shape[0])
        data: dict[str, np.ndarray] = {}
        metadata: dict[str, Any] = {}
        mismatched: dict[str, int] = {}
        for rel, ds in iter_datasets(f):
            if rel.startswith("metadata/"):
                metadata[rel[len("metadata/"):]] = to_python(ds[()])
                continue
            length = int(ds.shape[0]) if ds.ndim else -1
            if length != n:
                if rel in NATIVE_TO_STORE or rel.startswith("infos/"):
                    mismatched[rel] = length
                continue  # not per-step data: ignored
            data[NATIVE_TO_STORE.get(rel, rel)] = ds[()]
        if mismatched:
            desc = ", ".join(f"{k!r}: {v}" for k, v in mismatched.items())
            raise DataShapeError(
                f"{spath!r}: every per-step dataset must have as many rows as 'observations' ({n}); mismatched lengths: {desc}"
            )
        attrs: dict[str, Any] = {k: to_python(v) for k, v in f.attrs.items() if k != ROBOTRL_ATTRS}
        if ROBOTRL_ATTRS in f.attrs:
            attrs.update(loads(f.attrs[ROBOTRL_ATTRS], f"{spath!r}: attr {ROBOTRL_ATTRS!r}"))
        if metadata:
            attrs["metadata"] = metadata

    for key in ("terminated", "truncated"):
        if key in data:
            data[key] = data[key].astype(bool).reshape(n)
    done = data["terminated"].copy()
    if "truncated" in data:
        done |= data["truncated"]
    ends = np.flatnonzero(done).astype(np.int64) + 1
    if n and (ends.size == 0 or ends[-1] != n):
        ends = np.append(ends, np.int64(n))  # trailing partial episode
    store = EpisodeStore(data, ends, attrs)
    if check_finite:
        store.check_finite(source=spath)
    return store


def write(
    store: EpisodeStore,
    path: str | os.PathLike,
    *,
    compression: str | None = None,
    check_finite: bool = True,
) -> None:
    """Write ``store`` as a D4RL HDF5 file, atomically.

    Needs ``obs/state``, ``action`` and ``reward``; ``terminated``/``truncated`` default to
    zeros. Other keys are written at their own path (``infos/qpos`` -> ``infos/qpos``).
    ``attrs["metadata"]`` becomes ``metadata/<k>`` datasets, other attrs JSON in the root
    attribute ``robotrl_attrs``.
    """
    spath = str(path)
    for key in ("obs/state", "action", "reward"):
        if key not in store:
            raise DataKeyError(f"cannot write D4RL file {spath!r}: the store has no key {key!r}; keys: {store.keys()}")
    if check_finite:
        store.check_finite(source=spath)
    n = store.num_steps
    ends = store.episode_ends
    terminals = store["terminated"].astype(bool).reshape(n) if "terminated" in store else np.zeros(n, bool)
    timeouts = store["truncated"].astype(bool).reshape(n).copy() if "truncated" in store else np.zeros(n, bool)
    flag = terminals | timeouts
    is_end = np.zeros(n, bool)
    is_end[ends - 1] = True
    mid = np.flatnonzero(flag & ~is_end)
    if mid.size:
        row = int(mid[0])
        ep = int(np.searchsorted(ends, row, side="right"))
        raise DataShapeError(
            f"cannot write D4RL file {spath!r}: D4RL splits episodes on terminals|timeouts, but episode {ep} has "
            f"terminated/truncated set at index {row}, before its last step"
        )
    unmarked = ends[:-1][~flag[ends[:-1] - 1]] - 1 if ends.size > 1 else np.zeros(0, np.int64)
    timeouts[unmarked] = True

    attrs = dict(store.attrs)
    metadata = attrs.pop("metadata", None) or {}
    json_attrs = dumps(attrs, f"attrs {sorted(attrs)}") if attrs else None

    with atomic_path(path) as tmp:
        with h5py.File(tmp, "w") as f:
            written = set()
            for key in store.keys():
                native = STORE_TO_NATIVE.get(key, key)
                arr = store[key]
                if key == "terminated":
                    arr = terminals
                elif key == "truncated":
                    arr = timeouts
                f.create_dataset(native, data=arr, compression=compression)
                written.add(native)
            if "terminals" not in written:
                f.create_dataset("terminals", data=terminals)
            if "timeouts" not in written:
                f.create_dataset("timeouts", data=timeouts)
            for k, v in metadata.items():
                f.create_dataset(f"metadata/{k}", data=v)
            if json_attrs is not None:
                f.attrs[ROBOTRL_ATTRS] = json_attrs


def qlearning_dataset(
    store: EpisodeStore, obs_key: str = "obs/state", *, keep_terminal_last: bool = True
) -> dict[str, np.ndarray]:
    """Flat transitions ``(observations, actions, next_observations, rewards, terminals)``.

    ``next_observations`` never cross an episode boundary:

    * if the store has ``next_obs/<k>`` for ``obs_key``, every step is a transition and its
      stored next observation is used;
    * otherwise ``next_observations[t] = observations[t + 1]`` of the same episode, and the last
      step of each episode has no next observation: it is dropped, unless it is ``terminated``
      and ``keep_terminal_last`` (default), where it is kept with ``next_observations`` = its own
      observation (a placeholder; ``terminals = 1`` masks it out of any TD target). Truncated or
      unfinished episode ends are always dropped. (D4RL's own ``qlearning_dataset`` drops the
      last step of timeouts too, but it takes the next row of the file for terminal steps,
      which crosses into the next episode.)
    """
    if obs_key not in store:
        raise DataKeyError(f"qlearning_dataset: the store has no key {obs_key!r}; keys: {store.keys()}")
    for key in ("action", "reward"):
        if key not in store:
            raise DataKeyError(f"qlearning_dataset: the store has no key {key!r}; keys: {store.keys()}")
    n = store.num_steps
    obs = store[obs_key]
    terminals = store["terminated"].astype(bool).reshape(n) if "terminated" in store else np.zeros(n, bool)
    next_key = "next_obs/" + obs_key[len("obs/"):] if obs_key.startswith("obs/") else None
    if next_key is not None and next_key in store:
        rows = np.arange(n, dtype=np.int64)
        next_obs = store[next_key]
    else:
        ends = store.episode_ends
        last = np.zeros(n, bool)
        last[ends - 1] = True
        keep = ~last | (terminals & keep_terminal_last)
        rows = np.flatnonzero(keep).astype(np.int64)
        nxt = rows + 1
        nxt[last[rows]] = rows[last[rows]]  # terminal last steps: placeholder = own observation
        next_obs = np.take(obs, nxt, axis=0)
    return {
        "observations": np.take(obs, rows, axis=0),
        "actions": np.take(store["action"], rows, axis=0),
        "next_observations": next_obs,
        "rewards": np.take(store["reward"], rows, axis=0).reshape(-1),
        "terminals": terminals[rows].astype(np.float32),
    }


def _body_name(env_name: str) -> str:
    name = env_name.strip().lower()
    name = re.split(r"[-_/:]", name, maxsplit=1)[0]
    return name


def normalized_score(env_name: str, returns: float | Sequence[float] | np.ndarray) -> float | np.ndarray:
    """D4RL-normalised score ``100 * (R - random) / (expert - random)``.

    ``env_name`` is matched by its body name: ``"hopper-medium-v2"``, ``"Hopper-v5"`` and
    ``"hopper"`` all use hopper's reference scores. Returns a float for a scalar ``returns``,
    else an array of the same shape.
    """
    body = _body_name(env_name)
    if body not in REF_SCORES:
        raise DataKeyError(
            f"normalized_score: no D4RL reference scores for {env_name!r} (body {body!r}); known: {sorted(REF_SCORES)}"
        )
    lo, hi = REF_SCORES[body]
    r = np.asarray(returns, dtype=np.float64)
    score = 100.0 * (r - lo) / (hi - lo)
    return float(score) if score.ndim == 0 else score
