"""Operations on whole LeRobot datasets, as Python functions (``dexloop dataset <op>`` is their command
line): editing episodes, features and tasks, merging, splitting, converting v2.1 to v3.0, recomputing
stats, visualizing. Each writes a complete new dataset (or replaces the old one only once the new one is
complete), so a failure never damages what was already saved."""

from .convert_v21 import convert_dataset_v21_to_v30 as convert_dataset_v21_to_v30
from .episodes import delete_episodes as delete_episodes
from .episodes import split_dataset as split_dataset
from .features import remove_feature as remove_feature
from .merge import merge_datasets as merge_datasets
from .stats import recompute_stats as recompute_stats
from .tasks import modify_tasks as modify_tasks
from .visualize import visualize_dataset as visualize_dataset
