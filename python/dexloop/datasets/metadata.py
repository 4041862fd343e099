"""``LeRobotDatasetMetadata``: a dataset's info, tasks, episodes and stats, read from ``meta/``.

v3.0 keeps episodes in ``meta/episodes/chunk-*/file-*.parquet`` and tasks in ``meta/tasks.parquet``;
v2.1 keeps them in ``meta/episodes.jsonl`` and ``meta/tasks.jsonl`` with one data and one video file
per episode. Both are presented the v3.0 way (the episodes table has v3.0's columns, v2.1 videos start
at from_timestamp 0), so the rest of dexloop reads either through the same code.

Loading cross-checks the metadata against itself and info.json (episode and task counts, contiguous
frame ranges, each video file tiled by its episodes, typed and finite columns, the same columns in
every episodes file), so that a missing or damaged file raises a DatasetError naming it instead of
the dataset silently shrinking or pointing at other frames.
"""

from __future__ import annotations

import errno
import json
import re
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from dexloop import hub
from dexloop.errors import (
    DatasetArgumentError,
    DatasetError,
    DatasetExistsError,
    DatasetIndexError,
    DatasetUnfinishedError,
)

from .durable import write_json_atomically
from .info import (
    CODEBASE_VERSION,
    EPISODES_DIR,
    INFO_PATH,
    STATS_PATH,
    TASKS_PATH,
    DatasetInfo,
    info_from_dict,
    load_info,
    new_info_dict,
)
from .recording_journal import has_journal
from .stats import Stats, aggregate_stats, load_stats, stats_from_json

V21_EPISODES_PATH = "meta/episodes.jsonl"
V21_EPISODES_STATS_PATH = "meta/episodes_stats.jsonl"
V21_TASKS_PATH = "meta/tasks.jsonl"
# LeRobot's per-frame language annotation columns (``lerobot.datasets.language.LANGUAGE_COLUMNS``).
LANGUAGE_COLUMNS = ("language_persistent", "language_events")


class EpisodeTable:
    """One row per episode (``stats/*`` columns left out), indexed like the Hugging Face dataset
    LeRobot returns: ``table[i]`` is episode i's row as a dict, ``table["length"]`` a column as a list.
    """

    def __init__(self, table: pa.Table):
        self._table = table

    @property
    def arrow(self) -> pa.Table:
        return self._table

    @property
    def column_names(self) -> list[str]:
        return self._table.column_names

    def __len__(self) -> int:
        return self._table.num_rows

    def __getitem__(self, key: int | str) -> Any:
        if isinstance(key, str):
            if key not in self._table.column_names:
                raise KeyError(f"episodes have no column {key!r}; columns: {self._table.column_names}")
            return self._table.column(key).to_pylist()
        index = int(key)
        if not -len(self) <= index < len(self):
            raise DatasetIndexError(f"episode {key} is out of range for {len(self)} episodes")
        return self._table.slice(index % len(self), 1).to_pylist()[0]

    def __iter__(self) -> Iterator[dict]:
        return iter(self._table.to_pylist())

    def column(self, name: str) -> np.ndarray:
        """A column as a numpy array (for numeric columns), without Python objects per row."""
        return self._table.column(name).to_numpy()

    # -- the parts of Hugging Face ``datasets.Dataset`` that LeRobot's code calls on episodes ----

    @property
    def num_rows(self) -> int:
        return len(self)

    def select(self, indices: Iterable[int], **_cache_options: Any) -> EpisodeTable:
        """The rows at ``indices`` (row positions, in the order given), as ``datasets.Dataset.select``."""
        positions = []
        for index in indices:
            if isinstance(index, (bool, np.bool_)) or not isinstance(index, (int, np.integer)):
                raise DatasetArgumentError(f"episode rows are selected by integer position, got {index!r}")
            if not 0 <= int(index) < len(self):
                raise DatasetIndexError(f"row {int(index)} is out of range for {len(self)} episodes")
            positions.append(int(index))
        return EpisodeTable(self._table.take(pa.array(positions, pa.int64())))

    def filter(
        self,
        function: Callable[..., bool],
        with_indices: bool = False,
        input_columns: str | list[str] | None = None,
        **_cache_options: Any,
    ) -> EpisodeTable:
        """The rows for which ``function(row)`` is true, as ``datasets.Dataset.filter`` (one row at a
        time; ``input_columns`` passes those columns' values as positional arguments instead of the
        row; ``with_indices`` adds the row position as last argument). Cache options are accepted and
        have no effect: nothing is cached."""
        columns = [input_columns] if isinstance(input_columns, str) else input_columns
        keep = []
        for position, row in enumerate(self._table.to_pylist()):
            args = [row[name] for name in columns] if columns is not None else [row]
            if with_indices:
                args.append(position)
            if function(*args):
                keep.append(position)
        return self.select(keep)

    def select_columns(self, column_names: str | list[str]) -> EpisodeTable:
        names = [column_names] if isinstance(column_names, str) else list(column_names)
        missing = [name for name in names if name not in self._table.column_names]
        if missing:
            raise KeyError(f"episodes have no columns {missing}; columns: {self._table.column_names}")
        return EpisodeTable(self._table.select(names))

    def unique(self, column: str) -> list:
        """The distinct values of a column, in order of first appearance."""
        return list(dict.fromkeys(self[column]))

    def to_pandas(self) -> pd.DataFrame:
        return self._table.to_pandas()

    def __repr__(self) -> str:
        return f"EpisodeTable(episodes={len(self)}, columns={self._table.column_names})"


class LeRobotDatasetMetadata:
    """Metadata of a LeRobot dataset, with LeRobot's attribute names.

    ``root`` is the dataset directory when given; otherwise ``$HF_LEROBOT_HOME/<repo_id>`` is used if
    it holds the dataset and is not a legacy Hub download (a ``snapshot_download(local_dir=...)``
    mirror, recognised by its ``.cache/huggingface/download`` folder), else ``meta/`` is downloaded
    from the Hub into the revision-safe snapshot cache ``$HF_LEROBOT_HOME/hub`` (LeRobot's rule).

    ``revision`` is the Hub revision the files come from; for a local dataset read without one it is
    the dataset's own ``codebase_version`` (LeRobot reports v3.0, the only version it reads).
    ``metadata_buffer_size`` is a writing option of LeRobot's, accepted and unused here;
    ``repo_type="bucket"`` (HF Storage Buckets) is not supported.
    """

    def __init__(
        self,
        repo_id: str,
        root: str | Path | None = None,
        revision: str | None = None,
        force_cache_sync: bool = False,
        metadata_buffer_size: int = 10,
        *,
        repo_type: str = "dataset",
        token: str | bool | None = None,
    ):
        if repo_type not in ("dataset", "bucket"):
            raise DatasetArgumentError(f"repo_type must be 'dataset' or 'bucket', got {repo_type!r}")
        if repo_type == "bucket":
            raise DatasetError(
                f"dataset {repo_id!r}: repo_type='bucket' (HF Storage Buckets, streaming only) is not "
                "supported by dexloop; download the dataset and pass root="
            )
        self.repo_id = repo_id
        self.repo_type = repo_type
        self.revision = revision or CODEBASE_VERSION
        self._requested_root = Path(root) if root is not None else None
        self.root = self._requested_root if self._requested_root is not None else hub.lerobot_home() / repo_id
        try:
            if force_cache_sync or (self._requested_root is None and hub.is_legacy_hub_download(self.root)):
                raise FileNotFoundError
            self._load()
            if revision is None:
                self.revision = self.info.codebase_version
        except (FileNotFoundError, NotADirectoryError) as missing:
            self.root, self.revision = hub.download(
                repo_id,
                revision=self.revision,
                local_dir=self._requested_root,
                allow_patterns="meta/",
                what=f"metadata file {missing.filename or self.root / 'meta'}",
                token=token,
            )
            self._load()

    @classmethod
    def create(
        cls,
        repo_id: str,
        fps: int,
        features: dict,
        robot_type: str | None = None,
        root: str | Path | None = None,
        use_videos: bool = True,
        metadata_buffer_size: int = 10,
        chunks_size: int | None = None,
        data_files_size_in_mb: int | None = None,
        video_files_size_in_mb: int | None = None,
    ) -> LeRobotDatasetMetadata:
        """A new, empty dataset at `root` (default ``$HF_LEROBOT_HOME/<repo_id>``), which must not
        exist: ``meta/info.json`` with `features` plus LeRobot's five default columns and zero
        counters, as LeRobot's ``LeRobotDatasetMetadata.create`` writes it."""
        if not isinstance(features, dict) or not all(isinstance(f, dict) for f in features.values()):
            raise DatasetArgumentError("features must be a dict of {name: {'dtype', 'shape', 'names'}}")
        video_keys = [name for name, feature in features.items() if feature.get("dtype") == "video"]
        if video_keys and not use_videos:
            raise DatasetArgumentError(
                f"Features contain video keys {video_keys}, but 'use_videos' is set to False. Either remove "
                "video features from the features dict, or set 'use_videos=True'."
            )
        raw = new_info_dict(
            fps,
            features,
            robot_type,
            use_videos,
            chunks_size=chunks_size,
            data_files_size_in_mb=data_files_size_in_mb,
            video_files_size_in_mb=video_files_size_in_mb,
        )
        for key in ("data_files_size_in_mb", "video_files_size_in_mb"):
            if not isinstance(raw[key], (int, float)) or isinstance(raw[key], bool) or raw[key] <= 0:
                raise DatasetArgumentError(f"{key} must be a positive number, got {raw[key]!r}")
        try:
            info = info_from_dict(raw, "features")
        except DatasetError as error:
            raise DatasetArgumentError(f"cannot create dataset {repo_id!r}: {error}") from error
        obj = cls.__new__(cls)
        obj.repo_id = repo_id
        obj.repo_type = "dataset"
        obj.revision = None
        obj._requested_root = Path(root) if root is not None else None
        obj.root = obj._requested_root if obj._requested_root is not None else hub.lerobot_home() / repo_id
        try:
            obj.root.mkdir(parents=True, exist_ok=False)
        except FileExistsError:
            raise DatasetExistsError(
                f"{obj.root}: a dataset folder already exists there; LeRobotDataset.create() never overwrites "
                "one (LeRobotDataset.resume() appends to a dataset)"
            ) from None
        write_json_atomically(obj.root / INFO_PATH, info.to_dict())
        obj.info = info
        obj.tasks = None
        obj.episodes = None
        obj.stats = None
        obj.latest_episode = None
        return obj

    def update_chunk_settings(
        self,
        chunks_size: int | None = None,
        data_files_size_in_mb: float | None = None,
        video_files_size_in_mb: float | None = None,
    ) -> None:
        """LeRobot's ``update_chunk_settings``: changes the file rollover limits of a dataset being
        recorded (they apply from the next episode) and rewrites ``info.json``."""
        for name, value in (
            ("chunks_size", chunks_size),
            ("data_files_size_in_mb", data_files_size_in_mb),
            ("video_files_size_in_mb", video_files_size_in_mb),
        ):
            if value is None:
                continue
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
                raise DatasetArgumentError(f"{name} must be positive, got {value!r}")
            setattr(self.info, name, value)
        write_json_atomically(self.root / INFO_PATH, self.info.to_dict())

    # -- loading -------------------------------------------------------------------------------

    def _load(self) -> None:
        if has_journal(self.root):
            raise DatasetUnfinishedError(
                f"{self.root}: holds a recording that was not finalized (interrupted, or still being "
                f"recorded); `dexloop dataset repair {self.root}` or LeRobotDataset.resume() completes it"
            )
        self.info: DatasetInfo = load_info(self.root)
        if self.is_v21:
            self.tasks = _load_v21_tasks(self.root / V21_TASKS_PATH)
            self.episodes = EpisodeTable(_load_v21_episodes(self.root, self.info))
            self.stats = load_stats(self.root / STATS_PATH) or _load_v21_stats(self.root)
        else:
            # Loaded whenever present, so that a zero total in info.json is checked against them too.
            has_tasks = self.info.total_tasks > 0 or (self.root / TASKS_PATH).exists()
            self.tasks = _load_tasks(self.root / TASKS_PATH) if has_tasks else None
            has_episodes = self.info.total_episodes > 0 or any((self.root / EPISODES_DIR).glob("*/*.parquet"))
            self.episodes = EpisodeTable(_load_episodes(self.root, self.info)) if has_episodes else None
            self.stats = load_stats(self.root / STATS_PATH)
        if self.tasks is not None and len(self.tasks) != self.info.total_tasks:
            tasks_path = self.root / (V21_TASKS_PATH if self.is_v21 else TASKS_PATH)
            raise DatasetError(
                f"{tasks_path}: holds {len(self.tasks)} tasks but {self.root / INFO_PATH} 'total_tasks' "
                f"is {self.info.total_tasks}"
            )

    def ensure_readable(self) -> None:
        """LeRobot's guard before reading a dataset it was writing; metadata here is always loaded."""

    def filter_episodes(
        self, predicate: Callable[[dict], bool], candidates: list[int] | None = None
    ) -> list[int]:
        """Sorted indices of the episodes whose row (``meta.episodes[i]``, without stats) satisfies
        ``predicate``, restricted to ``candidates`` when given (LeRobot's ``filter_episodes``)."""
        if self.episodes is None:
            return []
        allowed = None if candidates is None else {int(c) for c in candidates}
        kept = self.episodes.filter(
            lambda row: (allowed is None or row["episode_index"] in allowed) and predicate(row)
        )
        return sorted(int(index) for index in kept["episode_index"])

    def rescale_depth_stats(self, output_unit: str) -> None:
        """Converts the stats of depth features from the unit they were recorded in
        (``features[key]["info"]["depth_unit"]``, "m" or "mm") to ``output_unit``, as LeRobot does
        so that stats match the frames it returns; ``count`` is left as it is."""
        if output_unit not in ("m", "mm"):
            raise DatasetArgumentError(f"depth output unit must be 'm' or 'mm', got {output_unit!r}")
        for key in self.depth_keys:
            stored = (self.features[key].get("info") or {}).get("depth_unit")
            if self.stats is None or stored is None or stored == output_unit or key not in self.stats:
                continue
            factor = 1000.0 if stored == "m" else 1.0 / 1000.0
            self.stats[key] = {
                name: value if name == "count" else value * factor for name, value in self.stats[key].items()
            }

    @property
    def has_language_columns(self) -> bool:
        """True when the dataset declares LeRobot's language annotation columns."""
        return any(column in self.features for column in LANGUAGE_COLUMNS)

    @property
    def _version(self) -> Any:
        """``codebase_version`` as a ``packaging`` Version: the private attribute LeRobot's own modules
        (e.g. its streaming dataset) read from a metadata object. packaging comes with LeRobot."""
        from packaging.version import Version

        return Version(self.info.codebase_version)

    @property
    def is_v21(self) -> bool:
        """True for the one-file-per-episode layout of LeRobot <= 0.3 (codebase_version v2.1)."""
        return self.info.version[0] == 2

    # -- LeRobot's metadata attributes ---------------------------------------------------------

    @property
    def data_path(self) -> str:
        return self.info.data_path

    @property
    def video_path(self) -> str | None:
        return self.info.video_path

    @property
    def robot_type(self) -> str | None:
        return self.info.robot_type

    @property
    def fps(self) -> int:
        return self.info.fps

    @property
    def features(self) -> dict[str, dict]:
        return self.info.features

    @property
    def image_keys(self) -> list[str]:
        return [key for key, feature in self.features.items() if feature["dtype"] == "image"]

    @property
    def video_keys(self) -> list[str]:
        return [key for key, feature in self.features.items() if feature["dtype"] == "video"]

    @property
    def camera_keys(self) -> list[str]:
        return [key for key, feature in self.features.items() if feature["dtype"] in ("video", "image")]

    @property
    def depth_keys(self) -> list[str]:
        def is_depth(feature: dict) -> bool:
            info = feature.get("info") or {}
            video_info = feature.get("video_info") or {}
            return bool(
                info.get("is_depth_map")
                or info.get("video.is_depth_map")
                or video_info.get("video.is_depth_map")
            )

        return [key for key, feature in self.features.items() if is_depth(feature)]

    @property
    def names(self) -> dict[str, list | dict | None]:
        return {key: feature.get("names") for key, feature in self.features.items()}

    @property
    def shapes(self) -> dict[str, tuple]:
        return {key: tuple(feature["shape"]) for key, feature in self.features.items()}

    @property
    def total_episodes(self) -> int:
        return self.info.total_episodes

    @property
    def total_frames(self) -> int:
        return self.info.total_frames

    @property
    def total_tasks(self) -> int:
        return self.info.total_tasks

    @property
    def chunks_size(self) -> int:
        return self.info.chunks_size

    @property
    def data_files_size_in_mb(self) -> int:
        return self.info.data_files_size_in_mb

    @property
    def video_files_size_in_mb(self) -> int:
        return self.info.video_files_size_in_mb

    @property
    def url_root(self) -> str:
        return f"hf://datasets/{self.repo_id}"

    def get_task_index(self, task: str) -> int | None:
        """The task_index of a task string, or None when the dataset has no such task."""
        if self.tasks is None or task not in self.tasks.index:
            return None
        return int(self.tasks.loc[task].task_index)

    def _episode_row(self, ep_index: int) -> dict:
        if self.episodes is None or not 0 <= ep_index < len(self.episodes):
            count = len(self.episodes) if self.episodes is not None else 0
            raise DatasetIndexError(f"episode index {ep_index} is out of range for {count} episodes")
        return self.episodes[ep_index]

    def _format_path(self, key: str, **fields: Any) -> Path:
        template = self.info.data_path if key == "data_path" else self.info.video_path
        if template is None:
            raise DatasetError(f"{self.root / 'meta/info.json'}: {key} is null")
        try:
            return Path(template.format(**fields))
        except (ValueError, KeyError, IndexError, TypeError, AttributeError) as error:
            raise DatasetError(
                f"{self.root / 'meta/info.json'}: {key} {template!r} cannot be filled with "
                f"{sorted(fields)} ({error!r})"
            ) from error

    def get_data_file_path(self, ep_index: int) -> Path:
        """Path, relative to root, of the parquet file holding episode ``ep_index``."""
        row = self._episode_row(ep_index)
        if self.is_v21:
            return self._format_path(
                "data_path", episode_chunk=row["data/chunk_index"], episode_index=ep_index
            )
        return self._format_path(
            "data_path", chunk_index=row["data/chunk_index"], file_index=row["data/file_index"]
        )

    def get_video_file_path(self, ep_index: int, vid_key: str) -> Path:
        """Path, relative to root, of the mp4 holding camera ``vid_key`` of episode ``ep_index``."""
        if vid_key not in self.video_keys:
            raise KeyError(f"{vid_key!r} is not a video feature; video features: {self.video_keys}")
        row = self._episode_row(ep_index)
        chunk = row[f"videos/{vid_key}/chunk_index"]
        if self.is_v21:
            return self._format_path(
                "video_path", episode_chunk=chunk, video_key=vid_key, episode_index=ep_index
            )
        return self._format_path(
            "video_path", video_key=vid_key, chunk_index=chunk, file_index=row[f"videos/{vid_key}/file_index"]
        )

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(repo_id={self.repo_id!r}, root='{self.root}', "
            f"codebase_version={self.info.codebase_version!r}, total_episodes={self.total_episodes}, "
            f"total_frames={self.total_frames}, features={list(self.features)})"
        )


# -- v3.0 -----------------------------------------------------------------------------------------


def read_parquet(path: Path | str, filesystem: Any = None, **kwargs: Any) -> pa.Table:
    """pyarrow's reader, with failures turned into errors naming the file: memory-mapped for a local
    file; with an fsspec ``filesystem`` (the Hub's), by range reads of the row groups needed."""
    try:
        if filesystem is None:
            table = pq.read_table(path, memory_map=True, **kwargs)
        else:
            table = pq.read_table(path, filesystem=filesystem, **kwargs)
        table.column_names  # noqa: B018 - decodes the field names: a damaged footer fails here
        return table
    except FileNotFoundError as error:
        # With the file name set, so that a download fallback can say which file it looked for.
        raise FileNotFoundError(errno.ENOENT, "no such parquet file", str(path)) from error
    except (pa.ArrowException, OSError, ValueError) as error:
        raise DatasetError(f"{path}: not a readable parquet file ({error})") from error


def tasks_frame(tasks: list[str]) -> pd.DataFrame:
    """LeRobot's ``meta.tasks``: the task strings as the index "task", column task_index 0..n-1."""
    return pd.DataFrame(
        {"task_index": np.arange(len(tasks), dtype=np.int64)}, index=pd.Index(tasks, name="task")
    )


def _load_tasks(path: Path) -> pd.DataFrame:
    """tasks.parquet as LeRobot's DataFrame: index "task" (the strings), column task_index. Built
    from the physical columns, so a file written without pandas' index metadata reads the same (with
    LeRobot such a file yields row numbers instead of task strings)."""
    table = read_parquet(path)
    if "task" not in table.column_names or "task_index" not in table.column_names:
        raise DatasetError(f"{path}: expected columns 'task' and 'task_index', found {table.column_names}")
    task_type, index_type = table.schema.field("task").type, table.schema.field("task_index").type
    if not (pa.types.is_string(task_type) or pa.types.is_large_string(task_type)):
        raise DatasetError(f"{path}: column 'task' holds {task_type} values, expected strings")
    if not pa.types.is_integer(index_type):
        raise DatasetError(f"{path}: column 'task_index' holds {index_type} values, expected integers")
    try:
        tasks = [str(task) for task in table.column("task").to_pylist()]
        indices = table.column("task_index").to_numpy()
    except (pa.ArrowException, ValueError) as error:
        raise DatasetError(f"{path}: unreadable task columns ({error})") from error
    if not np.array_equal(indices, np.arange(len(tasks))):
        raise DatasetError(f"{path}: rows must be sorted by task_index 0..{len(tasks) - 1}")
    return tasks_frame(tasks)


def _load_episodes(root: Path, info: DatasetInfo) -> pa.Table:
    paths = sorted((root / EPISODES_DIR).glob("*/*.parquet"), key=str)
    if not paths:
        raise FileNotFoundError(2, "no episode metadata files", str(root / EPISODES_DIR))
    required = ["episode_index", "dataset_from_index", "dataset_to_index"]
    for key in (k for k, f in info.features.items() if f["dtype"] == "video"):
        required += [f"videos/{key}/chunk_index", f"videos/{key}/file_index", f"videos/{key}/from_timestamp"]
    tables = []
    for path in paths:
        table = read_parquet(path)
        table = table.select([name for name in table.column_names if not name.startswith("stats/")])
        # Checked per file: concatenation would fill a column one file lacks with nulls.
        _require_columns(table, required, path)
        _check_column_values(table, path)
        tables.append(table)
    _check_same_schema(tables, paths)
    try:
        table = pa.concat_tables(tables, promote_options="default")
    except pa.ArrowException as error:
        raise DatasetError(
            f"{root / EPISODES_DIR}: episode files have incompatible columns ({error})"
        ) from error
    first_rows = np.cumsum([0] + [t.num_rows for t in tables])

    def file_of(episode: int) -> Path:
        return paths[int(np.searchsorted(first_rows, episode, side="right")) - 1]

    if table.num_rows != info.total_episodes:
        raise DatasetError(
            f"{root / EPISODES_DIR}: the episodes files hold {table.num_rows} episodes but "
            f"{root / INFO_PATH} 'total_episodes' is {info.total_episodes}; {_missing_files_hint(root, paths, info)}"
        )
    _check_episode_order(table, root / EPISODES_DIR)
    _check_totals(table, info, root / EPISODES_DIR, root / INFO_PATH, file_of)
    return table


def _missing_files_hint(root: Path, paths: list[Path], info: DatasetInfo) -> str:
    """Which episodes files LeRobot's numbering (file-000, file-001, ..., the next chunk after
    chunks_size files) says are absent, for the message of an episode count that falls short."""
    directory = root / EPISODES_DIR
    present = set()
    for path in paths:
        match = re.fullmatch(r"chunk-(\d+)/file-(\d+)\.parquet", path.relative_to(directory).as_posix())
        if match is None:
            return "an episodes file is missing or info.json is stale"
        present.add((int(match[1]), int(match[2])))
    last, position, skipped = max(present), (0, 0), []
    for _ in range(100_000):  # bounded: absurd numbers in file names end the search
        if position > last:
            break
        if position not in present:
            skipped.append(position)
        chunk, file = position
        position = (chunk + 1, 0) if file >= info.chunks_size - 1 else (chunk, file + 1)

    def name(chunk_file: tuple[int, int]) -> str:
        return f"{EPISODES_DIR}/chunk-{chunk_file[0]:03d}/file-{chunk_file[1]:03d}.parquet"

    if skipped:
        return f"missing from the files' numbering: {', '.join(name(p) for p in skipped[:5])}"
    return f"an episodes file is missing (the next one in the numbering would be {name(position)}) or info.json is stale"


# Episode metadata columns and the kind of values they must hold ("i": integers >= 0, "f": finite
# numbers >= 0); video columns are matched by their suffix.
_EPISODE_COLUMN_KINDS = {
    "episode_index": "i",
    "length": "i",
    "data/chunk_index": "i",
    "data/file_index": "i",
    "dataset_from_index": "i",
    "dataset_to_index": "i",
    "meta/episodes/chunk_index": "i",
    "meta/episodes/file_index": "i",
}
_VIDEO_COLUMN_KINDS = {"/chunk_index": "i", "/file_index": "i", "/from_timestamp": "f", "/to_timestamp": "f"}


def _column_kind(name: str) -> str | None:
    if name in _EPISODE_COLUMN_KINDS:
        return _EPISODE_COLUMN_KINDS[name]
    if name.startswith("videos/"):
        for suffix, kind in _VIDEO_COLUMN_KINDS.items():
            if name.endswith(suffix):
                return kind
    return None


def _check_column_values(table: pa.Table, path: Path) -> None:
    """Index columns hold non-negative integers and timestamp columns finite non-negative numbers,
    with no nulls: a float index would be truncated and a NaN time would query no frame."""
    for name in table.column_names:
        kind = _column_kind(name)
        if kind is None:
            continue
        column = table.column(name)
        if column.null_count:
            raise DatasetError(f"{path}: column {name!r} has missing (null) values")
        type_ok = (
            pa.types.is_integer(column.type)
            if kind == "i"
            else (pa.types.is_floating(column.type) or pa.types.is_integer(column.type))
        )
        if not type_ok:
            expected = "integers" if kind == "i" else "numbers (seconds)"
            raise DatasetError(f"{path}: column {name!r} holds {column.type} values, expected {expected}")
        values = column.to_numpy()
        bad = ~np.isfinite(values) | (values < 0) if kind == "f" else values < 0
        if bad.any():
            row = int(np.argmax(bad))
            expected = "a finite number >= 0" if kind == "f" else "an integer >= 0"
            raise DatasetError(
                f"{path}: column {name!r} row {row} is {values[row].item()!r}, expected {expected}"
            )


def _check_totals(
    table: pa.Table, info: DatasetInfo, where: Path, info_path: Path, file_of: Callable[[int], Path]
) -> None:
    """The episode metadata describes exactly the dataset info.json announces: a deleted or stale
    episodes file shows here instead of the dataset silently shrinking."""
    if table.num_rows != info.total_episodes:
        raise DatasetError(
            f"{where}: the episode metadata holds {table.num_rows} episodes but {info_path} "
            f"'total_episodes' is {info.total_episodes}"
        )
    from_index = table.column("dataset_from_index").to_numpy()
    to_index = table.column("dataset_to_index").to_numpy()
    if from_index[0] != 0:
        raise DatasetError(f"{file_of(0)}: episode 0 has dataset_from_index {int(from_index[0])}, expected 0")
    gaps = np.flatnonzero(from_index[1:] != to_index[:-1])
    if gaps.size:
        episode = int(gaps[0]) + 1
        raise DatasetError(
            f"{file_of(episode)}: episode {episode} has dataset_from_index {int(from_index[episode])} but episode "
            f"{episode - 1} ends at dataset_to_index {int(to_index[episode - 1])}; frame ranges must be contiguous"
        )
    frames = int(to_index[-1] - from_index[0])
    if frames != info.total_frames:
        raise DatasetError(
            f"{where}: the episodes span {frames} frames (dataset_from_index of the first to dataset_to_index "
            f"of the last) but {info_path} 'total_frames' is {info.total_frames}"
        )
    if "length" in table.column_names:
        lengths = table.column("length").to_numpy()
        wrong = np.flatnonzero(lengths != to_index - from_index)
        if wrong.size:
            episode = int(wrong[0])
            raise DatasetError(
                f"{file_of(episode)}: episode {episode} has 'length' {int(lengths[episode])} but its frame range "
                f"dataset_from_index..dataset_to_index holds {int(to_index[episode] - from_index[episode])}"
            )
    _check_video_segments(table, info, file_of)


def _check_video_segments(table: pa.Table, info: DatasetInfo, file_of: Callable[[int], Path]) -> None:
    """The episodes of each video file tile it from time 0 in episode order, each lasting its number
    of frames, as LeRobot writes them (its dataset tools re-encode a file rather than leave gaps).
    A from_timestamp or file index off by a frame or more would otherwise return another episode's or
    another step's frames; shifts below half a frame are left to ``tolerance_s`` when decoding."""
    half_frame = 0.5 / info.fps + 1e-9
    lengths = table.column("dataset_to_index").to_numpy() - table.column("dataset_from_index").to_numpy()
    durations = lengths / info.fps
    for key in (k for k, f in info.features.items() if f["dtype"] == "video"):
        start = table.column(f"videos/{key}/from_timestamp").to_numpy().astype(np.float64)
        name = f"videos/{key}/to_timestamp"
        if name in table.column_names:
            end = table.column(name).to_numpy().astype(np.float64)
            wrong = np.flatnonzero(np.abs(end - start - durations) > half_frame)
            if wrong.size:
                e = int(wrong[0])
                raise DatasetError(
                    f"{file_of(e)}: episode {e} spans {end[e] - start[e]:.6f} s of its video "
                    f"(videos/{key}/from_timestamp {float(start[e])!r} to {name} {float(end[e])!r}) but has "
                    f"{int(lengths[e])} frames at {info.fps} fps ({durations[e]:.6f} s)"
                )
        where = np.stack(
            [
                table.column(f"videos/{key}/chunk_index").to_numpy(),
                table.column(f"videos/{key}/file_index").to_numpy(),
            ],
            axis=1,
        )
        _, group = np.unique(where, axis=0, return_inverse=True)
        order = np.argsort(group.reshape(-1), kind="stable")  # by file, episode order within each
        grouped = group.reshape(-1)[order]
        before = np.cumsum(durations[order]) - durations[order]  # time of all earlier rows in `order`
        first_of_file = np.r_[True, grouped[1:] != grouped[:-1]]
        expected = np.empty(len(order))
        expected[order] = before - np.maximum.accumulate(np.where(first_of_file, before, 0.0))
        wrong = np.flatnonzero(np.abs(start - expected) > half_frame)
        if wrong.size:
            e = int(wrong[0])
            raise DatasetError(
                f"{file_of(e)}: episode {e} has videos/{key}/from_timestamp {float(start[e])!r}, but the episodes "
                f"before it in its video file (videos/{key}/chunk_index {int(where[e, 0])}, videos/{key}/file_index "
                f"{int(where[e, 1])}) last {expected[e]:.6f} s; episodes must follow each other from time 0"
            )


def _check_same_schema(tables: list[pa.Table], paths: list[Path]) -> None:
    """Every episodes file has the first one's columns with the same types: a column missing from
    one file would otherwise be filled with nulls by the concatenation."""
    first = tables[0].schema
    for table, path in zip(tables[1:], paths[1:], strict=True):
        for name in sorted(set(first.names) ^ set(table.schema.names)):
            lacking = path if name in first.names else paths[0]
            raise DatasetError(
                f"{lacking}: lacks the column {name!r} that other episodes files ({paths[0] if lacking != paths[0] else path}) have"
            )
        for field in first:
            other = table.schema.field(field.name).type
            if other != field.type:
                raise DatasetError(
                    f"{path}: column {field.name!r} holds {other} values but {paths[0]} holds {field.type}"
                )


def _require_columns(table: pa.Table, required: list[str], where: Path) -> None:
    missing = [name for name in required if name not in table.column_names]
    if missing:
        raise DatasetError(f"{where}: episode metadata lacks the columns {missing}")


def _check_episode_order(table: pa.Table, where: Path) -> None:
    episode_index = table.column("episode_index").to_numpy()
    if not np.array_equal(episode_index, np.arange(len(episode_index))):
        raise DatasetError(f"{where}: episode_index must run 0..{len(episode_index) - 1} in row order")
    from_index = table.column("dataset_from_index").to_numpy()
    to_index = table.column("dataset_to_index").to_numpy()
    if np.any(to_index <= from_index):
        bad = int(np.argmax(to_index <= from_index))
        raise DatasetError(f"{where}: episode {bad} has no frames (dataset_from_index >= dataset_to_index)")


# -- v2.1 -----------------------------------------------------------------------------------------


def _read_jsonl(path: Path) -> list[dict]:
    if not path.exists():
        raise FileNotFoundError(2, "missing metadata file", str(path))
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise DatasetError(f"{path}: cannot read as UTF-8 text ({error})") from error
    rows = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as error:
            raise DatasetError(f"{path}:{number}: not valid JSON ({error})") from error
        if not isinstance(row, dict):
            raise DatasetError(f"{path}:{number}: expected a JSON object")
        rows.append(row)
    return rows


def _load_v21_tasks(path: Path) -> pd.DataFrame:
    rows = sorted(_read_jsonl(path), key=lambda row: row.get("task_index", -1))
    try:
        indices = [int(row["task_index"]) for row in rows]
        tasks = [str(row["task"]) for row in rows]
    except (KeyError, TypeError, ValueError) as error:
        raise DatasetError(f"{path}: each line needs 'task_index' and 'task' ({error})") from error
    if indices != list(range(len(rows))):
        raise DatasetError(f"{path}: task_index must run 0..{len(rows) - 1}")
    return tasks_frame(tasks)


def _load_v21_episodes(root: Path, info: DatasetInfo) -> pa.Table:
    """v2.1's episodes.jsonl as the v3.0 episodes table: global frame ranges accumulate lengths in
    episode order, and each episode's video is its own file starting at time 0."""
    path = root / V21_EPISODES_PATH
    rows = sorted(_read_jsonl(path), key=lambda row: row.get("episode_index", -1))
    try:
        episode_index = [int(row["episode_index"]) for row in rows]
        lengths = [int(row["length"]) for row in rows]
    except (KeyError, TypeError, ValueError) as error:
        raise DatasetError(f"{path}: each line needs 'episode_index' and 'length' ({error})") from error
    if episode_index != list(range(len(rows))):
        raise DatasetError(f"{path}: episode_index must run 0..{len(rows) - 1}")
    ends = np.cumsum(lengths, dtype=np.int64)
    starts = ends - np.asarray(lengths, dtype=np.int64)
    chunks = np.asarray(episode_index, dtype=np.int64) // info.chunks_size
    columns: dict[str, Any] = {
        "episode_index": pa.array(episode_index, pa.int64()),
        "tasks": pa.array([list(row.get("tasks", [])) for row in rows], pa.list_(pa.string())),
        "length": pa.array(lengths, pa.int64()),
        "data/chunk_index": pa.array(chunks),
        "data/file_index": pa.array(episode_index, pa.int64()),
        "dataset_from_index": pa.array(starts),
        "dataset_to_index": pa.array(ends),
    }
    durations = np.asarray(lengths, dtype=np.float64) / info.fps
    for key in (k for k, f in info.features.items() if f["dtype"] == "video"):
        columns[f"videos/{key}/chunk_index"] = pa.array(chunks)
        columns[f"videos/{key}/file_index"] = pa.array(episode_index, pa.int64())
        columns[f"videos/{key}/from_timestamp"] = pa.array(np.zeros(len(rows)))
        columns[f"videos/{key}/to_timestamp"] = pa.array(durations)
    table = pa.table(columns)
    _check_episode_order(table, path)
    _check_totals(table, info, path, root / INFO_PATH, lambda episode: path)
    return table


def _load_v21_stats(root: Path) -> Stats | None:
    path = root / V21_EPISODES_STATS_PATH
    if not path.exists():
        return None
    per_episode = []
    for row in _read_jsonl(path):
        if not isinstance(row.get("stats"), dict):
            raise DatasetError(f"{path}: episode {row.get('episode_index')} has no 'stats' object")
        per_episode.append(stats_from_json(row["stats"], path))
    return aggregate_stats(per_episode) if per_episode else None
