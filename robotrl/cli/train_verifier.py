"""``robotrl-train verifier=taco|value policy_checkpoint=<run dir | policy dir>``: train a test-time
verifier for a trained policy on that policy's training data and write a ``VerifiedPolicy``.

Output (``verifier.run_dir``, default ``<policy run dir>-<type>`` beside the policy's run)::

    config.json                  the resolved config (with the policy run's env, for robotrl-eval)
    checkpoints/policy/          the VerifiedPolicy: ``robotrl-eval checkpoint=<run_dir>``
    checkpoints/verifier/        the verifier alone (``robotrl.verifiers.load_verifier``)
    checkpoints/train_log.jsonl, summary.json, eval/metrics.json
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Mapping

from omegaconf import DictConfig, OmegaConf

VERIFIER_KEYS = {"type", "num_samples", "selection", "temperature", "dataset", "run_dir", "evaluate", "model", "train"}


def _policy_run(policy_checkpoint: str) -> tuple[Path, Path | None, dict | None]:
    from robotrl.cli.eval import resolve_checkpoint

    policy_dir, run_dir = resolve_checkpoint(policy_checkpoint)
    run_cfg = None
    if run_dir is not None and (run_dir / "config.json").is_file():
        run_cfg = json.loads((run_dir / "config.json").read_text())
    return policy_dir, run_dir, run_cfg


def run_train_verifier(cfg: DictConfig | Mapping[str, Any]) -> dict[str, Any]:
    """Train the verifier described by ``cfg.verifier`` for ``cfg.policy_checkpoint``; return a summary."""
    import torch

    from robotrl.verifiers.train import train_verifier

    c = OmegaConf.to_container(cfg, resolve=True) if isinstance(cfg, DictConfig) else dict(cfg)
    v = dict(c.get("verifier") or {})
    unknown = sorted(set(v) - VERIFIER_KEYS)
    if unknown:
        raise ValueError(f"verifier config: unknown key(s) {unknown}; known keys: {sorted(VERIFIER_KEYS)}")
    if not c.get("policy_checkpoint"):
        raise ValueError("robotrl-train verifier=...: pass policy_checkpoint=<run dir or save_pretrained dir> "
                         "of the trained policy to verify")
    if c.get("num_threads"):
        torch.set_num_threads(int(c["num_threads"]))
    kind = v.get("type", "taco")
    policy_dir, policy_run, run_cfg = _policy_run(c["policy_checkpoint"])

    dataset, fmt = v.get("dataset"), None
    if not dataset and run_cfg is not None:
        dataset, fmt = run_cfg["dataset"]["path"], run_cfg["dataset"].get("format")
    if not dataset:
        dataset, fmt = c["dataset"]["path"], c["dataset"].get("format")
    if not Path(dataset).exists():
        raise FileNotFoundError(f"verifier training data {dataset} does not exist (set verifier.dataset=<file>)")
    env = run_cfg["env"] if run_cfg is not None else c.get("env")

    if v.get("run_dir"):
        out_dir = Path(v["run_dir"])
    elif policy_run is not None:
        out_dir = policy_run.parent / f"{policy_run.name}-{kind}"
    else:
        out_dir = policy_dir.parent / f"{policy_dir.name}-{kind}"
    print(f"[robotrl] training a {kind} verifier for {policy_dir} on {dataset} -> {out_dir}")
    summary = train_verifier(policy_dir, dataset, kind, out_dir / "checkpoints", model=v.get("model"),
                             train=v.get("train"), num_samples=int(v.get("num_samples", 32)),
                             selection=v.get("selection", "greedy"), temperature=float(v.get("temperature", 1.0)),
                             dataset_format=fmt, progress=bool(c.get("progress", True)), verified_name="policy")
    # robotrl-eval layout: <run>/checkpoints/policy + <run>/config.json
    (out_dir / "config.json").write_text(json.dumps({**c, "env": env, "dataset": {"path": str(dataset), "format": fmt},
                                                      "policy_checkpoint": str(policy_dir)}, indent=2, default=str))
    if v.get("evaluate", True) and env is not None:
        from robotrl.cli.eval import run_eval

        ev = dict(c.get("eval") or {})
        m = run_eval({"checkpoint": str(out_dir), "env": None, "n_episodes": int(ev.get("n_episodes", 50)),
                      "num_envs": int(ev.get("num_envs", 10)), "seed": int(ev.get("seed", 100_000)),
                      "video": bool(ev.get("video", True)), "max_episode_steps": ev.get("max_episode_steps"),
                      "progress": bool(c.get("progress", True))})
        summary.update({"success_rate": m["success_rate"], "mean_return": m["mean_return"],
                        "n_episodes": m["n_episodes"], "metrics": m["metrics"]})
    summary["run_dir"] = str(out_dir)
    (out_dir / "summary.json").write_text(json.dumps(summary, indent=2, default=str))
    return summary
