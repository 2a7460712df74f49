from robotrl.policies.bc.configuration_bc import BCConfig
from robotrl.policies.bc.modeling_bc import BCPolicy

__all__ = ["BCConfig", "BCPolicy"]
