"""Diffusion Policy (Chi et al. 2023) as LeRobot 0.6.1 has it: config, policy and processors, with the
DDPM / DDIM schedulers restated so the same seed gives LeRobot's actions."""

from dexloop.policies.diffusion.configuration_diffusion import DiffusionConfig
from dexloop.policies.diffusion.modeling_diffusion import DiffusionPolicy
from dexloop.policies.diffusion.processor_diffusion import make_diffusion_pre_post_processors

__all__ = ["DiffusionConfig", "DiffusionPolicy", "make_diffusion_pre_post_processors"]
