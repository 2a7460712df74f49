"""Policies: one folder per policy, all implementing ``robotrl.policies.base.Policy``."""
from robotrl.policies.base import Policy, PolicyConfig
from robotrl.policies.factory import POLICIES, get_policy_class, make_policy


def load_policy(directory, map_location: str = "cpu") -> Policy:
    """Load any saved policy (``save_pretrained`` directory)."""
    return Policy.from_pretrained(directory, map_location=map_location)


__all__ = ["Policy", "PolicyConfig", "POLICIES", "get_policy_class", "make_policy", "load_policy"]
