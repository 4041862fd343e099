"""Diffusion Policy's processor pipelines (LeRobot's ``make_diffusion_pre_post_processors``).

Diffusion uses LeRobot's default pair, and saves it under the same file names:
pre-processor rename -> to_batch -> device -> normalizer (state and actions MIN_MAX to [-1, 1], images
MEAN_STD, per ``normalization_mapping``); post-processor unnormalizer -> device (cpu).
"""

from __future__ import annotations

from typing import Any

from dexloop.policies.diffusion.configuration_diffusion import DiffusionConfig
from dexloop.policies.processors import PolicyProcessorPipeline, make_default_pre_post_processors


def make_diffusion_pre_post_processors(
    config: DiffusionConfig,
    dataset_stats: dict[str, dict[str, Any]] | None = None,
) -> tuple[PolicyProcessorPipeline, PolicyProcessorPipeline]:
    """The (pre-processor, post-processor) pipelines of a Diffusion Policy with ``dataset_stats``
    (``{feature: {"min"/"max"/"mean"/"std"/...: tensor}}``)."""
    return make_default_pre_post_processors(config, dataset_stats)


__all__ = ["make_diffusion_pre_post_processors"]
