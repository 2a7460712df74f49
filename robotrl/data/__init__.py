"""robotrl.data: episodes on disk -> `EpisodeStore` -> samplers -> TensorDict batches.

Public names are imported lazily (``robotrl.data.SequenceSampler`` pulls in numba/torch only
when first used), so ``import robotrl.data`` stays cheap and works before optional parts
(``Normalizer``) exist.
"""
from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_EXPORTS = {
    "EpisodeStore": "robotrl.data.episode_store",
    "load_dataset": "robotrl.data.io",
    "save_dataset": "robotrl.data.io",
    "detect_format": "robotrl.data.io",
    "SequenceSampler": "robotrl.data.sampler",
    "SequenceDataset": "robotrl.data.sampler",
    "create_indices": "robotrl.data.sampler",
    "batch_key": "robotrl.data.sampler",
    "qlearning_dataset": "robotrl.data.formats.d4rl",
    "normalized_score": "robotrl.data.formats.d4rl",
    "DataFormatError": "robotrl.data.errors",
    "DataKeyError": "robotrl.data.errors",
    "DataShapeError": "robotrl.data.errors",
    "NonFiniteError": "robotrl.data.errors",
    "Normalizer": "robotrl.data.normalizers",
}

__all__ = list(_EXPORTS)

if TYPE_CHECKING:  # pragma: no cover
    from robotrl.data.episode_store import EpisodeStore
    from robotrl.data.errors import DataFormatError, DataKeyError, DataShapeError, NonFiniteError
    from robotrl.data.formats.d4rl import normalized_score, qlearning_dataset
    from robotrl.data.io import detect_format, load_dataset, save_dataset
    from robotrl.data.sampler import SequenceDataset, SequenceSampler, batch_key, create_indices


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'robotrl.data' has no attribute {name!r}")
    try:
        value = getattr(importlib.import_module(module), name)
    except ModuleNotFoundError as exc:
        if name == "Normalizer" and exc.name == module:
            raise AttributeError("robotrl.data.Normalizer is not available yet (robotrl/data/normalizers.py is missing)") from exc
        raise
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
