"""Test-time verifiers: sample N action chunks from a policy, score them, execute the best.

- :class:`CFNVerifier` (TACO): pseudo-counts from a coin-flipping network on the policy's own
  per-candidate features (diffusion: the denoiser's last hidden state at the final denoising
  step, averaged over the horizon; CARP: the next-scale transformer's last hidden state averaged
  over the chunk's tokens).
- :class:`ValueVerifier` (V-GPS): an IQL chunk critic over the executed part of the chunk.
- :class:`VerifiedPolicy`: a ``Policy`` (type ``verified``) wrapping a base policy and a verifier.

Training: :mod:`robotrl.verifiers.train` (``robotrl-train verifier=taco|value policy_checkpoint=...``).
"""
from robotrl.verifiers.base import (
    Verifier,
    VerifierConfig,
    VerifierMismatchError,
    get_verifier_class,
    load_verifier,
    verifier_from_meta,
)
from robotrl.verifiers.cfn import CFN, CFNConfig, CFNVerifier, rademacher_coins
from robotrl.verifiers.value import ValueConfig, ValueVerifier
from robotrl.verifiers.verified_policy import VerifiedConfig, VerifiedPolicy

__all__ = [
    "Verifier", "VerifierConfig", "VerifierMismatchError", "get_verifier_class", "load_verifier", "verifier_from_meta",
    "CFN", "CFNConfig", "CFNVerifier", "rademacher_coins", "ValueConfig", "ValueVerifier", "VerifiedConfig",
    "VerifiedPolicy",
]
