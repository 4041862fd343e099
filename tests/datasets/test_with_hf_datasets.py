"""Reading in a process that imported Hugging Face ``datasets``, as every LeRobot process does.

``datasets`` registers its Array2D..Array5D features as Arrow extension types, so the 2-D..5-D columns
of parquet files LeRobot wrote then arrive as extension arrays instead of nested lists. Items must
still equal LeRobot's.
"""

from __future__ import annotations

import datasets  # noqa: F401 - imported for its side effect: the Arrow extension types
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from support import LEROBOT_DATA
from test_lerobot_parity import Expected, assert_item_equal

ND_CASES = [
    f"{name}__{query}" for name in ("nd_features", "h264_fps30") for query in ("plain", "window", "subset")
]


def test_the_columns_really_arrive_as_extension_arrays() -> None:
    table = pq.read_table(LEROBOT_DATA / "nd_features/data/chunk-000/file-000.parquet")
    for key in ("observation.grid", "observation.volume", "observation.field4d", "observation.field5d"):
        assert isinstance(table.schema.field(key).type, pa.ExtensionType), key


@pytest.mark.parametrize("case", ND_CASES)
def test_items_equal_lerobot_with_datasets_imported(case: str) -> None:
    expected = Expected(LEROBOT_DATA, case)
    dataset = expected.open(return_uint8=True)
    assert len(dataset) == expected.spec["len"]
    for index in expected.items:
        assert_item_equal(dataset[int(index)], expected, index)
