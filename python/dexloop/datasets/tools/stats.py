"""Recomputing a dataset's statistics from its frames, in place (LeRobot 0.6.1's ``recompute_stats``).

Policies normalise with ``meta/stats.json``; stats that went stale (frames edited by hand, a tool that
left them behind) or were damaged can be rebuilt from the data. Per episode, the stats of each
feature are computed exactly as the recorder computes them (``compute_stats``: numeric columns from
the parquet values; image and video features from the frames LeRobot samples, decoded from the PNG
cells or the mp4 at the episode's timestamps), the ``stats/<feature>/<stat>`` columns of the episode
metadata are replaced, and ``stats.json`` is aggregated from them. Stats of features not recomputed
are kept as they were.

LeRobot's options are the same: ``skip_image_video`` (default True) keeps image and video stats;
``relative_action`` computes the dataset's ``action`` stats in the space policies trained with
relative actions see: every window of ``chunk_size`` consecutive actions inside one episode, minus
the state at the window's first frame (except the dimensions whose names contain one of
``relative_exclude_joints``, default ``["gripper"]``), accumulated with LeRobot's running
histogram statistics; the per-episode ``action`` columns keep their absolute stats.

Where dexloop goes further than LeRobot 0.6.1: LeRobot rewrites only stats.json, keeps the stats of
the bookkeeping columns (index, episode_index, frame_index, task_index, timestamp) as they were, and
in spite of ``skip_image_video=False`` never recomputes image or video stats; here all of them are
recomputed from the data, and the per-episode columns too.
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from dexloop.errors import DatasetArgumentError, DatasetError, DexloopError

from ..compute_stats import (
    DEFAULT_QUANTILES,
    QUANTILE_BINS,
    compute_episode_stats,
    downsample_for_stats,
    histogram_quantile,
    quantile_key,
    sample_indices,
)
from ..durable import write_json_atomically
from ..frame_table import _storage
from ..info import EPISODES_DIR, STATS_PATH
from ..metadata import LeRobotDatasetMetadata
from ..recording_journal import stats_to_json
from ..stats import aggregate_stats
from .episode_copy import load_source, open_dataset, progress, read_source_table
from .staging import fresh_staging, link_tree, remove_quietly, rewrite_parquet, swap_in

ACTION = "action"
OBS_STATE = "observation.state"
RELATIVE_BATCH = 50_000  # windows per batch of the running statistics, as LeRobot


def recompute_stats(
    dataset: Any,
    skip_image_video: bool = True,
    relative_action: bool = False,
    relative_exclude_joints: list[str] | None = None,
    chunk_size: int = 50,
    num_workers: int = 0,
) -> Any:
    """Recomputes the stats of `dataset` (a LeRobotDataset, its metadata, or a dataset root) from its
    frames, in place, and returns the dataset reopened as a LeRobotDataset. See the module notes for
    the options; `num_workers` > 1 computes relative-action windows in that many threads."""
    meta = load_source(dataset)
    for name, value in (("chunk_size", chunk_size), ("num_workers", num_workers)):
        if (
            isinstance(value, bool)
            or not isinstance(value, int)
            or value < (1 if name == "chunk_size" else 0)
        ):
            raise DatasetArgumentError(
                f"{name} must be a {'positive' if name == 'chunk_size' else 'non-negative'} integer, got {value!r}"
            )
    root = Path(meta.root)
    features = meta.features
    compute = {
        key: feature
        for key, feature in features.items()
        if feature["dtype"] not in ("string", "language")
        and (not skip_image_video or feature["dtype"] not in ("image", "video"))
    }
    data_files = sorted((root / "data").glob("*/*.parquet"), key=str)
    if not data_files:
        raise DatasetError(f"No parquet files found in {root / 'data'}")

    relative_stats = None
    columns = _read_columns(meta, data_files, [k for k, f in compute.items() if f["dtype"] != "video"])
    if relative_action and ACTION in features and OBS_STATE in features:
        exclude = ["gripper"] if relative_exclude_joints is None else list(relative_exclude_joints)
        relative_stats = compute_relative_action_stats(
            columns[ACTION],
            columns[OBS_STATE],
            columns["episode_index"],
            features,
            chunk_size,
            exclude,
            num_workers,
        )

    per_episode = _episode_stats(meta, columns, compute)
    new_stats = aggregate_stats(per_episode) if per_episode else {}
    if relative_stats is not None:
        new_stats[ACTION] = relative_stats
    kept = meta.stats or {}
    merged = {key: new_stats[key] if key in new_stats else kept[key] for key in {**kept, **new_stats}}
    episode_files = sorted((root / EPISODES_DIR).glob("*/*.parquet"), key=str)

    staging = fresh_staging(root, "recompute-stats")
    try:
        rewritten = {STATS_PATH} | {str(p.relative_to(root)) for p in episode_files}
        link_tree(root, staging, skip=lambda relative: str(relative) in rewritten)
        for path in episode_files:
            rewrite_parquet(path, staging / path.relative_to(root), _with_stats(path, per_episode))
        write_json_atomically(staging / STATS_PATH, stats_to_json(merged))
    except BaseException:
        remove_quietly([staging])
        raise
    swap_in(staging, root)
    return open_dataset(meta.repo_id, root, like=dataset)


# -- reading the frames --------------------------------------------------------------------------


def _numeric_column(path: Path, key: str, feature: Mapping[str, Any], column: pa.ChunkedArray) -> np.ndarray:
    """A numeric column as (rows, *shape) in its declared dtype (shape-[1] features as (rows,)),
    at full precision: float64 features stay float64, as the recorder computed their stats."""
    shape = list(feature["shape"])
    values = _storage(column)
    while (
        pa.types.is_list(values.type)
        or pa.types.is_large_list(values.type)
        or pa.types.is_fixed_size_list(values.type)
    ):
        values = pc.list_flatten(values)
    try:
        flat = values.to_numpy(zero_copy_only=False)
    except pa.ArrowException as error:
        raise DatasetError(f"{path}: column {key!r} is not numeric ({error})") from error
    expected = [] if shape == [1] else shape
    if flat.dtype.kind not in "biuf" or flat.size != len(column) * int(np.prod(expected or [1])):
        raise DatasetError(f"{path}: column {key!r} does not hold {shape} numbers per row")
    return flat.astype(np.dtype(feature["dtype"]), copy=False).reshape((len(column), *expected))


def _read_columns(meta: LeRobotDatasetMetadata, files: Sequence[Path], keys: Sequence[str]) -> dict[str, Any]:
    """The columns `keys` (plus episode_index and timestamp) of every data file, concatenated in
    row order; image columns as lists of PNG cells."""
    wanted = list(dict.fromkeys([*keys, "episode_index", "frame_index", "timestamp"]))
    parts: dict[str, list] = {key: [] for key in wanted}
    for path in progress(files, desc="reading data files"):
        table = read_source_table(path)
        missing = [key for key in wanted if key not in table.column_names]
        if missing:
            raise DatasetError(f"{path}: declared features {missing} have no column in this file")
        for key in wanted:
            feature = meta.features[key]
            if feature["dtype"] == "image":
                parts[key].extend(table.column(key).to_pylist())
            else:
                parts[key].append(_numeric_column(path, key, feature, table.column(key)))
    columns: dict[str, Any] = {}
    for key, values in parts.items():
        columns[key] = values if meta.features[key]["dtype"] == "image" else np.concatenate(values)
    episodes = columns["episode_index"]
    expected = np.repeat(np.arange(meta.total_episodes), meta.episodes["length"])
    if not np.array_equal(episodes, expected):
        raise DatasetError(
            f"{meta.root / 'data'}: the data files' rows are not the episodes of the metadata in order "
            "(episode_index and lengths disagree)"
        )
    return columns


def _recorded_timestamps(stored: np.ndarray, frame_index: np.ndarray, fps: int) -> np.ndarray:
    """The timestamps the recorder computed the stats from: it stores ``frame_index / fps`` as
    float32 but takes the stats of the float64 values, so where the stored column is that rounding
    the float64 values are used (else the stored ones, e.g. timestamps given by the recording code)."""
    exact = frame_index.astype(np.float64) / fps
    if np.array_equal(exact.astype(np.float32), stored.astype(np.float32)):
        return exact
    return stored.astype(np.float64)


def _png_frame(cell: Any, where: str) -> np.ndarray:
    from PIL import Image

    try:
        data = cell["bytes"] if isinstance(cell, dict) else None
        if data is None:
            raise DatasetError(f"{where}: image cell without embedded bytes")
        return np.asarray(Image.open(io.BytesIO(data)).convert("RGB")).transpose(2, 0, 1)
    except (OSError, ValueError) as error:
        raise DatasetError(f"{where}: not a readable image ({error})") from error


def _episode_stats(
    meta: LeRobotDatasetMetadata, columns: Mapping[str, Any], compute: Mapping[str, Mapping[str, Any]]
) -> list[dict[str, dict[str, np.ndarray]]]:
    starts = meta.episodes["dataset_from_index"]
    ends = meta.episodes["dataset_to_index"]
    decoders: dict[Path, Any] = {}
    result = []
    for episode in progress(range(meta.total_episodes), desc="computing episode stats"):
        start, end = int(starts[episode]), int(ends[episode])
        picked = sample_indices(end - start)
        data: dict[str, Any] = {}
        for key, feature in compute.items():
            if feature["dtype"] == "video":
                data[key] = _video_samples(
                    meta, decoders, episode, key, columns["timestamp"][start:end], picked
                )
            elif feature["dtype"] == "image":
                cells = columns[key][start:end]
                data[key] = np.stack(
                    [
                        downsample_for_stats(_png_frame(cells[i], f"{key} of episode {episode} frame {i}"))
                        for i in picked
                    ]
                )
            elif key == "timestamp":
                data[key] = _recorded_timestamps(
                    columns["timestamp"][start:end], columns["frame_index"][start:end], meta.fps
                )
            else:
                data[key] = columns[key][start:end]
        result.append(compute_episode_stats(data, compute))
    return result


def _video_samples(
    meta: LeRobotDatasetMetadata,
    decoders: dict[Path, Any],
    episode: int,
    key: str,
    timestamps: np.ndarray,
    picked: Sequence[int],
) -> np.ndarray:
    from dexloop.video import VideoDecoder

    path = Path(meta.root) / meta.get_video_file_path(episode, key)
    if path not in decoders:
        try:
            decoders[path] = VideoDecoder(str(path))
        except DexloopError as error:
            raise DatasetError(f"{path}: cannot open the video of episode {episode} ({error})") from error
    offset = float(meta.episodes[episode][f"videos/{key}/from_timestamp"])
    times = offset + timestamps[list(picked)].astype(np.float64)
    try:
        frames = decoders[path].decode(np.ascontiguousarray(times))
    except DexloopError as error:
        raise DatasetError(f"{path}: cannot decode the frames of episode {episode} ({error})") from error
    return np.stack([downsample_for_stats(frame) for frame in frames])


# -- writing -------------------------------------------------------------------------------------


def _with_stats(path: Path, per_episode: Sequence[Mapping[str, Mapping[str, np.ndarray]]]):
    def change(table: pa.Table) -> pa.Table:
        episodes = table.column("episode_index").to_pylist()
        for name in list(table.column_names):
            if not name.startswith("stats/"):
                continue
            feature, _, stat = name.removeprefix("stats/").rpartition("/")
            if any(feature not in per_episode[e] or stat not in per_episode[e][feature] for e in episodes):
                continue  # a feature not recomputed keeps its stats
            field = table.schema.field(name)
            values = pa.array([np.asarray(per_episode[e][feature][stat]).tolist() for e in episodes])
            try:
                cast = pc.cast(values, field.type)
            except (pa.ArrowException, ValueError) as error:
                raise DatasetError(
                    f"{path}: column {name!r} cannot hold the recomputed values ({error})"
                ) from error
            table = table.set_column(table.schema.get_field_index(name), field, cast)
        return table

    return change


# -- relative actions ----------------------------------------------------------------------------


def relative_mask(action_names: Any, action_dim: int, exclude_joints: Sequence[str]) -> np.ndarray:
    """Which action dimensions become relative: all, but those whose (lower-cased) name equals or
    contains one of `exclude_joints` (LeRobot's RelativeActionsProcessorStep mask)."""
    tokens = [str(name).lower() for name in exclude_joints if name]
    if not tokens or not isinstance(action_names, (list, tuple)):
        return np.ones(action_dim, dtype=np.float32)
    mask = [not any(token in str(name).lower() for token in tokens) for name in action_names[:action_dim]]
    mask += [True] * (action_dim - len(mask))
    return np.array(mask, dtype=np.float32)


class RunningQuantileStats:
    """LeRobot's running statistics over batches of vectors: mean and mean of squares updated per
    batch, min and max, and quantiles from a 5000-bin histogram per dimension whose range follows
    min and max (the counts moved to the new bins by their old bin centres)."""

    def __init__(self, quantiles: Sequence[float] = DEFAULT_QUANTILES, bins: int = QUANTILE_BINS):
        self.quantiles, self.bins, self.count = list(quantiles), bins, 0

    def update(self, batch: np.ndarray) -> None:
        batch = batch.reshape(-1, batch.shape[-1])
        batch = batch.astype(np.result_type(batch.dtype, np.float32), copy=False)
        if self.count == 0:
            self.mean = np.mean(batch, axis=0)
            self.mean_of_squares = np.mean(batch**2, axis=0)
            self.min, self.max = np.min(batch, axis=0), np.max(batch, axis=0)
            self.histograms = [np.zeros(self.bins) for _ in range(batch.shape[1])]
            self.edges = [
                np.linspace(lo - 1e-10, hi + 1e-10, self.bins + 1)
                for lo, hi in zip(self.min, self.max, strict=True)
            ]
        else:
            if batch.shape[1] != self.mean.size:
                raise DatasetError("vectors of another length than the first batch's")
            new_max, new_min = np.max(batch, axis=0), np.min(batch, axis=0)
            changed = bool(np.any(new_max > self.max) or np.any(new_min < self.min))
            self.max, self.min = np.maximum(self.max, new_max), np.minimum(self.min, new_min)
            if changed:
                self._rebin()
        self.count += batch.shape[0]
        weight = batch.shape[0] / self.count
        self.mean += (np.mean(batch, axis=0) - self.mean) * weight
        self.mean_of_squares += (np.mean(batch**2, axis=0) - self.mean_of_squares) * weight
        for dim in range(batch.shape[1]):
            self.histograms[dim] += np.histogram(batch[:, dim], bins=self.edges[dim])[0]

    def _rebin(self) -> None:
        for dim, (edges, histogram) in enumerate(zip(self.edges, self.histograms, strict=True)):
            padding = (self.max[dim] - self.min[dim]) * 1e-10
            new_edges = np.linspace(self.min[dim] - padding, self.max[dim] + padding, self.bins + 1)
            centres = (edges[:-1] + edges[1:]) / 2
            moved = np.zeros(self.bins)
            for centre, count in zip(centres, histogram, strict=False):
                if count > 0:
                    moved[max(0, min(int(np.searchsorted(new_edges, centre)) - 1, self.bins - 1))] += count
            self.histograms[dim], self.edges[dim] = moved, new_edges

    def statistics(self) -> dict[str, np.ndarray]:
        if self.count < 2:
            raise DatasetArgumentError("Cannot compute statistics for less than 2 vectors.")
        stats = {
            "min": self.min.copy(),
            "max": self.max.copy(),
            "mean": self.mean.copy(),
            "std": np.sqrt(np.maximum(0, self.mean_of_squares - self.mean**2)),
            "count": np.array([self.count]),
        }
        for q in self.quantiles:
            stats[quantile_key(q)] = np.array(
                [
                    histogram_quantile(h, e, q * self.count)
                    for h, e in zip(self.histograms, self.edges, strict=True)
                ]
            )
        return stats


def compute_relative_action_stats(
    actions: np.ndarray,
    states: np.ndarray,
    episode_index: np.ndarray,
    features: Mapping[str, Mapping[str, Any]],
    chunk_size: int,
    exclude_joints: Sequence[str],
    num_workers: int = 0,
) -> dict[str, np.ndarray]:
    """Stats of every window of `chunk_size` actions inside one episode, relative to the state at
    its first frame on the masked dimensions (LeRobot's ``compute_relative_action_stats``)."""
    actions = np.asarray(actions, dtype=np.float32).reshape(len(actions), -1)
    states = np.asarray(states, dtype=np.float32).reshape(len(states), -1)
    mask = relative_mask(features[ACTION].get("names"), int(features[ACTION]["shape"][0]), exclude_joints)
    total = len(episode_index)
    starts = np.arange(max(0, total - chunk_size + 1))
    if total >= chunk_size:
        starts = starts[episode_index[starts] == episode_index[starts + chunk_size - 1]]
    if len(starts) == 0:
        raise DatasetArgumentError(f"No valid chunks found (total_frames={total}, chunk_size={chunk_size})")
    dims = len(mask)
    if states.shape[1] < dims:
        raise DatasetError(f"{OBS_STATE} has {states.shape[1]} dimensions, fewer than {ACTION}'s {dims}")

    def windows(batch: np.ndarray) -> np.ndarray:
        chunks = actions[batch[:, None] + np.arange(chunk_size)[None, :]].copy()
        chunks[:, :, :dims] -= states[batch][:, None, :dims] * mask[None, None, :]
        return chunks.reshape(-1, actions.shape[1])

    batches = [starts[i : i + RELATIVE_BATCH] for i in range(0, len(starts), RELATIVE_BATCH)]
    running = RunningQuantileStats()
    if num_workers > 1:
        with ThreadPoolExecutor(max_workers=num_workers) as pool:
            for result in pool.map(windows, batches):  # in batch order: the same result every run
                running.update(result)
    else:
        for batch in batches:
            running.update(windows(batch))
    return running.statistics()


__all__ = ["RunningQuantileStats", "compute_relative_action_stats", "recompute_stats", "relative_mask"]
