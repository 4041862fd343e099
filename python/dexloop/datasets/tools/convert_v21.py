"""Converting a LeRobot v2.1 dataset (LeRobot <= 0.3) to v3.0, as LeRobot 0.6.1's
``lerobot.scripts.convert_dataset_v21_to_v30`` does, so that the result is the dataset LeRobot's own
converter gives.

v2.1 keeps one data parquet and one mp4 per episode and its metadata in JSON lines; v3.0 packs many
episodes per file and keeps the metadata in parquet (see the format notes, §1.7). The conversion:

* data: the episode files, in sorted path order, concatenated into ``data/chunk-*/file-*.parquet``
  (a new file once the next episode would bring the file's uncompressed size to
  ``data_file_size_in_mb``, at most 1000 files per chunk folder); written as LeRobot's pandas
  concatenation writes them (variable-length lists, pandas' metadata, one row group);
* videos: per camera, the episodes' mp4s concatenated by stream copy (no re-encoding) under the same
  size rule with ``video_file_size_in_mb``; each episode's ``from_timestamp``/``to_timestamp`` inside
  its file are the summed durations of the episodes before it;
* ``meta/tasks.parquet`` from ``tasks.jsonl``; one ``meta/episodes/chunk-000/file-000.parquet`` from
  ``episodes.jsonl`` and ``episodes_stats.jsonl`` (per-episode stats as v2.1 had them: no
  quantiles); ``meta/stats.json`` aggregated from them;
* ``meta/info.json``: version v3.0, ``total_chunks`` and ``total_videos`` dropped, the file size
  limits and v3.0 path templates added, ``fps`` added to every non-video feature.

Unlike LeRobot's script, which writes ``<root>_v30`` and then moves folders, nothing is moved before
the new dataset is complete: it is built in a staging folder beside the destination, flushed, and
only then put in place. Converting in place leaves the original in ``<root>_old`` (as LeRobot does);
every input problem (not a v2.1 dataset, a missing or corrupt file) raises a DatasetError naming the
file before anything is replaced.
"""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from tqdm import tqdm

from dexloop.errors import (
    DatasetArgumentError,
    DatasetError,
    DatasetExistsError,
    DatasetVersionError,
    DexloopError,
)

from ..durable import write_atomically, write_json_atomically
from ..info import (
    CODEBASE_VERSION,
    DEFAULT_CHUNK_SIZE,
    DEFAULT_DATA_FILE_SIZE_IN_MB,
    DEFAULT_DATA_PATH,
    DEFAULT_VIDEO_FILE_SIZE_IN_MB,
    DEFAULT_VIDEO_PATH,
    INFO_PATH,
    STATS_PATH,
    TASKS_PATH,
    info_from_dict,
)
from ..metadata import V21_EPISODES_PATH, V21_EPISODES_STATS_PATH, V21_TASKS_PATH, _read_jsonl
from ..parquet_files import PANDAS_VERSION_WRITTEN, write_tasks
from ..recording_journal import stats_to_json
from ..stats import aggregate_stats, stats_from_json
from .staging import fresh_staging, move_in, remove_quietly, staging_path, swap_in

V21 = "v2.1"
EPISODES_FILE = "meta/episodes/chunk-000/file-000.parquet"
INDEX_COLUMNS = ("episode_index", "length", "dataset_from_index", "dataset_to_index")
MB = 1024**2


def convert_dataset_v21_to_v30(
    root: str | Path,
    output_dir: str | Path | None = None,
    data_file_size_in_mb: int = DEFAULT_DATA_FILE_SIZE_IN_MB,
    video_file_size_in_mb: int = DEFAULT_VIDEO_FILE_SIZE_IN_MB,
    force: bool = False,
) -> Path:
    """Converts the v2.1 dataset in `root` to v3.0 and returns the converted dataset's folder.

    Without `output_dir` the conversion is in place: `root` then holds the v3.0 dataset and
    ``<root>_old`` the original (which must not exist beforehand). With `output_dir`, `root` is left
    as it is and the v3.0 dataset is written to `output_dir`, which must not exist unless `force`.
    `force` also converts again a `root` that an earlier in-place conversion already turned into
    v3.0, from the original kept in ``<root>_old`` (LeRobot's ``--force-conversion``).
    """
    root = Path(root)
    for name, value in (
        ("data_file_size_in_mb", data_file_size_in_mb),
        ("video_file_size_in_mb", video_file_size_in_mb),
    ):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
            raise DatasetArgumentError(f"{name} must be a positive number of MB, got {value!r}")
    in_place = output_dir is None or Path(output_dir).resolve() == root.resolve()
    if not in_place and root.resolve() in Path(output_dir).resolve().parents:
        raise DatasetArgumentError(f"output_dir {output_dir} is inside the dataset {root}")
    destination = root if in_place else Path(output_dir)
    old_root = root.parent / f"{root.name}_old"
    source = root
    keep_old_as: Path | None = old_root if in_place else None

    if in_place:
        _finish_interrupted_swap(root, old_root)
    version = _codebase_version(root)
    if version == CODEBASE_VERSION:
        if in_place and force and old_root.is_dir() and _codebase_version(old_root) == V21:
            # Convert the kept original again, replacing the earlier result.
            source, keep_old_as = old_root, None
        else:
            hint = (
                f"; its original is in {old_root} (pass force to convert that again)"
                if in_place and old_root.is_dir()
                else ""
            )
            raise DatasetVersionError(f"{root / INFO_PATH}: the dataset is already {CODEBASE_VERSION}{hint}")
    elif version != V21:
        raise DatasetVersionError(
            f"{root / INFO_PATH}: codebase_version {version!r} is not {V21}; only v2.1 datasets are converted"
        )
    if keep_old_as is not None and keep_old_as.exists():
        raise DatasetExistsError(
            f"{keep_old_as} already exists; move it away so that the original can be kept there"
        )
    if not in_place and destination.exists() and not force:
        raise DatasetExistsError(f"{destination} already exists (pass force to replace it)")

    plan = _read_v21(source)
    staging = fresh_staging(destination, "v30")
    try:
        _write_v30(plan, staging, data_file_size_in_mb, video_file_size_in_mb)
    except BaseException:
        remove_quietly([staging])
        raise
    if destination.exists():
        swap_in(staging, destination, keep_old_as=keep_old_as)
    else:
        move_in(staging, destination)
    return destination


def _finish_interrupted_swap(root: Path, old_root: Path) -> None:
    """Completes an in-place conversion that died between putting the new dataset in place and
    naming the original ``<root>_old`` (the original is then still under the staging name)."""
    staging = staging_path(root, "v30")
    if not staging.is_dir() or old_root.exists() or not root.is_dir():
        return
    try:
        if _codebase_version(root) == CODEBASE_VERSION and _codebase_version(staging) == V21:
            staging.rename(old_root)
    except DatasetError:
        return  # a partial staging folder of a conversion that failed: removed by the next one


# -- reading the v2.1 dataset ----------------------------------------------------------------------


def _codebase_version(root: Path) -> str:
    path = root / INFO_PATH
    if not path.is_file():
        raise DatasetError(f"{root}: not a LeRobot dataset (no {INFO_PATH})")
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise DatasetError(f"{path}: not readable JSON ({error})") from error
    if not isinstance(raw, dict) or not isinstance(raw.get("codebase_version"), str):
        raise DatasetError(f"{path}: no 'codebase_version'")
    return raw["codebase_version"]


class _V21Dataset:
    """What the conversion reads from a v2.1 dataset, checked before anything is written."""

    def __init__(self, root: Path):
        self.root = root
        info_file = root / INFO_PATH
        self.raw_info: dict[str, Any] = json.loads(info_file.read_text(encoding="utf-8"))
        self.info = info_from_dict(self.raw_info, info_file)  # validates the schema
        self.features = self.info.features
        self.tasks = _tasks(root / V21_TASKS_PATH)
        self.episodes = _episodes(root / V21_EPISODES_PATH)
        self.episode_stats = _episode_stats(root / V21_EPISODES_STATS_PATH, len(self.episodes))
        count = len(self.episodes)
        if self.info.total_episodes != count:
            raise DatasetError(
                f"{info_file}: total_episodes is {self.info.total_episodes} but {root / V21_EPISODES_PATH} "
                f"lists {count} episodes"
            )
        chunks = self.info.chunks_size
        self.data_files = [
            root / self.info.data_path.format(episode_chunk=e // chunks, episode_index=e)
            for e in range(count)
        ]
        for path, episode in zip(self.data_files, self.episodes, strict=True):
            if not path.is_file():
                raise DatasetError(f"{path}: data file of episode {episode['episode_index']} is missing")
        strays = sorted(set((root / "data").glob("*/*.parquet")) - set(self.data_files))
        if strays:
            raise DatasetError(f"{strays[0]}: a data file of no episode listed in {root / V21_EPISODES_PATH}")
        self.video_keys = sorted(k for k, f in self.features.items() if f["dtype"] == "video")
        self.image_keys = [k for k, f in self.features.items() if f["dtype"] == "image"]
        self.video_files: dict[str, list[Path]] = {}
        for key in self.video_keys:
            if self.info.video_path is None:
                raise DatasetError(f"{info_file}: video feature {key!r} but no 'video_path'")
            paths = [
                root / self.info.video_path.format(episode_chunk=e // chunks, video_key=key, episode_index=e)
                for e in range(count)
            ]
            for episode, path in enumerate(paths):
                if not path.is_file():
                    raise DatasetError(f"{path}: video of episode {episode} ({key}) is missing")
            self.video_files[key] = paths


def _read_v21(root: Path) -> _V21Dataset:
    try:
        return _V21Dataset(root)
    except FileNotFoundError as error:
        raise DatasetError(f"{error.filename}: missing; {root} is not a complete v2.1 dataset") from error
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise DatasetError(f"{root / INFO_PATH}: not readable ({error})") from error


def _tasks(path: Path) -> list[str]:
    rows = sorted(_read_jsonl(path), key=lambda row: row.get("task_index", -1))
    try:
        indices = [int(row["task_index"]) for row in rows]
        tasks = [row["task"] for row in rows]
    except (KeyError, TypeError, ValueError) as error:
        raise DatasetError(f"{path}: each line needs 'task_index' and 'task' ({error})") from error
    if indices != list(range(len(rows))) or not all(isinstance(task, str) for task in tasks):
        raise DatasetError(f"{path}: task_index must run 0..{len(rows) - 1}, each with a task string")
    return tasks


def _episodes(path: Path) -> list[dict[str, Any]]:
    rows = sorted(_read_jsonl(path), key=lambda row: row.get("episode_index", -1))
    for number, row in enumerate(rows):
        if row.get("episode_index") != number:
            raise DatasetError(
                f"{path}: episode_index must run 0..{len(rows) - 1} (missing episode {number})"
            )
        length, tasks = row.get("length"), row.get("tasks", [])
        if isinstance(length, bool) or not isinstance(length, int) or length <= 0:
            raise DatasetError(f"{path}: episode {number} has no positive integer 'length'")
        if not isinstance(tasks, list) or not all(isinstance(task, str) for task in tasks):
            raise DatasetError(f"{path}: episode {number}'s 'tasks' must be a list of strings")
    if not rows:
        raise DatasetError(f"{path}: lists no episode")
    return rows


def _episode_stats(path: Path, count: int) -> list[dict[str, np.ndarray]]:
    rows = sorted(_read_jsonl(path), key=lambda row: row.get("episode_index", -1))
    if [row.get("episode_index") for row in rows] != list(range(count)):
        raise DatasetError(f"{path}: needs one line for each episode 0..{count - 1}")
    stats = []
    for row in rows:
        if not isinstance(row.get("stats"), dict):
            raise DatasetError(f"{path}: episode {row['episode_index']} has no 'stats' object")
        parsed = stats_from_json(row["stats"], path)
        for feature, values in parsed.items():
            for name in ("min", "max", "mean", "std", "count"):
                if name not in values or values[name].dtype.kind not in "biuf":
                    raise DatasetError(
                        f"{path}: episode {row['episode_index']}'s stats of {feature!r} lack a numeric {name!r}"
                    )
        stats.append(parsed)
    return stats


# -- writing the v3.0 dataset ----------------------------------------------------------------------


def _write_v30(plan: _V21Dataset, new_root: Path, data_mb: float, video_mb: float) -> None:
    _write_info(plan, new_root, data_mb, video_mb)
    write_tasks(new_root / TASKS_PATH, plan.tasks)
    data_rows = _convert_data(plan, new_root, data_mb)
    video_rows = [_convert_videos_of(plan, new_root, key, video_mb) for key in plan.video_keys]
    rows = []
    for episode, legacy in enumerate(plan.episodes):
        row: dict[str, Any] = dict(data_rows[episode])
        for per_camera in video_rows:
            row.update(per_camera[episode])
        # The legacy row's keys come after (episode_index keeps its first place), then the stats.
        row.update({key: legacy[key] for key in legacy})
        for feature, values in plan.episode_stats[episode].items():
            for name, value in values.items():
                row[f"stats/{feature}/{name}"] = value
        row["meta/episodes/chunk_index"] = 0
        row["meta/episodes/file_index"] = 0
        rows.append(row)
    table = _episodes_table(rows, plan.root / V21_EPISODES_STATS_PATH)
    write_atomically(new_root / EPISODES_FILE, lambda temporary: pq.write_table(table, temporary))
    write_json_atomically(new_root / STATS_PATH, stats_to_json(aggregate_stats(plan.episode_stats)))


def _write_info(plan: _V21Dataset, new_root: Path, data_mb: float, video_mb: float) -> None:
    info = json.loads(json.dumps(plan.raw_info))  # a deep copy, keeping the key order
    info["codebase_version"] = CODEBASE_VERSION
    info.pop("total_chunks", None)
    info.pop("total_videos", None)
    info["data_files_size_in_mb"] = data_mb
    info["video_files_size_in_mb"] = video_mb
    info["data_path"] = DEFAULT_DATA_PATH
    info["video_path"] = DEFAULT_VIDEO_PATH if info.get("video_path") is not None else None
    info["fps"] = int(info["fps"])
    for feature in info["features"].values():
        if feature["dtype"] != "video":  # video features carry their fps in their info block
            feature["fps"] = info["fps"]
    write_json_atomically(new_root / INFO_PATH, info_from_dict(info, new_root / INFO_PATH).to_dict())


def next_file(chunk: int, file: int) -> tuple[int, int]:
    """LeRobot's ``update_chunk_file_indices`` with its default chunk size (the converter's)."""
    return (chunk + 1, 0) if file == DEFAULT_CHUNK_SIZE - 1 else (chunk, file + 1)


def _group_by_size(sizes_mb: Sequence[float], limit_mb: float) -> list[tuple[int, int, list[int]]]:
    """LeRobot's rule for packing episodes into files: a new file when adding the next episode would
    bring the current one to `limit_mb` or more (a file always takes at least one episode)."""
    groups: list[tuple[int, int, list[int]]] = []
    chunk, file, size, current = 0, 0, 0.0, []
    for episode, episode_mb in enumerate(sizes_mb):
        if size + episode_mb >= limit_mb and current:
            groups.append((chunk, file, current))
            chunk, file = next_file(chunk, file)
            size, current = 0.0, []
        size += episode_mb
        current.append(episode)
    if current:
        groups.append((chunk, file, current))
    return groups


def _uncompressed_mb(path: Path) -> tuple[float, int]:
    try:
        metadata = pq.read_metadata(path)
    except (pa.ArrowException, OSError, ValueError) as error:
        raise DatasetError(f"{path}: not a readable parquet file ({error})") from error
    total = sum(
        metadata.row_group(g).column(c).total_uncompressed_size
        for g in range(metadata.num_row_groups)
        for c in range(metadata.row_group(g).num_columns)
    )
    return total / MB, metadata.num_rows


def _convert_data(plan: _V21Dataset, new_root: Path, limit_mb: float) -> list[dict[str, Any]]:
    sizes, frames = [], []
    for path, legacy in zip(plan.data_files, plan.episodes, strict=True):
        size, rows = _uncompressed_mb(path)
        if rows != legacy["length"]:
            raise DatasetError(
                f"{path}: holds {rows} frames but {plan.root / V21_EPISODES_PATH} says episode "
                f"{legacy['episode_index']} has {legacy['length']}"
            )
        sizes.append(size)
        frames.append(rows)
    starts = np.concatenate([[0], np.cumsum(frames)]).astype(int).tolist()
    rows: list[dict[str, Any]] = [{} for _ in plan.episodes]
    groups = _group_by_size(sizes, limit_mb)
    with tqdm(total=len(plan.episodes), desc="convert data files", file=sys.stderr, disable=None) as progress:
        for chunk, file, episodes in groups:
            for episode in episodes:
                rows[episode] = {
                    "episode_index": episode,
                    "data/chunk_index": chunk,
                    "data/file_index": file,
                    "dataset_from_index": starts[episode],
                    "dataset_to_index": starts[episode + 1],
                }
            output = new_root / DEFAULT_DATA_PATH.format(chunk_index=chunk, file_index=file)
            _write_concatenated([plan.data_files[episode] for episode in episodes], plan, output)
            progress.update(len(episodes))
    return rows


def _read_episode_table(path: Path) -> pa.Table:
    try:
        table = pq.read_table(path)
    except (pa.ArrowException, OSError, ValueError) as error:
        raise DatasetError(f"{path}: not a readable parquet file ({error})") from error
    return table


def _as_pandas_writes(kind: pa.DataType) -> pa.DataType:
    """The type a column has after LeRobot's pandas round trip: lists of any kind become plain
    (variable-length) lists of their converted items."""
    if pa.types.is_list(kind) or pa.types.is_fixed_size_list(kind) or pa.types.is_large_list(kind):
        return pa.list_(pa.field("element", _as_pandas_writes(kind.value_type)))
    if isinstance(kind, pa.ExtensionType):
        return _as_pandas_writes(kind.storage_type)
    if pa.types.is_large_string(kind):
        return pa.string()
    return kind


def _logical_type(kind: pa.DataType) -> str:
    """pandas' name for an Arrow type in its parquet metadata (pyarrow's ``get_logical_type``)."""
    if pa.types.is_list(kind):
        return f"list[{_logical_type(kind.value_type)}]"
    if pa.types.is_string(kind):
        return "unicode"
    if pa.types.is_binary(kind):
        return "bytes"
    if pa.types.is_boolean(kind):
        return "bool"
    if pa.types.is_integer(kind) or pa.types.is_floating(kind):
        return str(kind.to_pandas_dtype().__name__)
    return "object"


def _pandas_metadata(schema: pa.Schema) -> str:
    columns = []
    for field in schema:
        kind = field.type
        numpy_type = (
            str(np.dtype(kind.to_pandas_dtype()))
            if pa.types.is_integer(kind) or pa.types.is_floating(kind) or pa.types.is_boolean(kind)
            else "object"
        )
        columns.append(
            {
                "name": field.name,
                "field_name": field.name,
                "pandas_type": _logical_type(kind),
                "numpy_type": numpy_type,
                "metadata": None,
            }
        )
    return json.dumps(
        {
            "index_columns": [],
            "column_indexes": [],
            "columns": columns,
            "attributes": {},
            "creator": {"library": "pyarrow", "version": pa.__version__},
            "pandas_version": PANDAS_VERSION_WRITTEN,
        }
    )


def _hf_value(kind: pa.DataType) -> dict[str, Any]:
    """The Hugging Face ``datasets`` feature of an Arrow type (``Features.from_arrow_schema``)."""
    if pa.types.is_list(kind):
        return {"feature": _hf_value(kind.value_type), "_type": "List"}
    if pa.types.is_struct(kind) and {f.name for f in kind} == {"bytes", "path"}:
        return {"_type": "Image"}
    if pa.types.is_floating(kind):
        return {"dtype": {16: "float16", 32: "float32", 64: "float64"}[kind.bit_width], "_type": "Value"}
    if pa.types.is_boolean(kind):
        return {"dtype": "bool", "_type": "Value"}
    if pa.types.is_string(kind):
        return {"dtype": "string", "_type": "Value"}
    if pa.types.is_binary(kind):
        return {"dtype": "binary", "_type": "Value"}
    return {"dtype": str(kind), "_type": "Value"}


def _write_concatenated(paths: list[Path], plan: _V21Dataset, path: Path) -> None:
    """The episodes' data files as one file, as LeRobot's pandas concatenation writes it."""
    declared = {key for key, feature in plan.features.items() if feature["dtype"] != "video"}
    tables = [_read_episode_table(episode_path) for episode_path in paths]
    names = tables[0].column_names
    schema = pa.schema(
        [pa.field(name, _as_pandas_writes(tables[0].schema.field(name).type)) for name in names]
    )
    converted = []
    for table, episode_path in zip(tables, paths, strict=True):
        if set(table.column_names) != declared:
            raise DatasetError(
                f"{episode_path}: columns {sorted(table.column_names)} are not the declared features "
                f"{sorted(declared)}"
            )
        try:
            converted.append(
                pa.Table.from_arrays(
                    [table.column(name).cast(schema.field(name).type) for name in names], schema=schema
                )
            )
        except (pa.ArrowException, ValueError) as error:
            raise DatasetError(
                f"{episode_path}: columns of other types than {paths[0]}'s ({error})"
            ) from error
    metadata = {"pandas": _pandas_metadata(schema)}
    if plan.image_keys:
        # LeRobot declares image columns as datasets' Image feature, which adds datasets' metadata.
        features = {field.name: _hf_value(field.type) for field in schema}
        metadata = {"huggingface": json.dumps({"info": {"features": features}}), **metadata}
    table = pa.concat_tables(converted).replace_schema_metadata(metadata)
    write_atomically(path, lambda temporary: pq.write_table(table, temporary))


def _convert_videos_of(plan: _V21Dataset, new_root: Path, key: str, limit_mb: float) -> list[dict[str, Any]]:
    from dexloop.video import remux_segments

    paths = plan.video_files[key]
    rows: list[dict[str, Any]] = [{} for _ in paths]
    groups = _group_by_size([path.stat().st_size / MB for path in paths], limit_mb)
    with tqdm(total=len(paths), desc=f"convert videos of {key}", file=sys.stderr, disable=None) as progress:
        for chunk, file, episodes in groups:
            output = new_root / DEFAULT_VIDEO_PATH.format(video_key=key, chunk_index=chunk, file_index=file)
            output.parent.mkdir(parents=True, exist_ok=True)
            segments = [(paths[episode], 0.0, None) for episode in episodes]
            try:
                spans = remux_segments(segments, output)
            except DexloopError as error:
                raise DatasetError(
                    f"cannot concatenate the {key} videos of episodes {episodes[0]}..{episodes[-1]} ({error})"
                ) from error
            if len(spans) != len(episodes):
                raise DatasetError(f"{output}: the remuxer placed {len(spans)} of {len(episodes)} episodes")
            for episode, (start, end) in zip(episodes, spans, strict=True):
                if not (math.isfinite(start) and math.isfinite(end) and end > start):
                    raise DatasetError(f"{paths[episode]}: video of episode {episode} has no duration")
                rows[episode] = {
                    "episode_index": episode,
                    f"videos/{key}/chunk_index": chunk,
                    f"videos/{key}/file_index": file,
                    f"videos/{key}/from_timestamp": float(start),
                    f"videos/{key}/to_timestamp": float(end),
                }
            progress.update(len(episodes))
    return rows


def _stat_type(value: np.ndarray) -> pa.DataType:
    kind: pa.DataType = pa.from_numpy_dtype(value.dtype)
    for _ in range(max(1, value.ndim)):
        kind = pa.list_(pa.field("element", kind))
    return kind


def _episodes_table(rows: list[dict[str, Any]], path: Path) -> pa.Table:
    """The episodes rows with the types LeRobot's ``datasets`` writer gives them: ints as int64,
    timestamps as double, tasks list<string>, each stat the nested list of its JSON values' type
    (count and integer min/max int64, booleans bool, the rest double)."""
    names = list(rows[0])
    for row in rows[1:]:
        if list(row) != names:
            raise DatasetError(f"{path}: episodes carry different stats ({sorted(set(row) ^ set(names))})")
    arrays, features = [], {}
    for name in names:
        values = [row[name] for row in rows]
        if name.startswith("stats/"):
            arrays_of = [np.asarray(v) for v in values]
            if len({a.shape for a in arrays_of}) != 1:
                raise DatasetError(f"{path}: {name} has different shapes in different episodes")
            # One type for the column, as datasets infers it: ints with floats become floats.
            common = np.result_type(*arrays_of)
            column = pa.array(
                [a.astype(common).tolist() for a in arrays_of], type=_stat_type(arrays_of[0].astype(common))
            )
        elif name == "tasks":
            column = pa.array(values, type=pa.list_(pa.field("element", pa.string())))
        elif name.endswith("_timestamp"):
            column = pa.array(values, type=pa.float64())
        elif name in INDEX_COLUMNS or name.endswith(("/chunk_index", "/file_index")):
            column = pa.array(values, type=pa.int64())
        else:
            # Another key of the v2.1 episodes.jsonl rows: kept, with the type its values have.
            try:
                column = pa.array(values)
            except (pa.ArrowException, ValueError) as error:
                raise DatasetError(
                    f"{path}: episodes' {name!r} values have no common type ({error})"
                ) from error
        arrays.append(column)
        features[name] = _hf_value(column.type)
    table = pa.Table.from_arrays(arrays, names=names)
    return table.replace_schema_metadata({"huggingface": json.dumps({"info": {"features": features}})})


__all__ = ["convert_dataset_v21_to_v30"]
