from robotrl.policies.carp.configuration_carp import CARPConfig
from robotrl.policies.carp.modeling_carp import CARPPolicy
from robotrl.policies.carp.tokenizer import MultiScaleActionTokenizer
from robotrl.policies.carp.transformer import NextScaleTransformer

__all__ = ["CARPConfig", "CARPPolicy", "MultiScaleActionTokenizer", "NextScaleTransformer"]
