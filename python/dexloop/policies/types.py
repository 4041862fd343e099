"""Feature and normalisation vocabularies of LeRobot policies (LeRobot's ``lerobot.configs.types``).

The enums subclass ``str`` with the member names as values, so config.json and the processor json
files hold them as plain strings ("VISUAL", "MEAN_STD") exactly as LeRobot writes them.
"""

from dataclasses import dataclass
from enum import Enum


class FeatureType(str, Enum):
    """What a policy input or output is: decides its normalisation mode and its role in the model."""

    STATE = "STATE"
    VISUAL = "VISUAL"
    ENV = "ENV"
    ACTION = "ACTION"
    REWARD = "REWARD"
    LANGUAGE = "LANGUAGE"


class PipelineFeatureType(str, Enum):
    """The two halves of a transition a processor step may change the features of."""

    ACTION = "ACTION"
    OBSERVATION = "OBSERVATION"


class NormalizationMode(str, Enum):
    """How a feature is scaled before the model (and back after it), from its dataset statistics:
    MEAN_STD (x - mean) / (std + eps); MIN_MAX to [-1, 1] from min/max; QUANTILES from q01/q99;
    QUANTILE10 from q10/q90; IDENTITY leaves it as it is."""

    MIN_MAX = "MIN_MAX"
    MEAN_STD = "MEAN_STD"
    IDENTITY = "IDENTITY"
    QUANTILES = "QUANTILES"
    QUANTILE10 = "QUANTILE10"


@dataclass
class PolicyFeature:
    """One policy input or output: its type and its shape without the batch dimension (images are
    channels first, ``(C, H, W)``)."""

    type: FeatureType
    shape: tuple[int, ...]


__all__ = ["FeatureType", "NormalizationMode", "PipelineFeatureType", "PolicyFeature"]
