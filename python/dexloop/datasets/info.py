"""``meta/info.json``: the schema, counters and path templates of a LeRobot dataset.

dexloop reads ``codebase_version`` v3.0 (LeRobot >= 0.4) and v2.1 (LeRobot <= 0.3). Unknown keys are
kept in :attr:`DatasetInfo.extra` rather than dropped, so nothing a newer writer added is lost.
"""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path
from typing import Any

from dexloop.errors import DatasetError, DatasetVersionError
from dexloop.hub import parse_version

CODEBASE_VERSION = "v3.0"
INFO_PATH = "meta/info.json"
STATS_PATH = "meta/stats.json"
TASKS_PATH = "meta/tasks.parquet"
EPISODES_DIR = "meta/episodes"

DEFAULT_CHUNK_SIZE = 1000
DEFAULT_DATA_FILE_SIZE_IN_MB = 100
DEFAULT_VIDEO_FILE_SIZE_IN_MB = 200
DEFAULT_DATA_PATH = "data/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet"
DEFAULT_VIDEO_PATH = "videos/{video_key}/chunk-{chunk_index:03d}/file-{file_index:03d}.mp4"

# Columns every LeRobot dataset carries after the user's features.
DEFAULT_FEATURES = ("timestamp", "frame_index", "episode_index", "index", "task_index")

VISUAL_DTYPES = ("video", "image")
TEXT_DTYPES = ("string", "language")


@dataclasses.dataclass
class DatasetInfo:
    """Typed ``meta/info.json``, with the dict-style access LeRobot's ``DatasetInfo`` also allows."""

    codebase_version: str
    fps: int
    features: dict[str, dict]
    total_episodes: int = 0
    total_frames: int = 0
    total_tasks: int = 0
    chunks_size: int = DEFAULT_CHUNK_SIZE
    data_files_size_in_mb: int = DEFAULT_DATA_FILE_SIZE_IN_MB
    video_files_size_in_mb: int = DEFAULT_VIDEO_FILE_SIZE_IN_MB
    data_path: str = DEFAULT_DATA_PATH
    video_path: str | None = DEFAULT_VIDEO_PATH
    robot_type: str | None = None
    splits: dict[str, str] = dataclasses.field(default_factory=dict)
    tools: list[dict] | None = None
    # Keys this version of dexloop does not model (e.g. v2.1's total_chunks and total_videos).
    extra: dict[str, Any] = dataclasses.field(default_factory=dict)

    def __getitem__(self, key: str) -> Any:
        if key in self.extra:
            return self.extra[key]
        try:
            return getattr(self, key)
        except AttributeError as error:
            raise KeyError(key) from error

    def __contains__(self, key: str) -> bool:
        return key in self.extra or (hasattr(self, key) and key != "extra")

    def get(self, key: str, default: Any = None) -> Any:
        try:
            return self[key]
        except KeyError:
            return default

    def to_dict(self) -> dict:
        """The JSON object as LeRobot writes it (shapes as lists, unset ``tools`` omitted)."""
        data = dataclasses.asdict(self)
        extra = data.pop("extra")
        for feature in data["features"].values():
            if isinstance(feature.get("shape"), tuple):
                feature["shape"] = list(feature["shape"])
        if data.get("tools") is None:
            data.pop("tools", None)
        data.update(extra)
        return data

    @property
    def version(self) -> tuple[int, int]:
        """``codebase_version`` as (major, minor), e.g. (3, 0)."""
        return parse_version(self.codebase_version)


def new_info_dict(
    fps: int,
    features: dict[str, dict],
    robot_type: str | None,
    use_videos: bool,
    *,
    chunks_size: int | None = None,
    data_files_size_in_mb: float | None = None,
    video_files_size_in_mb: float | None = None,
    codebase_version: str = CODEBASE_VERSION,
) -> dict[str, Any]:
    """info.json of a new, empty dataset as LeRobot's ``LeRobotDatasetMetadata.create`` writes it:
    the user's features plus LeRobot's default columns, counters at zero, LeRobot's file limits
    unless given."""
    merged = {name: dict(feature) for name, feature in features.items()}
    for name in DEFAULT_FEATURES:
        merged[name] = {"dtype": "float32" if name == "timestamp" else "int64", "shape": [1], "names": None}
    for feature in merged.values():
        if isinstance(feature.get("shape"), (list, tuple)):
            feature["shape"] = list(feature["shape"])
    return {
        "codebase_version": codebase_version,
        "fps": fps,
        "features": merged,
        "total_episodes": 0,
        "total_frames": 0,
        "total_tasks": 0,
        "chunks_size": chunks_size or DEFAULT_CHUNK_SIZE,
        "data_files_size_in_mb": data_files_size_in_mb or DEFAULT_DATA_FILE_SIZE_IN_MB,
        "video_files_size_in_mb": video_files_size_in_mb or DEFAULT_VIDEO_FILE_SIZE_IN_MB,
        "video_path": DEFAULT_VIDEO_PATH if use_videos else None,
        "robot_type": robot_type,
        "splits": {},
    }


def load_info(root: Path) -> DatasetInfo:
    """Reads and validates ``root/meta/info.json``.

    Raises FileNotFoundError when the file is absent (the caller may then download it) and
    DatasetError naming the file and the problem when it is malformed.
    """
    path = Path(root) / INFO_PATH
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise
    except (OSError, UnicodeDecodeError) as error:
        raise DatasetError(f"{path}: cannot read as UTF-8 text ({error})") from error
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as error:
        raise DatasetError(f"{path}: not valid JSON ({error})") from error
    return info_from_dict(raw, path)


def info_from_dict(raw: Any, path: Path | str = INFO_PATH) -> DatasetInfo:
    if not isinstance(raw, dict):
        raise DatasetError(f"{path}: expected a JSON object, found {type(raw).__name__}")
    for key in ("codebase_version", "fps", "features"):
        if key not in raw:
            raise DatasetError(f"{path}: required key {key!r} is missing")
    try:
        version = parse_version(raw["codebase_version"])
    except ValueError as error:
        raise DatasetError(f"{path}: {error}") from error
    if version[0] < 2 or (version[0] == 2 and version[1] < 1):
        raise DatasetVersionError(
            f"{path}: codebase_version {raw['codebase_version']!r} is too old; dexloop reads v2.1 and v3.0 "
            "(convert older datasets with LeRobot 0.3's converter first)"
        )
    if version[0] > 3:
        raise DatasetVersionError(
            f"{path}: codebase_version {raw['codebase_version']!r} is newer than this dexloop reads "
            f"({CODEBASE_VERSION}); upgrade dexloop"
        )
    fps = raw["fps"]
    # JSON admits NaN and Infinity: they must fail here, not in int() below.
    if (
        isinstance(fps, bool)
        or not isinstance(fps, (int, float))
        or not math.isfinite(fps)
        or fps <= 0
        or int(fps) != fps
    ):
        raise DatasetError(f"{path}: 'fps' must be a positive integer, found {fps!r}")
    features = raw["features"]
    if not isinstance(features, dict) or not features:
        raise DatasetError(f"{path}: 'features' must be a non-empty object")
    for name, feature in features.items():
        _check_feature(path, name, feature)
    missing_defaults = [name for name in DEFAULT_FEATURES if name not in features]
    if missing_defaults:
        raise DatasetError(f"{path}: features lack the default columns {missing_defaults}")

    fields = {field.name for field in dataclasses.fields(DatasetInfo)} - {"extra"}
    known = {key: value for key, value in raw.items() if key in fields}
    extra = {key: value for key, value in raw.items() if key not in fields}
    known["fps"] = int(fps)
    known["features"] = {name: dict(feature) for name, feature in features.items()}
    for feature in known["features"].values():
        feature["shape"] = tuple(feature["shape"])
    for key in ("total_episodes", "total_frames", "total_tasks", "chunks_size"):
        value = known.get(key, 0)
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise DatasetError(f"{path}: {key!r} must be a non-negative integer, found {value!r}")
    if known.get("chunks_size", DEFAULT_CHUNK_SIZE) <= 0:
        raise DatasetError(f"{path}: 'chunks_size' must be positive")
    for key in ("data_path", "video_path"):
        if key in known and known[key] is not None and not isinstance(known[key], str):
            raise DatasetError(f"{path}: {key!r} must be a path template string")
    return DatasetInfo(**known, extra=extra)


def _check_feature(path: Path | str, name: str, feature: Any) -> None:
    if "/" in name:
        raise DatasetError(f"{path}: feature name {name!r} contains '/', which LeRobot reserves")
    if not isinstance(feature, dict):
        raise DatasetError(f"{path}: feature {name!r} must be an object")
    dtype = feature.get("dtype")
    if not isinstance(dtype, str):
        raise DatasetError(f"{path}: feature {name!r} has no 'dtype'")
    shape = feature.get("shape")
    if not isinstance(shape, (list, tuple)) or not all(
        isinstance(n, int) and not isinstance(n, bool) and n > 0 for n in shape
    ):
        raise DatasetError(f"{path}: feature {name!r} needs a 'shape' of positive integers, found {shape!r}")
    for optional in ("info", "video_info"):
        if feature.get(optional) is not None and not isinstance(feature[optional], dict):
            raise DatasetError(f"{path}: feature {name!r} has an {optional!r} that is not an object")
    if dtype in VISUAL_DTYPES and len(shape) != 3:
        raise DatasetError(f"{path}: {dtype} feature {name!r} must have shape [height, width, channels]")


def frame_size(feature: dict) -> tuple[int, int]:
    """(height, width) of a video or image feature, whose shape is (H, W, C) as LeRobot writes it
    (or (C, H, W) in some converted datasets; the channel axis is the one of size 1, 3 or 4)."""
    shape = tuple(feature["shape"])
    names = feature.get("names")
    if isinstance(names, (list, tuple)) and len(names) == 3 and list(names[:2]) == ["channels", "height"]:
        return shape[1], shape[2]
    if shape[0] in (1, 3, 4) and shape[2] not in (1, 3, 4):
        return shape[1], shape[2]
    return shape[0], shape[1]
