"""default_collate on dexloop's items: the batch __getitems__ built, without a second copy, exactly
when that is the same as stacking the items; stacking otherwise."""

from __future__ import annotations

import pickle

import torch
from support import LEROBOT_DATA, assert_same_values

from dexloop.datasets import LeRobotDataset
from dexloop.datasets.collate import Sample

collate = torch.utils.data.default_collate
DELTAS = {"action": [k / 30 for k in range(4)], "observation.images.top": [-1 / 30, 0.0]}


def open_dataset() -> LeRobotDataset:
    return LeRobotDataset("dexloop/public_0", root=LEROBOT_DATA / "public_0", delta_timestamps=DELTAS)


def stacked(items: list[dict]) -> dict:
    """What default_collate gives for plain dicts."""
    return collate([dict(item) for item in items])


def test_one_whole_batch_is_returned_without_copying() -> None:
    items = open_dataset().__getitems__([5, 90, 44, 3])
    assert all(isinstance(item, Sample) and isinstance(item, dict) for item in items)
    batch = collate(items)
    assert_same_values(batch, stacked(items))
    frames = batch["observation.images.top"]
    assert frames.shape == (4, 2, 3, 64, 96) and frames.dtype == torch.float32
    assert frames[1].data_ptr() == items[1]["observation.images.top"].data_ptr()  # no copy


def test_items_of_different_batches_or_reordered_are_stacked() -> None:
    dataset = open_dataset()
    first, second = dataset.__getitems__([1, 2]), dataset.__getitems__([3, 4])
    mixed = [first[0], second[1]]
    assert_same_values(collate(mixed), stacked(mixed))
    reordered = [first[1], first[0]]
    batch = collate(reordered)
    assert_same_values(batch, stacked(reordered))
    assert batch["index"].tolist() == [2, 1]
    partial = dataset.__getitems__([7, 8, 9])[:2]
    assert collate(partial)["index"].tolist() == [7, 8]


def test_a_changed_item_is_collated_with_its_change() -> None:
    items = open_dataset().__getitems__([10, 11, 12])
    items[1]["action"] = torch.zeros(4, 6)
    items[2]["extra"] = torch.tensor(1.0)
    del items[2]["extra"]
    batch = collate(items)
    assert torch.equal(batch["action"][1], torch.zeros(4, 6))
    assert_same_values(batch, stacked(items))


def test_image_transforms_apply_to_every_camera_and_reach_the_batch() -> None:
    dataset = LeRobotDataset(
        "dexloop/public_0",
        root=LEROBOT_DATA / "public_0",
        delta_timestamps=DELTAS,
        image_transforms=lambda frames: frames.flip(-1),
    )
    plain = open_dataset().__getitems__([20, 21])
    items = dataset.__getitems__([20, 21])
    for item, reference in zip(items, plain, strict=True):
        torch.testing.assert_close(
            item["observation.images.top"], reference["observation.images.top"].flip(-1)
        )
    assert_same_values(collate(items), stacked(items))


def test_items_pickle_as_plain_dicts() -> None:
    item = open_dataset()[3]
    restored = pickle.loads(pickle.dumps(item))
    assert type(restored) is dict
    assert_same_values(collate([restored]), stacked([item]))
