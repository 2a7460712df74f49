"""Configuration of Diffusion Policy (Chi et al., 2023)."""
from __future__ import annotations

import dataclasses

from robotrl.policies.base import PolicyConfig
from robotrl.policies.diffusion.schedulers import BETA_SCHEDULES, PREDICTION_TYPES, SAMPLERS

DENOISERS = ("unet", "transformer")


@dataclasses.dataclass
class DiffusionConfig(PolicyConfig):
    """Diffusion Policy: denoise an action chunk ``[H, A]`` conditioned on ``To`` observations.

    Training: DDPM with ``num_train_timesteps`` steps (squared-cosine betas, epsilon prediction).
    Sampling: ``sampler`` ("ddpm" or "ddim") with ``num_inference_steps`` (<= train steps);
    ``ddim_eta`` > 0 adds DDIM noise. ``denoiser``: "unet" (1-D temporal conv UNet with FiLM) or
    "transformer" (cross-attention to the step and per-observation-step tokens).
    """

    denoiser: str = "unet"
    # noise schedule / sampling
    num_train_timesteps: int = 100
    beta_schedule: str = "squaredcos_cap_v2"
    prediction_type: str = "epsilon"
    clip_sample: bool = True
    clip_sample_range: float = 1.0
    sampler: str = "ddim"
    num_inference_steps: int = 10
    ddim_eta: float = 0.0
    # UNet denoiser (smaller than the paper's (256, 512, 1024) so it trains on a CPU)
    down_dims: tuple[int, ...] = (64, 128, 256)
    kernel_size: int = 5
    n_groups: int = 8
    diffusion_step_embed_dim: int = 64
    cond_predict_scale: bool = True
    # transformer denoiser
    d_model: int = 128
    n_layers: int = 4
    n_heads: int = 4
    n_cond_layers: int = 0
    dropout_emb: float = 0.0
    dropout_attn: float = 0.1
    causal_attn: bool = True
    # observation encoder (image keys only): kwargs of robotrl.nn.vision.build_image_encoder
    image_encoder: dict = dataclasses.field(default_factory=dict)
    # optimiser (returned by optim_groups as overrides of the trainer's defaults)
    lr: float = 1e-4
    weight_decay: float = 1e-6
    betas: tuple[float, float] = (0.95, 0.999)
    #: lr warm-up steps (None: the trainer's ``train.warmup_steps``); the reference's transformer uses 1000
    warmup_steps: int | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        self.down_dims = tuple(int(d) for d in self.down_dims)
        self.betas = tuple(float(b) for b in self.betas)
        if self.denoiser not in DENOISERS:
            raise ValueError(f"DiffusionConfig.denoiser must be one of {DENOISERS}, got {self.denoiser!r}")
        if self.beta_schedule not in BETA_SCHEDULES:
            raise ValueError(f"DiffusionConfig.beta_schedule must be one of {BETA_SCHEDULES}, got {self.beta_schedule!r}")
        if self.prediction_type not in PREDICTION_TYPES:
            raise ValueError(f"DiffusionConfig.prediction_type must be one of {PREDICTION_TYPES}, got {self.prediction_type!r}")
        if self.sampler not in SAMPLERS:
            raise ValueError(f"DiffusionConfig.sampler must be one of {SAMPLERS}, got {self.sampler!r}")
        if not 1 <= self.num_inference_steps <= self.num_train_timesteps:
            raise ValueError(
                f"DiffusionConfig.num_inference_steps must be in [1, num_train_timesteps={self.num_train_timesteps}],"
                f" got {self.num_inference_steps}"
            )
        if self.denoiser == "unet":
            factor = 2 ** (len(self.down_dims) - 1)
            if not self.down_dims or self.horizon % factor:
                raise ValueError(
                    f"DiffusionConfig: horizon {self.horizon} must be divisible by 2**(len(down_dims)-1) = {factor}"
                    f" for the UNet denoiser (down_dims={self.down_dims})"
                )
        if self.denoiser == "transformer" and self.d_model % self.n_heads:
            raise ValueError(f"DiffusionConfig: d_model {self.d_model} must be divisible by n_heads {self.n_heads}")
