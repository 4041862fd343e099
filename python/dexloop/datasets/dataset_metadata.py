"""LeRobot's module path for the metadata class (``lerobot.datasets.dataset_metadata``), so that code
written for LeRobot runs with ``dexloop.datasets`` in place of ``lerobot.datasets``."""

from .info import CODEBASE_VERSION
from .metadata import EpisodeTable, LeRobotDatasetMetadata

__all__ = ["CODEBASE_VERSION", "EpisodeTable", "LeRobotDatasetMetadata"]
