"""``robotrl-collect mode=d4rl``: train SAC on a MuJoCo v5 task and write D4RL-style datasets.

    robotrl-collect mode=d4rl d4rl.env_id=Hopper-v5 d4rl.out_dir=data/d4rl
    robotrl-collect mode=d4rl d4rl.env_id=Walker2d-v5 d4rl.sac_steps=200000 d4rl.dataset_size=200000
    robotrl-collect mode=d4rl d4rl.kinds=[medium,medium-replay]

Writes ``<out_dir>/<body>-<kind>-v5.hdf5`` for kind in random, medium, expert, medium-replay,
medium-expert (D4RL layout, with ``infos/qpos``, ``infos/qvel`` and ``metadata/*``) and a
``<body>-summary.json`` with the policies' returns and normalised scores.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Mapping

from omegaconf import DictConfig, OmegaConf


def main_d4rl(cfg: DictConfig | Mapping[str, Any]) -> dict[str, Any]:
    """Run the generator from the ``d4rl`` section of the collect config (plus top-level ``seed``/``progress``)."""
    from robotrl.offline.datasets import D4RLGenConfig, generate_d4rl_datasets
    from robotrl.rl.base import config_from_dict

    c = OmegaConf.to_container(cfg, resolve=True) if isinstance(cfg, DictConfig) else dict(cfg)
    d = dict(c.get("d4rl") or {})
    d.setdefault("seed", int(c.get("seed", 0)))
    d.setdefault("progress", bool(c.get("progress", True)))
    gcfg = config_from_dict(D4RLGenConfig, d, "d4rl")
    summary = generate_d4rl_datasets(gcfg)
    body = Path(next(iter(summary["files"].values()))).name.split("-")[0]
    out = Path(gcfg.out_dir) / f"{body}-summary.json"
    out.write_text(json.dumps(summary, indent=2, default=str))
    print(json.dumps(summary, indent=2, default=str))
    return summary
