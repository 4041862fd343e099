"""Writing a new dataset from episodes of source datasets: the machinery delete-episodes, split,
merge and remove-feature share.

Every tool builds its output in a staging folder beside the requested root and renames it into place
only once every file is written (``OutputBuild``), so a failure — a damaged source file, a full disk —
leaves neither a half-written dataset nor any change to the sources. Sources are read with errors
that name the file (``read_source_table``); video ranges are stream-copied (``write_video``, on the
C++ remuxer, so decoded pixels are identical) and decoded and re-encoded with the dataset's own
encoder settings only where a range cannot be copied, as LeRobot re-encodes mixed files.
"""

from __future__ import annotations

import itertools
import logging
import os
import shutil
import sys
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from dexloop.errors import (
    DatasetError,
    DatasetExistsError,
    FrameTimestampError,
    VideoDecodeError,
    VideoEncodeError,
    VideoRemuxError,
)

from ..durable import write_json_atomically
from ..info import (
    INFO_PATH,
    STATS_PATH,
    TASKS_PATH,
    DatasetInfo,
    info_from_dict,
    new_info_dict,
)
from ..metadata import LeRobotDatasetMetadata, read_parquet
from ..parquet_files import episodes_table, frames_schema, write_row_groups, write_tasks
from ..recording_journal import EPISODES_PATH, stats_to_json
from ..stats import Stats, aggregate_stats
from .staging import STAGING_SUFFIX, move_in

logger = logging.getLogger(__name__)

MIB = 1024 * 1024
# Columns every dataset has; the tools renumber them and never remove them.


def progress(iterable: Iterable, desc: str, total: int | None = None) -> Iterable:
    """A progress bar on stderr (tqdm) for the steps of a long operation."""
    from tqdm import tqdm

    return tqdm(iterable, desc=desc, total=total, file=sys.stderr, leave=False)


def next_file(chunk: int, file: int, chunks_size: int) -> tuple[int, int]:
    """LeRobot's ``update_chunk_file_indices``."""
    return (chunk + 1, 0) if file == chunks_size - 1 else (chunk, file + 1)


def new_info(
    source: DatasetInfo,
    features: Mapping[str, Any],
    *,
    chunks_size: int | None = None,
    data_files_size_in_mb: float | None = None,
    video_files_size_in_mb: float | None = None,
) -> dict[str, Any]:
    """info.json of a new dataset as ``LeRobotDatasetMetadata.create`` writes it (LeRobot's default
    columns replacing the sources', LeRobot's default file limits unless given), counters at zero."""
    use_videos = any(feature["dtype"] == "video" for feature in features.values())
    return new_info_dict(
        source.fps,
        dict(features),
        source.robot_type,
        use_videos,
        chunks_size=chunks_size,
        data_files_size_in_mb=data_files_size_in_mb,
        video_files_size_in_mb=video_files_size_in_mb,
        codebase_version=source.codebase_version,
    )


def load_source(dataset: Any) -> LeRobotDatasetMetadata:
    """The metadata of a source given as a LeRobotDataset, its metadata, or a dataset root."""
    if isinstance(dataset, LeRobotDatasetMetadata):
        meta = dataset
    elif hasattr(dataset, "meta") and isinstance(dataset.meta, LeRobotDatasetMetadata):
        meta = dataset.meta
    elif isinstance(dataset, (str, os.PathLike)):
        meta = LeRobotDatasetMetadata(Path(dataset).name, root=dataset)
    else:
        raise DatasetError(
            f"expected a LeRobotDataset, its metadata or a dataset root, got {type(dataset)!r}"
        )
    if meta.is_v21:
        raise DatasetError(
            f"{meta.root}: a v2.1 dataset; convert it to v3.0 first (dexloop dataset convert) before "
            "editing its episodes"
        )
    return meta


def episode_rows(meta: LeRobotDatasetMetadata) -> list[dict[str, Any]]:
    """Every episode's metadata row with its per-episode stats (which ``meta.episodes`` leaves out),
    in episode order, each in its file's column order."""
    files = sorted(
        {(row["meta/episodes/chunk_index"], row["meta/episodes/file_index"]) for row in meta.episodes}
    )
    rows: list[dict[str, Any]] = []
    for chunk, file in files:
        path = meta.root / EPISODES_PATH.format(chunk_index=chunk, file_index=file)
        rows.extend(read_source_table(path).to_pylist())
    rows.sort(key=lambda row: row["episode_index"])
    if [row["episode_index"] for row in rows] != list(range(meta.total_episodes)):
        raise DatasetError(
            f"{meta.root / 'meta/episodes'}: the episode rows are not episodes 0..{meta.total_episodes - 1}"
        )
    return rows


def read_source_table(path: Path) -> pa.Table:
    """A source parquet file, fully read (a truncated or damaged file is a DatasetError naming it)."""
    try:
        table = read_parquet(path)
        table = table.combine_chunks()  # reads every page: damage past the footer shows here
        return table
    except FileNotFoundError as error:
        raise DatasetError(f"{path}: a file the dataset's metadata lists is missing") from error
    except (pa.ArrowException, OSError, ValueError) as error:
        raise DatasetError(f"{path}: not a readable parquet file ({error})") from error


def renumbered(
    table: pa.Table,
    episode_map: Mapping[int, int],
    first_index: int,
    task_map: Mapping[int, int] | None,
    where: Path,
) -> pa.Table:
    """`table`'s rows with episode_index mapped, index counting from `first_index` and task_index
    mapped (None: kept). A value without a mapping means the file and its metadata disagree."""

    def mapped(name: str, mapping: Mapping[int, int]) -> pa.Array:
        values = table.column(name).to_numpy()
        try:
            return pa.array(np.array([mapping[int(v)] for v in values], dtype=np.int64))
        except KeyError as missing:
            raise DatasetError(
                f"{where}: {name} {missing.args[0]} is not in the dataset's metadata"
            ) from None

    columns = {
        "episode_index": mapped("episode_index", episode_map),
        "index": pa.array(np.arange(first_index, first_index + table.num_rows, dtype=np.int64)),
    }
    if task_map is not None:
        columns["task_index"] = mapped("task_index", task_map)
    for name, values in columns.items():
        position = table.schema.get_field_index(name)
        table = table.set_column(position, table.schema.field(name), values)
    return table


def split_by_episode(table: pa.Table) -> list[pa.Table]:
    """The rows of each episode, in order: one row group per episode, as LeRobot writes data files."""
    episodes = table.column("episode_index").to_numpy()
    if len(episodes) == 0:
        return [table]
    starts = [0, *(np.flatnonzero(np.diff(episodes)) + 1).tolist(), len(episodes)]
    return [table.slice(a, b - a) for a, b in itertools.pairwise(starts)]


def rows_of_episodes(table: pa.Table, episodes: Iterable[int]) -> pa.Table:
    mask = pc.is_in(table.column("episode_index"), value_set=pa.array(sorted(episodes), pa.int64()))
    return table.filter(mask)


def episode_stats(row: Mapping[str, Any]) -> Stats:
    """An episode row's ``stats/<feature>/<stat>`` columns as {feature: {stat: ndarray}}."""
    stats: Stats = {}
    for name, value in row.items():
        if name.startswith("stats/") and value is not None:
            feature, _, stat = name[len("stats/") :].rpartition("/")
            stats.setdefault(feature, {})[stat] = np.asarray(
                value, dtype=np.int64 if stat == "count" else np.float64
            )
    return stats


def encoder_config_from_info(info: Mapping[str, Any] | None) -> Any:
    """The VideoEncoderConfig a video feature's ``info`` block in info.json records (LeRobot's
    ``encoder_config_from_video_info``): what re-encoded files are written with."""
    from dexloop.video.encoder import VideoEncoderConfig

    info = info or {}
    kwargs: dict[str, Any] = {}
    if info.get("video.codec"):
        kwargs["vcodec"] = info["video.codec"]
    if info.get("video.pix_fmt"):
        kwargs["pix_fmt"] = info["video.pix_fmt"]
    for key in ("g", "crf", "preset", "fast_decode", "extra_options"):
        if info.get(f"video.{key}") is not None:
            kwargs[key] = info[f"video.{key}"]
    return VideoEncoderConfig(**kwargs)


class OutputBuild:
    """A new dataset written into a staging folder beside `root`, renamed to `root` by commit().
    Used as a context manager: leaving it by an exception removes the staging folder."""

    def __init__(self, root: str | os.PathLike[str]):
        self.root = Path(root)
        if self.root.exists():
            raise DatasetExistsError(
                f"{self.root}: the output folder already exists; the dataset tools never overwrite one"
            )
        self.root.parent.mkdir(parents=True, exist_ok=True)
        self.staging = Path(
            tempfile.mkdtemp(prefix=f".{self.root.name}.", suffix=STAGING_SUFFIX, dir=self.root.parent)
        )
        self.episode_rows: list[dict[str, Any]] = []
        self._meta_file = (0, 0)
        self._meta_file_bytes = 0

    def __enter__(self) -> OutputBuild:
        return self

    def __exit__(self, kind: Any, error: Any, traceback: Any) -> None:
        if kind is not None:
            shutil.rmtree(self.staging, ignore_errors=True)

    def path(self, relative: str | Path) -> Path:
        path = self.staging / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        return path

    def write_data(self, relative: str, features: Mapping[str, Any], tables: Sequence[pa.Table]) -> None:
        """A data file holding `tables` (one row group each) in the schema of `features`."""
        schema = frames_schema(features)
        cast = [table.select(schema.names).cast(schema) for table in tables]
        write_row_groups(self.path(relative), schema, cast)

    def copy(self, source: Path, relative: str) -> None:
        """A byte copy of a source file (a missing one is a DatasetError naming it)."""
        try:
            shutil.copyfile(source, self.path(relative))
        except FileNotFoundError:
            raise DatasetError(f"{source}: a file the dataset's metadata lists is missing") from None

    def write_video(
        self,
        relative: str,
        segments: Sequence[tuple[Path, float, float | None, int]],
        video_info: Mapping[str, Any] | None,
        fps: int,
    ) -> list[tuple[float, float]]:
        """An mp4 made of `segments` (path, start_s, end_s, frames), stream-copied where it can be,
        else decoded and re-encoded with the encoder settings `video_info` records. Returns each
        segment's (from_timestamp, to_timestamp) in the new file."""
        from dexloop.video import remux_segments

        output = self.path(relative)
        for path, *_ in segments:
            if not Path(path).is_file():
                raise DatasetError(f"{path}: a video file the dataset's metadata lists is missing")
        try:
            return remux_segments([(str(p), a, b) for p, a, b, _ in segments], output)
        except VideoRemuxError as error:
            logger.info("%s: stream copy impossible (%s); re-encoding", relative, error)
            output.unlink(missing_ok=True)
            try:
                return self._reencode(output, segments, video_info, fps)
            except (VideoDecodeError, VideoEncodeError, FrameTimestampError) as reencode_error:
                output.unlink(missing_ok=True)
                raise DatasetError(
                    f"{relative}: cannot be made from its source videos: {error}; decoding them failed "
                    f"too: {reencode_error}"
                ) from reencode_error

    def _reencode(
        self,
        output: Path,
        segments: Sequence[tuple[Path, float, float | None, int]],
        video_info: Mapping[str, Any] | None,
        fps: int,
    ) -> list[tuple[float, float]]:
        from dexloop.video import VideoDecoder, open_encoder

        config = encoder_config_from_info(video_info)
        encoder = None
        spans = []
        cursor = 0.0
        for path, start_s, end_s, frames in segments:
            decoder = VideoDecoder(str(path))
            if encoder is None:
                encoder = open_encoder(
                    str(output), config, width=decoder.info.width, height=decoder.info.height, fps=fps
                )
            count = frames if end_s is not None or frames > 0 else decoder.info.frame_count
            for first in range(0, count, 64):
                times = start_s + np.arange(first, min(count, first + 64), dtype=np.float64) / fps
                for frame in decoder.decode(times, 1.0 / (2 * fps), channels_last=True):
                    encoder.add_frame(frame)
            encoder.end_episode()
            spans.append((cursor, cursor + count / fps))
            cursor += count / fps
        assert encoder is not None
        encoder.close()
        return spans

    def add_episode(self, row: dict[str, Any], data_files_size_in_mb: float, chunks_size: int) -> None:
        """Appends an episode row, placed in the episode-metadata files by the writer's size rule."""
        import json

        row_bytes = len(json.dumps(row, default=str))
        if self.episode_rows and self._meta_file_bytes + row_bytes >= data_files_size_in_mb * MIB:
            self._meta_file = next_file(*self._meta_file, chunks_size)
            self._meta_file_bytes = 0
        self._meta_file_bytes += row_bytes
        row["meta/episodes/chunk_index"], row["meta/episodes/file_index"] = self._meta_file
        self.episode_rows.append(row)

    def commit(self, info: dict[str, Any], tasks: Sequence[str] | None, stats: Stats | None) -> DatasetInfo:
        """Writes the episode metadata, tasks, stats and info.json, then moves the dataset into place."""
        groups: dict[tuple[int, int], list[dict[str, Any]]] = {}
        for row in self.episode_rows:
            groups.setdefault((row["meta/episodes/chunk_index"], row["meta/episodes/file_index"]), []).append(
                row
            )
        for (chunk, file), rows in groups.items():
            table = episodes_table(rows)
            write_row_groups(
                self.path(EPISODES_PATH.format(chunk_index=chunk, file_index=file)), table.schema, [table]
            )
        if tasks is not None:
            write_tasks(self.path(TASKS_PATH), list(tasks))
        if stats is not None:
            write_json_atomically(self.path(STATS_PATH), stats_to_json(stats))
        checked = info_from_dict(info, INFO_PATH)
        write_json_atomically(self.path(INFO_PATH), checked.to_dict())
        try:
            move_in(self.staging, self.root)  # flushed first: a crash never exposes a truncated file
        except OSError as error:
            raise DatasetError(f"{self.root}: cannot move the new dataset into place ({error})") from error
        return checked


def aggregated_stats(per_episode: Sequence[Stats], features: Mapping[str, Any]) -> Stats | None:
    """LeRobot's dataset stats of the given episodes' stats, for the features the dataset has."""
    if not per_episode:
        return None
    aggregated = aggregate_stats(list(per_episode))
    return {key: value for key, value in aggregated.items() if key in features}


def open_dataset(repo_id: str, root: Path, like: Any) -> Any:
    """The new dataset as a LeRobotDataset, with the source's transforms, delta timestamps and
    tolerance, as LeRobot's tools return it."""
    from ..lerobot_dataset import LeRobotDataset

    kwargs: dict[str, Any] = {}
    for name in ("image_transforms", "delta_timestamps", "tolerance_s"):
        if hasattr(like, name):
            kwargs[name] = getattr(like, name)
    return LeRobotDataset(repo_id, root=root, **kwargs)
