"""Merging datasets into one: LeRobot 0.6.1's ``merge_datasets`` (``aggregate_datasets``), with its
semantics.

The sources must agree on fps, robot_type and features (a video's encoder settings aside: those are
kept where every source agrees, else set to null). Episodes follow each other in source order,
``episode_index``, ``index`` and ``task_index`` renumbered (tasks: every source's, first appearance
first). Each source file is appended to the current output file of its kind until that would reach
the size limit (LeRobot's defaults), then a new file starts: a lone video file is byte-copied, several
are stream-copied into one (timestamps shifted by the duration before them). Per-episode stats of
``episode_index`` and ``index`` are shifted with them and those of ``task_index`` recomputed from the
new task indices; stats.json aggregates the sources' stats.json.

One deliberate difference from LeRobot: an episode row's ``meta/episodes/chunk_index`` and
``file_index`` name the file the row is in (LeRobot keeps the source's file index plus an offset,
which names a file that does not exist when a source has several episode-metadata files).
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from dexloop import hub
from dexloop.errors import DatasetArgumentError, DatasetError

from ..info import DEFAULT_DATA_PATH
from ..metadata import LeRobotDatasetMetadata
from ..stats import aggregate_stats
from .episode_copy import (
    MIB,
    OutputBuild,
    episode_rows,
    load_source,
    new_info,
    next_file,
    open_dataset,
    progress,
    read_source_table,
    renumbered,
    split_by_episode,
)

__all__ = ["merge_datasets"]

logger = logging.getLogger(__name__)

# LeRobot's VIDEO_ENCODER_INFO_KEYS: a video's encoder settings, which may differ between sources.
VIDEO_ENCODER_INFO_KEYS = frozenset(
    f"video.{name}" for name in ("g", "crf", "preset", "fast_decode", "extra_options", "video_backend")
)
SHIFTED_STATS = ("min", "max", "mean", "q01", "q10", "q50", "q90", "q99")
QUANTILES = {"q01": 0.01, "q10": 0.10, "q50": 0.50, "q90": 0.90, "q99": 0.99}


def _without_encoder_info(feature: dict) -> dict:
    feature = dict(feature)
    if isinstance(feature.get("info"), dict):
        feature["info"] = {k: v for k, v in feature["info"].items() if k not in VIDEO_ENCODER_INFO_KEYS}
    return feature


def validate_sources(metas: Sequence[LeRobotDatasetMetadata]) -> None:
    """LeRobot's ``validate_all_metadata``, naming the source and the key that differs."""
    first = metas[0]
    for meta in metas[1:]:
        if meta.fps != first.fps:
            raise DatasetArgumentError(
                f"cannot merge {meta.root}: fps is {meta.fps} where {first.root} has {first.fps}"
            )
        if meta.robot_type != first.robot_type:
            raise DatasetArgumentError(
                f"cannot merge {meta.root}: robot_type is {meta.robot_type!r} where {first.root} has "
                f"{first.robot_type!r}"
            )
        if set(meta.features) != set(first.features):
            only_here = sorted(set(meta.features) - set(first.features))
            only_there = sorted(set(first.features) - set(meta.features))
            raise DatasetArgumentError(
                f"cannot merge {meta.root}: features differ from {first.root}'s (only in it: {only_here}; "
                f"missing from it: {only_there})"
            )
        for key, feature in first.features.items():
            other = meta.features[key]
            same = (
                _without_encoder_info(feature) == _without_encoder_info(other)
                if feature.get("dtype") == "video" and other.get("dtype") == "video"
                else feature == other
            )
            if not same:
                raise DatasetArgumentError(
                    f"cannot merge {meta.root}: feature {key!r} is {other} where {first.root} has {feature}"
                )


def merged_features(metas: Sequence[LeRobotDatasetMetadata]) -> dict[str, Any]:
    """LeRobot's ``merge_video_feature_info_for_aggregate``: the first source's features, each video's
    encoder settings kept where all sources agree (else null, ``{}`` for extra_options)."""
    features = copy.deepcopy(metas[0].features)
    for key, feature in features.items():
        if feature.get("dtype") != "video":
            continue
        infos = [m.features.get(key, {}).get("info") or {} for m in metas]
        merged = {}
        for info_key in sorted(VIDEO_ENCODER_INFO_KEYS):
            values = [info.get(info_key) for info in infos]
            if all(value == values[0] for value in values[1:]):
                merged[info_key] = values[0]
            else:
                logger.warning("%s: the sources' %s differ; set to null in the merged dataset", key, info_key)
                merged[info_key] = {} if info_key == "video.extra_options" else None
        feature["info"] = {**infos[0], **merged, "video.video_backend": "pyav"}
    return features


class _FilePacker:
    """LeRobot's rule for appending source files to output files: the first source file opens file
    (0, 0); each next one joins the current file unless their sizes together reach the limit."""

    def __init__(self, limit_mb: float, chunks_size: int):
        self.limit_bytes = limit_mb * MIB
        self.chunks_size = chunks_size
        self.current: tuple[int, int] | None = None
        self.size = 0

    def place(self, size: int) -> tuple[int, int]:
        if self.current is None:
            self.current = (0, 0)
        elif self.size + size >= self.limit_bytes:
            self.current = next_file(*self.current, self.chunks_size)
            self.size = 0
        self.size += size
        return self.current


def merge_datasets(
    datasets: Sequence[Any],
    output_repo_id: str,
    output_dir: str | Path | None = None,
) -> Any:
    """One dataset holding the episodes of `datasets`, in order (LeRobot's ``merge_datasets``), at
    `output_dir` (default ``$HF_LEROBOT_HOME/<output_repo_id>``, which must not exist). Returns the
    new LeRobotDataset."""
    if not datasets:
        raise DatasetArgumentError("No datasets to merge")
    metas = [load_source(dataset) for dataset in datasets]
    validate_sources(metas)
    root = Path(output_dir) if output_dir is not None else hub.lerobot_home() / output_repo_id
    features = merged_features(metas)
    info = new_info(metas[0].info, features)
    video_keys = [key for key, feature in features.items() if feature["dtype"] == "video"]

    tasks: list[str] = []
    for meta in metas:
        tasks.extend(task for task in meta.tasks.index if task not in tasks)
    task_index = {task: i for i, task in enumerate(tasks)}

    all_rows = [episode_rows(meta) for meta in metas]
    with OutputBuild(root) as build:
        # Videos: the output file of each source file, and the segment it is in that file.
        video_plan: dict[str, dict[tuple[int, int], list[tuple[int, tuple[int, int]]]]] = {}
        video_place: dict[tuple[str, int, tuple[int, int]], tuple[tuple[int, int], int]] = {}
        for key in video_keys:
            packer = _FilePacker(info["video_files_size_in_mb"], info["chunks_size"])
            plan: dict[tuple[int, int], list[tuple[int, tuple[int, int]]]] = {}
            for number, (meta, rows) in enumerate(zip(metas, all_rows, strict=True)):
                for source_file in sorted(
                    {(r[f"videos/{key}/chunk_index"], r[f"videos/{key}/file_index"]) for r in rows}
                ):
                    path = _video_path(meta, key, source_file)
                    target = packer.place(path.stat().st_size)
                    video_place[(key, number, source_file)] = (target, len(plan.setdefault(target, [])))
                    plan[target].append((number, source_file))
            video_plan[key] = plan
        offsets: dict[tuple[str, int, tuple[int, int]], tuple[tuple[int, int], float]] = {}
        for key, plan in video_plan.items():
            for target, members in progress(sorted(plan.items()), f"Copying {key} videos"):
                relative = info["video_path"].format(
                    video_key=key, chunk_index=target[0], file_index=target[1]
                )
                paths = [_video_path(metas[number], key, source_file) for number, source_file in members]
                if len(paths) == 1:
                    build.copy(paths[0], relative)
                    starts = [0.0]
                else:
                    frames = [
                        _frames_in(all_rows[number], key, source_file) for number, source_file in members
                    ]
                    spans = build.write_video(
                        relative,
                        [(path, 0.0, None, count) for path, count in zip(paths, frames, strict=True)],
                        features[key].get("info"),
                        info["fps"],
                    )
                    starts = [start for start, _ in spans]
                for (number, source_file), start in zip(members, starts, strict=True):
                    offsets[(key, number, source_file)] = (target, start)

        # Data: each source file renumbered and appended to the current output file.
        packer = _FilePacker(info["data_files_size_in_mb"], info["chunks_size"])
        data_tables: dict[tuple[int, int], list[pa.Table]] = {}
        data_place: dict[tuple[int, tuple[int, int]], tuple[int, int]] = {}
        total_episodes = total_frames = 0
        for number, (meta, rows) in enumerate(
            progress(list(zip(metas, all_rows, strict=True)), "Copying data")
        ):
            episode_map = {int(r["episode_index"]): int(r["episode_index"]) + total_episodes for r in rows}
            task_map = {i: task_index[task] for i, task in enumerate(meta.tasks.index)}
            for source_file in sorted({(r["data/chunk_index"], r["data/file_index"]) for r in rows}):
                path = meta.root / meta.info.data_path.format(
                    chunk_index=source_file[0], file_index=source_file[1]
                )
                table = read_source_table(path)
                first_index = _first_index(table) + total_frames
                table = renumbered(table, episode_map, first_index, task_map, path)
                target = packer.place(path.stat().st_size)
                data_tables.setdefault(target, []).extend(split_by_episode(table))
                data_place[(number, source_file)] = target
            # Episode metadata rows, shifted.
            for row in rows:
                build.add_episode(
                    _shifted_row(
                        row, number, video_keys, offsets, data_place, total_episodes, total_frames, task_index
                    ),
                    info["data_files_size_in_mb"],
                    info["chunks_size"],
                )
            total_episodes += meta.total_episodes
            total_frames += meta.total_frames
        for (chunk, file), tables in data_tables.items():
            build.write_data(DEFAULT_DATA_PATH.format(chunk_index=chunk, file_index=file), features, tables)

        info["total_episodes"] = total_episodes
        info["total_frames"] = total_frames
        info["total_tasks"] = len(tasks)
        info["splits"] = {"train": f"0:{total_episodes}"}
        source_stats = [meta.stats for meta in metas if meta.stats is not None]
        build.commit(info, tasks, aggregate_stats(source_stats) if source_stats else None)
    return open_dataset(output_repo_id, root, datasets[0])


def _video_path(meta: LeRobotDatasetMetadata, key: str, source_file: tuple[int, int]) -> Path:
    path = meta.root / meta.info.video_path.format(
        video_key=key, chunk_index=source_file[0], file_index=source_file[1]
    )
    if not path.is_file():
        raise DatasetError(f"{path}: a video file the dataset's metadata lists is missing")
    return path


def _frames_in(rows: list[dict], key: str, source_file: tuple[int, int]) -> int:
    return sum(
        int(r["length"])
        for r in rows
        if (r[f"videos/{key}/chunk_index"], r[f"videos/{key}/file_index"]) == source_file
    )


def _first_index(table: pa.Table) -> int:
    values = table.column("index").to_numpy()
    return int(values[0]) if len(values) else 0


def _shifted_row(
    row: dict[str, Any],
    number: int,
    video_keys: Sequence[str],
    offsets: dict,
    data_place: dict,
    total_episodes: int,
    total_frames: int,
    task_index: dict[str, int],
) -> dict[str, Any]:
    """LeRobot's ``update_meta_data`` for one source episode row."""
    row = dict(row)
    row["data/chunk_index"], row["data/file_index"] = data_place[
        (number, (row["data/chunk_index"], row["data/file_index"]))
    ]
    for key in video_keys:
        source_file = (row[f"videos/{key}/chunk_index"], row[f"videos/{key}/file_index"])
        (chunk, file), offset = offsets[(key, number, source_file)]
        row[f"videos/{key}/chunk_index"], row[f"videos/{key}/file_index"] = chunk, file
        row[f"videos/{key}/from_timestamp"] += offset
        row[f"videos/{key}/to_timestamp"] += offset
    row["dataset_from_index"] += total_frames
    row["dataset_to_index"] += total_frames
    row["episode_index"] += total_episodes
    for name, shift in (("episode_index", total_episodes), ("index", total_frames)):
        for stat in SHIFTED_STATS:
            column = f"stats/{name}/{stat}"
            if row.get(column) is not None:
                row[column] = (np.asarray(row[column], dtype=np.float64) + shift).tolist()
    ids = np.array([task_index[task] for task in row["tasks"]], dtype=np.float64)
    for stat in ("min", "max", "mean", "std", *QUANTILES):
        column = f"stats/task_index/{stat}"
        if row.get(column) is None:
            continue
        if stat == "min":
            value = ids.min()
        elif stat == "max":
            value = ids.max()
        elif stat == "std":
            value = ids.std()
        elif stat in QUANTILES:
            value = np.quantile(ids, QUANTILES[stat])
        else:
            value = ids.mean()
        row[column] = np.full_like(np.asarray(row[column], dtype=np.float64), value).tolist()
    return row
