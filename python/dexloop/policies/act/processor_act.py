"""ACT's processor pipelines: LeRobot's defaults. Pre-processor rename -> to_batch -> device ->
normalizer (its statistics on the policy's device); post-processor unnormalizer -> device (cpu)."""

from __future__ import annotations

from typing import Any

from dexloop.policies.act.configuration_act import ACTConfig
from dexloop.policies.processors import PolicyProcessorPipeline, make_default_pre_post_processors


def make_act_pre_post_processors(
    config: ACTConfig,
    dataset_stats: dict[str, dict[str, Any]] | None = None,
) -> tuple[PolicyProcessorPipeline, PolicyProcessorPipeline]:
    """The (pre-processor, post-processor) of an ACT policy normalising with ``dataset_stats``."""
    return make_default_pre_post_processors(config, dataset_stats, normalizer_device=config.device)
