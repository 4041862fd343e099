"""LeRobot datasets (codebase_version v3.0 and v2.1) read through dexloop's native core."""

from .info import CODEBASE_VERSION, DatasetInfo
from .lerobot_dataset import LeRobotDataset
from .metadata import EpisodeTable, LeRobotDatasetMetadata

__all__ = ["CODEBASE_VERSION", "DatasetInfo", "EpisodeTable", "LeRobotDataset", "LeRobotDatasetMetadata"]
