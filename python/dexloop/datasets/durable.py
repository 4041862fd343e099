"""Writing files so that a crash leaves either the old content or the new one, never a mix.

A recording may be killed at any moment (power loss, SIGKILL, an out-of-memory kill). Every file a
writer commits goes through here: written to a temporary name in the same directory, flushed to disk
(fsync), renamed over the final name, and the directory entry flushed too, so that after the call
returns the file survives a crash with exactly this content.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from dexloop.errors import DatasetWriteError

TEMPORARY_SUFFIX = ".partial"


def fsync_directory(path: Path) -> None:
    """Makes the creation, renaming or removal of entries in directory `path` durable."""
    descriptor = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def temporary_path(path: Path) -> Path:
    return path.with_name(path.name + TEMPORARY_SUFFIX)


def write_atomically(path: Path, write: Callable[[Path], None]) -> None:
    """Calls `write(temporary)` to create the file's content under a temporary name next to `path`,
    then makes it durable and renames it to `path`. On failure the temporary file is removed and
    `path` keeps what it held before."""
    path = Path(path)
    temporary = temporary_path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        write(temporary)
        descriptor = os.open(temporary, os.O_RDONLY)
        try:
            os.fsync(descriptor)
        finally:
            os.close(descriptor)
        os.replace(temporary, path)
        fsync_directory(path.parent)
    except BaseException as error:
        temporary.unlink(missing_ok=True)
        if isinstance(error, OSError) and not isinstance(error, DatasetWriteError):
            raise DatasetWriteError(f"{path}: cannot be written ({error})") from error
        raise


def write_bytes_atomically(path: Path, data: bytes) -> None:
    write_atomically(path, lambda temporary: temporary.write_bytes(data))


def write_json_atomically(path: Path, content: Any, indent: int = 4) -> None:
    """JSON as LeRobot writes its metadata (``indent=4``, non-ASCII kept)."""
    text = json.dumps(content, indent=indent, ensure_ascii=False)
    write_bytes_atomically(path, text.encode("utf-8"))
