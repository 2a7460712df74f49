"""One seed for numpy, torch, python's random, environments and samplers."""
from __future__ import annotations

import random
from typing import Any

import numpy as np
import torch


def seed_everything(seed: int) -> np.random.Generator:
    """Seed python, numpy and torch; return a numpy Generator for samplers."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    return np.random.default_rng(seed)


def rng_state(gen: np.random.Generator | None = None) -> dict[str, Any]:
    """Everything needed to continue the random streams after a resume."""
    state = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if gen is not None:
        state["generator"] = gen.bit_generator.state
    return state


def set_rng_state(state: dict[str, Any], gen: np.random.Generator | None = None) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if gen is not None and "generator" in state:
        gen.bit_generator.state = state["generator"]
