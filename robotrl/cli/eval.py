"""``robotrl-eval checkpoint=<run dir | policy dir> n_episodes=50``: evaluate a saved policy.

Writes ``metrics.json`` (success rate, returns, per-episode results) and ``video.mp4``.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

os.environ.setdefault("MUJOCO_GL", "egl")

import hydra  # noqa: E402
from omegaconf import DictConfig, OmegaConf  # noqa: E402

from robotrl.cli import CONF_DIR  # noqa: E402


def resolve_checkpoint(path: str | os.PathLike) -> tuple[Path, Path | None]:
    """(policy dir, run dir or None) for a run directory or a ``save_pretrained`` directory."""
    p = Path(path)
    if (p / "config.json").is_file() and (p / "model.safetensors").is_file():
        run = p.parent.parent if p.parent.name == "checkpoints" else None
        return p, run
    if (p / "checkpoints" / "policy" / "model.safetensors").is_file():
        return p / "checkpoints" / "policy", p
    raise FileNotFoundError(
        f"no policy checkpoint at {p}: expected a run directory (with checkpoints/policy/) "
        f"or a policy directory (with config.json and model.safetensors)"
    )


def run_eval(c: dict) -> dict:
    from robotrl.engine.evaluation import evaluate, write_eval_json
    from robotrl.engine.policy_trainer import env_config, resolve_device
    from robotrl.policies import load_policy

    policy_dir, run_dir = resolve_checkpoint(c["checkpoint"])
    policy = load_policy(policy_dir).eval().to(resolve_device(c.get("device")))
    if c.get("env"):
        env_cfg = dict(c["env"])
    elif run_dir is not None and (run_dir / "config.json").is_file():
        env_cfg = json.loads((run_dir / "config.json").read_text())["env"]
    else:
        raise ValueError(f"{policy_dir} has no run config beside it: pass env={{id: ...}} (e.g. +env.id=robotrl/PushT-v0)")
    env_cfg = env_config(env_cfg, policy.config.obs_keys)
    out_dir = Path(c["out_dir"]) if c.get("out_dir") else (run_dir or policy_dir) / "eval"
    video = out_dir / "video.mp4" if c.get("video", True) else None
    m = evaluate(policy, env_cfg, n_episodes=int(c["n_episodes"]), num_envs=int(c["num_envs"]), seed=int(c["seed"]),
                 video_path=video, max_episode_steps=c.get("max_episode_steps"), progress=bool(c.get("progress", True)),
                 stop_on_success=bool(c.get("stop_on_success", False)))
    write_eval_json(out_dir / "metrics.json", m, extra={"checkpoint": str(policy_dir), "env": env_cfg["id"],
                                                        "policy": policy.name, "video": str(video) if video else None})
    return {"success_rate": float(m["success_rate"]), "mean_return": float(m["mean_return"]),
            "n_episodes": int(c["n_episodes"]), "metrics": str(out_dir / "metrics.json"),
            "video": str(video) if video else None}


@hydra.main(config_path=CONF_DIR, config_name="eval", version_base="1.3")
def main(cfg: DictConfig) -> None:
    out = run_eval(OmegaConf.to_container(cfg, resolve=True))
    print(json.dumps(out, indent=2))
    print(f"success rate: {out['success_rate']:.3f} over {out['n_episodes']} episodes")


if __name__ == "__main__":
    main()
