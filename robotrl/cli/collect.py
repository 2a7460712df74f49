"""``robotrl-collect``: roll out a scripted expert (bundled or Meta-World) into a robomimic HDF5 file."""
from __future__ import annotations

import json
import os

os.environ.setdefault("MUJOCO_GL", "egl")

import hydra  # noqa: E402
from omegaconf import DictConfig, OmegaConf  # noqa: E402

from robotrl.cli import CONF_DIR  # noqa: E402


@hydra.main(config_path=CONF_DIR, config_name="collect", version_base="1.3")
def main(cfg: DictConfig) -> None:
    if cfg.get("mode", "demos") == "d4rl":
        from robotrl.cli.collect_d4rl import main_d4rl

        print(json.dumps(main_d4rl(cfg), indent=2, default=str))
        return
    if cfg.get("mode", "demos") != "demos":
        raise ValueError(f"robotrl-collect mode must be 'demos' or 'd4rl', got {cfg.mode!r}")
    from robotrl.engine.collect import collect_demos
    from robotrl.engine.policy_trainer import env_config

    c = OmegaConf.to_container(cfg, resolve=True)
    summary = collect_demos(
        env_config(c["env"]),
        n_episodes=int(c["n_episodes"]),
        path=c["output"],
        keep=c["keep"],
        noise=float(c["noise"]),
        suboptimal=bool(c["suboptimal"]),
        seed=int(c["seed"]),
        progress=bool(c["progress"]),
        post_success_steps=None if c.get("post_success_steps") is None else int(c["post_success_steps"]),
    )
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
