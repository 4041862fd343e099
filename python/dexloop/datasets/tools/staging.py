"""Replacing a dataset folder as a whole, so that an edit is either entirely done or not done at all.

The in-place tools (modify_tasks, recompute_stats, the v2.1 converter) never rewrite a file of the
dataset they edit. They build the edited dataset in a staging folder beside it (same parent, so the
same file system): files they change are written there, files they keep are hard links to the
originals (no copy of the videos), and only when the staging folder is complete and flushed is it
put in the dataset's place. On Linux the two folders are exchanged in one atomic ``renameat2``
call; elsewhere two renames are used, and the messages say where each copy is if the process dies
between them.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import os
import shutil
from collections.abc import Callable, Iterable
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from dexloop.errors import DatasetError, DatasetWriteError

from ..durable import fsync_directory, write_atomically

STAGING_SUFFIX = ".partial"
_RENAME_EXCHANGE = 2
_AT_FDCWD = -100


def staging_path(root: Path, purpose: str) -> Path:
    """The staging folder of an edit of `root`: ``<parent>/.<name>.<purpose>.partial``."""
    return root.parent / f".{root.name}.{purpose}{STAGING_SUFFIX}"


def fresh_staging(root: Path, purpose: str) -> Path:
    """An empty staging folder for `root`. One left by an edit that died before it was swapped in
    holds nothing the dataset lacks, and is removed."""
    staging = staging_path(root, purpose)
    if staging.exists():
        shutil.rmtree(staging)
    staging.mkdir(parents=True)
    return staging


def link_tree(source: Path, target: Path, skip: Callable[[Path], bool] = lambda _: False) -> None:
    """Recreates `source`'s folders under `target` with every file (relative path not `skip`ped)
    hard-linked, or copied where the file system has no hard links."""
    for directory, _, files in os.walk(source):
        here = Path(directory)
        relative_dir = here.relative_to(source)
        (target / relative_dir).mkdir(parents=True, exist_ok=True)
        for name in files:
            relative = relative_dir / name
            if skip(relative):
                continue
            try:
                os.link(here / name, target / relative)
            except OSError:
                shutil.copy2(here / name, target / relative)


def sync_tree(root: Path) -> None:
    """Flushes every file and folder under `root` to disk (files written by tools that do not fsync
    themselves, e.g. the remuxer), so that the swap never exposes a dataset a crash could truncate."""
    for directory, _, files in os.walk(root):
        for name in files:
            descriptor = os.open(Path(directory) / name, os.O_RDONLY)
            try:
                os.fsync(descriptor)
            finally:
                os.close(descriptor)
        fsync_directory(Path(directory))


def _exchange(first: Path, second: Path) -> bool:
    """Atomically swaps two directory entries (Linux ``renameat2(RENAME_EXCHANGE)``); False where the
    system or file system does not offer it."""
    library = ctypes.util.find_library("c")
    if library is None:
        return False
    libc = ctypes.CDLL(library, use_errno=True)
    renameat2 = getattr(libc, "renameat2", None)
    if renameat2 is None:
        return False
    renameat2.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    result = renameat2(_AT_FDCWD, os.fsencode(first), _AT_FDCWD, os.fsencode(second), _RENAME_EXCHANGE)
    if result == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.ENOSYS, errno.EINVAL, errno.ENOTSUP, errno.EOPNOTSUPP):
        return False
    raise DatasetWriteError(f"cannot exchange {first} and {second} ({os.strerror(code)})")


def swap_in(staging: Path, root: Path, keep_old_as: Path | None = None) -> None:
    """Puts the complete `staging` folder in `root`'s place. The previous `root` is renamed to
    `keep_old_as` when given (it must not exist), else deleted once the new one is in place."""
    sync_tree(staging)
    if keep_old_as is not None:
        if keep_old_as.exists():
            raise DatasetError(f"{keep_old_as} already exists; move it away to keep the original there")
        if _exchange(staging, root):
            # `root` now holds the new dataset and `staging` the previous one, which gets its name.
            fsync_directory(root.parent)
            os.rename(staging, keep_old_as)
            fsync_directory(root.parent)
            return
        os.rename(root, keep_old_as)
        try:
            os.rename(staging, root)
        except OSError as error:
            raise DatasetWriteError(
                f"{root}: the original is in {keep_old_as} and the converted dataset in {staging}, but "
                f"the second could not be renamed to {root} ({error})"
            ) from error
        fsync_directory(root.parent)
        return
    if _exchange(staging, root):
        fsync_directory(root.parent)
        shutil.rmtree(staging)  # now the previous dataset
        return
    previous = root.parent / f".{root.name}.previous{STAGING_SUFFIX}"
    if previous.exists():
        shutil.rmtree(previous)
    os.rename(root, previous)
    try:
        os.rename(staging, root)
    except OSError as error:
        raise DatasetWriteError(
            f"{root}: the dataset before the edit is in {previous} and the edited one in {staging}, but "
            f"the second could not be renamed to {root} ({error})"
        ) from error
    fsync_directory(root.parent)
    shutil.rmtree(previous)


def move_in(staging: Path, destination: Path) -> None:
    """Puts the complete `staging` folder at `destination`, which does not exist."""
    sync_tree(staging)
    destination.parent.mkdir(parents=True, exist_ok=True)
    os.rename(staging, destination)
    fsync_directory(destination.parent)


def remove_quietly(paths: Iterable[Path]) -> None:
    """Removes staging folders after a failed edit (the dataset itself was never touched)."""
    for path in paths:
        shutil.rmtree(path, ignore_errors=True)


def rewrite_parquet(source: Path, target: Path, change: Callable[[pa.Table], pa.Table]) -> None:
    """Writes `target` as `source` with `change` applied to each row group: the same schema (its
    metadata included: the Hugging Face features, pandas' index) and the same row groups, so the
    file stays the one LeRobot's writer produced but for the changed values."""
    try:
        file = pq.ParquetFile(source)
        schema = file.schema_arrow
        compression = (
            file.metadata.row_group(0).column(0).compression if file.metadata.num_row_groups else "SNAPPY"
        )
        groups = [file.read_row_group(g) for g in range(file.metadata.num_row_groups)]
    except (pa.ArrowException, OSError, ValueError) as error:
        raise DatasetError(f"{source}: not a readable parquet file ({error})") from error
    changed = [change(group).cast(schema) for group in groups]

    def write(temporary: Path) -> None:
        with pq.ParquetWriter(
            temporary, schema, compression=compression.lower(), use_dictionary=True
        ) as writer:
            for group in changed:
                writer.write_table(group, row_group_size=max(1, group.num_rows))

    write_atomically(target, write)
