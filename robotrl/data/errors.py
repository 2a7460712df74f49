"""Errors raised by the data layer.

Each one subclasses the builtin a caller would catch (``ValueError``, ``KeyError``), so
``except ValueError`` keeps working, while the message names the file, the key and what was
expected (see ``docs/conventions.md``).
"""
from __future__ import annotations

__all__ = ["DataFormatError", "DataKeyError", "DataShapeError", "NonFiniteError"]


class DataFormatError(ValueError):
    """A file or store does not have the layout the reader/writer expects."""


class DataShapeError(ValueError):
    """Arrays disagree in length, shape or dtype (names the keys and the sizes)."""


class NonFiniteError(ValueError):
    """An array that must be finite (actions, rewards, observations) holds NaN or inf."""


class DataKeyError(KeyError):
    """A required key is missing. ``str()`` shows the message unquoted (unlike ``KeyError``)."""

    def __str__(self) -> str:  # KeyError would repr() the message
        return str(self.args[0]) if self.args else ""
