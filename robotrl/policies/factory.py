"""Policy registry: name -> class, imported lazily so one policy's deps never load another's."""
from __future__ import annotations

import importlib
from typing import Any, Mapping

POLICIES: dict[str, str] = {
    "bc": "robotrl.policies.bc.modeling_bc:BCPolicy",
    "diffusion": "robotrl.policies.diffusion.modeling_diffusion:DiffusionPolicy",
    "carp": "robotrl.policies.carp.modeling_carp:CARPPolicy",
    "residual": "robotrl.residual.policy:ResidualPolicy",
    "verified": "robotrl.verifiers.verified_policy:VerifiedPolicy",
}


def get_policy_class(name: str) -> type:
    """The class registered as ``name``; a clear error lists the known names."""
    if name not in POLICIES:
        raise ValueError(f"unknown policy type {name!r}; known: {sorted(POLICIES)}")
    module, attr = POLICIES[name].split(":")
    try:
        mod = importlib.import_module(module)
    except ModuleNotFoundError as e:  # registered but not (yet) part of this checkout
        raise ValueError(f"policy type {name!r} is registered but its module {module} cannot be imported: {e}") from e
    return getattr(mod, attr)


def make_policy(cfg: Mapping[str, Any], shape_meta: Mapping[str, Any]):
    """Build a policy from a config mapping with a ``type`` key (the rest go to its dataclass)."""
    cfg = dict(cfg)
    if "type" not in cfg:
        raise KeyError(f"policy config needs a 'type' key (one of {sorted(POLICIES)}); got keys {sorted(cfg)}")
    klass = get_policy_class(cfg.pop("type"))
    config = klass.config_class.from_dict(cfg)
    return klass(config, shape_meta)
