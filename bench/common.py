"""Shared helpers for benchmarks: result rows, the results JSON, timing and memory probes.

Result files follow DESIGN.md ("Benchmarks")::

    {"benchmark": "replay", "command": "python -m bench.replay", "date": "YYYY-MM-DD",
     "machine": "2 cores, no GPU", "quick": false,
     "rows": [{"case": ..., "metric": ..., "robotrl": ..., "peer": ..., "peer_value": ...,
               "ratio": ..., "goal": ..., "met": ...}]}
"""
from __future__ import annotations

import datetime as _dt
import gc
import json
import math
import os
import platform
import time
from pathlib import Path
from typing import Any, Callable, Iterable

BENCH_DIR = Path(__file__).resolve().parent
RESULTS_DIR = BENCH_DIR / "results"


def machine_description() -> str:
    """Short description of this machine: cores, memory, accelerator."""
    cores = os.cpu_count() or 0
    mem = ""
    try:
        with open("/proc/meminfo") as fh:
            kb = int(fh.readline().split()[1])
        mem = f", {kb / 2**20:.0f} GB RAM"
    except OSError:  # pragma: no cover - non-Linux
        pass
    gpu = "no GPU"
    try:
        import torch

        if torch.cuda.is_available():
            gpu = torch.cuda.get_device_name(0)
    except Exception:  # pragma: no cover
        pass
    return f"{cores} cores{mem}, {gpu}, {platform.python_implementation()} {platform.python_version()}"


def row(case: str, metric: str, robotrl: float | None, peer: str | None = None, peer_value: float | None = None,
        goal: str | None = None, met: bool | None = None, **extra: Any) -> dict:
    """One result row; ``ratio = robotrl / peer_value`` when both are numbers."""
    ratio = None
    if robotrl is not None and peer_value not in (None, 0) and not _nan(robotrl) and not _nan(peer_value):
        ratio = float(robotrl) / float(peer_value)
    r = {"case": case, "metric": metric, "robotrl": _num(robotrl), "peer": peer, "peer_value": _num(peer_value),
         "ratio": _num(ratio), "goal": goal, "met": met}
    r.update(extra)
    return r


def _nan(x: Any) -> bool:
    return isinstance(x, float) and math.isnan(x)


def _num(x: Any) -> Any:
    if x is None:
        return None
    x = float(x)
    return None if math.isnan(x) or math.isinf(x) else x


def write_result(name: str, command: str, rows: list[dict], quick: bool, *, machine: str | None = None,
                 notes: Iterable[str] | str | None = None, regenerate: bool = True, **extra: Any) -> Path:
    """Write ``bench/results/<name>.json`` atomically and regenerate ``bench/RESULTS.md``."""
    from robotrl.utils.atomic import atomic_path

    payload = {
        "benchmark": name,
        "command": command,
        "date": _dt.date.today().isoformat(),
        "machine": machine or machine_description(),
        "quick": bool(quick),
        "rows": rows,
    }
    if notes:
        payload["notes"] = [notes] if isinstance(notes, str) else list(notes)
    payload.update(extra)
    path = RESULTS_DIR / f"{name}.json"
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(payload, indent=1) + "\n")
    if regenerate:
        from bench.make_table import write_table

        write_table()
    return path


def throughput(fn: Callable[[], Any], items_per_call: int, *, min_time: float = 1.0, repeats: int = 3,
               warmup: int = 3) -> float:
    """Items per second of ``fn`` (median of ``repeats`` runs of at least ``min_time`` seconds each)."""
    for _ in range(warmup):
        fn()
    rates = []
    for _ in range(repeats):
        n, t0 = 0, time.perf_counter()
        while True:
            fn()
            n += 1
            dt = time.perf_counter() - t0
            if dt >= min_time:
                break
        rates.append(n * items_per_call / dt)
    rates.sort()
    return rates[len(rates) // 2]


def rss_bytes() -> int:
    """Resident set size of this process (Linux)."""
    gc.collect()
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def load_average() -> str:
    try:
        return " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:  # pragma: no cover
        return "?"


def run_peer_script(python: str, script: str, args: list[str], *, cwd: str | None = None,
                    timeout: float | None = None) -> dict:
    """Run ``bench/<script>`` with a peer library's own venv python; return the last JSON line it prints.

    One thread (OMP/MKL), and no ``PYTHONPATH`` so the peer venv cannot see robotrl. A failure raises
    with the command and the tail of its stderr.
    """
    import subprocess

    cmd = [os.path.abspath(python), str(BENCH_DIR / script), *args]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    env.pop("PYTHONPATH", None)
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=timeout, cwd=cwd)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if proc.returncode != 0 or not lines:
        raise RuntimeError(f"{script} failed (exit {proc.returncode}): {' '.join(cmd)}\n"
                           f"{proc.stderr[-3000:]}\n{proc.stdout[-1000:]}")
    return json.loads(lines[-1])
