"""Dataclass configs from plain mappings: one place that refuses unknown keys (a typo fails at start)."""
from __future__ import annotations

import dataclasses
import difflib
from typing import Any, Mapping


def dataclass_from_dict(cls: type, values: Mapping[str, Any] | None, where: str | None = None, *,
                        noun: str = "key", error: type[Exception] = ValueError) -> Any:
    """``cls(**values)``; unknown keys raise ``error`` naming each one (with the closest known key) and all known keys.

    The message reads ``"<where>: unknown <noun>(s) 'x' (did you mean 'y'?); known keys: [...]"``.
    """
    values = dict(values or {})
    names = sorted(f.name for f in dataclasses.fields(cls))
    unknown = sorted(set(values) - set(names))
    if unknown:
        hints = []
        for k in unknown:
            close = difflib.get_close_matches(k, names, n=1)
            hints.append(f"{k!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))
        raise error(f"{where or cls.__name__}: unknown {noun}(s) {', '.join(hints)}; known keys: {names}")
    return cls(**values)
