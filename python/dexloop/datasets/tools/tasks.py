"""Changing the tasks of a dataset's episodes in place, with LeRobot 0.6.1's ``modify_tasks`` rules.

Each episode gets one task, resolved by precedence: ``episode_tasks[e]``, else
``task_replacements[its current task]``, else ``new_task``, else its current (first) task. The
tasks become the sorted distinct strings, numbered 0..n-1. Like LeRobot, the tool rewrites
``meta/tasks.parquet``, the ``task_index`` column of every data file, the ``tasks`` column of the
episode metadata and ``total_tasks`` in info.json; unlike LeRobot (whose task_index stats then
describe the old numbering), it also updates the ``task_index`` stats, per episode and in
``meta/stats.json``, to the new values, computed as the recorder computes them.

LeRobot rewrites the files one after the other; here the edited dataset is assembled in a staging
folder beside the dataset (changed files written anew, every other file hard-linked) and swapped in
whole, so an interruption leaves the dataset either as it was or completely edited. The parquet files
keep their schema and row groups; only the changed values differ.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from dexloop.errors import DatasetArgumentError, DatasetError

from ..compute_stats import compute_episode_stats
from ..durable import write_json_atomically
from ..info import EPISODES_DIR, INFO_PATH, STATS_PATH, TASKS_PATH
from ..metadata import LeRobotDatasetMetadata
from ..parquet_files import write_tasks
from ..recording_journal import stats_to_json
from ..stats import aggregate_stats
from .episode_copy import load_source, open_dataset, progress
from .staging import fresh_staging, link_tree, remove_quietly, rewrite_parquet, swap_in


def modify_tasks(
    dataset: Any,
    new_task: str | None = None,
    episode_tasks: Mapping[int, str] | None = None,
    task_replacements: Mapping[str, str] | None = None,
) -> Any:
    """Sets the task of every episode of `dataset` (a LeRobotDataset, its metadata, or a dataset
    root), in place, and returns the dataset reopened as a LeRobotDataset.

    `new_task`: the task of every episode not covered by the other two; `episode_tasks`: tasks of
    given episode indices; `task_replacements`: existing task strings to replace wherever they are
    an episode's task (each must exist). At least one is required (empty values count as absent, as
    in LeRobot)."""
    meta = load_source(dataset)
    episode_to_task = resolve_episode_tasks(meta, new_task, episode_tasks, task_replacements)
    unique_tasks = sorted(set(episode_to_task.values()))
    task_of_episode = np.array(
        [unique_tasks.index(episode_to_task[e]) for e in range(meta.total_episodes)], dtype=np.int64
    )
    root = Path(meta.root)
    episode_files = sorted((root / EPISODES_DIR).glob("*/*.parquet"), key=str)
    data_files = sorted((root / "data").glob("*/*.parquet"), key=str)
    rewritten = {INFO_PATH, TASKS_PATH, STATS_PATH}
    rewritten |= {str(p.relative_to(root)) for p in episode_files + data_files}

    staging = fresh_staging(root, "modify-tasks")
    try:
        link_tree(root, staging, skip=lambda relative: str(relative) in rewritten)
        for path in progress(data_files, desc="updating data files"):
            rewrite_parquet(path, staging / path.relative_to(root), _with_task_index(path, task_of_episode))
        new_stats: list[dict] = []
        for path in progress(episode_files, desc="updating episodes"):
            rewrite_parquet(
                path,
                staging / path.relative_to(root),
                _with_tasks(path, episode_to_task, task_of_episode, meta, new_stats),
            )
        write_tasks(staging / TASKS_PATH, unique_tasks)
        _write_stats(meta, staging, new_stats)
        info = meta.info.to_dict()
        info["total_tasks"] = len(unique_tasks)
        write_json_atomically(staging / INFO_PATH, info)
    except BaseException:
        remove_quietly([staging])
        raise
    swap_in(staging, root)
    return open_dataset(meta.repo_id, root, like=dataset)


def resolve_episode_tasks(
    meta: LeRobotDatasetMetadata,
    new_task: str | None,
    episode_tasks: Mapping[int, str] | None,
    task_replacements: Mapping[str, str] | None,
) -> dict[int, str]:
    """Each episode's task by LeRobot's precedence (episode_tasks > task_replacements > new_task >
    its current first task); errors for bad arguments are DatasetArgumentErrors (ValueErrors)."""
    if not new_task and not episode_tasks and not task_replacements:
        raise DatasetArgumentError(
            "Must specify at least one of new_task, episode_tasks, or task_replacements"
        )
    total = meta.total_episodes
    for what, values in (
        ("new_task", [new_task] if new_task else []),
        ("episode_tasks", list((episode_tasks or {}).values())),
        ("task_replacements", list((task_replacements or {}).values())),
    ):
        for value in values:
            if not isinstance(value, str) or not value:
                raise DatasetArgumentError(f"{what}: tasks must be non-empty strings, got {value!r}")
    if episode_tasks:
        for index in episode_tasks:
            if isinstance(index, bool) or not isinstance(index, (int, np.integer)):
                raise DatasetArgumentError(f"episode_tasks: episode indices must be integers, got {index!r}")
        invalid = sorted(int(i) for i in episode_tasks if not 0 <= int(i) < total)
        if invalid:
            raise DatasetArgumentError(
                f"Invalid episode indices: {invalid} (the dataset has {total} episodes)"
            )
    if task_replacements:
        current = set(meta.tasks.index) if meta.tasks is not None else set()
        unknown = sorted(set(task_replacements) - current)
        if unknown:
            raise DatasetArgumentError(f"Task replacements reference unknown tasks: {unknown}")
    chosen = {int(i): task for i, task in (episode_tasks or {}).items()}
    resolved: dict[int, str] = {}
    for episode, tasks in enumerate(meta.episodes["tasks"]):
        original = tasks[0] if tasks else None
        if episode in chosen:
            resolved[episode] = chosen[episode]
        elif task_replacements and original in task_replacements:
            resolved[episode] = task_replacements[original]
        elif new_task:
            resolved[episode] = new_task
        elif original:
            resolved[episode] = original
        else:
            raise DatasetArgumentError(f"Episode {episode} has no task; provide new_task or episode_tasks")
    return resolved


def _with_task_index(path: Path, task_of_episode: np.ndarray):
    def change(table: pa.Table) -> pa.Table:
        episodes = table.column("episode_index").to_numpy()
        if episodes.size and (episodes.min() < 0 or episodes.max() >= len(task_of_episode)):
            raise DatasetError(
                f"{path}: rows of episode {int(episodes.max())}, which the metadata does not list"
            )
        position = table.schema.get_field_index("task_index")
        new = pa.array(task_of_episode[episodes], type=table.schema.field("task_index").type)
        return table.set_column(position, table.schema.field("task_index"), new)

    return change


def _with_tasks(
    path: Path,
    episode_to_task: Mapping[int, str],
    task_of_episode: np.ndarray,
    meta: LeRobotDatasetMetadata,
    new_stats: list[dict],
):
    def change(table: pa.Table) -> pa.Table:
        episodes = table.column("episode_index").to_pylist()
        tasks = pa.array([[episode_to_task[e]] for e in episodes], type=table.schema.field("tasks").type)
        table = table.set_column(table.schema.get_field_index("tasks"), table.schema.field("tasks"), tasks)
        lengths = table.column("length").to_pylist()
        prefix = "stats/task_index/"
        columns = [name for name in table.column_names if name.startswith(prefix)]
        if not columns:
            return table
        per_episode = [
            compute_episode_stats(
                {"task_index": np.full(length, task_of_episode[e], dtype=np.int64)},
                {"task_index": meta.features["task_index"]},
            )["task_index"]
            for e, length in zip(episodes, lengths, strict=True)
        ]
        new_stats.extend(per_episode)
        for name in columns:
            stat = name.removeprefix(prefix)
            if stat not in per_episode[0]:
                continue
            field = table.schema.field(name)
            values = pa.array([np.asarray(s[stat]).tolist() for s in per_episode])
            table = table.set_column(table.schema.get_field_index(name), field, pc.cast(values, field.type))
        return table

    return change


def _write_stats(meta: LeRobotDatasetMetadata, staging: Path, per_episode: list[dict]) -> None:
    """stats.json with the task_index entry aggregated anew (other entries as they were)."""
    source = Path(meta.root) / STATS_PATH
    if not source.exists():
        return
    try:
        stats = json.loads(source.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise DatasetError(f"{source}: cannot read statistics ({error})") from error
    if per_episode and isinstance(stats, dict) and "task_index" in stats:
        aggregated = stats_to_json(
            {"task_index": aggregate_stats([{"task_index": s} for s in per_episode])["task_index"]}
        )
        stats["task_index"] = {
            name: aggregated["task_index"].get(name, value) for name, value in stats["task_index"].items()
        }
    write_json_atomically(staging / STATS_PATH, stats)
