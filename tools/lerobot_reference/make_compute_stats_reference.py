"""Records what LeRobot 0.6.1's statistics code returns for a set of generated inputs, into
tests/data/lerobot/compute_stats_reference.npz (inputs and outputs), which
tests/datasets/test_compute_stats.py compares dexloop's dexloop.datasets.compute_stats against.

By hand, in the LeRobot environment (../shared/tools/lerobot-peer.sh):

    /tmp/lerobot-peer/bin/python tools/lerobot_reference/make_compute_stats_reference.py
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from lerobot.datasets.compute_stats import (
    auto_downsample_height_width,
    get_feature_stats,
    sample_indices,
)

OUT = Path(__file__).resolve().parents[2] / "tests/data/lerobot/compute_stats_reference.npz"


def inputs() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(7)
    return {
        "float32_vector": rng.normal(0, 3, (50, 6)).astype(np.float32),
        "float64_vector": rng.normal(5, 1, (9, 3)),
        "float32_scalar": rng.uniform(-1, 1, 40).astype(np.float32),
        "int64_scalar": rng.integers(0, 1000, 30).astype(np.int64),
        "int32_vector": rng.integers(-50, 50, (25, 2)).astype(np.int32),
        "bool_scalar": rng.random(20) < 0.3,
        "float32_matrix": rng.normal(0, 1, (15, 2, 3)).astype(np.float32),
        "constant_vector": np.full((12, 4), 0.25, np.float32),
        "one_frame": rng.normal(0, 1, (1, 5)).astype(np.float32),
        "one_scalar": np.array([3], np.int64),
        "heavy_tail": np.concatenate([rng.normal(0, 1, 200), [1e6, -1e6]]).astype(np.float32),
    }


def images() -> np.ndarray:
    rng = np.random.default_rng(8)
    return rng.integers(0, 256, (11, 3, 24, 32), dtype=np.uint8)


def main() -> None:
    record: dict[str, np.ndarray] = {}
    for name, values in inputs().items():
        record[f"input/{name}"] = values
        stats = get_feature_stats(values, axis=0, keepdims=values.ndim == 1)
        for stat, value in stats.items():
            record[f"numeric/{name}/{stat}"] = value
    sampled = images()
    record["input/images"] = sampled
    stats = get_feature_stats(sampled, axis=(0, 2, 3), keepdims=True)
    for stat, value in stats.items():
        record[f"image/{stat}"] = value if stat == "count" else np.squeeze(value / 255.0, axis=0)
    for length in [1, 2, 5, 99, 100, 101, 499, 500, 1000, 2000, 20000]:
        record[f"sample_indices/{length}"] = np.array(sample_indices(length))
    for height, width in [
        (24, 32),
        (240, 320),
        (299, 299),
        (300, 200),
        (480, 640),
        (720, 1280),
        (1080, 1920),
    ]:
        shape = auto_downsample_height_width(np.zeros((3, height, width), np.uint8)).shape
        record[f"downsampled/{height}x{width}"] = np.array(shape)
    np.savez_compressed(OUT, **record)
    print(f"wrote {OUT} ({len(record)} arrays)")


if __name__ == "__main__":
    main()
