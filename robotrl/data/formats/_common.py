"""Helpers shared by the HDF5-based format readers/writers (not public API)."""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Iterator

import h5py
import numpy as np

from robotrl.data.errors import DataFormatError

#: root/data attribute holding the attrs a format has no native place for (JSON).
ROBOTRL_ATTRS = "robotrl_attrs"


def require_file(path: str | os.PathLike) -> Path:
    """``Path(path)``; FileNotFoundError naming it when it does not exist."""
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"dataset file not found: {str(p)!r}")
    return p


def open_h5(path: str | os.PathLike, expected: str) -> h5py.File:
    """Open an HDF5 file for reading, with clear errors for a missing or non-HDF5 file."""
    p = require_file(path)
    if p.is_dir():
        raise DataFormatError(f"{str(p)!r} is a directory, expected {expected} (an HDF5 file)")
    try:
        return h5py.File(p, "r")
    except OSError as exc:
        raise DataFormatError(f"{str(p)!r} is not a readable HDF5 file ({exc}); expected {expected}") from None


def iter_datasets(group: h5py.Group, prefix: str = "") -> Iterator[tuple[str, h5py.Dataset]]:
    """Yield ``(relative/path, dataset)`` for every dataset under ``group``, depth first, sorted."""
    for name in sorted(group.keys()):
        obj = group[name]
        path = f"{prefix}{name}"
        if isinstance(obj, h5py.Dataset):
            yield path, obj
        elif isinstance(obj, h5py.Group):
            yield from iter_datasets(obj, path + "/")


def to_python(value: Any) -> Any:
    """Turn an HDF5 attribute value into a plain Python value (bytes decoded, numpy unboxed)."""
    if isinstance(value, bytes):
        return value.decode("utf-8")
    if isinstance(value, np.ndarray):
        if value.dtype.kind in "SO":
            return [to_python(v) for v in value.tolist()]
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    return value


def _json_default(obj: Any) -> Any:
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, bytes):
        return obj.decode("utf-8")
    if isinstance(obj, (set, tuple)):
        return list(obj)
    raise TypeError(f"attrs value of type {type(obj).__name__} is not JSON-serialisable")


def dumps(value: Any, what: str) -> str:
    """JSON-encode attrs, with an error naming ``what`` (the attrs entry) on failure."""
    try:
        return json.dumps(value, default=_json_default)
    except TypeError as exc:
        raise DataFormatError(f"cannot store {what} as JSON: {exc}") from None


def loads(text: Any, what: str) -> Any:
    text = to_python(text)
    try:
        return json.loads(text)
    except (TypeError, ValueError) as exc:
        raise DataFormatError(f"{what} is not valid JSON: {exc}") from None
