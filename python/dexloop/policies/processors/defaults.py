"""LeRobot's default policy pipelines (``make_default_pre_post_processors``), used by ACT and Diffusion:
pre-processor rename -> to_batch -> device -> normalizer; post-processor unnormalizer -> device (cpu).
The step order is part of the saved format, so it is spelled out here once."""

from __future__ import annotations

from typing import Any

import torch

from dexloop.policies.processors.converters import policy_action_to_transition, transition_to_policy_action
from dexloop.policies.processors.normalize import NormalizerProcessorStep, UnnormalizerProcessorStep
from dexloop.policies.processors.pipeline import PolicyProcessorPipeline
from dexloop.policies.processors.steps import (
    AddBatchDimensionProcessorStep,
    DeviceProcessorStep,
    RenameObservationsProcessorStep,
)
from dexloop.policies.utils import POLICY_POSTPROCESSOR_DEFAULT_NAME, POLICY_PREPROCESSOR_DEFAULT_NAME


def make_default_pre_post_processors(
    config,
    dataset_stats: dict[str, dict[str, Any]] | None = None,
    *,
    normalizer_device: torch.device | str | None = None,
) -> tuple[PolicyProcessorPipeline, PolicyProcessorPipeline]:
    """The (pre-processor, post-processor) pair of a policy ``config`` with ``dataset_stats``."""
    pre = PolicyProcessorPipeline(
        steps=[
            RenameObservationsProcessorStep(rename_map={}),
            AddBatchDimensionProcessorStep(),
            DeviceProcessorStep(device=config.device),
            NormalizerProcessorStep(
                features={**(config.input_features or {}), **(config.output_features or {})},
                norm_map=config.normalization_mapping,
                stats=dataset_stats,
                device=normalizer_device,
            ),
        ],
        name=POLICY_PREPROCESSOR_DEFAULT_NAME,
    )
    post = PolicyProcessorPipeline(
        steps=[
            UnnormalizerProcessorStep(
                features=config.output_features or {},
                norm_map=config.normalization_mapping,
                stats=dataset_stats,
            ),
            DeviceProcessorStep(device="cpu"),
        ],
        name=POLICY_POSTPROCESSOR_DEFAULT_NAME,
        to_transition=policy_action_to_transition,
        to_output=transition_to_policy_action,
    )
    return pre, post
