"""`load_dataset` / `save_dataset` / `detect_format`: the one entry point to files on disk."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import h5py

from robotrl.data.episode_store import EpisodeStore
from robotrl.data.errors import DataFormatError
from robotrl.data.formats import FORMATS, WRITABLE, get_format
from robotrl.data.formats import minari as _minari
from robotrl.data.formats.d4rl import is_d4rl
from robotrl.data.formats.robomimic import is_robomimic

__all__ = ["load_dataset", "save_dataset", "detect_format"]


def detect_format(path: str | os.PathLike) -> str:
    """Name the format of ``path`` from its content: ``"robomimic"``, ``"d4rl"`` or ``"minari"``.

    * robomimic: an HDF5 file with a group ``data`` holding ``demo_*`` groups;
    * D4RL: an HDF5 file with top-level datasets ``observations`` and ``actions``;
    * Minari: a directory with ``metadata.json`` + ``main_data.hdf5`` (itself or its ``data/``),
      such a ``main_data.hdf5`` file, or a dataset id found under the local Minari root
      (``$MINARI_DATASETS_PATH``).

    Raises FileNotFoundError (naming ``path``) if nothing is there, and
    :class:`~robotrl.data.errors.DataFormatError` (a ValueError) if the content matches none.
    """
    spath = str(path)
    p = Path(path)
    if _minari.resolve_data_dir(p) is not None:
        return "minari"
    if not p.exists():
        raise FileNotFoundError(
            f"dataset not found: {spath!r} (not a file, a directory, or a Minari dataset id under "
            f"{str(_minari.datasets_root())!r})"
        )
    if p.is_dir():
        raise DataFormatError(
            f"{spath!r} is a directory but not a Minari dataset (expected metadata.json and main_data.hdf5, "
            "or data/metadata.json and data/main_data.hdf5)"
        )
    try:
        f = h5py.File(p, "r")
    except OSError:
        raise DataFormatError(
            f"{spath!r} is not an HDF5 file; expected a robomimic or D4RL HDF5 file, or a Minari dataset directory"
        ) from None
    with f:
        if is_robomimic(f):
            return "robomimic"
        if is_d4rl(f):
            return "d4rl"
        if any(_minari.EPISODE_RE.fullmatch(k) for k in f.keys()):
            raise DataFormatError(
                f"{spath!r} looks like a Minari main_data.hdf5 but has no metadata.json beside it"
            )
        keys = sorted(f.keys())[:20]
    raise DataFormatError(
        f"{spath!r}: unknown HDF5 layout (top-level keys {keys}); expected robomimic (group 'data' with "
        "'demo_*' groups) or D4RL (top-level 'observations' and 'actions')"
    )


def load_dataset(
    path: str | os.PathLike, format: str | None = None, *, check_finite: bool = True, **kwargs: Any
) -> EpisodeStore:
    """Read a dataset file/directory into an :class:`EpisodeStore`.

    Args:
        path: a robomimic / D4RL HDF5 file, a Minari dataset directory, or a local Minari id.
        format: ``"robomimic"``, ``"d4rl"`` or ``"minari"``; detected from the content when None.
        check_finite: raise :class:`~robotrl.data.errors.NonFiniteError` (a ValueError naming the
            file, key and first bad index) if actions/rewards/observations hold NaN or inf.
        kwargs: passed to the format's ``read``.

    Errors: FileNotFoundError (missing path), ValueError subclasses (another format, mismatched
    lengths, non-finite values), KeyError subclass (a required key missing), each naming the file.
    """
    fmt = detect_format(path) if format is None else str(format).lower()
    return get_format(fmt).read(path, check_finite=check_finite, **kwargs)


def save_dataset(
    store: EpisodeStore, path: str | os.PathLike, format: str, *, check_finite: bool = True, **kwargs: Any
) -> None:
    """Write ``store`` to ``path`` in ``format`` (``"robomimic"`` or ``"d4rl"``), atomically.

    The file is written beside ``path`` under a temporary name and moved over it only when
    complete, so an interrupted save leaves any previous file untouched. ``kwargs`` go to the
    format's ``write`` (e.g. ``derive_next_obs=True`` or ``compression="gzip"``).
    """
    if not isinstance(store, EpisodeStore):
        raise TypeError(f"save_dataset: expected an EpisodeStore, got {type(store).__name__}")
    fmt = str(format).lower()
    if fmt not in FORMATS:
        raise ValueError(f"unknown dataset format {format!r}; known formats: {list(FORMATS)}")
    if fmt not in WRITABLE:
        raise ValueError(f"format {fmt!r} is read-only; writable formats: {list(WRITABLE)}")
    get_format(fmt).write(store, path, check_finite=check_finite, **kwargs)
