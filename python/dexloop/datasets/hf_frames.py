"""The frames' parquet columns as a Hugging Face ``datasets.Dataset``: LeRobot's ``hf_dataset``.

LeRobot reads its frames through ``datasets`` and its tools and scripts read ``dataset.hf_dataset``
(``select_columns("action")`` to replay an episode, ``.data.column("task_index")``, ...). dexloop
reads the frames without ``datasets``; this module builds the same object when asked, from the
memory-mapped parquet tables (no Arrow copy in a cache folder), with LeRobot's feature types and
LeRobot's torch formatting of rows. ``datasets`` is imported here only, so it stays optional.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from dexloop.errors import DatasetError

from .metadata import LANGUAGE_COLUMNS


def _datasets_module() -> Any:
    try:
        import datasets
    except ImportError as error:
        raise DatasetError(
            "hf_dataset needs the Hugging Face 'datasets' package: pip install 'dexloop[hf]'"
        ) from error
    return datasets


def hf_features(features: dict[str, dict]) -> Any:
    """LeRobot's ``datasets.Features`` of the parquet columns: video features have no column; an image
    is ``Image()``; a shape-(1,) feature a ``Value``; 1-D a fixed-length sequence; 2-D..5-D
    ``Array2D``..``Array5D``; language columns keep the type they were written with."""
    datasets = _datasets_module()
    arrays = {2: datasets.Array2D, 3: datasets.Array3D, 4: datasets.Array4D, 5: datasets.Array5D}
    out = {}
    for key, feature in features.items():
        dtype, shape = feature["dtype"], tuple(feature["shape"])
        if dtype == "video" or key in LANGUAGE_COLUMNS:
            continue
        if dtype == "image":
            out[key] = datasets.Image()
        elif dtype in ("string", "language"):
            out[key] = datasets.Value("string")
        elif shape == (1,):
            out[key] = datasets.Value(dtype)
        elif len(shape) == 1:
            out[key] = datasets.Sequence(datasets.Value(dtype), length=shape[0])
        elif len(shape) in arrays:
            out[key] = arrays[len(shape)](shape=shape, dtype=dtype)
        else:
            raise DatasetError(f"feature {key!r}: shape {list(shape)} has more than 5 dimensions")
    return out


def to_torch(batch: dict[str, list]) -> dict[str, list]:
    """LeRobot's row formatting: PIL images become float32 CHW tensors in [0, 1], strings and
    dicts stay, other values become ``torch.tensor`` of the Python values."""
    import numpy as np
    import torch
    from PIL import Image

    for key, values in batch.items():
        if key in LANGUAGE_COLUMNS or not values:
            continue
        first = values[0]
        if isinstance(first, Image.Image):
            batch[key] = [
                torch.from_numpy(np.asarray(image.convert("RGB"), dtype=np.float32) / 255.0).permute(2, 0, 1)
                for image in values
            ]
        elif first is None or isinstance(first, dict):
            continue
        else:
            batch[key] = [value if isinstance(value, str) else torch.tensor(value) for value in values]
    return batch


def frames_dataset(features: dict[str, dict], files: Sequence[Path], episodes: Sequence[int] | None) -> Any:
    """The rows of ``files`` (only those of ``episodes`` when given), in file order, as a
    ``datasets.Dataset`` with LeRobot's features and formatting."""
    datasets = _datasets_module()
    from datasets.table import table_cast

    filters = [("episode_index", "in", list(episodes))] if episodes is not None else None
    try:
        tables = [pq.read_table(path, memory_map=True, filters=filters) for path in files]
        declared = hf_features(features)
        columns = [name for name in tables[0].column_names if name in declared or name in LANGUAGE_COLUMNS]
        table = pa.concat_tables([t.select(columns) for t in tables], promote_options="default")
        hf = datasets.Features(
            {
                name: declared[name]
                if name in declared
                else datasets.Features.from_arrow_schema(pa.schema([table.schema.field(name)]))[name]
                for name in columns
            }
        )
        table = table_cast(table.replace_schema_metadata(None), hf.arrow_schema)
    except (pa.ArrowException, OSError, ValueError, TypeError) as error:
        raise DatasetError(
            f"data files {[str(f) for f in files][:3]}: cannot present them as a Hugging Face dataset ({error})"
        ) from error
    dataset = datasets.Dataset(table, info=datasets.DatasetInfo(features=hf))
    dataset.set_transform(to_torch)
    return dataset
