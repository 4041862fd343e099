"""DDPM and DDIM noise schedulers for Diffusion Policy, restated without the diffusers package.

LeRobot's Diffusion Policy drives its U-Net with diffusers' ``DDPMScheduler`` / ``DDIMScheduler``.
A checkpoint trained there only gives the same actions here when every scheduler coefficient is
computed the same way (same float32 tensors, same order of operations) and every random draw is
the same torch call, with the same shape, in the same order. This module restates the parts of
diffusers 0.39 those schedulers use for LeRobot's settings, operation for operation:

* beta schedules ``linear``, ``scaled_linear``, ``squaredcos_cap_v2`` (the "cosine" schedule of
  Nichol & Dhariwal, computed in Python floats and stored as float32, as diffusers does) and
  ``sigmoid``;
* ``epsilon``, ``sample`` and ``v_prediction`` model outputs, ``clip_sample`` with its range;
* DDPM's ``fixed_small`` / ``fixed_small_log`` / ``fixed_large`` variances;
* ``set_timesteps`` with ``leading`` (the default), ``linspace`` and ``trailing`` spacing;
* ``step`` (DDPM draws one ``torch.randn`` of the model output's shape at every step but the last;
  DDIM draws only when ``eta > 0``) and ``add_noise``.

Learned variances and dynamic thresholding, which LeRobot never configures, are refused with a
typed error instead of being approximated.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from dexloop.errors import PolicyConfigError

_BETA_SCHEDULES = ("linear", "scaled_linear", "squaredcos_cap_v2", "sigmoid")
_PREDICTION_TYPES = ("epsilon", "sample", "v_prediction")
_TIMESTEP_SPACINGS = ("leading", "linspace", "trailing")
_DDPM_VARIANCE_TYPES = ("fixed_small", "fixed_small_log", "fixed_large", "fixed_large_log")


@dataclass
class SchedulerOutput:
    """One denoising step: the less noisy sample and the model's estimate of the clean sample."""

    prev_sample: torch.Tensor
    pred_original_sample: torch.Tensor


def betas_for_alpha_bar(num_diffusion_timesteps: int, max_beta: float = 0.999) -> torch.Tensor:
    """The cosine schedule: beta_i = 1 - abar((i+1)/N) / abar(i/N), capped at ``max_beta``, with
    abar(t) = cos((t + 0.008) / 1.008 * pi / 2) ** 2. Python floats, then one float32 tensor."""

    def alpha_bar(t: float) -> float:
        return math.cos((t + 0.008) / 1.008 * math.pi / 2) ** 2

    betas = []
    for i in range(num_diffusion_timesteps):
        t1 = i / num_diffusion_timesteps
        t2 = (i + 1) / num_diffusion_timesteps
        betas.append(min(1 - alpha_bar(t2) / alpha_bar(t1), max_beta))
    return torch.tensor(betas, dtype=torch.float32)


def _make_betas(
    num_train_timesteps: int, beta_start: float, beta_end: float, beta_schedule: str
) -> torch.Tensor:
    if beta_schedule == "linear":
        return torch.linspace(beta_start, beta_end, num_train_timesteps, dtype=torch.float32)
    if beta_schedule == "scaled_linear":
        return torch.linspace(beta_start**0.5, beta_end**0.5, num_train_timesteps, dtype=torch.float32) ** 2
    if beta_schedule == "squaredcos_cap_v2":
        return betas_for_alpha_bar(num_train_timesteps)
    if beta_schedule == "sigmoid":
        betas = torch.linspace(-6, 6, num_train_timesteps)
        return torch.sigmoid(betas) * (beta_end - beta_start) + beta_start
    raise PolicyConfigError(f"beta_schedule {beta_schedule!r} is not one of {list(_BETA_SCHEDULES)}")


def _randn_like_diffusers(
    shape: tuple[int, ...], generator: torch.Generator | None, device: torch.device, dtype: torch.dtype
) -> torch.Tensor:
    """One ``torch.randn`` as diffusers' ``randn_tensor`` makes it: on the generator's device when a
    CPU generator is given for another device (then moved), otherwise on ``device``."""
    rand_device = device
    if generator is not None and generator.device.type != device.type:
        if generator.device.type != "cpu":
            raise PolicyConfigError(
                f"cannot draw noise for a {device} tensor from a {generator.device.type} generator"
            )
        rand_device = torch.device("cpu")
    return torch.randn(shape, generator=generator, device=rand_device, dtype=dtype).to(device)


class _NoiseScheduler:
    """What DDPM and DDIM share: the schedule, the timesteps, ``add_noise``."""

    def __init__(
        self,
        num_train_timesteps: int,
        beta_start: float,
        beta_end: float,
        beta_schedule: str,
        clip_sample: bool,
        clip_sample_range: float,
        prediction_type: str,
        timestep_spacing: str,
        steps_offset: int,
    ):
        if num_train_timesteps <= 0:
            raise PolicyConfigError(f"num_train_timesteps must be positive, got {num_train_timesteps}")
        if prediction_type not in _PREDICTION_TYPES:
            raise PolicyConfigError(
                f"prediction_type {prediction_type!r} is not one of {list(_PREDICTION_TYPES)}"
            )
        if timestep_spacing not in _TIMESTEP_SPACINGS:
            raise PolicyConfigError(
                f"timestep_spacing {timestep_spacing!r} is not one of {list(_TIMESTEP_SPACINGS)}"
            )
        self.num_train_timesteps = int(num_train_timesteps)
        self.beta_start = beta_start
        self.beta_end = beta_end
        self.beta_schedule = beta_schedule
        self.clip_sample = bool(clip_sample)
        self.clip_sample_range = float(clip_sample_range)
        self.prediction_type = prediction_type
        self.timestep_spacing = timestep_spacing
        self.steps_offset = int(steps_offset)

        self.betas = _make_betas(self.num_train_timesteps, beta_start, beta_end, beta_schedule)
        self.alphas = 1.0 - self.betas
        self.alphas_cumprod = torch.cumprod(self.alphas, dim=0)
        self.init_noise_sigma = 1.0
        self.num_inference_steps: int | None = None
        self.timesteps = torch.from_numpy(
            np.arange(0, self.num_train_timesteps)[::-1].copy().astype(np.int64)
        )

    def __len__(self) -> int:
        return self.num_train_timesteps

    def set_timesteps(self, num_inference_steps: int, device: str | torch.device | None = None) -> None:
        """The descending timesteps to denoise through, spaced as diffusers spaces them."""
        if num_inference_steps is None or num_inference_steps <= 0:
            raise PolicyConfigError(
                f"num_inference_steps must be a positive integer, got {num_inference_steps}"
            )
        if num_inference_steps > self.num_train_timesteps:
            raise PolicyConfigError(
                f"num_inference_steps ({num_inference_steps}) cannot be larger than num_train_timesteps "
                f"({self.num_train_timesteps}): the model only knows that many noise levels"
            )
        self.num_inference_steps = int(num_inference_steps)
        n_train = self.num_train_timesteps
        if self.timestep_spacing == "linspace":
            timesteps = np.linspace(0, n_train - 1, num_inference_steps).round()[::-1].copy().astype(np.int64)
        elif self.timestep_spacing == "leading":
            step_ratio = n_train // self.num_inference_steps
            timesteps = (np.arange(0, num_inference_steps) * step_ratio).round()[::-1].copy().astype(np.int64)
            timesteps += self.steps_offset
        else:  # trailing
            step_ratio = n_train / self.num_inference_steps
            timesteps = np.round(np.arange(n_train, 0, -step_ratio)).astype(np.int64)
            timesteps -= 1
        self.timesteps = torch.from_numpy(timesteps).to(device)

    def scale_model_input(self, sample: torch.Tensor, timestep: int | None = None) -> torch.Tensor:
        return sample

    def add_noise(
        self, original_samples: torch.Tensor, noise: torch.Tensor, timesteps: torch.Tensor
    ) -> torch.Tensor:
        """The forward process: sqrt(abar_t) * x0 + sqrt(1 - abar_t) * noise, per batch item."""
        self.alphas_cumprod = self.alphas_cumprod.to(device=original_samples.device)
        alphas_cumprod = self.alphas_cumprod.to(dtype=original_samples.dtype)
        timesteps = timesteps.to(original_samples.device)

        sqrt_alpha_prod = (alphas_cumprod[timesteps] ** 0.5).flatten()
        while sqrt_alpha_prod.ndim < original_samples.ndim:
            sqrt_alpha_prod = sqrt_alpha_prod.unsqueeze(-1)
        sqrt_one_minus_alpha_prod = ((1 - alphas_cumprod[timesteps]) ** 0.5).flatten()
        while sqrt_one_minus_alpha_prod.ndim < original_samples.ndim:
            sqrt_one_minus_alpha_prod = sqrt_one_minus_alpha_prod.unsqueeze(-1)
        return sqrt_alpha_prod * original_samples + sqrt_one_minus_alpha_prod * noise

    def _clip(self, pred_original_sample: torch.Tensor) -> torch.Tensor:
        if self.clip_sample:
            return pred_original_sample.clamp(-self.clip_sample_range, self.clip_sample_range)
        return pred_original_sample


class DDPMScheduler(_NoiseScheduler):
    """Denoising diffusion probabilistic model sampling (Ho et al. 2020), as diffusers computes it."""

    order = 1

    def __init__(
        self,
        num_train_timesteps: int = 1000,
        beta_start: float = 0.0001,
        beta_end: float = 0.02,
        beta_schedule: str = "linear",
        variance_type: str = "fixed_small",
        clip_sample: bool = True,
        prediction_type: str = "epsilon",
        clip_sample_range: float = 1.0,
        timestep_spacing: str = "leading",
        steps_offset: int = 0,
    ):
        if variance_type not in _DDPM_VARIANCE_TYPES:
            raise PolicyConfigError(
                f"variance_type {variance_type!r} is not one of {list(_DDPM_VARIANCE_TYPES)}"
            )
        super().__init__(
            num_train_timesteps,
            beta_start,
            beta_end,
            beta_schedule,
            clip_sample,
            clip_sample_range,
            prediction_type,
            timestep_spacing,
            steps_offset,
        )
        self.variance_type = variance_type
        self.one = torch.tensor(1.0)

    def previous_timestep(self, timestep: int | torch.Tensor) -> int | torch.Tensor:
        """The timestep after ``timestep`` in the current schedule (-1 after the last)."""
        if self.num_inference_steps:
            index = (self.timesteps == timestep).nonzero(as_tuple=True)[0]
            if index.numel() == 0:
                raise PolicyConfigError(f"timestep {int(timestep)} is not in the scheduler's timesteps")
            index = index[0]
            if index == self.timesteps.shape[0] - 1:
                return torch.tensor(-1)
            return self.timesteps[index + 1]
        return timestep - 1

    def _get_variance(self, t: int | torch.Tensor) -> torch.Tensor:
        prev_t = self.previous_timestep(t)
        alpha_prod_t = self.alphas_cumprod[t]
        alpha_prod_t_prev = self.alphas_cumprod[prev_t] if prev_t >= 0 else self.one
        current_beta_t = 1 - alpha_prod_t / alpha_prod_t_prev
        # The posterior variance (eq. 7 of the DDPM paper), kept away from 0 for the log variants.
        variance = (1 - alpha_prod_t_prev) / (1 - alpha_prod_t) * current_beta_t
        variance = torch.clamp(variance, min=1e-20)
        if self.variance_type == "fixed_small":
            return variance
        if self.variance_type == "fixed_small_log":
            return torch.exp(0.5 * torch.log(variance))
        if self.variance_type == "fixed_large":
            return current_beta_t
        return torch.log(current_beta_t)  # fixed_large_log

    def step(
        self,
        model_output: torch.Tensor,
        timestep: int | torch.Tensor,
        sample: torch.Tensor,
        generator: torch.Generator | None = None,
    ) -> SchedulerOutput:
        """x_t -> x_{t-1}: the posterior mean from the predicted x0, plus fixed-variance noise (one
        ``torch.randn`` of ``model_output``'s shape, drawn at every timestep above 0)."""
        t = timestep
        prev_t = self.previous_timestep(t)

        alpha_prod_t = self.alphas_cumprod[t]
        alpha_prod_t_prev = self.alphas_cumprod[prev_t] if prev_t >= 0 else self.one
        beta_prod_t = 1 - alpha_prod_t
        beta_prod_t_prev = 1 - alpha_prod_t_prev
        current_alpha_t = alpha_prod_t / alpha_prod_t_prev
        current_beta_t = 1 - current_alpha_t

        if self.prediction_type == "epsilon":
            pred_original_sample = (sample - beta_prod_t ** (0.5) * model_output) / alpha_prod_t ** (0.5)
        elif self.prediction_type == "sample":
            pred_original_sample = model_output
        else:  # v_prediction
            pred_original_sample = (alpha_prod_t**0.5) * sample - (beta_prod_t**0.5) * model_output
        pred_original_sample = self._clip(pred_original_sample)

        # Coefficients of x0 and x_t in the posterior mean (eq. 7 of the DDPM paper).
        pred_original_sample_coeff = (alpha_prod_t_prev ** (0.5) * current_beta_t) / beta_prod_t
        current_sample_coeff = current_alpha_t ** (0.5) * beta_prod_t_prev / beta_prod_t
        pred_prev_sample = pred_original_sample_coeff * pred_original_sample + current_sample_coeff * sample

        variance = 0
        if t > 0:
            variance_noise = _randn_like_diffusers(
                tuple(model_output.shape), generator, model_output.device, model_output.dtype
            )
            if self.variance_type == "fixed_small_log":
                variance = self._get_variance(t) * variance_noise
            else:
                variance = (self._get_variance(t) ** 0.5) * variance_noise
        pred_prev_sample = pred_prev_sample + variance
        return SchedulerOutput(prev_sample=pred_prev_sample, pred_original_sample=pred_original_sample)


class DDIMScheduler(_NoiseScheduler):
    """Denoising diffusion implicit model sampling (Song et al. 2020), as diffusers computes it.
    With ``eta = 0`` (what LeRobot uses) sampling is deterministic and draws no noise."""

    order = 1

    def __init__(
        self,
        num_train_timesteps: int = 1000,
        beta_start: float = 0.0001,
        beta_end: float = 0.02,
        beta_schedule: str = "linear",
        clip_sample: bool = True,
        set_alpha_to_one: bool = True,
        steps_offset: int = 0,
        prediction_type: str = "epsilon",
        clip_sample_range: float = 1.0,
        timestep_spacing: str = "leading",
    ):
        super().__init__(
            num_train_timesteps,
            beta_start,
            beta_end,
            beta_schedule,
            clip_sample,
            clip_sample_range,
            prediction_type,
            timestep_spacing,
            steps_offset,
        )
        # The "previous" cumulative alpha of the last step: 1 (a clean sample) unless told otherwise.
        self.final_alpha_cumprod = torch.tensor(1.0) if set_alpha_to_one else self.alphas_cumprod[0]

    def _get_variance(self, timestep, prev_timestep) -> torch.Tensor:
        alpha_prod_t = self.alphas_cumprod[timestep]
        alpha_prod_t_prev = (
            self.alphas_cumprod[prev_timestep] if prev_timestep >= 0 else self.final_alpha_cumprod
        )
        beta_prod_t = 1 - alpha_prod_t
        beta_prod_t_prev = 1 - alpha_prod_t_prev
        return (beta_prod_t_prev / beta_prod_t) * (1 - alpha_prod_t / alpha_prod_t_prev)

    def step(
        self,
        model_output: torch.Tensor,
        timestep: int | torch.Tensor,
        sample: torch.Tensor,
        eta: float = 0.0,
        use_clipped_model_output: bool = False,
        generator: torch.Generator | None = None,
        variance_noise: torch.Tensor | None = None,
    ) -> SchedulerOutput:
        """x_t -> x_{t - T/n} by the DDIM update (eq. 12 of the DDIM paper)."""
        if self.num_inference_steps is None:
            raise PolicyConfigError("DDIMScheduler.step needs set_timesteps(num_inference_steps) first")
        prev_timestep = timestep - self.num_train_timesteps // self.num_inference_steps

        alpha_prod_t = self.alphas_cumprod[timestep]
        alpha_prod_t_prev = (
            self.alphas_cumprod[prev_timestep] if prev_timestep >= 0 else self.final_alpha_cumprod
        )
        beta_prod_t = 1 - alpha_prod_t

        if self.prediction_type == "epsilon":
            pred_original_sample = (sample - beta_prod_t ** (0.5) * model_output) / alpha_prod_t ** (0.5)
            pred_epsilon = model_output
        elif self.prediction_type == "sample":
            pred_original_sample = model_output
            pred_epsilon = (sample - alpha_prod_t ** (0.5) * pred_original_sample) / beta_prod_t ** (0.5)
        else:  # v_prediction
            pred_original_sample = (alpha_prod_t**0.5) * sample - (beta_prod_t**0.5) * model_output
            pred_epsilon = (alpha_prod_t**0.5) * model_output + (beta_prod_t**0.5) * sample
        pred_original_sample = self._clip(pred_original_sample)

        variance = self._get_variance(timestep, prev_timestep)
        std_dev_t = eta * variance ** (0.5)
        if use_clipped_model_output:
            pred_epsilon = (sample - alpha_prod_t ** (0.5) * pred_original_sample) / beta_prod_t ** (0.5)

        pred_sample_direction = (1 - alpha_prod_t_prev - std_dev_t**2) ** (0.5) * pred_epsilon
        prev_sample = alpha_prod_t_prev ** (0.5) * pred_original_sample + pred_sample_direction

        if eta > 0:
            if variance_noise is not None and generator is not None:
                raise PolicyConfigError(
                    "pass either a generator or variance_noise to DDIMScheduler.step, not both"
                )
            if variance_noise is None:
                variance_noise = _randn_like_diffusers(
                    tuple(model_output.shape), generator, model_output.device, model_output.dtype
                )
            prev_sample = prev_sample + std_dev_t * variance_noise
        return SchedulerOutput(prev_sample=prev_sample, pred_original_sample=pred_original_sample)


def make_noise_scheduler(name: str, **kwargs) -> DDPMScheduler | DDIMScheduler:
    """The scheduler LeRobot's ``noise_scheduler_type`` names ("DDPM" or "DDIM")."""
    if name == "DDPM":
        return DDPMScheduler(**kwargs)
    if name == "DDIM":
        return DDIMScheduler(**kwargs)
    raise PolicyConfigError(f"noise_scheduler_type {name!r} is not one of ['DDPM', 'DDIM']")


__all__ = ["DDIMScheduler", "DDPMScheduler", "SchedulerOutput", "betas_for_alpha_bar", "make_noise_scheduler"]
