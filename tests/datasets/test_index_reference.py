"""dexloop's items against an independent plain-Python statement of LeRobot's rules (tests/synth.py),
on datasets generated here: AV1 and H.264, several files per camera, two cameras of different sizes,
one-frame episodes, fps 10/15/30/50, v3.0 and v2.1 layouts.

Tabular values and padding masks must be equal; every decoded frame must be the painted frame the
rules say (frames are painted so that a neighbouring frame differs by tens of grey levels).
"""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest
import torch
from support import assert_same_values, requires_ffmpeg

from dexloop.datasets import LeRobotDataset

from synth import (
    CameraSpec,
    assert_painted_frame,
    reference_item,
    reference_length,
    write_v3_dataset,
    write_v21_dataset,
)

pytestmark = requires_ffmpeg()

AV1_SQUARE = CameraSpec(64, 64)
AV1_WIDE = CameraSpec(64, 96)
H264_SMALL = CameraSpec(32, 48, codec="libx264")

# name -> (writer arguments, delta windows in frames per key)
DATASETS = {
    "fps30_two_cams_multifile": dict(
        fps=30,
        episode_lengths=[1, 17, 9, 1, 25, 6],
        cameras={"observation.images.front": AV1_WIDE, "observation.images.wrist": H264_SMALL},
        episodes_per_video_file={"observation.images.front": 2, "observation.images.wrist": 4},
        episodes_per_data_file=3,
        chunks_size=2,
    ),
    "fps10_h264": dict(fps=10, episode_lengths=[6, 1, 12], cameras={"observation.images.top": H264_SMALL}),
    "fps15_av1": dict(
        fps=15,
        episode_lengths=[5, 11, 1],
        cameras={"observation.images.top": AV1_SQUARE},
        episodes_per_video_file=2,
        extra_features={"observation.effort": ("float64", [3]), "gripper.closed": ("bool", [1])},
    ),
    "fps50_types": dict(
        fps=50,
        episode_lengths=[30, 1, 21],
        cameras={"observation.images.top": H264_SMALL},
        episodes_per_video_file=2,
        extra_features={"observation.counter": ("int32", [1]), "observation.pose": ("float32", [7])},
    ),
}

WINDOWS = [
    None,
    {"observation.state": [-3, -1, 0], "action": list(range(8))},
    {"observation.state": [0], "action": list(range(-2, 12))},
]


def seconds(window: dict[str, list[int]] | None, fps: int, cameras: list[str]) -> dict | None:
    if window is None:
        return None
    deltas = {key: [k / fps for k in frames] for key, frames in window.items()}
    for number, camera in enumerate(cameras):
        deltas[camera] = [0.0] if number else [-2 / fps, 0.0, 1 / fps]
    return deltas


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    roots = {}
    for name, arguments in DATASETS.items():
        roots[name] = tmp_path_factory.mktemp("synth") / name
        write_v3_dataset(roots[name], **arguments)
    roots["v21"] = tmp_path_factory.mktemp("synth") / "v21"
    write_v21_dataset(
        roots["v21"],
        fps=30,
        episode_lengths=[4, 1, 9],
        cameras={"observation.images.top": AV1_SQUARE, "observation.images.side": H264_SMALL},
    )
    return roots


def assert_matches_reference(item: dict, expected: dict, video_keys: list[str]) -> None:
    assert set(item) == set(expected)
    assert item["task"] == expected["task"]
    for key, want in expected.items():
        if key == "task":
            continue
        value = item[key]
        if key in video_keys:
            frames = value if value.dim() == 4 else value.unsqueeze(0)
            assert frames.dtype == torch.uint8 and frames.shape[0] == len(want)
            if len(want) == 1:
                assert value.dim() == 3  # LeRobot's squeeze of a one-step window
            for frame, query in zip(frames, want, strict=True):
                assert_painted_frame(frame.numpy(), query.episode_index, query.frame_index)
            continue
        assert str(value.dtype).removeprefix("torch.") == str(want.dtype), key
        np.testing.assert_array_equal(value.numpy(), want, err_msg=key)


@pytest.mark.parametrize("name", [*DATASETS, "v21"])
@pytest.mark.parametrize("window", range(len(WINDOWS)))
def test_items_follow_lerobot_rules(generated: dict[str, Path], name: str, window: int) -> None:
    root = generated[name]
    fps = DATASETS[name]["fps"] if name in DATASETS else 30
    probe = LeRobotDataset(name, root=root)
    deltas = seconds(WINDOWS[window], fps, probe.meta.video_keys)
    dataset = LeRobotDataset(name, root=root, delta_timestamps=deltas, return_uint8=True, decode_threads=2)
    assert len(dataset) == reference_length(root)
    positions = list(range(len(dataset)))
    for position, item in zip(positions, dataset.__getitems__(positions), strict=True):
        expected = reference_item(root, position, delta_timestamps=deltas)
        assert_matches_reference(item, expected, dataset.meta.video_keys)


@pytest.mark.parametrize("name", ["fps30_two_cams_multifile", "fps50_types", "v21"])
def test_episode_subsets_follow_lerobot_rules(generated: dict[str, Path], name: str) -> None:
    root = generated[name]
    fps = DATASETS[name]["fps"] if name in DATASETS else 30
    probe = LeRobotDataset(name, root=root)
    deltas = seconds(WINDOWS[1], fps, probe.meta.video_keys)
    chooser = random.Random(name)
    total = probe.meta.total_episodes
    for _ in range(3):
        episodes = sorted(chooser.sample(range(total), chooser.randint(1, total - 1)))
        dataset = LeRobotDataset(
            name, root=root, episodes=episodes, delta_timestamps=deltas, return_uint8=True
        )
        assert len(dataset) == reference_length(root, episodes=episodes)
        positions = list(range(len(dataset)))
        chooser.shuffle(positions)
        for position, item in zip(positions, dataset.__getitems__(positions), strict=True):
            expected = reference_item(root, position, delta_timestamps=deltas, episodes=episodes)
            assert_matches_reference(item, expected, dataset.meta.video_keys)


def test_one_item_and_its_batch_agree(generated: dict[str, Path]) -> None:
    root = generated["fps30_two_cams_multifile"]
    deltas = seconds(WINDOWS[1], 30, ["observation.images.front", "observation.images.wrist"])
    dataset = LeRobotDataset("two", root=root, delta_timestamps=deltas)
    positions = [58, 0, 27, 1, 58, 40]
    for position, batched in zip(positions, dataset.__getitems__(positions), strict=True):
        assert_same_values(dataset[position], batched)


def test_metadata_of_a_generated_dataset(generated: dict[str, Path]) -> None:
    dataset = LeRobotDataset("two", root=generated["fps30_two_cams_multifile"])
    meta = dataset.meta
    assert meta.fps == 30 and meta.total_episodes == 6 and meta.total_frames == 59
    assert meta.video_keys == ["observation.images.front", "observation.images.wrist"]
    assert meta.camera_keys == meta.video_keys and meta.image_keys == []
    assert meta.shapes["observation.images.front"] == (64, 96, 3)
    # Front rolls over every 2 episodes and chunks hold 2 files: episode 4 is chunk 1, file 0.
    assert str(meta.get_video_file_path(4, "observation.images.front")) == (
        "videos/observation.images.front/chunk-001/file-000.mp4"
    )
    assert str(meta.get_data_file_path(4)) == "data/chunk-000/file-001.parquet"
    assert meta.get_task_index("place the cube") == 1 and meta.get_task_index("dance") is None
    assert meta.stats is not None and set(meta.stats["action"]) >= {"min", "max", "mean", "std", "count"}
