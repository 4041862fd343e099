"""The denoising loop of an exported Diffusion Policy, in numpy: DDPM and DDIM as diffusers computes
them (the arithmetic of dexloop.policies.diffusion.schedulers), around a denoiser graph called once per
step. The number of steps is chosen at run time; the initial noise and, for DDPM, the noise added at
each step are inputs (or drawn from a seeded numpy generator), so a run can be reproduced exactly.

The schedule comes from the export manifest's ``scheduler`` entry: the type, the cumulative alphas of
the training schedule (computed by the torch scheduler at export, float32), prediction type,
clipping, timestep spacing, steps offset, DDPM's variance type and DDIM's ``set_alpha_to_one``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from dexloop.errors import InferenceError, InferenceInputError

Denoiser = Callable[[np.ndarray, np.ndarray], np.ndarray]  # (sample, timesteps (B,) int64) -> output
NoiseSource = Callable[[tuple[int, ...]], np.ndarray]  # shape -> standard normal draws


def default_noise_source(seed: int | None = None) -> NoiseSource:
    """Standard normal float32 draws from a numpy generator (seeded for reproducible runs)."""
    rng = np.random.default_rng(seed)
    return lambda shape: rng.standard_normal(shape, dtype=F32)


F32 = np.float32


def scheduler_manifest(scheduler: Any, config: Any) -> dict[str, Any]:
    """The manifest entry of a torch DDPM/DDIM scheduler (dexloop.policies.diffusion.schedulers)."""
    entry = {
        "type": config.noise_scheduler_type,
        "num_train_timesteps": scheduler.num_train_timesteps,
        "alphas_cumprod": [float(a) for a in scheduler.alphas_cumprod],
        "prediction_type": scheduler.prediction_type,
        "clip_sample": scheduler.clip_sample,
        "clip_sample_range": scheduler.clip_sample_range,
        "timestep_spacing": scheduler.timestep_spacing,
        "steps_offset": scheduler.steps_offset,
        "num_inference_steps": config.num_inference_steps or scheduler.num_train_timesteps,
    }
    if entry["type"] == "DDPM":
        entry["variance_type"] = scheduler.variance_type
    else:
        entry["final_alpha_cumprod"] = float(scheduler.final_alpha_cumprod)
    return entry


class DiffusionSampler:
    """DDPM / DDIM sampling with a denoiser callable (see the module docstring)."""

    def __init__(self, entry: dict[str, Any]) -> None:
        self.type = entry["type"]
        if self.type not in ("DDPM", "DDIM"):
            raise InferenceError(f"noise scheduler {self.type!r}: the runtime samples with DDPM or DDIM")
        self.num_train_timesteps = int(entry["num_train_timesteps"])
        self.alphas_cumprod = np.asarray(entry["alphas_cumprod"], dtype=F32)
        if self.alphas_cumprod.shape != (self.num_train_timesteps,):
            raise InferenceError(
                f"scheduler: {self.alphas_cumprod.shape[0]} cumulative alphas for {self.num_train_timesteps} timesteps"
            )
        self.prediction_type = entry["prediction_type"]
        self.clip_sample = bool(entry["clip_sample"])
        self.clip_sample_range = float(entry["clip_sample_range"])
        self.timestep_spacing = entry["timestep_spacing"]
        self.steps_offset = int(entry["steps_offset"])
        self.default_steps = int(entry["num_inference_steps"])
        self.variance_type = entry.get("variance_type", "fixed_small")
        self.final_alpha_cumprod = F32(entry.get("final_alpha_cumprod", 1.0))

    def timesteps(self, num_inference_steps: int) -> np.ndarray:
        """The descending timesteps of ``num_inference_steps`` steps, spaced as diffusers spaces them."""
        n_train = self.num_train_timesteps
        if not 0 < num_inference_steps <= n_train:
            raise InferenceInputError(
                f"num_inference_steps must be between 1 and {n_train} (the training schedule), got {num_inference_steps}"
            )
        if self.timestep_spacing == "linspace":
            return np.linspace(0, n_train - 1, num_inference_steps).round()[::-1].copy().astype(np.int64)
        if self.timestep_spacing == "leading":
            ratio = n_train // num_inference_steps
            return (np.arange(0, num_inference_steps) * ratio).round()[::-1].copy().astype(
                np.int64
            ) + self.steps_offset
        ratio = n_train / num_inference_steps
        return np.round(np.arange(n_train, 0, -ratio)).astype(np.int64) - 1

    def n_step_noises(self, num_inference_steps: int) -> int:
        """How many per-step noise draws a run takes (DDPM: one per timestep above 0; DDIM: none)."""
        if self.type == "DDIM":
            return 0
        return int((self.timesteps(num_inference_steps) > 0).sum())

    def _x0(
        self, output: np.ndarray, sample: np.ndarray, alpha_prod_t: np.float32
    ) -> tuple[np.ndarray, np.ndarray]:
        beta_prod_t = F32(1) - alpha_prod_t
        if self.prediction_type == "epsilon":
            x0 = (sample - beta_prod_t ** F32(0.5) * output) / alpha_prod_t ** F32(0.5)
            eps = output
        elif self.prediction_type == "sample":
            x0 = output
            eps = (sample - alpha_prod_t ** F32(0.5) * x0) / beta_prod_t ** F32(0.5)
        else:  # v_prediction
            x0 = alpha_prod_t ** F32(0.5) * sample - beta_prod_t ** F32(0.5) * output
            eps = alpha_prod_t ** F32(0.5) * output + beta_prod_t ** F32(0.5) * sample
        if self.clip_sample:
            x0 = np.clip(x0, -self.clip_sample_range, self.clip_sample_range)
        return x0.astype(F32), eps

    def sample(
        self,
        denoise: Denoiser,
        noise: np.ndarray,
        num_inference_steps: int | None = None,
        step_noise: np.ndarray | None = None,
        noise_fn: NoiseSource | None = None,
    ) -> np.ndarray:
        """Denoises ``noise`` ``(B, horizon, action_dim)`` in ``num_inference_steps`` steps (default:
        the policy's). DDPM adds ``step_noise[i]`` at its i-th noisy step (``step_noise`` of shape
        ``(n_step_noises, *noise.shape)``), else a draw of ``noise_fn(shape)`` (default: numpy's
        generator), one per noisy step in order, as the torch scheduler draws them."""
        steps = self.default_steps if num_inference_steps is None else int(num_inference_steps)
        timesteps = self.timesteps(steps)
        sample = np.asarray(noise, dtype=F32)
        needed = self.n_step_noises(steps)
        if step_noise is not None:
            step_noise = np.asarray(step_noise, dtype=F32)
            if step_noise.shape != (needed, *sample.shape):
                raise InferenceInputError(
                    f"step_noise: shape {step_noise.shape}, {self.type} with {steps} steps takes {(needed, *sample.shape)}"
                )
        else:
            noise_fn = noise_fn or default_noise_source()
        batch = sample.shape[0]
        drawn = 0
        for index, t in enumerate(timesteps):
            output = np.asarray(denoise(sample, np.full((batch,), t, dtype=np.int64)), dtype=F32)
            alpha_prod_t = self.alphas_cumprod[t]
            if self.type == "DDPM":
                prev_t = timesteps[index + 1] if index + 1 < len(timesteps) else -1
                alpha_prod_t_prev = self.alphas_cumprod[prev_t] if prev_t >= 0 else F32(1)
                beta_prod_t = F32(1) - alpha_prod_t
                beta_prod_t_prev = F32(1) - alpha_prod_t_prev
                current_alpha_t = alpha_prod_t / alpha_prod_t_prev
                current_beta_t = F32(1) - current_alpha_t
                x0, _ = self._x0(output, sample, alpha_prod_t)
                x0_coeff = (alpha_prod_t_prev ** F32(0.5) * current_beta_t) / beta_prod_t
                sample_coeff = current_alpha_t ** F32(0.5) * beta_prod_t_prev / beta_prod_t
                prev = x0_coeff * x0 + sample_coeff * sample
                if t > 0:
                    variance = max(
                        (F32(1) - alpha_prod_t_prev) / (F32(1) - alpha_prod_t) * current_beta_t, F32(1e-20)
                    )
                    if self.variance_type == "fixed_small":
                        scale = variance ** F32(0.5)
                    elif self.variance_type == "fixed_small_log":
                        scale = np.exp(F32(0.5) * np.log(variance))
                    elif self.variance_type == "fixed_large":
                        scale = current_beta_t ** F32(0.5)
                    else:  # fixed_large_log
                        scale = np.log(current_beta_t) ** F32(0.5)
                    draw = step_noise[drawn] if step_noise is not None else noise_fn(sample.shape)
                    prev = prev + F32(scale) * np.asarray(draw, dtype=F32)
                    drawn += 1
                sample = prev.astype(F32)
            else:
                prev_t = t - self.num_train_timesteps // steps
                alpha_prod_t_prev = self.alphas_cumprod[prev_t] if prev_t >= 0 else self.final_alpha_cumprod
                x0, eps = self._x0(output, sample, alpha_prod_t)
                direction = (F32(1) - alpha_prod_t_prev) ** F32(0.5) * eps
                sample = (alpha_prod_t_prev ** F32(0.5) * x0 + direction).astype(F32)
        return sample


__all__ = ["DiffusionSampler", "NoiseSource", "default_noise_source", "scheduler_manifest"]
