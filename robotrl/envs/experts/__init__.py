"""Scripted experts for demonstrations: ``make_expert(env_id, noise, suboptimal, seed)``.

Each expert has ``reset(seed=None)`` and ``act(obs) -> np.ndarray`` (one env, unbatched, action in
the env's action space) and reads ``obs["state"]`` only. ``noise`` is the std of Gaussian noise
added to every action (clipped); ``suboptimal=True`` is a worse but partly successful mode
(documented in each task's module) for mixed-quality datasets.

``robosuite/Lift`` and ``robosuite/PickPlaceCan`` have waypoint experts written here
(:mod:`robotrl.envs.experts.robosuite`). Ids starting with ``metaworld/`` are served by ``robotrl.envs.experts.metaworld`` (imported
lazily; its ``make_metaworld_expert(env_id, noise, suboptimal, seed)`` builds the expert).
"""

from __future__ import annotations

import importlib
from typing import Any

from robotrl.envs.experts.base import ScriptedExpert

# env id -> "module:Class" (imported on demand so importing this package stays cheap)
BUNDLED_EXPERTS: dict[str, str] = {
    "robotrl/PushT-v0": "robotrl.envs.experts.push_t:PushTExpert",
    "robotrl/TwoPaths-v0": "robotrl.envs.experts.two_paths:TwoPathsExpert",
    "robotrl/ArmLift-v0": "robotrl.envs.experts.arm_lift:ArmLiftExpert",
}
# experts for optional suites' tasks (written here; the suite itself ships none)
SUITE_EXPERTS: dict[str, str] = {
    "robosuite/Lift": "robotrl.envs.experts.robosuite:LiftExpert",
    "robosuite/PickPlaceCan": "robotrl.envs.experts.robosuite:PickPlaceCanExpert",
}


def make_expert(
    env_id: str, noise: float = 0.0, suboptimal: bool = False, seed: int | None = None
) -> Any:
    """Build the scripted expert for ``env_id`` (see module docstring)."""
    if not isinstance(env_id, str):
        raise ValueError(f"env_id must be a str, got {type(env_id).__name__}")
    if env_id.startswith("metaworld/"):
        mw = importlib.import_module("robotrl.envs.experts.metaworld")
        return mw.make_metaworld_expert(env_id, noise, suboptimal, seed)
    target = BUNDLED_EXPERTS.get(env_id) or SUITE_EXPERTS.get(env_id)
    if target is None:
        raise ValueError(
            f"no scripted expert for env id {env_id!r}; available: "
            f"{sorted(BUNDLED_EXPERTS) + sorted(SUITE_EXPERTS)} and 'metaworld/<task>' ids"
        )
    module_name, cls_name = target.split(":")
    cls = getattr(importlib.import_module(module_name), cls_name)
    return cls(noise=noise, suboptimal=suboptimal, seed=seed)


__all__ = ["BUNDLED_EXPERTS", "SUITE_EXPERTS", "ScriptedExpert", "make_expert"]
