"""Numba replay buffers: uniform and prioritised circular buffers, n-step and sequence sampling,
demo/online mixed batches, save/load.

>>> buf = ReplayBuffer(1_000_000, {"obs": {"state": ((17,), "float32")}, "action": ((6,), "float32")}, seed=0)
>>> buf.extend({"obs": {"state": o}, "action": a, "reward": r, "terminated": te, "truncated": tr,
...             "next": {"obs": {"state": o2}}})                                    # doctest: +SKIP
>>> batch = buf.sample(256)              # TensorDict [256]                          # doctest: +SKIP
>>> batch = buf.sample(256, n_step=3)    # n-step reward, "discount" = gamma**k or 0  # doctest: +SKIP
>>> seq = buf.sample_sequence(256, 16)   # TensorDict [256, 16] with "mask"          # doctest: +SKIP
"""
from robotrl.data.replay.buffer import FieldSpec, MissingFieldError, ReplayBuffer, ReplayBufferError
from robotrl.data.replay.mixed import MixedSampler
from robotrl.data.replay.prioritized import PrioritizedReplayBuffer

__all__ = [
    "FieldSpec",
    "MissingFieldError",
    "MixedSampler",
    "PrioritizedReplayBuffer",
    "ReplayBuffer",
    "ReplayBufferError",
]
