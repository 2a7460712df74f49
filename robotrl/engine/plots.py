"""Learning-curve plots written where a person would look (``<run_dir>/learning_curve.png``)."""
from __future__ import annotations

import os
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from robotrl.engine.logger import read_metrics  # noqa: E402
from robotrl.utils.atomic import atomic_path  # noqa: E402


def _series(rows: list[dict], tag: str) -> tuple[list[int], list[float]]:
    by_step: dict[int, float] = {}
    for r in rows:
        if tag in r:
            by_step[int(r["step"])] = float(r[tag])
    steps = sorted(by_step)
    return steps, [by_step[s] for s in steps]


def plot_learning_curve(run_dir: str | os.PathLike, out: str | os.PathLike | None = None, title: str = "") -> Path:
    """Training loss and evaluation success rate / return against gradient steps."""
    run_dir = Path(run_dir)
    out = Path(out) if out else run_dir / "learning_curve.png"
    rows = read_metrics(run_dir)
    fig, axes = plt.subplots(1, 3, figsize=(14, 3.8))
    s, v = _series(rows, "train/loss")
    axes[0].plot(s, v, lw=1)
    axes[0].set_yscale("log" if v and min(v) > 0 else "linear")
    axes[0].set(title="training loss", xlabel="gradient step")
    s, v = _series(rows, "eval/success_rate")
    axes[1].plot(s, v, marker="o")
    axes[1].set(title="evaluation success rate", xlabel="gradient step", ylim=(-0.02, 1.02))
    s, v = _series(rows, "eval/mean_return")
    axes[2].plot(s, v, marker="o", color="tab:green")
    axes[2].set(title="evaluation return", xlabel="gradient step")
    for ax in axes:
        ax.grid(alpha=0.3)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    with atomic_path(out) as tmp:
        fig.savefig(tmp, dpi=100, format="png")
    plt.close(fig)
    return out
