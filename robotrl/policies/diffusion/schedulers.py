"""DDPM noise schedule and the DDPM / DDIM reverse steps (written here; no ``diffusers``).

Notation: ``alphas_cumprod[t]`` is :math:`\\bar\\alpha_t` for ``t = 0 .. T-1``; a clean sample ``x0``
is noised as ``x_t = sqrt(abar_t) x0 + sqrt(1 - abar_t) eps``. Sampling walks a decreasing list of
timesteps (all T for DDPM by default, or an evenly spaced subset) and maps ``x_t`` to ``x_prev``
with either the DDPM posterior (stochastic) or the DDIM update (deterministic for ``eta = 0``).
"""
from __future__ import annotations

import math

import torch

BETA_SCHEDULES = ("squaredcos_cap_v2", "linear")
PREDICTION_TYPES = ("epsilon", "sample")
SAMPLERS = ("ddpm", "ddim")


def squared_cosine_betas(num_steps: int, max_beta: float = 0.999, s: float = 0.008) -> torch.Tensor:
    """Nichol & Dhariwal's cosine schedule: ``abar(t) = cos^2(((t/T + s) / (1 + s)) * pi/2)``.

    ``beta_t = min(1 - abar((t+1)/T) / abar(t/T), max_beta)`` (float64).
    """
    def abar(u: float) -> float:
        return math.cos((u + s) / (1 + s) * math.pi / 2) ** 2

    betas = [min(1.0 - abar((i + 1) / num_steps) / abar(i / num_steps), max_beta) for i in range(num_steps)]
    return torch.tensor(betas, dtype=torch.float64)


def linear_betas(num_steps: int, beta_start: float = 1e-4, beta_end: float = 0.02) -> torch.Tensor:
    return torch.linspace(beta_start, beta_end, num_steps, dtype=torch.float64)


class NoiseScheduler:
    """The forward process (``add_noise``) and one reverse step (``step``) for DDPM and DDIM.

    Tensors are float64 on the CPU; values are gathered and cast to the sample's dtype/device.
    """

    def __init__(
        self,
        num_train_timesteps: int = 100,
        beta_schedule: str = "squaredcos_cap_v2",
        prediction_type: str = "epsilon",
        clip_sample: bool = True,
        clip_sample_range: float = 1.0,
    ) -> None:
        if beta_schedule not in BETA_SCHEDULES:
            raise ValueError(f"beta_schedule must be one of {BETA_SCHEDULES}, got {beta_schedule!r}")
        if prediction_type not in PREDICTION_TYPES:
            raise ValueError(f"prediction_type must be one of {PREDICTION_TYPES}, got {prediction_type!r}")
        if num_train_timesteps < 1:
            raise ValueError(f"num_train_timesteps must be >= 1, got {num_train_timesteps}")
        self.num_train_timesteps = int(num_train_timesteps)
        self.prediction_type = prediction_type
        self.clip_sample = clip_sample
        self.clip_sample_range = float(clip_sample_range)
        if beta_schedule == "squaredcos_cap_v2":
            self.betas = squared_cosine_betas(self.num_train_timesteps)
        else:
            self.betas = linear_betas(self.num_train_timesteps)
        self.alphas = 1.0 - self.betas
        self.alphas_cumprod = torch.cumprod(self.alphas, dim=0)

    # ------------------------------------------------------------------ training
    def sample_timesteps(self, batch_size: int, device: torch.device | str = "cpu") -> torch.Tensor:
        return torch.randint(0, self.num_train_timesteps, (batch_size,), device=device)

    def _gather(self, values: torch.Tensor, t: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
        v = values.to(like.device)[t.long().to(like.device)].to(like.dtype)
        return v.reshape(-1, *([1] * (like.ndim - 1)))

    def add_noise(self, x0: torch.Tensor, noise: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """``x_t = sqrt(abar_t) x0 + sqrt(1 - abar_t) noise`` with one ``t`` per batch element."""
        abar = self._gather(self.alphas_cumprod, t, x0)
        return abar.sqrt() * x0 + (1.0 - abar).sqrt() * noise

    def training_target(self, x0: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        return noise if self.prediction_type == "epsilon" else x0

    # ------------------------------------------------------------------ sampling
    def timesteps(self, num_inference_steps: int | None = None) -> list[int]:
        """Decreasing timesteps visited by the sampler (evenly spaced, always ending at 0)."""
        n = self.num_train_timesteps if num_inference_steps is None else int(num_inference_steps)
        if not 1 <= n <= self.num_train_timesteps:
            raise ValueError(f"num_inference_steps must be in [1, {self.num_train_timesteps}], got {n}")
        ratio = self.num_train_timesteps // n
        return [int(i * ratio) for i in range(n)][::-1]

    def _abar(self, t: int) -> float:
        return float(self.alphas_cumprod[t]) if t >= 0 else 1.0

    def predict_x0(self, model_output: torch.Tensor, t: int, x_t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(x0, eps) implied by the model output at step ``t`` (x0 clipped if ``clip_sample``)."""
        abar = self._abar(t)
        if self.prediction_type == "epsilon":
            x0 = (x_t - math.sqrt(1.0 - abar) * model_output) / math.sqrt(abar)
        else:
            x0 = model_output
        if self.clip_sample:
            x0 = x0.clamp(-self.clip_sample_range, self.clip_sample_range)
        eps = (x_t - math.sqrt(abar) * x0) / math.sqrt(max(1.0 - abar, 1e-20))
        return x0, eps

    def step(
        self,
        model_output: torch.Tensor,
        t: int,
        t_prev: int,
        x_t: torch.Tensor,
        sampler: str = "ddpm",
        eta: float = 0.0,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """One reverse step ``x_t -> x_{t_prev}`` (``t_prev = -1`` means the clean sample)."""
        if sampler not in SAMPLERS:
            raise ValueError(f"sampler must be one of {SAMPLERS}, got {sampler!r}")
        x0, eps = self.predict_x0(model_output, t, x_t)
        abar_t, abar_prev = self._abar(t), self._abar(t_prev)
        alpha_t = abar_t / abar_prev  # alpha of the (possibly strided) step t_prev -> t
        beta_t = 1.0 - alpha_t
        # posterior variance of q(x_prev | x_t, x0) ("fixed_small")
        var = (1.0 - abar_prev) / (1.0 - abar_t) * beta_t if t > 0 else 0.0
        if sampler == "ddpm":
            coef_x0 = math.sqrt(abar_prev) * beta_t / (1.0 - abar_t)
            coef_xt = math.sqrt(alpha_t) * (1.0 - abar_prev) / (1.0 - abar_t)
            mean = coef_x0 * x0 + coef_xt * x_t
            if var > 0:
                noise = torch.randn(x_t.shape, generator=generator, device=x_t.device, dtype=x_t.dtype)
                mean = mean + math.sqrt(max(var, 1e-20)) * noise
            return mean
        # DDIM (Song et al.): x_prev = sqrt(abar_prev) x0 + sqrt(1 - abar_prev - sigma^2) eps + sigma z
        sigma = eta * math.sqrt(max(var, 0.0))
        direction = math.sqrt(max(1.0 - abar_prev - sigma**2, 0.0)) * eps
        out = math.sqrt(abar_prev) * x0 + direction
        if sigma > 0:
            noise = torch.randn(x_t.shape, generator=generator, device=x_t.device, dtype=x_t.dtype)
            out = out + sigma * noise
        return out

    def sample(
        self,
        model_fn,
        x_T: torch.Tensor,
        num_inference_steps: int | None = None,
        sampler: str = "ddpm",
        eta: float = 0.0,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """Run the reverse chain from ``x_T``; ``model_fn(x_t, t_tensor) -> model output``."""
        ts = self.timesteps(num_inference_steps)
        x = x_T
        for i, t in enumerate(ts):
            t_prev = ts[i + 1] if i + 1 < len(ts) else -1
            t_batch = torch.full((x.shape[0],), t, device=x.device, dtype=torch.long)
            out = model_fn(x, t_batch)
            x = self.step(out, t, t_prev, x, sampler=sampler, eta=eta, generator=generator)
        return x
