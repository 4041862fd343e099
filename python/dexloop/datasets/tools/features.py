"""Removing features from a dataset: LeRobot 0.6.1's ``remove_feature``, with its semantics.

The new dataset keeps every episode and file layout. Data files are rewritten without the removed
columns at their own chunk and file index; the videos of the remaining cameras, the episode metadata
files (stats of the removed features included, as LeRobot copies them) and the tasks are copied as
they are; stats.json keeps the remaining features' stats. LeRobot's five default columns cannot be
removed.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from dexloop import hub
from dexloop.errors import DatasetArgumentError

from ..info import DEFAULT_FEATURES, STATS_PATH
from .episode_copy import (
    OutputBuild,
    episode_rows,
    load_source,
    new_info,
    open_dataset,
    progress,
    read_source_table,
    split_by_episode,
)

__all__ = ["remove_feature"]

logger = logging.getLogger(__name__)


def remove_feature(
    dataset: Any,
    feature_names: str | list[str],
    output_dir: str | Path | None = None,
    repo_id: str | None = None,
) -> Any:
    """A new dataset without the features `feature_names` (LeRobot's ``remove_feature``). `repo_id`
    defaults to ``<source repo_id>_modified`` and `output_dir` to ``$HF_LEROBOT_HOME/<repo_id>``,
    which must not exist. Returns the new LeRobotDataset."""
    meta = load_source(dataset)
    names = [feature_names] if isinstance(feature_names, str) else list(feature_names)
    if not names:
        raise DatasetArgumentError("No features to remove")
    for name in names:
        if name not in meta.features:
            raise DatasetArgumentError(
                f"Feature '{name}' not found in dataset {meta.root}; it has {sorted(meta.features)}"
            )
    defaults = [name for name in names if name in DEFAULT_FEATURES]
    if defaults:
        raise DatasetArgumentError(
            f"Cannot remove required features {defaults}: {list(DEFAULT_FEATURES)} stay"
        )
    repo_id = repo_id if repo_id is not None else f"{meta.repo_id}_modified"
    root = Path(output_dir) if output_dir is not None else hub.lerobot_home() / repo_id

    features = {key: value for key, value in meta.features.items() if key not in names}
    info = new_info(meta.info, features)
    rows = episode_rows(meta)
    with OutputBuild(root) as build:
        data_files = sorted({(row["data/chunk_index"], row["data/file_index"]) for row in rows})
        for chunk, file in progress(data_files, "Processing data files"):
            relative = meta.info.data_path.format(chunk_index=chunk, file_index=file)
            table = read_source_table(meta.root / relative)
            build.write_data(relative, info["features"], split_by_episode(table))
        for key in meta.video_keys:
            if key in names:
                continue
            files = sorted(
                {(row[f"videos/{key}/chunk_index"], row[f"videos/{key}/file_index"]) for row in rows}
            )
            for chunk, file in progress(files, f"Copying {key} videos"):
                relative = meta.info.video_path.format(video_key=key, chunk_index=chunk, file_index=file)
                build.copy(meta.root / relative, relative)
        episodes_files = sorted(
            {(row["meta/episodes/chunk_index"], row["meta/episodes/file_index"]) for row in rows}
        )
        for chunk, file in episodes_files:
            relative = f"meta/episodes/chunk-{chunk:03d}/file-{file:03d}.parquet"
            build.copy(meta.root / relative, relative)
        info["total_episodes"] = meta.total_episodes
        info["total_frames"] = meta.total_frames
        info["total_tasks"] = meta.total_tasks
        info["splits"] = meta.info.splits or {"train": f"0:{meta.total_episodes}"}
        stats = None
        if meta.stats is not None and (meta.root / STATS_PATH).exists():
            stats = {key: value for key, value in meta.stats.items() if key in info["features"]}
        build.commit(info, list(meta.tasks.index), stats)
    return open_dataset(repo_id, root, dataset)
