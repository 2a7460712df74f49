from robotrl.policies.diffusion.configuration_diffusion import DiffusionConfig
from robotrl.policies.diffusion.modeling_diffusion import DiffusionPolicy
from robotrl.policies.diffusion.schedulers import NoiseScheduler, squared_cosine_betas

__all__ = ["DiffusionConfig", "DiffusionPolicy", "NoiseScheduler", "squared_cosine_betas"]
