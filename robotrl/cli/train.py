"""``robotrl-train``: train a policy (collecting demos first if needed), evaluate it, checkpoint it."""
from __future__ import annotations

import json
import os

os.environ.setdefault("MUJOCO_GL", "egl")

import hydra  # noqa: E402
from omegaconf import DictConfig  # noqa: E402

from robotrl.cli import CONF_DIR  # noqa: E402


@hydra.main(config_path=CONF_DIR, config_name="train", version_base="1.3")
def main(cfg: DictConfig) -> None:
    if cfg.get("verifier") is not None:  # test-time verifier (TACO / value) for a trained policy
        from robotrl.cli.train_verifier import run_train_verifier

        out = run_train_verifier(cfg)
        print(json.dumps(out, indent=2, default=str))
        return
    if cfg.get("algo") is not None:  # RL (offline / online / residual) instead of imitation
        name = cfg.algo.get("name")
        if name in ("residual", "rlpd"):
            from robotrl.engine.residual_trainer import train_residual, train_rlpd

            out = (train_residual if name == "residual" else train_rlpd)(cfg)
            print(json.dumps(out, indent=2, default=str))
            return
        from hydra.core.hydra_config import HydraConfig

        from robotrl.engine.rl_trainer import explicit_param_overrides, train_algo

        # algo.params.* given on the command line win over the per-dataset preset (algo.preset)
        task = HydraConfig.get().overrides.task if HydraConfig.initialized() else []
        out = train_algo(cfg, explicit_params=explicit_param_overrides(task))
        print(json.dumps(out, indent=2, default=str))
        return
    from robotrl.engine.policy_trainer import train_policy

    out = train_policy(cfg)
    print(json.dumps(out, indent=2))
    print(f"success rate: {out['success_rate']:.3f} over {out['n_episodes']} episodes")


if __name__ == "__main__":
    main()
