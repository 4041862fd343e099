"""LeRobot's processor pipelines for policies: the steps that rename, batch, move and normalise a
policy's inputs and unnormalise its outputs, saved and loaded in LeRobot's json + safetensors files."""

from dexloop.policies.processors.converters import (
    EnvTransition,
    PolicyAction,
    TransitionKey,
    batch_to_transition,
    create_transition,
    policy_action_to_transition,
    transition_to_batch,
    transition_to_policy_action,
)
from dexloop.policies.processors.defaults import make_default_pre_post_processors
from dexloop.policies.processors.normalize import (
    NormalizerProcessorStep,
    UnnormalizerProcessorStep,
    hotswap_stats,
)
from dexloop.policies.processors.pipeline import (
    DataProcessorPipeline,
    PolicyProcessorPipeline,
    ProcessorStep,
    ProcessorStepRegistry,
    RobotProcessorPipeline,
)
from dexloop.policies.processors.steps import (
    AddBatchDimensionProcessorStep,
    DeviceProcessorStep,
    RenameObservationsProcessorStep,
)

__all__ = [
    "AddBatchDimensionProcessorStep",
    "DataProcessorPipeline",
    "DeviceProcessorStep",
    "EnvTransition",
    "NormalizerProcessorStep",
    "PolicyAction",
    "PolicyProcessorPipeline",
    "ProcessorStep",
    "ProcessorStepRegistry",
    "RenameObservationsProcessorStep",
    "RobotProcessorPipeline",
    "TransitionKey",
    "UnnormalizerProcessorStep",
    "batch_to_transition",
    "create_transition",
    "hotswap_stats",
    "make_default_pre_post_processors",
    "policy_action_to_transition",
    "transition_to_batch",
    "transition_to_policy_action",
]
