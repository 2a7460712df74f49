"""Scalar logging to TensorBoard and a JSON-lines file (read back for plots)."""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Mapping


class Logger:
    """Writes ``tag -> value`` scalars to ``<run_dir>/tb`` (TensorBoard) and ``metrics.jsonl``."""

    def __init__(self, run_dir: str | os.PathLike, tensorboard: bool = True) -> None:
        self.run_dir = Path(run_dir)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.jsonl = open(self.run_dir / "metrics.jsonl", "a", buffering=1)
        self.tb = None
        if tensorboard:
            from torch.utils.tensorboard import SummaryWriter

            self.tb = SummaryWriter(str(self.run_dir / "tb"))

    def log(self, step: int, metrics: Mapping[str, float], prefix: str = "") -> None:
        row = {"step": int(step)}
        for k, v in metrics.items():
            tag = f"{prefix}/{k}" if prefix else k
            row[tag] = float(v)
            if self.tb is not None:
                self.tb.add_scalar(tag, float(v), int(step))
        self.jsonl.write(json.dumps(row) + "\n")

    def close(self) -> None:
        if self.tb is not None:
            self.tb.flush()
            self.tb.close()
        self.jsonl.close()


def read_metrics(run_dir: str | os.PathLike) -> list[dict]:
    """All rows of ``metrics.jsonl`` in file order (a resumed run re-logs steps after its checkpoint: use
    :func:`metric_series` for one metric's curve)."""
    path = Path(run_dir) / "metrics.jsonl"
    if not path.is_file():
        return []
    rows = []
    for line in path.read_text().splitlines():
        line = line.strip()
        if line:
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:  # a line cut by a kill
                continue
    return rows


def metric_series(rows: list[dict], key: str) -> list[tuple[int, Any]]:
    """``(step, value)`` of ``key`` over ``rows`` with resumes resolved: a row whose step is not past the
    previous one (the run restarted from an earlier checkpoint) drops the rows it supersedes."""
    out: list[tuple[int, Any]] = []
    for r in rows:
        if key not in r:
            continue
        step = int(r["step"])
        while out and out[-1][0] >= step:
            out.pop()
        out.append((step, r[key]))
    return out
