"""On-disk dataset formats; each module reads into / writes from an :class:`EpisodeStore`.

=============  ======  =====  ==============================================
format         read    write  module
=============  ======  =====  ==============================================
``robomimic``  yes     yes    :mod:`robotrl.data.formats.robomimic`
``d4rl``       yes     yes    :mod:`robotrl.data.formats.d4rl`
``minari``     yes     no     :mod:`robotrl.data.formats.minari`
=============  ======  =====  ==============================================

Use :func:`robotrl.data.load_dataset` / :func:`robotrl.data.save_dataset` rather than these
modules directly; they detect the format and add the common checks.
"""
from __future__ import annotations

import importlib
from types import ModuleType

__all__ = ["FORMATS", "WRITABLE", "get_format"]

#: every known format name
FORMATS = ("robomimic", "d4rl", "minari")
#: formats that :func:`robotrl.data.save_dataset` can write
WRITABLE = ("robomimic", "d4rl")


def get_format(name: str) -> ModuleType:
    """The module implementing format ``name`` (``read`` and, if writable, ``write``)."""
    key = str(name).lower()
    if key not in FORMATS:
        raise ValueError(f"unknown dataset format {name!r}; known formats: {list(FORMATS)}")
    return importlib.import_module(f"robotrl.data.formats.{key}")
