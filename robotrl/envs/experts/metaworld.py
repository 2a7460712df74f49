"""Scripted experts for Meta-World v3 tasks: metaworld's own hand-written policies behind our API.

``make_metaworld_expert("metaworld/pick-place-v3")`` wraps ``metaworld.policies.SawyerPickPlaceV3Policy``;
it acts from ``obs["state"]`` (the 39-D observation of ``make_env``) alone.

``suboptimal=True`` makes a worse but still partly successful demonstrator, the way a distracted
teleoperator is: now and then it freezes and repeats its last action for a few steps (a "hold"),
and now and then it makes a random jerk. Both come from the expert's own seeded RNG.
"""

from __future__ import annotations

import warnings

import numpy as np

from robotrl.envs.experts.base import ScriptedExpert

__all__ = ["MetaWorldExpert", "make_metaworld_expert", "policy_class_name"]

# the only task whose policy class name does not follow the task name
_SPECIAL = {"peg-insert-side-v3": "SawyerPegInsertionSideV3Policy"}


def policy_class_name(task: str) -> str:
    """``"pick-place-v3"`` -> ``"SawyerPickPlaceV3Policy"``."""
    if task in _SPECIAL:
        return _SPECIAL[task]
    if not task.endswith("-v3"):
        raise ValueError(f"Meta-World task names end with '-v3', got {task!r}")
    return "Sawyer" + "".join(w.capitalize() for w in task[: -len("-v3")].split("-")) + "V3Policy"


class MetaWorldExpert(ScriptedExpert):
    """One Meta-World task's scripted policy with noise / suboptimal knobs.

    Args:
        task: Meta-World v3 task name (``"pick-place-v3"``) or id (``"metaworld/pick-place-v3"``).
        noise: std of Gaussian action noise (actions are in [-1, 1]).
        suboptimal: enable holds and random jerks.
        seed: seed of the expert's RNG.
        hold_prob: per-step chance to start a hold (suboptimal mode).
        hold_steps: (min, max) length of a hold in steps.
        jerk_prob: per-step chance of a uniformly random action (suboptimal mode).
    """

    def __init__(
        self,
        task: str,
        noise: float = 0.0,
        suboptimal: bool = False,
        seed: int | None = None,
        hold_prob: float = 0.05,
        hold_steps: tuple[int, int] = (5, 20),
        jerk_prob: float = 0.1,
    ):
        import metaworld.policies as mw_policies

        self.task = task.split("/", 1)[1] if task.startswith("metaworld/") else task
        name = policy_class_name(self.task)
        cls = getattr(mw_policies, name, None)
        if cls is None:
            from metaworld.env_dict import ALL_V3_ENVIRONMENTS

            raise ValueError(
                f"no Meta-World scripted policy {name!r} for task {task!r}; tasks: {', '.join(ALL_V3_ENVIRONMENTS)}"
            )
        self.policy = cls()
        self.hold_prob = float(hold_prob)
        self.hold_steps = (int(hold_steps[0]), int(hold_steps[1]))
        self.jerk_prob = float(jerk_prob)
        self._hold_left = 0
        self._last: np.ndarray | None = None
        super().__init__(noise=noise, suboptimal=suboptimal, seed=seed)

    def _reset(self) -> None:
        self._hold_left = 0
        self._last = None

    def _act(self, state: np.ndarray) -> np.ndarray:
        if state.shape[0] != 39:
            raise ValueError(
                f"Meta-World expert for {self.task!r} expects obs['state'] of shape (39,), got {state.shape}"
            )
        with warnings.catch_warnings():  # metaworld warns when its gains saturate; clipping is intended
            warnings.simplefilter("ignore", UserWarning)
            action = np.asarray(self.policy.get_action(state), dtype=np.float64)
        if self.suboptimal:
            if self._hold_left > 0 and self._last is not None:
                self._hold_left -= 1
                return self._last
            if self._last is not None and self.rng.random() < self.hold_prob:
                self._hold_left = int(self.rng.integers(self.hold_steps[0], self.hold_steps[1] + 1)) - 1
                return self._last
            if self.rng.random() < self.jerk_prob:
                action = self.rng.uniform(-1.0, 1.0, size=action.shape)
        self._last = np.clip(action, -1.0, 1.0)
        return self._last


def make_metaworld_expert(
    env_id: str, noise: float = 0.0, suboptimal: bool = False, seed: int | None = None
) -> MetaWorldExpert:
    """The scripted expert for ``metaworld/<task>-v3`` (used by ``robotrl.envs.experts.make_expert``)."""
    return MetaWorldExpert(env_id, noise=noise, suboptimal=suboptimal, seed=seed)
