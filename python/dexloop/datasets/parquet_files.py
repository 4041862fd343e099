"""The parquet files of a LeRobot v3.0 dataset, laid out as LeRobot 0.6.1 writes them.

* Data files (``data/chunk-*/file-*.parquet``): one column per non-video feature in the features'
  order; scalars as plain columns, vectors as ``fixed_size_list``, 2-D to 5-D features as nested lists
  tagged with the Hugging Face ``datasets`` ArrayND extension, images as ``struct<bytes, path>`` of
  PNGs; the ``huggingface`` schema metadata holding the ``datasets`` features; snappy compression,
  dictionary encoding, one row group per episode.
* Episode metadata files (``meta/episodes/chunk-*/file-*.parquet``): one row per episode, per-episode
  stats as ``list<double>`` (images nested (3, 1, 1)) and ``count`` as ``list<int64>``.
* ``meta/tasks.parquet``: written by pandas with the task strings as the index, which is what makes
  LeRobot read task strings back (without the pandas metadata it reads row numbers).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from dexloop.errors import DatasetError

from .durable import write_atomically

IMAGE_STRUCT = pa.struct([("bytes", pa.binary()), ("path", pa.string())])
ARRAY_ND_TYPES = {2: "Array2D", 3: "Array3D", 4: "Array4D", 5: "Array5D"}


def _list(value: pa.DataType, size: int = -1) -> pa.DataType:
    # Parquet's own name for list items, which is what a file written by LeRobot reads back with.
    return pa.list_(pa.field("element", value), size)


def _hf_feature(feature: Mapping[str, Any]) -> dict[str, Any] | None:
    """The Hugging Face ``datasets`` feature LeRobot declares for one feature (None: no column)."""
    dtype, shape = feature["dtype"], tuple(feature["shape"])
    if dtype == "video":
        return None
    if dtype == "image":
        return {"_type": "Image"}
    if dtype == "string":
        return {"dtype": "string", "_type": "Value"}
    if shape == (1,):
        return {"dtype": dtype, "_type": "Value"}
    if len(shape) == 1:
        return {"feature": {"dtype": dtype, "_type": "Value"}, "length": shape[0], "_type": "List"}
    if len(shape) in ARRAY_ND_TYPES:
        return {"shape": list(shape), "dtype": dtype, "_type": ARRAY_ND_TYPES[len(shape)]}
    raise DatasetError(f"feature of dtype {dtype!r} and shape {list(shape)} cannot be stored in parquet")


def _arrow_field(name: str, feature: Mapping[str, Any]) -> pa.Field:
    dtype, shape = feature["dtype"], tuple(feature["shape"])
    if dtype == "image":
        return pa.field(name, IMAGE_STRUCT)
    if dtype == "string":
        return pa.field(name, pa.string())
    value = pa.from_numpy_dtype(np.dtype(dtype))
    if shape == (1,):
        return pa.field(name, value)
    if len(shape) == 1:
        return pa.field(name, _list(value, shape[0]))
    nested = value
    for _ in shape:
        nested = _list(nested)
    # The storage of datasets' ArrayND extension type, tagged so that `datasets` reads it as one.
    metadata = {
        "ARROW:extension:metadata": json.dumps([list(shape), dtype]),
        "ARROW:extension:name": f"datasets.features.features.{ARRAY_ND_TYPES[len(shape)]}ExtensionType",
    }
    return pa.field(name, nested, metadata=metadata)


def frames_schema(features: Mapping[str, Mapping[str, Any]]) -> pa.Schema:
    """The data files' schema for `features` (video features have no column)."""
    fields, hf_features = [], {}
    for name, feature in features.items():
        hf = _hf_feature(feature)
        if hf is None:
            continue
        fields.append(_arrow_field(name, feature))
        hf_features[name] = hf
    described = json.dumps({"info": {"features": hf_features}})
    fingerprint = hashlib.sha256(described.encode()).hexdigest()[:16]
    metadata = {"huggingface": json.dumps({"info": {"features": hf_features}, "fingerprint": fingerprint})}
    return pa.schema(fields, metadata=metadata)


def _column(values: Any, field: pa.Field) -> pa.Array:
    if pa.types.is_struct(field.type) or pa.types.is_string(field.type):
        return pa.array(values, type=field.type)
    array = np.ascontiguousarray(values)
    types = [field.type]
    while pa.types.is_list(types[-1]) or pa.types.is_fixed_size_list(types[-1]):
        types.append(types[-1].value_type)
    flat: pa.Array = pa.array(array.reshape(-1), type=types[-1])
    if pa.types.is_fixed_size_list(field.type):
        return pa.FixedSizeListArray.from_arrays(flat, type=field.type)
    if pa.types.is_list(field.type):
        types.pop()
        for size, kind in zip(reversed(array.shape[1:]), reversed(types), strict=True):
            offsets = pa.array(np.arange(0, len(flat) + 1, size, dtype=np.int32))
            flat = pa.ListArray.from_arrays(offsets, flat, type=kind)
        return flat
    return flat


def frames_table(columns: Mapping[str, Any], schema: pa.Schema) -> pa.Table:
    """One episode's rows: `columns` maps each schema column to its per-frame values (arrays of
    shape (frames, *feature shape), lists of strings, lists of {"bytes", "path"} image cells)."""
    return pa.Table.from_arrays([_column(columns[f.name], f) for f in schema], schema=schema)


def write_row_groups(path: Path, schema: pa.Schema, tables: Iterable[pa.Table]) -> None:
    """A parquet file holding each table as one row group, written atomically (LeRobot's settings)."""

    def write(temporary: Path) -> None:
        with pq.ParquetWriter(temporary, schema, compression="snappy", use_dictionary=True) as writer:
            for table in tables:
                writer.write_table(table)

    write_atomically(path, write)


# -- episode metadata ----------------------------------------------------------------------------


def _episode_column_type(name: str, value: Any) -> pa.DataType:
    if name == "tasks":
        return _list(pa.string())
    if name.startswith("stats/"):
        if name.endswith("/count"):
            return _list(pa.int64())
        nested: pa.DataType = pa.float64()
        for _ in range(max(1, np.ndim(value))):
            nested = _list(nested)
        return nested
    if name.endswith("_timestamp"):
        return pa.float64()
    return pa.int64()


def episodes_table(rows: Sequence[Mapping[str, Any]]) -> pa.Table:
    """Episode metadata rows (flat dicts, LeRobot's column names and order) as the episodes table,
    with LeRobot's column types whatever Python or numpy types the values have."""
    names = list(rows[0])
    arrays = []
    for name in names:
        kind = _episode_column_type(name, rows[0][name])
        values = [row[name] for row in rows]
        if name.startswith("stats/"):
            cast = np.int64 if name.endswith("/count") else np.float64
            values = [np.asarray(v, dtype=cast).tolist() for v in values]
        arrays.append(pa.array(values, type=kind))
    return pa.Table.from_arrays(arrays, names=names)


# -- tasks ---------------------------------------------------------------------------------------


# The pandas metadata of tasks.parquet as pandas 2 writes it (LeRobot 0.6.1's environment), fixed
# here so that the file is the same whichever pandas dexloop runs with (pandas 3 writes large_string).
PANDAS_VERSION_WRITTEN = "2.3.3"


def _tasks_pandas_metadata() -> str:
    def column(name: str, pandas_type: str, numpy_type: str) -> dict[str, Any]:
        return {
            "name": name,
            "field_name": name,
            "pandas_type": pandas_type,
            "numpy_type": numpy_type,
            "metadata": None,
        }

    return json.dumps(
        {
            "index_columns": ["task"],
            "column_indexes": [
                {
                    "name": None,
                    "field_name": None,
                    "pandas_type": "unicode",
                    "numpy_type": "object",
                    "metadata": {"encoding": "UTF-8"},
                }
            ],
            "columns": [column("task_index", "int64", "int64"), column("task", "unicode", "object")],
            "attributes": {},
            "creator": {"library": "pyarrow", "version": pa.__version__},
            "pandas_version": PANDAS_VERSION_WRITTEN,
        }
    )


def write_tasks(path: Path, tasks: Sequence[str]) -> None:
    """``meta/tasks.parquet`` as LeRobot writes it through pandas: columns task_index and task, and
    pandas' metadata naming "task" the index, without which LeRobot reads row numbers as tasks."""
    table = pa.table(
        {"task_index": pa.array(range(len(tasks)), pa.int64()), "task": pa.array(list(tasks), pa.string())}
    ).replace_schema_metadata({"pandas": _tasks_pandas_metadata()})
    write_atomically(path, lambda temporary: pq.write_table(table, temporary))
