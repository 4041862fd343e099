"""Batches through torch's DataLoader equal the items, in the main process and in worker processes
started by fork and by spawn (each worker opens its own decoders and thread pool)."""

from __future__ import annotations

import pytest
import torch
from support import LEROBOT_DATA, assert_same_values

from dexloop.datasets import LeRobotDataset

DELTAS = {
    "observation.state": [-0.1, -1 / 30, 0.0],
    "action": [k / 30 for k in range(8)],
    "observation.images.top": [-2 / 30, 0.0],
}


def open_dataset(**kwargs) -> LeRobotDataset:
    return LeRobotDataset(
        "dexloop/public_0",
        root=LEROBOT_DATA / "public_0",
        delta_timestamps=DELTAS,
        return_uint8=True,
        **kwargs,
    )


def expected_batches(dataset: LeRobotDataset, batch_size: int) -> list[dict]:
    collate = torch.utils.data.default_collate
    return [
        collate([dataset[i] for i in range(start, min(start + batch_size, len(dataset)))])
        for start in range(0, len(dataset), batch_size)
    ]


def assert_batches_equal(actual: list[dict], expected: list[dict]) -> None:
    assert len(actual) == len(expected)
    for got, want in zip(actual, expected, strict=True):
        assert_same_values(got, want)


def test_dataloader_uses_the_batch_path_and_matches_items() -> None:
    dataset = open_dataset()
    calls = []
    original = dataset.__getitems__

    def counting(indices):
        calls.append(len(indices))
        return original(indices)

    dataset.__getitems__ = counting
    loader = torch.utils.data.DataLoader(dataset, batch_size=16)
    assert_batches_equal(list(loader), expected_batches(open_dataset(), 16))
    assert calls and max(calls) == 16  # one call per batch, not one per item


@pytest.mark.parametrize("context", ["fork", "spawn"])
def test_dataloader_workers(context: str) -> None:
    dataset = open_dataset(decode_threads=1)
    loader = torch.utils.data.DataLoader(
        dataset, batch_size=16, num_workers=2, multiprocessing_context=context, persistent_workers=False
    )
    assert_batches_equal(list(loader), expected_batches(dataset, 16))


def test_fork_after_the_parent_decoded() -> None:
    """A worker forked from a process whose pool already has threads and open files starts its own."""
    dataset = open_dataset(decode_threads=2)
    expected = expected_batches(dataset, 16)  # the parent's pool is now warm
    loader = torch.utils.data.DataLoader(
        dataset, batch_size=16, num_workers=2, multiprocessing_context="fork"
    )
    assert_batches_equal(list(loader), expected)
    assert_batches_equal(list(torch.utils.data.DataLoader(dataset, batch_size=16)), expected)
