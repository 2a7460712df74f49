"""robomimic HDF5 demonstration files (read and write).

Layout (robomimic's ``dataset_states_to_obs.py`` output)::

    data/                       attrs: total (int, all steps), env_args (JSON string)
      demo_0/                   attrs: num_samples (int), optionally model_file, ...
        actions   [T, A]        -> "action"
        rewards   [T]           -> "reward"
        dones     [T]           -> "terminated" (bool; written back as int64 ``dones``)
        states    [T, S]        -> "states"
        obs/<k>   [T, ...]      -> "obs/<k>"       (images uint8 HWC)
        next_obs/<k>            -> "next_obs/<k>"
        <any other dataset>     -> its path inside the demo (e.g. "action_dict/abs_pos")
    mask/<filter>               array of demo names (bytes), e.g. mask/train, mask/valid

Demos are read in numeric order (``demo_2`` before ``demo_10``). ``attrs`` of the store:
``env_args`` (dict), ``masks`` (``{filter: [episode indices]}``), ``episode_names``
(the demo names), ``episode_attrs`` (per-demo attrs other than ``num_samples``, only when
some demo has any), and any other ``data`` attribute. Attrs without a native place are
written as JSON in ``data.attrs["robotrl_attrs"]``.
"""
from __future__ import annotations

import os
import re
from typing import Any

import h5py
import numpy as np

from robotrl.data.episode_store import EpisodeStore
from robotrl.data.errors import DataFormatError, DataKeyError, DataShapeError
from robotrl.data.formats._common import ROBOTRL_ATTRS, dumps, iter_datasets, loads, open_h5, to_python
from robotrl.utils.atomic import atomic_path

__all__ = ["read", "write", "is_robomimic", "NATIVE_TO_STORE", "STORE_TO_NATIVE"]

FORMAT = "robomimic"
EXPECTED = "a robomimic HDF5 file (group 'data' holding 'demo_<N>' groups)"
DEMO_RE = re.compile(r"demo_(\d+)")
NATIVE_TO_STORE = {"actions": "action", "rewards": "reward", "dones": "terminated"}
STORE_TO_NATIVE = {v: k for k, v in NATIVE_TO_STORE.items()}
_RESERVED_DATA_ATTRS = ("total", "env_args", ROBOTRL_ATTRS)
_NATIVE_ATTRS = ("env_args", "masks", "episode_names", "episode_attrs")


def is_robomimic(f: h5py.File) -> bool:
    """True if an open HDF5 file has robomimic's layout (``data`` group with ``demo_*`` or ``total``)."""
    data = f.get("data")
    if not isinstance(data, h5py.Group):
        return False
    return any(DEMO_RE.fullmatch(k) for k in data.keys()) or "total" in data.attrs


def read(path: str | os.PathLike, *, check_finite: bool = True) -> EpisodeStore:
    """Read a robomimic HDF5 file into an :class:`EpisodeStore` (everything loaded into memory)."""
    spath = str(path)
    with open_h5(path, EXPECTED) as f:
        if not is_robomimic(f):
            raise DataFormatError(
                f"{spath!r} is not a robomimic HDF5 file: expected a group 'data' with 'demo_<N>' groups, "
                f"found top-level keys {sorted(f.keys())}"
            )
        data = f["data"]
        names = sorted((k for k in data.keys() if DEMO_RE.fullmatch(k)), key=lambda k: int(k[5:]))
        columns: dict[str, list[np.ndarray]] = {}
        lengths: list[int] = []
        episode_attrs: list[dict[str, Any]] = []
        for name in names:
            group = data[name]
            if "actions" not in group:
                raise DataKeyError(f"{spath!r}: demo {name!r} has no key 'actions' (expected dataset 'data/{name}/actions')")
            arrays = {NATIVE_TO_STORE.get(rel, rel): ds[()] for rel, ds in iter_datasets(group)}
            n = int(arrays["action"].shape[0])
            bad = {k: int(a.shape[0]) if a.ndim else 0 for k, a in arrays.items() if a.ndim == 0 or a.shape[0] != n}
            if bad:
                desc = ", ".join(f"{k!r}: {v}" for k, v in bad.items())
                raise DataShapeError(
                    f"{spath!r}: demo {name!r}: every key must have as many rows as 'actions' ({n}); mismatched lengths: {desc}"
                )
            declared = group.attrs.get("num_samples")
            if declared is not None and int(declared) != n:
                raise DataShapeError(
                    f"{spath!r}: demo {name!r}: attr num_samples = {int(declared)} but 'actions' has {n} rows"
                )
            if n == 0:
                raise DataShapeError(f"{spath!r}: demo {name!r} is empty (0 steps)")
            if columns and set(arrays) != set(columns):
                missing = sorted(set(columns) - set(arrays))
                extra = sorted(set(arrays) - set(columns))
                raise DataKeyError(
                    f"{spath!r}: demo {name!r} has different keys from {names[0]!r}: missing {missing}, unexpected {extra}"
                )
            for k, a in arrays.items():
                columns.setdefault(k, []).append(a)
            lengths.append(n)
            episode_attrs.append({k: to_python(v) for k, v in group.attrs.items() if k != "num_samples"})

        store_data = {k: np.concatenate(v, axis=0) for k, v in columns.items()}
        if "terminated" in store_data:
            store_data["terminated"] = store_data["terminated"].astype(bool)

        attrs: dict[str, Any] = {}
        for k, v in data.attrs.items():
            if k not in _RESERVED_DATA_ATTRS:
                attrs[k] = to_python(v)
        if "env_args" in data.attrs:
            attrs["env_args"] = loads(data.attrs["env_args"], f"{spath!r}: data attr 'env_args'")
        if ROBOTRL_ATTRS in data.attrs:
            attrs.update(loads(data.attrs[ROBOTRL_ATTRS], f"{spath!r}: data attr {ROBOTRL_ATTRS!r}"))
        attrs["episode_names"] = list(names)
        if any(episode_attrs):
            attrs["episode_attrs"] = episode_attrs
        mask_group = f.get("mask")
        if isinstance(mask_group, h5py.Group):
            index = {n: i for i, n in enumerate(names)}
            masks: dict[str, list[int]] = {}
            for filt in sorted(mask_group.keys()):
                members = [to_python(m) for m in np.asarray(mask_group[filt][()]).reshape(-1)]
                unknown = [m for m in members if m not in index]
                if unknown:
                    raise DataFormatError(f"{spath!r}: mask {filt!r} names demos that do not exist: {unknown[:5]}")
                masks[filt] = [index[m] for m in members]
            attrs["masks"] = masks

    store = EpisodeStore(store_data, np.cumsum(np.asarray(lengths, dtype=np.int64)), attrs)
    if check_finite:
        store.check_finite(source=spath)
    return store


def _demo_names(store: EpisodeStore) -> list[str]:
    """The store's ``episode_names`` if they are valid robomimic names in numeric order, else demo_<i>."""
    names = store.attrs.get("episode_names")
    if names is not None and len(names) == store.num_episodes:
        names = [str(n) for n in names]
        if all(DEMO_RE.fullmatch(n) for n in names):
            nums = [int(n[5:]) for n in names]
            if all(a < b for a, b in zip(nums, nums[1:])):
                return names
    return [f"demo_{i}" for i in range(store.num_episodes)]


def _write_demo(
    data: h5py.Group, name: str, store: EpisodeStore, i: int, demo_attrs: dict[str, Any], compression: str | None
) -> None:
    group = data.create_group(name)
    sl = store.episode_slice(i)
    group.attrs["num_samples"] = sl.stop - sl.start
    for k, v in demo_attrs.items():
        if k != "num_samples":
            group.attrs[k] = v
    for key in store.keys():
        arr = store[key][sl]
        native = STORE_TO_NATIVE.get(key, key)
        if key == "terminated":
            arr = arr.astype(np.int64)
        group.create_dataset(native, data=arr, compression=compression)


def write(
    store: EpisodeStore,
    path: str | os.PathLike,
    *,
    derive_next_obs: bool = False,
    compression: str | None = None,
    check_finite: bool = True,
) -> None:
    """Write ``store`` as a robomimic HDF5 file, atomically (an interrupted write leaves ``path`` as it was).

    Args:
        derive_next_obs: add ``next_obs/<k>`` for each ``obs/<k>`` lacking one (``obs`` shifted by
            one step within the episode, last step repeated). By default only what the store has
            is written.
        compression: h5py compression for every dataset (e.g. ``"gzip"``); ``None`` = none.
        check_finite: refuse NaN/inf in actions, rewards and observations.
    """
    spath = str(path)
    if "action" not in store:
        raise DataKeyError(f"cannot write robomimic file {spath!r}: the store has no key 'action'; keys: {store.keys()}")
    if check_finite:
        store.check_finite(source=spath)
    if derive_next_obs:
        store = store.with_next_obs()
    names = _demo_names(store)
    attrs = store.attrs
    per_demo = attrs.get("episode_attrs") or [{} for _ in range(store.num_episodes)]
    if len(per_demo) != store.num_episodes:
        raise DataShapeError(
            f"cannot write {spath!r}: attrs['episode_attrs'] has {len(per_demo)} entries for {store.num_episodes} episodes"
        )
    masks = attrs.get("masks") or {}
    extra_native: dict[str, Any] = {}
    extra_json: dict[str, Any] = {}
    for k, v in attrs.items():
        if k in _NATIVE_ATTRS:
            continue
        if k in _RESERVED_DATA_ATTRS:
            extra_json[k] = v
        elif isinstance(v, (str, int, float, bool)) and not isinstance(v, bool):
            extra_native[k] = v
        else:
            extra_json[k] = v
    json_extra = dumps(extra_json, f"attrs {sorted(extra_json)}") if extra_json else None
    env_args = attrs.get("env_args")
    env_args_text = None
    if env_args is not None:
        env_args_text = env_args if isinstance(env_args, str) else dumps(env_args, "attrs['env_args']")

    with atomic_path(path) as tmp:
        with h5py.File(tmp, "w") as f:
            data = f.create_group("data")
            data.attrs["total"] = np.int64(store.num_steps)
            if env_args_text is not None:
                data.attrs["env_args"] = env_args_text
            for k, v in extra_native.items():
                data.attrs[k] = v
            if json_extra is not None:
                data.attrs[ROBOTRL_ATTRS] = json_extra
            for i, name in enumerate(names):
                _write_demo(data, name, store, i, per_demo[i], compression)
            if masks:
                mask_group = f.create_group("mask")
                for filt, members in masks.items():
                    demo_names = [names[int(j)].encode("utf-8") for j in members]
                    mask_group.create_dataset(filt, data=np.array(demo_names, dtype="S"))
