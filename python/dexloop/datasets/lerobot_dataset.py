"""``LeRobotDataset``: LeRobot's map-style dataset, returning the same items, built batch at a time.

An item is what LeRobot 0.6.1's ``LeRobotDataset.__getitem__`` returns: video frames first (uint8 or
float32 CHW, ``(T, C, H, W)`` with a delta window of several steps), then every parquet column as a
tensor (floats float32, integers int64, shape-[1] features 0-d), the ``<key>_is_pad`` masks of
``delta_timestamps`` keys, and the ``task`` string.

``__getitems__``, which torch's DataLoader calls with a whole batch of indices, does the work once per
batch: the delta windows in C++ (``EpisodeIndex``), the tabular gather as one numpy indexing operation
per key, and every video frame of the batch decoded by a C++ thread pool (``DecoderPool``) with the GIL
released. ``__getitem__`` is the same path with a batch of one.
"""

from __future__ import annotations

import math
import operator
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from dexloop import _core, hub
from dexloop.errors import (
    DatasetArgumentError,
    DatasetError,
    DatasetIndexError,
    DatasetIndexTypeError,
    DatasetReadOnlyError,
    DatasetUnfinishedError,
    DeltaTimestampsError,
)

from . import cross_checks, depth
from .collate import samples_of
from .dataset_files import LocalFiles
from .frame_table import FrameTable
from .info import CODEBASE_VERSION, frame_size
from .metadata import LeRobotDatasetMetadata

# LeRobot's depth units (``lerobot.configs.DEFAULT_DEPTH_UNIT`` is millimetres).
DEPTH_UNITS = depth.DEPTH_UNITS
DEFAULT_DEPTH_UNIT = depth.DEFAULT_DEPTH_UNIT


def as_index(value: Any, what: str) -> int:
    """``value`` as a Python int, for item and episode indices: ints and numpy integers pass; bools,
    floats and strings raise DatasetIndexTypeError (a TypeError, as LeRobot's dataset raises) rather
    than being truncated."""
    if not isinstance(value, (bool, np.bool_)) and hasattr(type(value), "__index__"):
        try:
            return operator.index(value)
        except TypeError:
            pass  # e.g. a float or multi-element tensor, whose type has __index__
    raise DatasetIndexTypeError(f"{what} must be an integer, got {value!r} of type {type(value).__name__}")


def check_reading_arguments(
    image_transforms: Callable | None, tolerance_s: Any, decode_threads: int | None, depth_output_unit: str
) -> None:
    """The reading arguments LeRobotDataset and StreamingLeRobotDataset share, checked as LeRobot
    checks them (and decode_threads, dexloop's)."""
    if image_transforms is not None and not callable(image_transforms):
        raise TypeError("image_transforms must be callable or None")
    if depth_output_unit not in DEPTH_UNITS:
        raise DatasetArgumentError(
            f"depth_output_unit must be one of {DEPTH_UNITS}, got {depth_output_unit!r}"
        )
    if not (isinstance(tolerance_s, (int, float)) and tolerance_s >= 0):
        raise ValueError(f"tolerance_s must be a non-negative number, got {tolerance_s!r}")
    if decode_threads is not None and decode_threads < 1:
        raise ValueError(f"decode_threads must be >= 1, got {decode_threads}")


def default_decode_threads() -> int:
    """One decoding thread per usable core, shared out among DataLoader workers when inside one."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:
        cores = os.cpu_count() or 1
    worker = torch.utils.data.get_worker_info()
    if worker is not None:
        return max(1, cores // max(1, worker.num_workers))
    return max(1, cores)


class _VideoKey:
    """Where one camera's frames are: per loaded episode, the file (index into the dataset's list of
    video files), the time of the episode's first frame inside that file, and the time at which that
    file's last episode (loaded or not) ends."""

    def __init__(
        self,
        key: str,
        height: int,
        width: int,
        file_of_episode: np.ndarray,
        from_timestamp: np.ndarray,
        file_end_s: np.ndarray,
        depth_encoder: Any = None,
    ):
        self.key = key
        self.height = height
        self.width = width
        self.file_of_episode = file_of_episode
        self.from_timestamp = from_timestamp
        self.file_end_s = file_end_s
        self.depth_encoder = depth_encoder  # a depth camera's DepthEncoderConfig (its quantiser)


class LeRobotDataset(torch.utils.data.Dataset):
    """A LeRobot dataset (codebase_version v3.0, or v2.1) read with dexloop's native core.

    Arguments are LeRobot's reading arguments, with the same meaning. ``video_backend`` is accepted
    for compatibility and ignored: frames always come from dexloop's FFmpeg decoder, whose RGB output
    is byte-identical to torchcodec's. Depth cameras (video features flagged ``is_depth_map``) are
    returned as LeRobot returns them: float32 (1, H, W) depth in ``depth_output_unit`` ("mm", whole
    millimetres, or "m"), dequantised from the video's 12-bit codes exactly as LeRobot does, with
    their stats converted to that unit. LeRobot's writing arguments (``batch_encoding_size``,
    ``streaming_encoding``, encoders) are accepted at their defaults only: this class reads.
    dexloop adds ``decode_threads`` (threads decoding a batch's frames; default: one per core,
    divided among DataLoader workers).

    ``episodes`` must be integers (an empty list selects nothing and is refused); unlike LeRobot,
    which only warns, indices outside the dataset are an error.

    ``LeRobotDataset.create(...)`` and ``LeRobotDataset.resume(...)`` record instead (see
    dexloop.datasets.dataset_writer): ``add_frame``, ``save_episode``, ``clear_episode_buffer``, then
    ``finalize()`` (or ``with LeRobotDataset.create(...) as dataset:``), after which the dataset
    reads like one opened with ``LeRobotDataset(...)``.
    """

    # Set by create() / resume(): the dataset is being recorded until finalize().
    writer: Any = None
    # Set for the episodes a StreamingLeRobotDataset reads from the Hub (dexloop.datasets.dataset_files).
    _remote_files: Any = None
    # Video files whose stream was checked against info.json (paths or URLs).
    _checked_videos: set[str] | None = None
    _is_finalized = False
    _reader_loaded = True

    def __init__(
        self,
        repo_id: str,
        root: str | Path | None = None,
        episodes: Sequence[int] | None = None,
        episode_filter: Callable[[dict], bool] | None = None,
        image_transforms: Callable | None = None,
        delta_timestamps: dict[str, Sequence[float]] | None = None,
        tolerance_s: float = 1e-4,
        revision: str | None = None,
        force_cache_sync: bool = False,
        download_videos: bool = True,
        video_backend: str | None = None,
        return_uint8: bool = False,
        depth_output_unit: str = DEFAULT_DEPTH_UNIT,
        batch_encoding_size: int = 1,
        rgb_encoder: Any = None,
        depth_encoder: Any = None,
        encoder_threads: int | None = None,
        streaming_encoding: bool = False,
        encoder_queue_maxsize: int = 30,
        *,
        token: str | bool | None = None,
        decode_threads: int | None = None,
    ):
        super().__init__()
        check_reading_arguments(image_transforms, tolerance_s, decode_threads, depth_output_unit)
        if streaming_encoding or batch_encoding_size != 1:
            raise DatasetArgumentError(
                "streaming_encoding / batch_encoding_size are recording options: dexloop's "
                "LeRobotDataset(...) only reads (LeRobot deprecates them here too)"
            )
        self.repo_id = repo_id
        self.image_transforms = image_transforms
        self.delta_timestamps = (
            {k: list(v) for k, v in delta_timestamps.items()} if delta_timestamps else None
        )
        self.tolerance_s = float(tolerance_s)
        self.video_backend = video_backend
        self.return_uint8 = return_uint8
        self.download_videos = download_videos
        self.decode_threads = decode_threads
        self._depth_output_unit = depth_output_unit
        self._requested_root = Path(root) if root else None
        self._token = token
        self._hf_dataset: Any = None

        self.meta = LeRobotDatasetMetadata(
            repo_id, self._requested_root, revision, force_cache_sync, token=token
        )
        self.root = self.meta.root
        self.revision = self.meta.revision
        _check_depth_features(self.meta)
        self.meta.rescale_depth_stats(depth_output_unit)
        self.episodes = self._select_episodes(episodes, episode_filter)
        self.delta_indices = self._resolve_delta_indices()
        self._ensure_files_present(force_cache_sync)
        self._token = None  # LeRobot does not keep the token once the files are here
        self._load_frames()
        self._pool: Any = None
        self._pool_pid = -1

    # -- construction --------------------------------------------------------------------------

    def _select_episodes(
        self, episodes: Sequence[int] | None, episode_filter: Callable[[dict], bool] | None
    ) -> list[int] | None:
        total = len(self.meta.episodes) if self.meta.episodes is not None else 0
        if total == 0:
            raise DatasetError(
                f"{self.root}: the dataset has no episodes ({self.root / 'meta/info.json'} 'total_episodes' is 0)"
            )
        selected = None
        if episodes is not None:
            selected = _episode_list(episodes, self.root)
            outside = sorted({e for e in selected if not 0 <= e < total})
            if outside:
                raise DatasetIndexError(
                    f"{self.root}: episodes {outside} are not in this dataset of {total} episodes (0..{total - 1})"
                )
        if episode_filter is not None:
            selected = self.meta.filter_episodes(episode_filter, candidates=selected)
            if not selected:
                raise DatasetArgumentError(
                    f"{self.root}: The episode filter did not match any episode"
                    + (f" among episodes {episodes}" if episodes is not None else "")
                )
        return selected

    def _resolve_delta_indices(self) -> dict[str, np.ndarray] | None:
        if self.delta_timestamps is None:
            return None
        unknown = [key for key in self.delta_timestamps if key not in self.meta.features]
        if unknown:
            raise DeltaTimestampsError(f"delta_timestamps keys {unknown} are not features of {self.repo_id}")
        resolved = {}
        for key, deltas in self.delta_timestamps.items():
            if len(deltas) == 0:
                raise DeltaTimestampsError(f"delta_timestamps[{key!r}] is empty")
            seconds = []
            for delta in deltas:
                if isinstance(delta, (bool, np.bool_)) or not isinstance(delta, (int, float, np.number)):
                    raise DeltaTimestampsError(
                        f"delta_timestamps[{key!r}] holds {delta!r} of type {type(delta).__name__}; "
                        "expected numbers of seconds"
                    )
                value = float(delta)
                if not math.isfinite(value):
                    raise DeltaTimestampsError(
                        f"delta_timestamps[{key!r}] holds {delta!r}; expected finite numbers of seconds"
                    )
                seconds.append(value)
            try:
                offsets = _core.dataset.delta_indices(seconds, self.meta.fps, self.tolerance_s)
            except ValueError as error:
                raise DeltaTimestampsError(f"delta_timestamps[{key!r}]: {error}") from error
            resolved[key] = np.asarray(offsets, dtype=np.int64)
        return resolved

    @property
    def _loaded_episodes(self) -> list[int]:
        """Episodes whose rows are loaded, in row order."""
        if self.episodes is None:
            return list(range(len(self.meta.episodes)))
        return sorted(set(self.episodes))

    def _episode_files(self) -> tuple[set[str], set[str]]:
        """The data files and the video files (paths inside the dataset) of the loaded episodes."""
        episodes = self._loaded_episodes
        data = {str(self.meta.get_data_file_path(e)) for e in episodes}
        videos = {str(self.meta.get_video_file_path(e, k)) for e in episodes for k in self.meta.video_keys}
        return data, videos

    def _ensure_files_present(self, force_cache_sync: bool = False) -> None:
        """Downloads the data (and video) files of the selected episodes when some are not on disk,
        or all of them again with ``force_cache_sync`` (LeRobot's rule: with ``episodes`` those
        episodes' files, else the whole repository but ``videos/`` unless ``download_videos``).
        Without ``root`` the files go to the revision-safe snapshot cache, as ``meta/`` did."""
        needed, videos = self._episode_files()
        wanted = needed | videos if self.download_videos else needed
        missing = sorted(path for path in wanted if not (self.root / path).is_file())
        if not missing and not force_cache_sync:
            return
        shown = ", ".join(f"{path} ({self._file_origin(path)})" for path in missing[:3])
        if self.episodes is not None:
            patterns: list[str] | None = sorted(needed | videos) if self.download_videos else sorted(needed)
        else:
            patterns = None
        self.root, self.revision = hub.download(
            self.repo_id,
            revision=self.revision,
            local_dir=self._requested_root,
            allow_patterns=patterns,
            ignore_patterns=None if self.download_videos else "videos/",
            what=f"{len(missing)} file(s) under {self.root} ({shown}{', ...' if len(missing) > 3 else ''})",
            token=self._token,
        )
        self.meta.root = self.root
        still_missing = [path for path in wanted if not (self.root / path).is_file()]
        if still_missing:
            raise DatasetError(f"{self.root}: files {still_missing[:5]} are missing after download")

    def _file_origin(self, path: str) -> str:
        """Which episode and meta/episodes columns lead to data or video file `path`, for messages."""
        for e in self._loaded_episodes:
            if path == str(self.meta.get_data_file_path(e)):
                return f"episode {e}: meta/episodes data/chunk_index, data/file_index"
            for key in self.meta.video_keys:
                if path == str(self.meta.get_video_file_path(e, key)):
                    return f"episode {e}: meta/episodes videos/{key}/chunk_index, videos/{key}/file_index"
        return "not referred to by the selected episodes"

    @property
    def _files(self) -> Any:
        """Where the data and video files are read from: the local root, or the Hub."""
        return self._remote_files if self._remote_files is not None else LocalFiles(self.root)

    def _load_frames(self) -> None:
        meta = self.meta
        loaded = self._loaded_episodes
        locations = self._files
        data_files = sorted({locations.data(meta.get_data_file_path(e)) for e in loaded}, key=str)
        self._table = FrameTable(meta.features, data_files, self.episodes, locations.filesystem)
        table = self._table

        from_index = meta.episodes.column("dataset_from_index")[loaded].astype(np.int64)
        to_index = meta.episodes.column("dataset_to_index")[loaded].astype(np.int64)
        lengths = to_index - from_index
        first_row = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64)
        if int(lengths.sum()) != table.num_rows:
            names = ", ".join(locations.relative(path) for path in data_files)
            raise DatasetError(
                f"{self.root / 'meta/episodes'}: dataset_from_index..dataset_to_index give {int(lengths.sum())} "
                f"frames for the selected episodes but their data files ({names}, from data/chunk_index and "
                f"data/file_index) hold {table.num_rows} rows"
            )
        # Rows must be the episodes' frames in order: `index` runs over each episode's global range.
        expected_index = np.concatenate([np.arange(a, b) for a, b in zip(from_index, to_index, strict=True)])
        for key, expected in (
            ("index", expected_index),
            ("episode_index", np.repeat(np.asarray(loaded, dtype=np.int64), lengths)),
        ):
            actual = table.numeric.get(key)
            if actual is None or not np.array_equal(actual, expected):
                row = int(np.argmax(actual != expected)) if actual is not None else 0
                raise DatasetError(
                    f"{table.file_of_row(data_files, row)}: a row has {key} "
                    f"{None if actual is None else int(actual[row])}, but the episode metadata expects "
                    f"{int(expected[row])} there (data files out of order or inconsistent with meta/episodes "
                    "dataset_from_index, dataset_to_index, data/chunk_index, data/file_index)"
                )
        self._index = _core.dataset.EpisodeIndex(from_index, to_index, first_row)
        self._timestamps = table.numeric["timestamp"]
        cross_checks.check_frame_times(table, data_files, lengths, meta.fps)
        self._task_index = table.numeric["task_index"]
        self._tasks = list(meta.tasks.index) if meta.tasks is not None else []
        unknown_task = (self._task_index < 0) | (self._task_index >= len(self._tasks))
        if unknown_task.any():
            row = int(np.argmax(unknown_task))
            raise DatasetError(
                f"{table.file_of_row(data_files, row)}: a row has task_index {int(self._task_index[row])} but "
                f"meta/tasks.parquet has {len(self._tasks)} tasks (meta/info.json 'total_tasks' {meta.total_tasks})"
            )
        cross_checks.check_episode_tasks(table, data_files, meta.episodes, self._tasks, loaded, lengths)

        self._video_files: list[str] = []
        file_ids: dict[str, int] = {}
        self._videos: list[_VideoKey] = []
        depth_keys = set(meta.depth_keys)
        for key in meta.video_keys:
            files = np.empty(len(loaded), dtype=np.int32)
            for ordinal, episode in enumerate(loaded):
                path = locations.video(meta.get_video_file_path(episode, key))
                files[ordinal] = file_ids.setdefault(path, len(file_ids))
            from_timestamp = meta.episodes.column(f"videos/{key}/from_timestamp")[loaded].astype(np.float64)
            height, width = frame_size(meta.features[key])
            file_end_s = cross_checks.video_file_ends(meta.episodes, key, meta.fps)[loaded]
            depth_encoder = None
            if key in depth_keys:
                from dexloop.video.encoder import DepthEncoderConfig

                try:
                    depth_encoder = DepthEncoderConfig.from_video_info(meta.features[key].get("info"))
                except (TypeError, ValueError) as error:
                    raise DatasetError(
                        f"{self.root / 'meta/info.json'}: features[{key!r}] info holds no usable depth "
                        f"quantiser ({error})"
                    ) from error
            self._videos.append(
                _VideoKey(key, height, width, files, from_timestamp, file_end_s, depth_encoder)
            )
        self._video_files = list(file_ids)
        # Each file's stream is compared with info.json when a batch first needs it (once per
        # process): opening every file up front would cost a v2.1 dataset one open per episode.
        # (A streaming dataset's episode readers share one set, so a file is checked once.)
        if self._checked_videos is None:
            self._checked_videos = set()
        self._keys_in_order = [video.key for video in self._videos] + table.columns
        # Depth image features and the unit each was recorded in (None when info.json has none:
        # returned as stored, as LeRobot does).
        self._image_depth_units = {
            key: (meta.features[key].get("info") or {}).get("depth_unit")
            for key in meta.depth_keys
            if meta.features[key]["dtype"] == "image"
        }

    # -- torch Dataset protocol ----------------------------------------------------------------

    def __len__(self) -> int:
        if not self._reader_loaded:
            return self.meta.total_frames
        return self._table.num_rows

    @property
    def num_frames(self) -> int:
        return len(self)

    @property
    def num_episodes(self) -> int:
        return len(self.episodes) if self.episodes is not None else self.meta.total_episodes

    @property
    def fps(self) -> int:
        return self.meta.fps

    @property
    def features(self) -> dict[str, dict]:
        return self.meta.features

    @property
    def depth_output_unit(self) -> str:
        return self._depth_output_unit

    @property
    def absolute_to_relative_idx(self) -> dict[int, int] | None:
        """For an episode subset, each loaded frame's ``index`` mapped to its position in this
        dataset (what ``EpisodeAwareSampler`` needs to turn episode bounds into item indices);
        None when every episode is loaded (positions and ``index`` coincide)."""
        if self.episodes is None:
            return None
        return dict(zip(self._table.numeric["index"].tolist(), range(len(self)), strict=True))

    @property
    def hf_dataset(self) -> Any:
        """The frames' parquet columns as a Hugging Face ``datasets.Dataset`` with LeRobot's features
        and torch formatting (what LeRobot's tools read). Built on first use from the memory-mapped
        files; needs the optional ``datasets`` package (``pip install dexloop[hf]``)."""
        self._ensure_reader()
        if self._hf_dataset is None:
            from .hf_frames import frames_dataset

            self._hf_dataset = frames_dataset(self.meta.features, self._table.files, self.episodes)
        return self._hf_dataset

    def select_columns(self, column_names: str | list[str]) -> Any:
        """``hf_dataset`` restricted to some columns (e.g. the actions of an episode to replay)."""
        return self.hf_dataset.select_columns(column_names)

    def get_raw_item(self, idx: int) -> dict:
        """Row ``idx`` of ``hf_dataset``: no delta windows, no video frames, no transforms."""
        return self.hf_dataset[idx]

    def set_image_transforms(self, image_transforms: Callable | None) -> None:
        """Replaces the transform applied to camera frames (image and video features)."""
        if image_transforms is not None and not callable(image_transforms):
            raise TypeError("image_transforms must be callable or None")
        self.image_transforms = image_transforms

    def clear_image_transforms(self) -> None:
        self.image_transforms = None

    # -- recording ------------------------------------------------------------------------------

    @classmethod
    def create(
        cls,
        repo_id: str,
        fps: int,
        features: dict,
        root: str | Path | None = None,
        robot_type: str | None = None,
        use_videos: bool = True,
        tolerance_s: float = 1e-4,
        image_writer_processes: int = 0,
        image_writer_threads: int = 0,
        video_backend: str | None = None,
        batch_encoding_size: int = 1,
        rgb_encoder: Any = None,
        depth_encoder: Any = None,
        metadata_buffer_size: int = 10,
        streaming_encoding: bool = False,
        encoder_queue_maxsize: int = 30,
        encoder_threads: int | None = None,
        video_files_size_in_mb: int | None = None,
        data_files_size_in_mb: int | None = None,
    ) -> LeRobotDataset:
        """A new dataset to record into, with LeRobot's arguments. `root` must not exist
        (DatasetExistsError). Frames are always encoded as they arrive, so ``streaming_encoding``,
        ``batch_encoding_size`` and the image-writer options change nothing. Depth cameras (video
        features of shape (H, W, 1) with ``"info": {"is_depth_map": True}``) take uint16 millimetre
        or float32 metre frames, encoded with ``depth_encoder`` (a DepthEncoderConfig; LeRobot's
        defaults when None)."""
        from .dataset_writer import DatasetWriter

        meta = LeRobotDatasetMetadata.create(
            repo_id,
            fps,
            features,
            robot_type=robot_type,
            root=root,
            use_videos=use_videos,
            metadata_buffer_size=metadata_buffer_size,
            data_files_size_in_mb=data_files_size_in_mb,
            video_files_size_in_mb=video_files_size_in_mb,
        )
        try:
            writer = DatasetWriter(
                meta, rgb_encoder, encoder_threads, encoder_queue_maxsize, depth_encoder=depth_encoder
            )
        except BaseException:
            import shutil

            shutil.rmtree(meta.root, ignore_errors=True)  # created just now: nothing of the user's
            raise
        return cls._recording(meta, writer, tolerance_s, video_backend)

    @classmethod
    def resume(
        cls,
        repo_id: str,
        root: str | Path | None = None,
        tolerance_s: float = 1e-4,
        revision: str | None = None,
        force_cache_sync: bool = False,
        video_backend: str | None = None,
        batch_encoding_size: int = 1,
        rgb_encoder: Any = None,
        depth_encoder: Any = None,
        encoder_threads: int | None = None,
        image_writer_processes: int = 0,
        image_writer_threads: int = 0,
        streaming_encoding: bool = False,
        encoder_queue_maxsize: int = 30,
        *,
        token: str | bool | None = None,
    ) -> LeRobotDataset:
        """Records more episodes into the dataset at `root` (required, as in LeRobot), in new files.
        A recording of it that was interrupted is first completed (``repair``): the episodes whose
        ``save_episode()`` returned are kept."""
        from .dataset_writer import DatasetWriter
        from .recording_journal import repair

        if not root:
            raise DatasetArgumentError(
                "resume() requires an explicit 'root' directory (it records into it; the Hub snapshot "
                "cache must not be written)"
            )
        repair(Path(root))
        meta = LeRobotDatasetMetadata(repo_id, root, revision, force_cache_sync, token=token)
        if meta.is_v21:
            raise DatasetError(
                f"{meta.root}: a v2.1 dataset cannot be recorded into; convert it to v3.0 first "
                "(`dexloop dataset convert`)"
            )
        writer = DatasetWriter(
            meta, rgb_encoder, encoder_threads, encoder_queue_maxsize, depth_encoder=depth_encoder
        )
        return cls._recording(meta, writer, tolerance_s, video_backend)

    @classmethod
    def _reader_template(
        cls,
        meta: LeRobotDatasetMetadata,
        episodes: Sequence[int] | None,
        delta_timestamps: dict[str, Sequence[float]] | None,
        tolerance_s: float,
        return_uint8: bool,
        image_transforms: Callable | None,
        decode_threads: int | None,
        depth_output_unit: str = DEFAULT_DEPTH_UNIT,
    ) -> LeRobotDataset:
        """A reader of `meta`'s dataset with its arguments checked as __init__ checks them, but no
        frames loaded: StreamingLeRobotDataset copies it for each episode it streams, sets the
        episode and where its files are, and calls _load_frames()."""
        check_reading_arguments(image_transforms, tolerance_s, decode_threads, depth_output_unit)
        _check_depth_features(meta)
        obj = cls._recording(meta, None, tolerance_s, None)
        obj.revision = meta.revision
        obj._reader_loaded = True
        obj.image_transforms = image_transforms
        obj.return_uint8 = return_uint8
        obj.decode_threads = decode_threads
        obj._depth_output_unit = depth_output_unit
        obj.delta_timestamps = {k: list(v) for k, v in delta_timestamps.items()} if delta_timestamps else None
        obj.episodes = obj._select_episodes(episodes, None)
        obj.delta_indices = obj._resolve_delta_indices()
        return obj

    @classmethod
    def _recording(
        cls, meta: LeRobotDatasetMetadata, writer: Any, tolerance_s: float, video_backend: str | None
    ):
        obj = cls.__new__(cls)
        obj.repo_id = meta.repo_id
        obj.meta = meta
        obj.root = meta.root
        obj.revision = None
        obj.writer = writer
        obj._is_finalized = False
        obj._reader_loaded = False
        obj.image_transforms = None
        obj.delta_timestamps = None
        obj.delta_indices = None
        obj.episodes = None
        obj.tolerance_s = float(tolerance_s)
        obj.video_backend = video_backend
        obj.return_uint8 = False
        obj.download_videos = True
        obj.decode_threads = None
        obj._depth_output_unit = DEFAULT_DEPTH_UNIT
        obj._requested_root = Path(meta.root)
        obj._token = None
        obj._hf_dataset = None
        obj._pool = None
        obj._pool_pid = -1
        return obj

    def _ensure_reader(self) -> None:
        """A recorded dataset is read from its files once finalized."""
        if self._reader_loaded:
            return
        if not self._is_finalized:
            raise DatasetUnfinishedError(
                f"{self.root}: Cannot read from a dataset that is being recorded. Call finalize() first, "
                "then access items."
            )
        self.meta = LeRobotDatasetMetadata(self.repo_id, self.root)
        self.meta.rescale_depth_stats(self._depth_output_unit)
        self._load_frames()
        self._reader_loaded = True

    def _read_only(self, method: str) -> DatasetReadOnlyError:
        return DatasetReadOnlyError(
            f"Cannot call '{method}()' on a read-only dataset ({self.repo_id} at {self.root}): "
            "LeRobotDataset(...) opens a dataset for reading; record with "
            "LeRobotDataset.create() / LeRobotDataset.resume()"
        )

    def _require_writer(self, method: str) -> Any:
        if self.writer is None:
            raise self._read_only(method)
        return self.writer

    def add_frame(self, frame: dict) -> None:
        """Adds one frame (every user feature and ``task``) to the episode being recorded."""
        self._require_writer("add_frame").add_frame(frame)

    def save_episode(self, episode_data: dict | None = None, parallel_encoding: bool = True) -> None:
        """Saves the episode being recorded; it survives a crash once this returns."""
        self._require_writer("save_episode").save_episode(episode_data, parallel_encoding)

    def clear_episode_buffer(self, delete_images: bool = True) -> None:
        """Discards the episode being recorded."""
        self._require_writer("clear_episode_buffer").clear_episode_buffer(delete_images)

    def has_pending_frames(self) -> bool:
        return self.writer is not None and self.writer.has_pending_frames()

    def finalize(self) -> None:
        """Finishes a recording: LeRobot's files for every saved episode (idempotent). Nothing to do
        for a dataset opened for reading."""
        if self.writer is not None and not self._is_finalized:
            self.writer.finalize()
            self._is_finalized = True

    def __enter__(self) -> LeRobotDataset:
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.finalize()

    def push_to_hub(
        self,
        branch: str | None = None,
        tags: list | None = None,
        license: str | None = "apache-2.0",
        tag_version: bool = True,
        push_videos: bool = True,
        private: bool | None = None,
        allow_patterns: list[str] | str | None = None,
        upload_large_folder: bool = False,
        **card_kwargs: Any,
    ) -> None:
        """Uploads the dataset to the Hub as LeRobot 0.6.1 does: creates the repository (and
        ``branch``), uploads the folder (without ``videos/`` unless ``push_videos``), pushes the
        dataset card, and with ``tag_version`` moves the codebase-version tag (``v3.0``) to it. A
        recording must be finalized first (DatasetUnfinishedError); failures are DatasetUploadError."""
        from .dataset_card import dataset_card

        if self.writer is not None and not self._is_finalized:
            raise DatasetUnfinishedError(
                f"{self.root}: call finalize() before push_to_hub(): the dataset is still being recorded"
            )
        # The recording journal and LeRobot's temporary image folder are never part of a dataset.
        ignore_patterns = ["images/", ".recording/"]
        if not push_videos:
            ignore_patterns.append("videos/")
        card = dataset_card(self.meta.info, tags=tags, license=license, repo_id=self.repo_id, **card_kwargs)
        hub.upload_folder(
            self.repo_id,
            self.root,
            card=card,
            tag=CODEBASE_VERSION if tag_version else None,
            branch=branch,
            private=private,
            allow_patterns=allow_patterns,
            ignore_patterns=ignore_patterns,
            large_folder=upload_large_folder,
        )

    def __getitem__(self, idx: int | slice) -> dict | list[dict]:
        if isinstance(idx, slice):
            return self.__getitems__(list(range(*idx.indices(len(self)))))
        return self.__getitems__([idx])[0]

    def __getitems__(self, indices: Sequence[int]) -> list[dict]:
        """The items at ``indices``, built together (torch's DataLoader calls this with a batch).

        Items are views into the batch's tensors; torch's default_collate hands that batch back
        without copying it again (see dexloop.datasets.collate)."""
        self._ensure_reader()
        rows = self._rows(indices)
        if len(rows) == 0:
            return []
        items = samples_of(self._gather(rows), len(rows))
        if self.image_transforms is not None:
            depth_keys = set(self.meta.depth_keys)  # LeRobot leaves depth maps untransformed
            for item in items:
                for key in self.meta.camera_keys:
                    if key not in depth_keys:
                        item[key] = self.image_transforms(item[key])
        return items

    def _rows(self, indices: Sequence[int]) -> np.ndarray:
        values = [as_index(i, f"dataset {self.repo_id} at {self.root}: index") for i in indices]
        size = len(self)
        outside = [value for value in values if not -size <= value < size]
        if outside:
            raise DatasetIndexError(
                f"index {outside[0]} is out of range for dataset {self.repo_id} at {self.root} of {size} frames"
            )
        rows = np.asarray(values, dtype=np.int64)
        return np.where(rows < 0, rows + size, rows)

    def _gather(self, rows: np.ndarray) -> dict[str, Any]:
        table = self._table
        deltas = self.delta_indices or {}
        windows = {key: self._index.window(rows, offsets) for key, offsets in deltas.items()}
        ordinals = self._index.episodes_of(rows)

        out: dict[str, Any] = dict.fromkeys(self._keys_in_order)
        out.update(self._decode_videos(rows, ordinals, windows))
        for key in table.columns:
            source = windows[key][0] if key in windows else rows
            if key in table.numeric:
                out[key] = torch.from_numpy(table.numeric[key][source])
            elif key in table.text:
                out[key] = table.text[key][source].tolist()
            else:
                out[key] = self._decode_images(key, source)
        for key, (_, is_pad) in windows.items():
            out[f"{key}_is_pad"] = torch.from_numpy(is_pad)
        out["task"] = [self._tasks[t] for t in self._task_index[rows]]
        return out

    def _decoder_pool(self) -> Any:
        # One pool per process: a DataLoader worker (fork or spawn) makes its own on first use.
        if self._pool is None or self._pool_pid != os.getpid():
            threads = self.decode_threads or default_decode_threads()
            self._pool = _core.video.DecoderPool(threads)
            self._pool_pid = os.getpid()
        return self._pool

    def _decode_videos(
        self, rows: np.ndarray, ordinals: np.ndarray, windows: dict
    ) -> dict[str, torch.Tensor]:
        if not self._videos:
            return {}
        count = len(rows)
        # RGB cameras decode into uint8 (count, steps, 3, H, W); depth cameras their 12-bit codes
        # into uint16 (count, steps, 1, H, W), in a second pass of the pool.
        requests: dict[bool, tuple[dict, list, list, list, list]] = {
            False: ({}, [], [], [], []),
            True: ({}, [], [], [], []),
        }
        for video in self._videos:
            is_depth = video.depth_encoder is not None
            frames, file_index, timestamps, target, slot = requests[is_depth]
            # Query times are the parquet timestamps of the (clamped) rows, shifted by where the
            # episode starts in its file (LeRobot's rule; padded slots reuse the boundary frame).
            source = windows[video.key][0] if video.key in windows else rows[:, None]
            steps = source.shape[1]
            times = self._timestamps[source].astype(np.float64) + video.from_timestamp[ordinals][:, None]
            if is_depth:
                output = np.empty((count, steps, 1, video.height, video.width), dtype=np.uint16)
            else:
                output = torch.empty((count, steps, 3, video.height, video.width), dtype=torch.uint8)
            file_index.append(np.repeat(video.file_of_episode[ordinals], steps))
            timestamps.append(times.reshape(-1))
            target.append(np.full(count * steps, len(frames), dtype=np.int32))
            slot.append(np.arange(count * steps, dtype=np.int64))
            frames[video.key] = output
        all_files = np.concatenate([np.concatenate(r[1]) for r in requests.values() if r[1]])
        for file in np.unique(all_files):
            if self._video_files[file] not in self._checked_videos:
                self._check_video_file(int(file))
                self._checked_videos.add(self._video_files[file])
        pool = self._decoder_pool()
        for is_depth, (frames, file_index, timestamps, target, slot) in requests.items():
            if not frames:
                continue
            decode = pool.decode_gray16 if is_depth else pool.decode
            decode(
                self._video_files,
                np.concatenate(file_index).astype(np.int32),
                np.concatenate(timestamps),
                np.concatenate(target),
                np.concatenate(slot),
                list(frames.values()),
                self.tolerance_s,
            )
        videos = {video.key: video for video in self._videos}
        result = {}
        for key in videos:  # the cameras' order
            is_depth = videos[key].depth_encoder is not None
            output = requests[is_depth][0][key]
            if is_depth:
                result[key] = self._dequantize(videos[key], output)
                continue
            # LeRobot squeezes the window axis of a one-step window: (C, H, W), not (1, C, H, W).
            output = output.squeeze(1) if output.shape[1] == 1 else output
            result[key] = output if self.return_uint8 else output.to(torch.float32).div_(255)
        return result

    def _dequantize(self, video: _VideoKey, codes: np.ndarray) -> torch.Tensor:
        """A depth camera's codes (count, steps, 1, H, W) as LeRobot returns them: float32 depth in
        depth_output_unit, (1, H, W) per item or (steps, 1, H, W) for a window. Dequantised item by
        item, on the same (steps, 1, H, W) tensors LeRobot dequantises, so that torch's vectorised
        float32 exp splits the work the same way and the values are LeRobot's to the bit."""
        config = video.depth_encoder
        quantiser = (config.depth_min, config.depth_max, config.shift, config.use_log)
        tensor = torch.from_numpy(codes)  # uint16, as LeRobot's decoder hands them over
        items = [
            depth.dequantize_depth(tensor[i], *quantiser, output_unit=self._depth_output_unit)
            for i in range(tensor.shape[0])
        ]
        stacked = torch.stack(items)
        return stacked.squeeze(1) if stacked.shape[1] == 1 else stacked

    def _check_video_file(self, file: int) -> None:
        path = self._video_files[file]
        stream = _core.video.VideoDecoder(path).info  # VideoDecodeError when it cannot be opened
        for video in self._videos:
            uses = video.file_of_episode == file
            if uses.any():
                cross_checks.check_video_stream(
                    path,
                    stream,
                    self.meta,
                    video.key,
                    (video.height, video.width),
                    expected_end_s=float(video.file_end_s[uses].max()),
                    tolerance_s=self.tolerance_s,
                )

    def _decode_images(self, key: str, source: np.ndarray) -> torch.Tensor:
        """Image-dtype features (PNG bytes in parquet): float32 CHW in [0, 1], as LeRobot returns; depth
        images (TIFF) as float32 (1, H, W) depth in depth_output_unit."""
        try:
            from io import BytesIO

            from PIL import Image
        except ImportError as error:
            raise DatasetError(f"feature {key!r} stores images: install Pillow to read them") from error
        column = self._table.images[key]
        flat = source.reshape(-1)
        depth_unit = self._image_depth_units.get(key, False)
        decoded = []
        for row in flat:
            cell = column[int(row)].as_py()
            data = cell.get("bytes") if isinstance(cell, dict) else None
            if data is None and isinstance(cell, dict) and cell.get("path"):
                data = (self.root / cell["path"]).read_bytes()
            if data is None:
                raise DatasetError(f"{self.root}: image {key!r} of row {int(row)} has neither bytes nor path")
            with Image.open(BytesIO(data)) as image:
                if depth_unit is not False:
                    # A depth map (TIFF, mode I;16 or F): float32 (1, H, W) in its recorded unit, as
                    # LeRobot's transform returns it.
                    decoded.append(torch.from_numpy(np.array(image, dtype=np.float32))[None])
                    continue
                array = np.asarray(image.convert("RGB"), dtype=np.float32) / 255.0
            decoded.append(torch.from_numpy(array).permute(2, 0, 1))
        stacked = torch.stack(decoded).reshape(*source.shape, *decoded[0].shape)
        if depth_unit not in (False, None, self._depth_output_unit):
            # LeRobot's conversion of a depth image to the output unit: a float32 product or
            # quotient, not rounded (unlike depth videos, whose millimetres are whole).
            stacked = stacked * depth.MM_PER_METRE if depth_unit == "m" else stacked / depth.MM_PER_METRE
        return stacked

    # -- pickling (DataLoader workers started with spawn) --------------------------------------

    def __getstate__(self) -> dict:
        return {
            "repo_id": self.repo_id,
            "root": str(self.root),
            "episodes": self.episodes,
            "image_transforms": self.image_transforms,
            "delta_timestamps": self.delta_timestamps,
            "tolerance_s": self.tolerance_s,
            "revision": self.revision,
            "download_videos": self.download_videos,
            "video_backend": self.video_backend,
            "return_uint8": self.return_uint8,
            "decode_threads": self.decode_threads,
            "depth_output_unit": self._depth_output_unit,
        }

    def __setstate__(self, state: dict) -> None:
        # Reopening the files is cheaper and safer than shipping arrays and open decoders.
        self.__init__(**state)

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(repo_id={self.repo_id!r}, root='{self.root}', "
            f"episodes={self.num_episodes}, frames={self.num_frames}, features={list(self.features)})"
        )


def _check_depth_features(meta: LeRobotDatasetMetadata) -> None:
    """A depth feature's recorded unit, when info.json gives one, must be LeRobot's "m" or "mm"."""
    for key in meta.depth_keys:
        unit = (meta.features[key].get("info") or {}).get("depth_unit")
        if unit is not None and unit not in DEPTH_UNITS:
            raise DatasetError(
                f"{meta.root / 'meta/info.json'}: features[{key!r}] info depth_unit is {unit!r}, expected "
                f"one of {DEPTH_UNITS}"
            )


def _episode_list(episodes: Any, root: Path) -> list[int]:
    """``episodes`` as a list of ints, refusing what LeRobot would misread: a string or a single
    number instead of a list, non-integer ids (``"3"``, 1.0, True), or an empty list."""
    if isinstance(episodes, (str, bytes)) or not isinstance(episodes, Sequence | np.ndarray):
        raise DatasetArgumentError(f"{root}: episodes must be a list of episode indices, got {episodes!r}")
    bad = [e for e in episodes if isinstance(e, (bool, np.bool_)) or not isinstance(e, (int, np.integer))]
    if bad:
        raise DatasetArgumentError(
            f"{root}: episodes must be integer episode indices, got {bad[:5]!r} in {list(episodes)[:10]!r}"
        )
    if len(episodes) == 0:
        raise DatasetArgumentError(
            f"{root}: episodes=[] selects no episode; pass episodes=None to load them all"
        )
    return [int(e) for e in episodes]


__all__ = ["CODEBASE_VERSION", "LeRobotDataset", "LeRobotDatasetMetadata"]
