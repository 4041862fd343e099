"""Items equal LeRobot's for datasets LeRobot itself wrote.

Each case is a dataset under tests/data and the items LeRobot's loader returned for it (see
tests/data/lerobot/README.md): LeRobot 0.6.1 for v3.0 datasets, 0.3.3 for the v2.1 one. Tabular values
and video pixels must be identical: dexloop's RGB conversion is byte-for-byte torchcodec's.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from support import LEROBOT_DATA, LEROBOT_V21_DATA

from dexloop.datasets import LeRobotDataset

V3_CASES = sorted(path.name.removesuffix(".json") for path in (LEROBOT_DATA / "expected").glob("*.json"))
V21_CASES = sorted(path.name.removesuffix(".json") for path in (LEROBOT_V21_DATA / "expected").glob("*.json"))


class Expected:
    """One query's expected items, read from its .json (structure) and .npz (tensors)."""

    def __init__(self, folder: Path, case: str):
        self.spec = json.loads((folder / "expected" / f"{case}.json").read_text())
        self.arrays = np.load(folder / "expected" / f"{case}.npz")
        call = self.spec.get("loader_call", self.spec)
        self.dataset_dir = folder / case.split("__")[0]
        self.delta_timestamps = call["delta_timestamps"]
        self.episodes = call["episodes"]
        self.items: dict[str, dict] = self.spec["items"]

    def open(self, **kwargs) -> LeRobotDataset:
        return LeRobotDataset(
            f"lerobot/{self.dataset_dir.name}",
            root=self.dataset_dir,
            delta_timestamps=self.delta_timestamps,
            episodes=self.episodes,
            **kwargs,
        )

    def tensor(self, index: str, key: str, float_frames_to_uint8: bool = False) -> np.ndarray:
        value = self.arrays[f"{index}/{key}"]
        if float_frames_to_uint8 and value.dtype == np.float32 and value.ndim >= 3:
            # LeRobot 0.3.3 had no return_uint8: its frames are float32 uint8/255.
            value = np.round(value * 255).astype(np.uint8)
        return value


def assert_item_equal(
    item: dict, expected: Expected, index: str, float_frames_to_uint8: bool = False
) -> None:
    spec = expected.items[index]
    assert list(item) == list(spec), f"item {index}: keys or their order differ"
    for key, described in spec.items():
        if "value" in described:
            assert item[key] == described["value"], f"item {index} {key}"
            continue
        want = expected.tensor(index, key, float_frames_to_uint8)
        value = item[key]
        assert isinstance(value, torch.Tensor), f"item {index} {key} is {type(value)}"
        assert str(value.dtype).removeprefix("torch.") == str(want.dtype), f"item {index} {key} dtype"
        assert tuple(value.shape) == want.shape, f"item {index} {key} shape"
        np.testing.assert_array_equal(value.numpy(), want, err_msg=f"item {index} {key}")


@pytest.mark.parametrize("case", V3_CASES)
def test_items_equal_lerobot_v3(case: str) -> None:
    expected = Expected(LEROBOT_DATA, case)
    dataset = expected.open(return_uint8=True)
    assert len(dataset) == expected.spec["len"]
    for index in expected.items:
        assert_item_equal(dataset[int(index)], expected, index)


@pytest.mark.parametrize("case", V3_CASES)
def test_batched_items_equal_lerobot_v3(case: str) -> None:
    expected = Expected(LEROBOT_DATA, case)
    dataset = expected.open(return_uint8=True, decode_threads=3)
    indices = list(expected.items)
    for index, item in zip(indices, dataset.__getitems__([int(i) for i in indices]), strict=True):
        assert_item_equal(item, expected, index)


@pytest.mark.parametrize("case", V21_CASES)
def test_items_equal_lerobot_v21(case: str) -> None:
    expected = Expected(LEROBOT_V21_DATA, case)
    dataset = expected.open(return_uint8=True)
    assert len(dataset) == expected.spec["len"]
    for index, item in zip(
        expected.items, dataset.__getitems__([int(i) for i in expected.items]), strict=True
    ):
        assert_item_equal(item, expected, index, float_frames_to_uint8=True)


def test_v21_float_frames_equal_lerobot_exactly() -> None:
    expected = Expected(LEROBOT_V21_DATA, "v21_0__window")
    dataset = expected.open()  # return_uint8=False: float32 in [0, 1], as LeRobot 0.3.3 returned
    for index in expected.items:
        frames = dataset[int(index)]["observation.images.top"]
        assert frames.dtype == torch.float32
        np.testing.assert_array_equal(frames.numpy(), expected.tensor(index, "observation.images.top"))


def test_float_frames_are_uint8_over_255() -> None:
    expected = Expected(LEROBOT_DATA, "public_0__window")
    as_float, as_uint8 = expected.open(), expected.open(return_uint8=True)
    for index in list(expected.items)[:4]:
        frames = as_float[int(index)]["observation.images.top"]
        assert frames.dtype == torch.float32
        torch.testing.assert_close(
            frames, as_uint8[int(index)]["observation.images.top"].float() / 255, rtol=0, atol=0
        )


def test_v21_reads_like_the_same_recording_in_v3() -> None:
    """The v2.1 and v3.0 recordings of the same painted episodes give items of the same structure,
    the same indices, timestamps, masks and tasks, and frames that differ only by encoding noise (the
    two were encoded, and their state/action values drawn, separately)."""
    v3 = Expected(LEROBOT_DATA, "public_0__window").open(return_uint8=True)
    v21 = Expected(LEROBOT_V21_DATA, "v21_0__window").open(return_uint8=True)
    assert len(v3) == len(v21)
    rows = [*range(0, len(v3), 7), len(v3) - 1]
    for a, b in zip(v3.__getitems__(rows), v21.__getitems__(rows), strict=True):
        assert list(a) == list(b)
        for key in a:
            if key == "observation.images.top":
                assert a[key].shape == b[key].shape
                assert (a[key].float() - b[key].float()).abs().mean() < 3.0
            elif key in ("observation.state", "action"):
                assert a[key].shape == b[key].shape and a[key].dtype == b[key].dtype
            elif isinstance(a[key], torch.Tensor):
                torch.testing.assert_close(a[key], b[key], rtol=0, atol=0)
            else:
                assert a[key] == b[key]
