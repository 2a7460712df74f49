"""Atomic training checkpoints: a run killed at any moment resumes from the last complete one."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from robotrl.utils.atomic import atomic_path


def save_checkpoint(path: str | os.PathLike, state: dict[str, Any]) -> Path:
    """``torch.save`` to a temp file beside ``path``, then rename over it."""
    path = Path(path)
    with atomic_path(path) as tmp:
        torch.save(state, tmp)
    return path


def load_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """Load a training checkpoint written by :func:`save_checkpoint`."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no training checkpoint at {path}")
    try:
        return torch.load(path, map_location="cpu", weights_only=False)
    except Exception as e:  # a truncated / foreign file
        raise ValueError(f"{path} is not a readable robotrl training checkpoint: {e}") from e
