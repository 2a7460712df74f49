"""Bundled MuJoCo tasks; importing this package registers their gymnasium ids.

==========================  ==========================================  =====  ======  =========
id                          class                                       state  action  max steps
==========================  ==========================================  =====  ======  =========
``robotrl/PushT-v0``        :class:`~robotrl.envs.bundled.push_t.PushTEnv`        15     2       300
``robotrl/TwoPaths-v0``     :class:`~robotrl.envs.bundled.two_paths.TwoPathsEnv`  8      2       200
``robotrl/ArmLift-v0``      :class:`~robotrl.envs.bundled.arm_lift.ArmLiftEnv`    22     4       150
==========================  ==========================================  =====  ======  =========

Constructor kwargs (all tasks): ``image=False``, ``image_size=84``, ``render_mode=None``,
``render_size=256``, ``reward_type="sparse"|"dense"``, ``terminate_on_success=True``,
``max_episode_steps=None`` (internal limit; ``gymnasium.make`` adds the registered TimeLimit).
"""

from __future__ import annotations

import gymnasium as gym

from robotrl.envs.bundled.base import BundledMujocoEnv, sim_assets_dir

BUNDLED_ENVS: dict[str, tuple[str, int]] = {
    "robotrl/PushT-v0": ("robotrl.envs.bundled.push_t:PushTEnv", 300),
    "robotrl/TwoPaths-v0": ("robotrl.envs.bundled.two_paths:TwoPathsEnv", 200),
    "robotrl/ArmLift-v0": ("robotrl.envs.bundled.arm_lift:ArmLiftEnv", 150),
}


def register_bundled_envs() -> None:
    """Register the bundled ids with gymnasium (idempotent)."""
    for env_id, (entry_point, max_steps) in BUNDLED_ENVS.items():
        if env_id not in gym.registry:
            gym.register(id=env_id, entry_point=entry_point, max_episode_steps=max_steps)


register_bundled_envs()

__all__ = ["BUNDLED_ENVS", "BundledMujocoEnv", "register_bundled_envs", "sim_assets_dir"]
