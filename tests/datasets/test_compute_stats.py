"""dexloop's per-episode statistics against what LeRobot 0.6.1 returned for the same inputs
(tests/data/lerobot/compute_stats_reference.npz, recorded by
tools/lerobot_reference/make_compute_stats_reference.py): numeric features of every dtype and rank,
single frames, constant and heavy-tailed data, RGB frames, and the frame sampling for image stats."""

from __future__ import annotations

import numpy as np
import pytest
from support import LEROBOT_DATA

from dexloop.datasets.compute_stats import (
    compute_episode_stats,
    downsample_for_stats,
    image_stats,
    numeric_stats,
    sample_indices,
)

REFERENCE = np.load(LEROBOT_DATA / "compute_stats_reference.npz")
NUMERIC = sorted({key.split("/")[1] for key in REFERENCE.files if key.startswith("numeric/")})
STATS = ["min", "max", "mean", "std", "count", "q01", "q10", "q50", "q90", "q99"]


def assert_same_stats(got: dict[str, np.ndarray], prefix: str) -> None:
    assert sorted(got) == sorted(STATS)
    for stat in STATS:
        want = REFERENCE[f"{prefix}/{stat}"]
        assert got[stat].shape == want.shape, stat
        assert got[stat].dtype == want.dtype, stat
        np.testing.assert_array_equal(got[stat], want, err_msg=f"{prefix}/{stat}")


@pytest.mark.parametrize("name", NUMERIC)
def test_numeric_stats_are_lerobots_to_the_bit(name: str) -> None:
    assert_same_stats(numeric_stats(REFERENCE[f"input/{name}"]), f"numeric/{name}")


def test_image_stats_are_lerobots_to_the_bit() -> None:
    assert_same_stats(image_stats(REFERENCE["input/images"]), "image")


def test_frames_sampled_for_image_stats_are_lerobots() -> None:
    for key in (k for k in REFERENCE.files if k.startswith("sample_indices/")):
        assert sample_indices(int(key.split("/")[1])) == REFERENCE[key].tolist(), key
    for key in (k for k in REFERENCE.files if k.startswith("downsampled/")):
        height, width = (int(v) for v in key.split("/")[1].split("x"))
        image = np.zeros((3, height, width), np.uint8)
        assert downsample_for_stats(image).shape == tuple(REFERENCE[key]), key


def test_episode_stats_by_feature_kind() -> None:
    features = {
        "state": {"dtype": "float32", "shape": [6]},
        "camera": {"dtype": "video", "shape": [24, 32, 3]},
        "note": {"dtype": "string", "shape": [1]},
    }
    stats = compute_episode_stats(
        {
            "state": REFERENCE["input/float32_vector"],
            "camera": REFERENCE["input/images"],
            "note": np.array(["a"]),
        },
        features,
    )
    assert sorted(stats) == ["camera", "state"]
    np.testing.assert_array_equal(stats["camera"]["mean"], REFERENCE["image/mean"])
    np.testing.assert_array_equal(stats["state"]["q99"], REFERENCE["numeric/float32_vector/q99"])


@pytest.mark.parametrize(
    ("kind", "dtype", "low", "high"),
    [
        ("full range", np.uint8, 0, 256),
        ("narrow range", np.uint8, 50, 53),
        ("constant", np.uint8, 7, 8),
        ("16-bit depth codes", np.uint16, 0, 4096),
        ("signed", np.int16, -300, 300),
    ],
)
def test_integer_images_give_the_stats_of_their_float_values(kind: str, dtype, low: int, high: int) -> None:
    """8- and 16-bit images take their stats from the core's channel sums and value counts:
    every stat must equal the one numpy computes over the same values as float32 rows. The large
    shapes sum past 2**24, where a float32 sum in another order than numpy's rounds otherwise."""
    rng = np.random.default_rng(len(kind))
    shapes = ((2, 3, 23, 31), (37, 3, 23, 31), (12, 1, 23, 31), (40, 3, 120, 160), (9, 4, 64, 64))
    shapes += ((30, 1, 120, 160), (5, 2, 16, 16), (1, 3, 40, 56), (1, 1, 40, 56))
    for shape, layout in [(shape, "CHW") for shape in shapes] + [((6, 3, 40, 56), "HWC view")]:
        images = rng.integers(low, high, size=shape).astype(dtype)
        if layout == "HWC view":  # frames stored HWC, handed over as a CHW view without a copy
            images = np.ascontiguousarray(images.transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2)
        for depth in (False, True):
            got, want = image_stats(images, depth=depth), image_stats(images.astype(np.float32), depth=depth)
            for stat in STATS:
                assert got[stat].dtype == want[stat].dtype, (kind, stat)
                np.testing.assert_array_equal(
                    got[stat], want[stat], err_msg=f"{kind} {shape} {layout}: {stat}"
                )
