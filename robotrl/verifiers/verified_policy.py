"""``VerifiedPolicy``: a policy that samples N candidate chunks, scores them, executes the best.

It is itself a :class:`robotrl.policies.base.Policy` registered as type ``verified``, so
``robotrl-eval``, residual RL and ``robotrl-deploy`` load it with ``load_policy(dir)`` unchanged.

- Sampling: one batched ``policy.sample_actions(obs, num_samples=N, return_features=...)`` call,
  so the observation is encoded once for all N candidates (the base policies repeat the
  encoding, not the observation).
- Selection: ``greedy`` (argmax of the verifier's score) or ``softmax`` (sample with
  probabilities ``softmax(score / temperature)``, from torch's global RNG).
- Checkpoint: one ``save_pretrained`` folder: ``config.json`` (type ``verified``; the base
  policy's and the verifier's descriptions inside the config) and one ``model.safetensors`` with
  the base policy's weights under ``policy.`` and the verifier's under ``verifier.``.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Mapping

import torch
from tensordict import TensorDict

from robotrl.data.normalizers import Normalizer
from robotrl.policies.base import Policy, PolicyConfig
from robotrl.verifiers.base import Verifier, verifier_from_meta

SELECTIONS = ("greedy", "softmax")


@dataclasses.dataclass
class VerifiedConfig(PolicyConfig):
    """``n_obs_steps``/``horizon``/``n_action_steps``/``obs_keys`` mirror the base policy's.

    ``policy``: the base policy's ``{"type", "config", "shape_meta", "normalizer"}``;
    ``verifier``: the verifier's ``{"type", "config"}``.
    """

    num_samples: int = 32
    selection: str = "greedy"
    temperature: float = 1.0
    policy: dict = dataclasses.field(default_factory=dict)
    verifier: dict = dataclasses.field(default_factory=dict)

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.num_samples < 1:
            raise ValueError(f"VerifiedConfig.num_samples must be >= 1, got {self.num_samples}")
        if self.selection not in SELECTIONS:
            raise ValueError(f"VerifiedConfig.selection must be one of {SELECTIONS}, got {self.selection!r}")
        if self.temperature <= 0:
            raise ValueError(f"VerifiedConfig.temperature must be > 0, got {self.temperature}")


def _policy_meta(policy: Policy) -> dict[str, Any]:
    return {"type": policy.name, "config": policy.config.to_dict(), "shape_meta": policy.shape_meta,
            "normalizer": policy.normalizer.spec()}


def _policy_from_meta(meta: Mapping[str, Any]) -> Policy:
    from robotrl.policies.factory import get_policy_class

    for key in ("type", "config", "shape_meta", "normalizer"):
        if key not in meta:
            raise KeyError(f"verified policy config: base policy entry misses {key!r} (has {sorted(meta)})")
    klass = get_policy_class(meta["type"])
    return klass(klass.config_class.from_dict(meta["config"]), meta["shape_meta"], Normalizer.from_spec(meta["normalizer"]))


class VerifiedPolicy(Policy):
    """Best-of-N execution of ``policy`` under ``verifier`` (see the module docstring).

    ``VerifiedPolicy(policy, verifier, num_samples=32, selection="greedy", temperature=1.0)``.
    (``Policy.from_pretrained`` rebuilds it as ``VerifiedPolicy(config, shape_meta, normalizer)``;
    that form is for loading only.)
    """

    name = "verified"
    config_class = VerifiedConfig

    def __init__(self, policy: Policy | VerifiedConfig, verifier: Verifier | Any = None, num_samples: int = 32,
                 selection: str = "greedy", temperature: float = 1.0) -> None:
        if isinstance(policy, VerifiedConfig):  # loading: (config, shape_meta, normalizer)
            config = policy
            policy = _policy_from_meta(config.policy)
            verifier = verifier_from_meta(config.verifier)
        else:
            if not isinstance(policy, Policy):
                raise TypeError(f"VerifiedPolicy wraps a robotrl Policy, got {type(policy).__name__}")
            if isinstance(policy, VerifiedPolicy):
                raise TypeError("VerifiedPolicy: the base policy is already a VerifiedPolicy")
            if not isinstance(verifier, Verifier):
                raise TypeError(f"VerifiedPolicy needs a robotrl.verifiers Verifier, got {type(verifier).__name__}")
            pc = policy.config
            config = VerifiedConfig(
                n_obs_steps=pc.n_obs_steps, horizon=pc.horizon, n_action_steps=pc.n_action_steps,
                obs_keys=tuple(pc.obs_keys), num_samples=int(num_samples), selection=selection,
                temperature=float(temperature), policy=_policy_meta(policy), verifier=verifier.meta(),
            )
        verifier.check_compatible(policy)  # a verifier trained for another policy is refused here
        super().__init__(config, policy.shape_meta, Normalizer())
        self.policy = policy
        self.verifier = verifier.eval()

    # ----------------------------------------------------------------- passthrough
    @property
    def base_policy(self) -> Policy:
        return self.policy

    @property
    def feature_dim(self) -> int | None:
        return getattr(self.policy, "feature_dim", None)

    def train(self, mode: bool = True) -> "VerifiedPolicy":
        """The base policy follows ``mode``; the verifier always stays in eval mode (no dropout, its
        CFN prior statistics frozen), since a VerifiedPolicy never trains it."""
        super().train(mode)
        self.verifier.eval()
        return self

    def loss(self, batch: TensorDict) -> tuple[torch.Tensor, dict[str, float]]:
        raise NotImplementedError("VerifiedPolicy is inference-only: train the base policy with robotrl-train and "
                                  "the verifier with robotrl-train verifier=... policy_checkpoint=...")

    def fit_normalizer(self, store: Any, obs_mode: str = "minmax", action_mode: str = "minmax") -> None:
        raise NotImplementedError("VerifiedPolicy uses its base policy's normaliser; it is not fitted again")

    # ----------------------------------------------------------------- sampling
    @torch.no_grad()
    def candidates(self, obs: Mapping[str, Any], num_candidates: int | None = None
                   ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """``num_candidates`` (default ``config.num_samples``) chunks ``[B, N, H, A]`` (and features
        ``[B, N, F]`` when the verifier needs them) from one batched call of the base policy."""
        n = self.config.num_samples if num_candidates is None else int(num_candidates)
        if self.verifier.needs_features:
            return self.policy.sample_actions(obs, num_samples=n, return_features=True)
        return self.policy.sample_actions(obs, num_samples=n), None

    @torch.no_grad()
    def verify(self, obs: Mapping[str, Any], num_picks: int = 1) -> dict[str, torch.Tensor]:
        """Draw ``num_picks * num_samples`` candidates in one call, pick one per group of
        ``num_samples``: ``{"actions": [B, P, H, A], "index": [B, P], "scores": [B, P, N],
        "candidates": [B, P, N, H, A]}``."""
        n = self.config.num_samples
        actions, feats = self.candidates(obs, n * num_picks)
        scores = self.verifier.score(obs, actions, feats).to(actions.device)  # [B, P*N]
        b = actions.shape[0]
        actions = actions.reshape(b, num_picks, n, *actions.shape[2:])
        scores = scores.reshape(b, num_picks, n).float()
        if self.config.selection == "greedy" or n == 1:
            index = scores.argmax(-1)
        else:
            probs = torch.softmax(scores / self.config.temperature, dim=-1)
            index = torch.multinomial(probs.reshape(-1, n), 1).reshape(b, num_picks)
        gather = index[..., None, None, None].expand(-1, -1, 1, *actions.shape[3:])
        chosen = actions.gather(2, gather).squeeze(2)
        return {"actions": chosen, "index": index, "scores": scores, "candidates": actions}

    @torch.no_grad()
    def sample_actions(self, obs: Mapping[str, Any], num_samples: int = 1, return_features: bool = False, **_: Any):
        """``[B, num_samples, H, A]`` verified chunks (each the best of ``config.num_samples``
        candidates); all candidates come from one batched call of the base policy."""
        if num_samples < 1:
            raise ValueError(f"num_samples must be >= 1, got {num_samples}")
        if return_features:
            raise NotImplementedError("VerifiedPolicy does not expose features (verify its base policy instead)")
        return self.verify(obs, num_picks=num_samples)["actions"]

    def reset(self) -> None:
        super().reset()
        self.policy.reset()
