"""The per-frame (non-video) columns of the selected episodes, as contiguous numpy arrays.

Parquet files are read once through pyarrow (memory-mapped; over the Hub, by range reads) and each declared column becomes one
array of shape (rows, *feature_shape) in the dtype LeRobot's items carry (floats float32, integers
int64, bools bool), so a batch is gathered with one fancy-indexing operation per key. Nothing is
copied into an on-disk cache (LeRobot's Hugging Face datasets path writes an Arrow copy of the data).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from dexloop.errors import DatasetError

from .metadata import read_parquet


def item_dtype(dtype: str) -> np.dtype:
    """The numpy dtype of a numeric feature in an item: LeRobot builds items with torch.tensor() on
    Python values, so every float becomes float32 and every integer int64."""
    kind = np.dtype(dtype).kind
    if kind == "b":
        return np.dtype(np.bool_)
    if kind in "iu":
        return np.dtype(np.int64)
    if kind == "f":
        return np.dtype(np.float32)
    raise DatasetError(f"unsupported feature dtype {dtype!r}")


class FrameTable:
    """Rows of the selected episodes, in file order, with one array (or list) per feature.

    ``numeric[key]``: ndarray (rows, *shape), shape-[1] features as (rows,);
    ``text[key]``: ndarray of Python str; ``images[key]``: pyarrow struct<bytes, path> column.
    """

    def __init__(
        self,
        features: dict[str, dict],
        files: Sequence[Path],
        episodes: Sequence[int] | None,
        filesystem: Any = None,
    ):
        self.columns: list[str] = []  # declared non-video columns, in the files' column order
        self.numeric: dict[str, np.ndarray] = {}
        self.text: dict[str, np.ndarray] = {}
        self.images: dict[str, pa.ChunkedArray] = {}
        declared = {key: feature for key, feature in features.items() if feature["dtype"] != "video"}
        if not files:
            raise DatasetError("no data files to load")
        self.files: list[Path] = list(files)
        # Each file's columns are converted on their own (files may differ in Arrow types, e.g. a
        # fixed-size list in one and a plain list in another) and the arrays then concatenated.
        parts: dict[str, list] = {}
        self.num_rows = 0
        self.file_rows: list[int] = []  # first row of each file, so that errors can name the file
        for path in files:
            self.file_rows.append(self.num_rows)
            table = self._read(path, declared, episodes, filesystem)
            if not self.columns:
                self.columns = [name for name in table.column_names if name in declared]
            for key in self.columns:
                parts.setdefault(key, []).append(_convert(path, key, declared[key], table.column(key)))
            self.num_rows += table.num_rows
        for key in self.columns:
            dtype = declared[key]["dtype"]
            if dtype == "image":
                self.images[key] = pa.chunked_array([c for part in parts[key] for c in part.chunks])
            elif dtype in ("string", "language"):
                self.text[key] = np.concatenate(parts[key])
            else:
                self.numeric[key] = np.ascontiguousarray(np.concatenate(parts[key]))

    def file_of_row(self, files: Sequence[Path], row: int) -> Path:
        """Which of `files` (as passed to the constructor) holds row `row`, for error messages."""
        return files[int(np.searchsorted(self.file_rows, row, side="right")) - 1]

    @staticmethod
    def _read(
        path: Path, declared: dict[str, dict], episodes: Sequence[int] | None, filesystem: Any
    ) -> pa.Table:
        filters = [("episode_index", "in", list(episodes))] if episodes is not None else None
        table = read_parquet(path, filesystem, filters=filters)
        undeclared = [name for name in table.column_names if name not in declared]
        if undeclared:
            raise DatasetError(
                f"{path}: columns {undeclared} are not declared in meta/info.json features "
                f"(declared non-video features: {list(declared)})"
            )
        missing = [name for name in declared if name not in table.column_names]
        if missing:
            raise DatasetError(f"{path}: declared features {missing} have no column in this file")
        for name in table.column_names:
            if table.column(name).null_count:
                raise DatasetError(f"{path}: column {name!r} has missing (null) values")
        return table


def _convert(path: Path, key: str, feature: dict, column: pa.ChunkedArray) -> np.ndarray | pa.ChunkedArray:
    """One file's column as an array (rows, *shape) in the item dtype (shape-[1] features as (rows,)),
    a numpy array of str for text features, or the Arrow column itself for image features."""
    dtype = feature["dtype"]
    shape = list(feature["shape"])
    if dtype == "image":
        return column
    if dtype in ("string", "language"):
        return np.asarray(column.to_pylist(), dtype=object)
    target = item_dtype(dtype)
    expected = [] if shape == [1] else shape
    values = _storage(column)
    # Peel list levels (fixed-size or variable lists, as different writers produce) down to
    # scalars, checking that every row has the declared length at each level.
    depth = 0
    while (
        pa.types.is_list(values.type)
        or pa.types.is_large_list(values.type)
        or pa.types.is_fixed_size_list(values.type)
    ):
        lengths = pc.list_value_length(values).to_numpy(zero_copy_only=False)
        want = expected[depth] if depth < len(expected) else 1
        if lengths.size and not np.all(lengths == want):
            bad = int(np.argmax(lengths != want))
            raise DatasetError(
                f"{path}: column {key!r} row {bad} has {int(lengths[bad])} values at nesting level {depth}, "
                f"but the feature's shape is {shape}"
            )
        values = pc.list_flatten(values)
        depth += 1
    if depth < len(expected):
        raise DatasetError(f"{path}: column {key!r} holds scalars, but the feature's shape is {shape}")
    try:
        flat = values.to_numpy(zero_copy_only=False)
    except pa.ArrowException as error:
        raise DatasetError(f"{path}: column {key!r} is not numeric ({error})") from error
    if flat.dtype.kind not in "biuf":
        raise DatasetError(f"{path}: column {key!r} holds {flat.dtype} values, expected numbers")
    _check_stored_kind(path, key, dtype, flat)
    return flat.astype(target, copy=False).reshape((len(column), *expected))


def _storage(column: pa.ChunkedArray) -> pa.ChunkedArray:
    """A column with extension types replaced by their storage. Once the Hugging Face ``datasets``
    package is imported (as it is in every LeRobot process) it registers Array2D..Array5D as Arrow
    extension types, and parquet files LeRobot wrote with such features then read as extension
    arrays over the nested lists that the rest of this module peels."""
    if not isinstance(column.type, pa.ExtensionType):
        return column
    return pa.chunked_array([chunk.storage for chunk in column.chunks], type=column.type.storage_type)


def _check_stored_kind(path: Path, key: str, declared: str, flat: np.ndarray) -> None:
    """Stored values must be of the declared kind (float, integer or bool; any width): floats under
    an integer declaration would be truncated, and integers under a float or bool declaration mean
    the column is not the declared feature. Unsigned integers beyond int64 would wrap."""
    target = item_dtype(declared).kind
    stored = "i" if flat.dtype.kind == "u" else flat.dtype.kind
    wrapped = (
        target == "i"
        and flat.dtype.kind == "u"
        and flat.dtype.itemsize == 8
        and flat.size
        and bool(flat.max() > np.iinfo(np.int64).max)
    )
    if stored != target or wrapped:
        raise DatasetError(
            f"{path}: column {key!r} stores {flat.dtype} values but meta/info.json declares it {declared!r}"
        )
