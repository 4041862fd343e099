"""LeRobot datasets (codebase_version v3.0 and v2.1) read through dexloop's native core.

Module paths mirror LeRobot's (``lerobot.datasets.X`` -> ``dexloop.datasets.X``: ``lerobot_dataset``,
``dataset_metadata``, ``sampler``, ``multi_dataset``), so LeRobot code runs by swapping the prefix.
"""

from .info import CODEBASE_VERSION, DatasetInfo
from .lerobot_dataset import LeRobotDataset
from .metadata import EpisodeTable, LeRobotDatasetMetadata
from .multi_dataset import MultiLeRobotDataset
from .sampler import EpisodeAwareSampler
from .streaming_dataset import StreamingLeRobotDataset

__all__ = [
    "CODEBASE_VERSION",
    "DatasetInfo",
    "EpisodeAwareSampler",
    "EpisodeTable",
    "LeRobotDataset",
    "LeRobotDatasetMetadata",
    "MultiLeRobotDataset",
    "StreamingLeRobotDataset",
]
