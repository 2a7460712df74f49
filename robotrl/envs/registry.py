"""``make_env``: one entry point that builds any supported environment in the robotrl convention.

A config names an ``id`` and optionally a ``suite``; the suite is inferred from the id when absent.
Suite modules are imported lazily, so an optional suite that is not installed only fails when it
is asked for.
"""

from __future__ import annotations

import dataclasses
import difflib
import importlib
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Callable

import gymnasium as gym
import numpy as np

__all__ = [
    "EnvConfig",
    "UnknownEnvError",
    "EnvConfigError",
    "make_env",
    "list_envs",
    "infer_suite",
    "register_suite",
    "SUITES",
    "D4RL_NAMES",
]


class UnknownEnvError(ValueError):
    """The id (or suite) is not one ``make_env`` knows."""


class EnvConfigError(ValueError):
    """The env config has an unknown key or a value of the wrong kind."""


@dataclass
class EnvConfig:
    """What ``make_env`` reads. Unknown keys are refused (a typo fails at start).

    Attributes:
        id: environment id, e.g. ``"robotrl/PushT-v0"``, ``"metaworld/pick-place-v3"``,
            ``"robosuite/Lift"``, ``"Hopper-v5"``, ``"AdroitHandDoor-v1"``.
        suite: ``bundled | gym_mujoco | metaworld | robosuite | gym_robotics``; inferred when None.
        kwargs: passed through to the suite's constructor.
        image: add camera images (keys ending in ``image``, uint8 HWC).
        image_size: square image side in pixels.
        seed: default seed of the first ``reset()`` (when reset is called without one) and of
            the action space.
        max_episode_steps: step limit (the suite's own when None).
        reward_type: ``"dense"`` or ``"sparse"`` where the suite supports it.
        render_mode: gymnasium render mode (``"rgb_array"`` for videos).
    """

    id: str
    suite: str | None = None
    kwargs: dict[str, Any] = field(default_factory=dict)
    image: bool = False
    image_size: int = 84
    seed: int | None = None
    max_episode_steps: int | None = None
    reward_type: str | None = None
    render_mode: str | None = None


_FIELDS = tuple(f.name for f in dataclasses.fields(EnvConfig))
_IGNORED_KEYS = ("_target_",)  # Hydra bookkeeping; harmless here


def _coerce_cfg(cfg: Any, overrides: Mapping[str, Any]) -> EnvConfig:
    """Turn a str / mapping / DictConfig / dataclass into an ``EnvConfig``, refusing unknown keys."""
    if isinstance(cfg, EnvConfig):
        data = dataclasses.asdict(cfg)
    elif isinstance(cfg, str):
        data = {"id": cfg}
    elif dataclasses.is_dataclass(cfg) and not isinstance(cfg, type):
        data = {f.name: getattr(cfg, f.name) for f in dataclasses.fields(cfg)}
    else:
        try:  # OmegaConf DictConfig -> plain dict (resolving interpolations)
            from omegaconf import DictConfig, OmegaConf

            if isinstance(cfg, DictConfig):
                cfg = OmegaConf.to_container(cfg, resolve=True)
        except ImportError:  # pragma: no cover - omegaconf is a core dependency
            pass
        if not isinstance(cfg, Mapping):
            raise EnvConfigError(
                f"env config must be a str id, mapping, DictConfig or dataclass; got {type(cfg).__name__}"
            )
        data = dict(cfg)
    data.update(overrides)
    for k in _IGNORED_KEYS:
        data.pop(k, None)
    unknown = sorted(set(data) - set(_FIELDS))
    if unknown:
        hints = []
        for k in unknown:
            close = difflib.get_close_matches(str(k), _FIELDS, n=1)
            hints.append(f"{k!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))
        raise EnvConfigError(
            f"unknown env config key(s): {', '.join(hints)}; allowed keys: {', '.join(_FIELDS)}"
        )
    if not data.get("id"):
        raise EnvConfigError("env config needs an 'id' (e.g. 'robotrl/PushT-v0' or 'Hopper-v5')")
    out = EnvConfig(**data)
    if not isinstance(out.id, str):
        raise EnvConfigError(f"env config key 'id' must be a str, got {type(out.id).__name__}")
    out.kwargs = dict(out.kwargs or {})
    if out.reward_type is not None and out.reward_type not in ("dense", "sparse"):
        raise EnvConfigError(f"reward_type must be 'dense' or 'sparse', got {out.reward_type!r}")
    if int(out.image_size) <= 0:
        raise EnvConfigError(f"image_size must be positive, got {out.image_size}")
    return out


# --------------------------------------------------------------------------------------------
# suites


@dataclass(frozen=True)
class SuiteSpec:
    """How to recognise and build one suite's ids."""

    name: str
    module: str  # module with ``make(env_id: str, cfg: EnvConfig) -> gym.Env``
    matches: Callable[[str], bool]
    example_ids: tuple[str, ...]
    extra: str = ""  # pip extra that installs the suite, for error messages


_GYM_MUJOCO = re.compile(
    r"^(Hopper|HalfCheetah|Walker2d|Ant|Humanoid|HumanoidStandup|Swimmer|Reacher|Pusher|"
    r"InvertedPendulum|InvertedDoublePendulum)-v[45]$"
)
_GYM_ROBOTICS = re.compile(r"^(AdroitHand\w+-v1|FrankaKitchen-v1|PointMaze_\w+-v3|AntMaze_\w+-v[345])$")

#: D4RL reference names for the gym_mujoco locomotion tasks (used for normalised scores).
D4RL_NAMES = {"Hopper": "hopper", "HalfCheetah": "halfcheetah", "Walker2d": "walker2d", "Ant": "ant"}

SUITES: dict[str, SuiteSpec] = {}


def register_suite(spec: SuiteSpec) -> None:
    """Add (or replace) a suite; ``make_env`` consults suites in registration order."""
    SUITES[spec.name] = spec


register_suite(
    SuiteSpec(
        "bundled",
        "robotrl.envs.suites.bundled",
        lambda i: i.startswith("robotrl/"),
        ("robotrl/PushT-v0", "robotrl/TwoPaths-v0", "robotrl/ArmLift-v0"),
    )
)
register_suite(
    SuiteSpec(
        "gym_mujoco",
        "robotrl.envs.suites.gym_mujoco",
        lambda i: bool(_GYM_MUJOCO.match(i)),
        ("Hopper-v5", "HalfCheetah-v5", "Walker2d-v5", "Ant-v5"),
    )
)
register_suite(
    SuiteSpec(
        "metaworld",
        "robotrl.envs.suites.metaworld",
        lambda i: i.startswith("metaworld/"),
        ("metaworld/pick-place-v3", "metaworld/push-v3", "metaworld/door-open-v3", "metaworld/<task>-v3"),
        extra="robotics",
    )
)
register_suite(
    SuiteSpec(
        "robosuite",
        "robotrl.envs.suites.robosuite",
        lambda i: i.startswith("robosuite/"),
        ("robosuite/Lift", "robosuite/PickPlaceCan", "robosuite/NutAssemblySquare"),
        extra="robotics",
    )
)
register_suite(
    SuiteSpec(
        "gym_robotics",
        "robotrl.envs.suites.gym_robotics",
        lambda i: bool(_GYM_ROBOTICS.match(i)),
        (
            "AdroitHandDoor-v1",
            "AdroitHandHammer-v1",
            "AdroitHandPen-v1",
            "AdroitHandRelocate-v1",
            "FrankaKitchen-v1",
            "PointMaze_UMaze-v3",
            "AntMaze_UMaze-v5",
        ),
        extra="robotics",
    )
)


def list_envs(suite: str | None = None) -> list[str]:
    """Example ids per suite (``metaworld/<task>-v3`` stands for all 50 Meta-World v3 tasks)."""
    if suite is not None and suite not in SUITES:
        raise UnknownEnvError(f"unknown suite {suite!r}; known suites: {', '.join(SUITES)}")
    names = [suite] if suite else list(SUITES)
    return [i for n in names for i in SUITES[n].example_ids]


def _known_message() -> str:
    return "; ".join(f"{s.name}: {', '.join(s.example_ids)}" for s in SUITES.values())


def infer_suite(env_id: str) -> str:
    """The suite an id belongs to, or ``UnknownEnvError`` listing the known suites and ids."""
    for spec in SUITES.values():
        if spec.matches(env_id):
            return spec.name
    candidates = [i for s in SUITES.values() for i in s.example_ids if "<" not in i]
    close = difflib.get_close_matches(env_id, candidates, n=1, cutoff=0.5)
    hint = f" Did you mean {close[0]!r}?" if close else ""
    raise UnknownEnvError(
        f"unknown environment id {env_id!r}.{hint} Known suites and ids: {_known_message()}. "
        "Pass `suite=` explicitly to force a suite."
    )


class _DefaultSeed(gym.Wrapper):
    """Uses ``cfg.seed`` for the first ``reset()`` that is called without a seed."""

    def __init__(self, env: gym.Env, seed: int):
        super().__init__(env)
        self._pending_seed: int | None = int(seed)
        self.action_space.seed(int(seed))

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        if seed is None and self._pending_seed is not None:
            seed = self._pending_seed
        self._pending_seed = None
        return self.env.reset(seed=seed, options=options)


def make_env(cfg: Any, **overrides: Any) -> gym.Env:
    """Build one environment in the robotrl convention (dict obs, ``info["is_success"]``).

    Args:
        cfg: a str id, a mapping / OmegaConf ``DictConfig`` / dataclass with the fields of
            :class:`EnvConfig` (``id`` required).
        **overrides: fields that replace those in ``cfg`` (e.g. ``render_mode="rgb_array"``).
    """
    c = _coerce_cfg(cfg, overrides)
    suite = c.suite or infer_suite(c.id)
    if suite not in SUITES:
        raise UnknownEnvError(
            f"unknown suite {suite!r} for id {c.id!r}; known suites: {', '.join(SUITES)}"
        )
    spec = SUITES[suite]
    if c.image or c.render_mode == "rgb_array":
        # headless offscreen rendering; must be chosen before MuJoCo creates a GL context
        os.environ.setdefault("MUJOCO_GL", "egl")
    try:
        module = importlib.import_module(spec.module)
    except ImportError as e:  # an optional suite that is not installed
        extra = f" (pip install 'robotrl[{spec.extra}]')" if spec.extra else ""
        raise ImportError(f"suite {suite!r} needed for {c.id!r} cannot be imported{extra}: {e}") from e
    env = module.make(c.id, c)
    _check_convention(env, c)
    if c.seed is not None:
        env = _DefaultSeed(env, c.seed)
    env.unwrapped.robotrl_suite = suite  # type: ignore[attr-defined]
    return env


def _check_convention(env: gym.Env, c: EnvConfig) -> None:
    space = env.observation_space
    if not isinstance(space, gym.spaces.Dict) or "state" not in space.spaces:
        raise TypeError(
            f"suite for {c.id!r} returned observation space {space}; expected a Dict with 'state'"
        )
    st = space["state"]
    if st.dtype != np.float32 or len(st.shape) != 1:
        raise TypeError(f"{c.id!r}: obs 'state' must be float32 1-D, got {st.dtype} {st.shape}")
    has_image = any(k.endswith("image") for k in space.spaces)
    if c.image and not has_image:
        raise TypeError(f"{c.id!r}: image=True but no observation key ends with 'image'")
