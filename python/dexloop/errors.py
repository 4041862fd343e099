"""Exceptions raised by dexloop.

The native core raises these same classes (dexloop._core maps its C++ exceptions onto them), so one
``except`` clause covers a failure wherever it was detected. Messages name the file, key, index or
timestamp involved.
"""

from __future__ import annotations


class DexloopError(Exception):
    """Base class of every dexloop error."""


class DatasetError(DexloopError):
    """A dataset's files or metadata are missing, malformed, or inconsistent with each other."""


class DatasetIndexError(DatasetError, IndexError):
    """An item or episode index outside the dataset (an IndexError, so iteration protocols work)."""


class DatasetNotFoundError(DatasetError, FileNotFoundError):
    """The dataset is neither on local disk nor downloadable (e.g. offline and not cached)."""


class DatasetVersionError(DatasetError):
    """The dataset's codebase_version is one dexloop cannot read."""


class VideoDecodeError(DexloopError):
    """A video file cannot be opened or decoded: missing, truncated, not a video, unsupported codec,
    or frames of another size than the dataset declares."""


class FrameTimestampError(DexloopError, ValueError):
    """No decoded frame lies within ``tolerance_s`` of a queried timestamp (LeRobot raises a
    ValueError subclass of the same name)."""


__all__ = [
    "DatasetError",
    "DatasetIndexError",
    "DatasetNotFoundError",
    "DatasetVersionError",
    "DexloopError",
    "FrameTimestampError",
    "VideoDecodeError",
]
