"""Keeping some episodes of a dataset in a new one: LeRobot 0.6.1's ``delete_episodes`` and
``split_dataset``, with its semantics.

The kept episodes are renumbered 0..n-1 in their old order, ``index`` counts the kept frames from 0,
and the tasks become those the kept episodes use (in the source's task order) with ``task_index``
renumbered. Each source data or video file holding kept episodes becomes the file of the same chunk
and file index in the new dataset: byte-copied when it keeps all its episodes (its timestamps stay),
otherwise rewritten with only the kept episodes (video: stream-copied, the episodes' timestamps then
counting from 0). Per-episode stats are copied as they are, and the dataset stats re-aggregated from
them. ``delete_episodes`` writes LeRobot's default file limits; ``split_dataset`` keeps the source's.
"""

from __future__ import annotations

import logging
import math
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from dexloop import hub
from dexloop.errors import DatasetArgumentError, DatasetError, DatasetExistsError, DatasetIndexError

from ..metadata import LeRobotDatasetMetadata
from .episode_copy import (
    OutputBuild,
    aggregated_stats,
    episode_rows,
    episode_stats,
    load_source,
    new_info,
    open_dataset,
    progress,
    read_source_table,
    renumbered,
    rows_of_episodes,
    split_by_episode,
)

__all__ = ["delete_episodes", "split_dataset"]

logger = logging.getLogger(__name__)


def _check_indices(meta: LeRobotDatasetMetadata, indices: Sequence[Any], what: str) -> list[int]:
    checked = []
    for index in indices:
        if isinstance(index, bool) or not hasattr(index, "__index__"):
            raise DatasetArgumentError(f"{what}: episode indices must be integers, got {index!r}")
        checked.append(int(index))
    invalid = sorted({i for i in checked if not 0 <= i < meta.total_episodes})
    if invalid:
        raise DatasetIndexError(
            f"{what}: invalid episode indices {invalid}; {meta.root} has episodes 0..{meta.total_episodes - 1}"
        )
    duplicated = sorted({i for i in checked if checked.count(i) > 1})
    if duplicated:
        raise DatasetArgumentError(f"{what}: episode indices given more than once: {duplicated}")
    return checked


def write_kept_episodes(
    meta: LeRobotDatasetMetadata,
    keep: Sequence[int],
    output_dir: Path,
    *,
    chunk_settings: Mapping[str, Any] | None = None,
) -> None:
    """Writes the dataset made of `keep` (sorted source episode indices) at `output_dir`."""
    rows = episode_rows(meta)
    mapping = {old: new for new, old in enumerate(keep)}
    info = new_info(meta.info, meta.features, **(chunk_settings or {}))

    # The tasks the kept episodes use, in the source's order.
    used = {task for old in keep for task in rows[old]["tasks"]}
    source_tasks = list(meta.tasks.index)
    tasks = [task for task in source_tasks if task in used]
    task_map = {source_tasks.index(task): new for new, task in enumerate(tasks)}

    with OutputBuild(output_dir) as build:
        new_rows: dict[int, dict[str, Any]] = {
            mapping[old]: {
                "episode_index": mapping[old],
                "tasks": rows[old]["tasks"],
                "length": rows[old]["length"],
            }
            for old in keep
        }
        # Data: each source file holding kept episodes, at its own chunk and file index.
        by_file: dict[tuple[int, int], list[int]] = {}
        for old in keep:
            by_file.setdefault((rows[old]["data/chunk_index"], rows[old]["data/file_index"]), []).append(old)
        global_index = 0
        for (chunk, file), olds in progress(sorted(by_file.items()), "Processing data files"):
            relative = meta.info.data_path.format(chunk_index=chunk, file_index=file)
            table = rows_of_episodes(read_source_table(meta.root / relative), olds)
            table = renumbered(table, mapping, global_index, task_map, meta.root / relative)
            parts = split_by_episode(table)
            build.write_data(relative, info["features"], parts)
            for part in parts:
                new = int(part.column("episode_index")[0].as_py())
                if part.num_rows != rows[keep[new]]["length"]:
                    raise DatasetError(
                        f"{meta.root / relative}: episode {keep[new]} has {part.num_rows} rows where "
                        f"meta/episodes says {rows[keep[new]]['length']}"
                    )
                new_rows[new].update(
                    {
                        "data/chunk_index": chunk,
                        "data/file_index": file,
                        "dataset_from_index": global_index,
                        "dataset_to_index": global_index + part.num_rows,
                    }
                )
                global_index += part.num_rows

        missing = [keep[new] for new, row in new_rows.items() if "data/chunk_index" not in row]
        if missing:
            raise DatasetError(f"{meta.root}: the data files hold no rows of episodes {missing}")

        # Videos: byte copies of files whose episodes are all kept, stream copies of the others.
        for key in meta.video_keys:
            files: dict[tuple[int, int], list[int]] = {}
            for row in rows:
                files.setdefault(
                    (row[f"videos/{key}/chunk_index"], row[f"videos/{key}/file_index"]), []
                ).append(row["episode_index"])
            kept_files: dict[tuple[int, int], list[int]] = {}
            for old in keep:
                kept_files.setdefault(
                    (rows[old][f"videos/{key}/chunk_index"], rows[old][f"videos/{key}/file_index"]), []
                ).append(old)
            for (chunk, file), olds in progress(sorted(kept_files.items()), f"Processing {key} video files"):
                relative = meta.info.video_path.format(video_key=key, chunk_index=chunk, file_index=file)
                source = meta.root / relative
                if set(files[(chunk, file)]) == set(olds):
                    build.copy(source, relative)
                    spans = [
                        (rows[old][f"videos/{key}/from_timestamp"], rows[old][f"videos/{key}/to_timestamp"])
                        for old in olds
                    ]
                else:
                    segments = [
                        (
                            source,
                            rows[old][f"videos/{key}/from_timestamp"],
                            rows[old][f"videos/{key}/to_timestamp"],
                            int(rows[old]["length"]),
                        )
                        for old in olds
                    ]
                    spans = build.write_video(relative, segments, meta.features[key].get("info"), meta.fps)
                for old, (start, end) in zip(olds, spans, strict=True):
                    new_rows[mapping[old]].update(
                        {
                            f"videos/{key}/chunk_index": chunk,
                            f"videos/{key}/file_index": file,
                            f"videos/{key}/from_timestamp": start,
                            f"videos/{key}/to_timestamp": end,
                        }
                    )

        # Episode metadata: the source's per-episode stats, unchanged.
        all_stats = []
        for old in progress(keep, "Processing episodes metadata"):
            row = new_rows[mapping[old]]
            stats_columns = {name: value for name, value in rows[old].items() if name.startswith("stats/")}
            row.update(stats_columns)
            all_stats.append(episode_stats(stats_columns))
            build.add_episode(row, info["data_files_size_in_mb"], info["chunks_size"])

        info["total_episodes"] = len(keep)
        info["total_frames"] = global_index
        info["total_tasks"] = len(tasks)
        info["splits"] = {"train": f"0:{len(keep)}"}
        build.commit(info, tasks, aggregated_stats(all_stats, info["features"]))


def delete_episodes(
    dataset: Any,
    episode_indices: Sequence[int],
    output_dir: str | Path | None = None,
    repo_id: str | None = None,
) -> Any:
    """A new dataset without the episodes `episode_indices` (LeRobot's ``delete_episodes``): the
    others renumbered in order. `repo_id` defaults to ``<source repo_id>_modified`` and `output_dir`
    to ``$HF_LEROBOT_HOME/<repo_id>``, which must not exist. Returns the new LeRobotDataset."""
    meta = load_source(dataset)
    if not episode_indices:
        raise DatasetArgumentError("No episodes to delete")
    delete = set(_check_indices(meta, list(episode_indices), "delete_episodes"))
    keep = [i for i in range(meta.total_episodes) if i not in delete]
    if not keep:
        raise DatasetArgumentError(f"Cannot delete all episodes from dataset {meta.root}")
    repo_id = repo_id if repo_id is not None else f"{meta.repo_id}_modified"
    root = Path(output_dir) if output_dir is not None else hub.lerobot_home() / repo_id
    logger.info("Deleting %d episodes from %s", len(delete), meta.root)
    write_kept_episodes(meta, keep, root)
    return open_dataset(repo_id, root, dataset)


def fractions_to_episode_indices(total_episodes: int, splits: Mapping[str, float]) -> dict[str, list[int]]:
    """LeRobot's split of episodes 0..n-1 by fractions: int(n * fraction) consecutive episodes per
    split in order, the last split taking the rest; a split of no episode is skipped."""
    if sum(splits.values()) > 1.0:
        raise DatasetArgumentError(f"Split fractions must sum to <= 1.0, got {dict(splits)}")
    result, start = {}, 0
    names = list(splits)
    for name, fraction in splits.items():
        if not math.isfinite(fraction) or fraction < 0:
            raise DatasetArgumentError(f"split {name!r}: a fraction must be between 0 and 1, got {fraction}")
        count = int(total_episodes * fraction)
        if count == 0:
            logger.warning("Split '%s' has no episodes, skipping...", name)
            continue
        end = total_episodes if name == names[-1] else start + count
        result[name] = list(range(start, end))
        start = end
    return result


def split_dataset(
    dataset: Any,
    splits: Mapping[str, float | Sequence[int]],
    output_dir: str | Path | None = None,
) -> dict[str, Any]:
    """New datasets, one per split (LeRobot's ``split_dataset``): `splits` maps each name to episode
    indices or to a fraction of the episodes (all fractions, summing to at most 1). Split `name` is
    written at ``<output_dir>/<name>`` (default ``$HF_LEROBOT_HOME/<repo_id>_<name>``) with the
    source's file limits. Returns {name: LeRobotDataset}; on failure no split is left behind."""
    meta = load_source(dataset)
    if not splits:
        raise DatasetArgumentError("No splits provided")
    if all(isinstance(value, float) for value in splits.values()):
        splits = fractions_to_episode_indices(meta.total_episodes, splits)  # type: ignore[arg-type]
    seen: set[int] = set()
    checked: dict[str, list[int]] = {}
    for name, episodes in splits.items():
        if isinstance(episodes, (int, float)) or not episodes:
            raise DatasetArgumentError(
                f"Split '{name}' has no episodes (give a list of indices or fractions)"
            )
        indices = _check_indices(meta, list(episodes), f"split {name!r}")
        if seen & set(indices):
            raise DatasetArgumentError(
                f"Episodes cannot appear in multiple splits: {sorted(seen & set(indices))} in {name!r}"
            )
        seen.update(indices)
        checked[name] = sorted(indices)
    roots = {
        name: Path(output_dir) / name
        if output_dir is not None
        else hub.lerobot_home() / f"{meta.repo_id}_{name}"
        for name in checked
    }
    for root in roots.values():
        if root.exists():
            raise DatasetExistsError(
                f"{root}: the output folder already exists; the dataset tools never overwrite one"
            )
    settings = {
        "chunks_size": meta.chunks_size,
        "data_files_size_in_mb": meta.data_files_size_in_mb,
        "video_files_size_in_mb": meta.video_files_size_in_mb,
    }
    written: list[Path] = []
    try:
        for name, episodes in checked.items():
            logger.info("Creating split '%s' with %d episodes", name, len(episodes))
            write_kept_episodes(meta, episodes, roots[name], chunk_settings=settings)
            written.append(roots[name])
    except BaseException:
        for root in written:
            shutil.rmtree(root, ignore_errors=True)
        raise
    return {name: open_dataset(f"{meta.repo_id}_{name}", roots[name], dataset) for name in checked}
