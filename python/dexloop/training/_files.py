"""Atomic writes of training-state files (a crash during a checkpoint leaves the previous one whole)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from dexloop.errors import DatasetWriteError, TrainingStateError


def write_with(path: Path, write: Callable[[Path], None]) -> None:
    """Calls `write(temporary)` and renames the result to `path` once it is on disk."""
    # Imported here: policy configurations import the optimizer module, and must not pull in the
    # dataset package (and the native core) with it.
    from dexloop.datasets.durable import write_atomically

    try:
        write_atomically(Path(path), write)
    except DatasetWriteError as error:
        raise TrainingStateError(str(error)) from error


def write_json_file(path: Path, content: Any, indent: int = 4) -> None:
    """JSON as LeRobot writes its training files (``indent=4``, non-ASCII kept)."""
    text = json.dumps(content, indent=indent, ensure_ascii=False)
    write_with(path, lambda temporary: temporary.write_text(text, encoding="utf-8"))
