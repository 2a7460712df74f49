"""Minari datasets (read only), read straight from the files; no hub, no ``minari`` import.

A Minari dataset directory (``<MINARI_DATASETS_PATH>/<dataset_id>/``) holds
``data/metadata.json`` and ``data/main_data.hdf5``; the HDF5 file has one group per episode::

    episode_<id>/
      observations   [T+1, ...]  or a group for Dict/Tuple spaces (observations/<k>, _index_<i>)
      actions        [T, ...]    (or a group)
      rewards        [T]
      terminations   [T]
      truncations    [T]
      infos/<k>      [T+1, ...]  (reset info + one per step) or [T, ...]

Mapping: ``observations[:-1]`` -> ``obs/<k>`` and ``observations[1:]`` -> ``next_obs/<k>``
(``<k>`` is the Dict key path; a plain Box space becomes ``obs/state``, or ``obs/image`` when it
is a uint8 image), ``actions`` -> ``action``, ``rewards`` -> ``reward``, ``terminations`` ->
``terminated``, ``truncations`` -> ``truncated``, ``infos/<k>`` -> ``infos/<k>`` (the first
``T`` rows, i.e. the info seen with each observation; infos of another length are skipped with a
warning). JPEG-encoded image observations (Minari's default for image spaces) are decoded with
Pillow, which comes with the ``robotics`` extra (``minari[hdf5]``).

``attrs["minari"]`` is the dataset's ``metadata.json``; ``attrs["episode_attrs"]`` the
per-episode attributes (``id``, ``seed``, ...); ``attrs["episode_names"]`` the group names.
"""
from __future__ import annotations

import io
import json
import os
import re
import warnings
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from robotrl.data.episode_store import EpisodeStore
from robotrl.data.errors import DataFormatError, DataKeyError, DataShapeError
from robotrl.data.formats._common import open_h5, to_python

__all__ = ["read", "resolve_data_dir", "datasets_root"]

FORMAT = "minari"
EXPECTED = "a Minari dataset (a directory with data/metadata.json and data/main_data.hdf5, or a local dataset id)"
EPISODE_RE = re.compile(r"episode_(\d+)")
MAIN_FILE = "main_data.hdf5"
METADATA_FILE = "metadata.json"


def datasets_root() -> Path:
    """Minari's local datasets root: ``$MINARI_DATASETS_PATH`` or ``~/.minari/datasets`` (not created)."""
    root = os.environ.get("MINARI_DATASETS_PATH")
    return Path(root) if root else Path.home() / ".minari" / "datasets"


def resolve_data_dir(path: str | os.PathLike) -> Path | None:
    """The folder holding ``metadata.json`` + ``main_data.hdf5`` for ``path``, or None.

    ``path`` may be the dataset directory, its ``data/`` folder, the ``main_data.hdf5`` file, or a
    dataset id (``"mujoco/hopper/expert-v0"``) found under :func:`datasets_root`.
    """
    p = Path(path)
    candidates: list[Path] = []
    if p.is_file():
        if p.name == MAIN_FILE:
            candidates.append(p.parent)
    elif p.is_dir():
        candidates += [p, p / "data"]
    elif not p.is_absolute():
        candidates.append(datasets_root() / str(path) / "data")
    for c in candidates:
        if (c / METADATA_FILE).is_file() and (c / MAIN_FILE).is_file():
            return c
    return None


def _decode_jpeg(ds: h5py.Dataset, where: str) -> np.ndarray:
    try:
        from PIL import Image
    except ImportError as exc:  # pragma: no cover - Pillow ships with the robotics extra
        raise ImportError(
            f"{where}: JPEG-encoded images need Pillow; install the robotics extra (pip install 'robotrl[robotics]')"
        ) from exc
    frames = [np.asarray(Image.open(io.BytesIO(np.asarray(b, dtype=np.uint8).tobytes())), dtype=np.uint8) for b in ds[()]]
    if not frames:
        return np.zeros((0,), np.uint8)
    return np.stack(frames)


def _flatten(obj: h5py.Group | h5py.Dataset, prefix: str, where: str) -> dict[str, np.ndarray]:
    """``{prefix/<sub path>: array}`` for a dataset or a (nested) group, decoding JPEG images."""
    if isinstance(obj, h5py.Dataset):
        if h5py.check_vlen_dtype(obj.dtype) is not None and obj.ndim == 1:
            return {prefix: _decode_jpeg(obj, where)}
        return {prefix: obj[()]}
    out: dict[str, np.ndarray] = {}
    for name in sorted(obj.keys()):
        out.update(_flatten(obj[name], f"{prefix}/{name}", where))
    return out


def _is_image(arr: np.ndarray) -> bool:
    return arr.dtype == np.uint8 and arr.ndim in (3, 4) and arr.shape[1] >= 32 and arr.shape[2] >= 32


def read(path: str | os.PathLike, *, check_finite: bool = True) -> EpisodeStore:
    """Read a local Minari dataset (directory, data folder, main file or dataset id) into an EpisodeStore."""
    spath = str(path)
    data_dir = resolve_data_dir(path)
    if data_dir is None:
        p = Path(path)
        if not p.exists():
            raise FileNotFoundError(
                f"Minari dataset not found: {spath!r} (no such path, and no '{spath}/data' under the Minari root "
                f"{str(datasets_root())!r})"
            )
        raise DataFormatError(f"{spath!r} is not {EXPECTED}: missing {METADATA_FILE} or {MAIN_FILE}")
    meta_path = data_dir / METADATA_FILE
    try:
        metadata = json.loads(meta_path.read_text())
    except ValueError as exc:
        raise DataFormatError(f"{str(meta_path)!r} is not valid JSON: {exc}") from None
    fmt = metadata.get("data_format", "hdf5")
    if fmt != "hdf5":
        raise DataFormatError(f"{spath!r}: Minari data_format {fmt!r} is not supported; only 'hdf5' is")
    main = data_dir / MAIN_FILE
    smain = str(main)

    columns: dict[str, list[np.ndarray]] = {}
    lengths: list[int] = []
    names: list[str] = []
    episode_attrs: list[dict[str, Any]] = []
    with open_h5(main, EXPECTED) as f:
        episodes = sorted((k for k in f.keys() if EPISODE_RE.fullmatch(k)), key=lambda k: int(k[8:]))
        if not episodes and len(f.keys()):
            raise DataFormatError(f"{smain!r} is not a Minari data file: no 'episode_<id>' groups, found {sorted(f.keys())[:10]}")
        for name in episodes:
            group = f[name]
            where = f"{smain!r}: {name}"
            for req in ("observations", "actions", "rewards", "terminations", "truncations"):
                if req not in group:
                    raise DataKeyError(f"{smain!r}: episode {name!r} has no key {req!r}")
            n = int(group["rewards"].shape[0])
            if n == 0:
                raise DataShapeError(f"{where} is empty (0 steps)")
            arrays: dict[str, np.ndarray] = {}
            obs = _flatten(group["observations"], "obs", where)
            if list(obs) == ["obs"]:
                only = obs.pop("obs")
                obs["obs/image" if _is_image(only) else "obs/state"] = only
            for key, arr in obs.items():
                if arr.shape[0] == n + 1:
                    arrays[key] = arr[:-1]
                    arrays["next_" + key] = arr[1:]
                elif arr.shape[0] == n:
                    arrays[key] = arr
                else:
                    raise DataShapeError(
                        f"{where}: observations {key[4:] or 'observations'!r} have {arr.shape[0]} rows, expected "
                        f"{n + 1} (or {n}) for {n} rewards"
                    )
            actions = _flatten(group["actions"], "action", where)
            for key, arr in actions.items():
                arrays[key] = arr
            arrays["reward"] = group["rewards"][()]
            arrays["terminated"] = group["terminations"][()].astype(bool)
            arrays["truncated"] = group["truncations"][()].astype(bool)
            if "infos" in group:
                for key, arr in _flatten(group["infos"], "infos", where).items():
                    if arr.ndim >= 1 and arr.shape[0] in (n, n + 1) and arr.dtype != object:
                        arrays[key] = arr[:n]
                    else:
                        warnings.warn(f"{where}: skipping {key!r} with shape {arr.shape} (not one row per step)", stacklevel=2)
            bad = {k: int(a.shape[0]) for k, a in arrays.items() if a.shape[0] != n}
            if bad:
                desc = ", ".join(f"{k!r}: {v}" for k, v in bad.items())
                raise DataShapeError(f"{where}: expected {n} rows per step key; mismatched lengths: {desc}")
            if columns and set(arrays) != set(columns):
                missing = sorted(set(columns) - set(arrays))
                extra = sorted(set(arrays) - set(columns))
                raise DataKeyError(f"{where} has different keys from {episodes[0]!r}: missing {missing}, unexpected {extra}")
            for k, a in arrays.items():
                columns.setdefault(k, []).append(a)
            lengths.append(n)
            names.append(name)
            episode_attrs.append({k: to_python(v) for k, v in group.attrs.items()})

    data = {k: np.concatenate(v, axis=0) for k, v in columns.items()}
    attrs: dict[str, Any] = {"minari": metadata, "episode_names": names}
    if any(episode_attrs):
        attrs["episode_attrs"] = episode_attrs
    store = EpisodeStore(data, np.cumsum(np.asarray(lengths, dtype=np.int64)), attrs)
    if check_finite:
        store.check_finite(source=smain)
    return store
