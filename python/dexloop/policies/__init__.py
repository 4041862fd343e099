"""Policies: ACT and Diffusion Policy with LeRobot 0.6.1's configs, checkpoints and processors.

Exports as ``lerobot.policies`` does: the config classes, ``PreTrainedPolicy`` and the factory
functions. The policy modules themselves (``ACTPolicy``, ``DiffusionPolicy``) import on first use.
"""

import importlib

from dexloop.policies.act.configuration_act import ACTConfig
from dexloop.policies.config import PreTrainedConfig
from dexloop.policies.factory import (
    available_policies,
    dataset_to_policy_features,
    get_policy_class,
    make_policy,
    make_policy_config,
    make_pre_post_processors,
)
from dexloop.policies.pretrained import PreTrainedPolicy
from dexloop.policies.types import FeatureType, NormalizationMode, PolicyFeature

_LAZY = {
    "ACTPolicy": "dexloop.policies.act.modeling_act",
    "DiffusionConfig": "dexloop.policies.diffusion.configuration_diffusion",
    "DiffusionPolicy": "dexloop.policies.diffusion.modeling_diffusion",
}


def __getattr__(name: str):
    if name in _LAZY:
        try:
            module = importlib.import_module(_LAZY[name])
        except ModuleNotFoundError as error:
            raise AttributeError(f"dexloop.policies.{name} is not available ({error})") from error
        return getattr(module, name)
    raise AttributeError(f"module 'dexloop.policies' has no attribute {name!r}")


__all__ = [
    "ACTConfig",
    "ACTPolicy",
    "DiffusionConfig",
    "DiffusionPolicy",
    "FeatureType",
    "NormalizationMode",
    "PolicyFeature",
    "PreTrainedConfig",
    "PreTrainedPolicy",
    "available_policies",
    "dataset_to_policy_features",
    "get_policy_class",
    "make_policy",
    "make_policy_config",
    "make_pre_post_processors",
]
