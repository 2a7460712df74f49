"""Residual off-policy RL on a frozen base policy (ResFiT-style; see ``../shared/methods/resfit.md``).

>>> from robotrl.policies import load_policy
>>> from robotrl.residual import ResidualPolicy, run_residual        # doctest: +SKIP
>>> policy = ResidualPolicy.from_base(load_policy("runs/armlift-bc-s0/checkpoints/policy"))  # doctest: +SKIP
>>> out = run_residual(policy, lambda: make_env("robotrl/ArmLift-v0"), demo_store)           # doctest: +SKIP
>>> policy.save_pretrained("residual_policy")   # one checkpoint, loads with load_policy       # doctest: +SKIP
"""
from robotrl.residual.policy import ActionSpaceMismatchError, ResidualConfig, ResidualPolicy, check_base_matches_env
from robotrl.residual.td3 import ResidualTD3, ResidualTD3Config, nstep_td_target, random_pair
from robotrl.residual.trainer import ResidualTrainConfig, evaluate_policy_seeded, relabel_demos, run_residual

__all__ = [
    "ActionSpaceMismatchError", "ResidualConfig", "ResidualPolicy", "check_base_matches_env",
    "ResidualTD3", "ResidualTD3Config", "nstep_td_target", "random_pair",
    "ResidualTrainConfig", "evaluate_policy_seeded", "relabel_demos", "run_residual",
]
