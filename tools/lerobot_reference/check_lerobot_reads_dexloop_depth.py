#!/usr/bin/env python
"""LeRobot 0.6.1 reads dexloop's depth recordings and returns the items dexloop returns.

Run by hand in a LeRobot environment that also has dexloop (shared/tools/lerobot-peer.sh, then
``pip install --no-build-isolation --no-deps -e .`` of this repository into it):

    /tmp/lerobot-peer-main/bin/python tools/lerobot_reference/check_lerobot_reads_dexloop_depth.py

Records the depth recipe of tests/datasets/depth_recordings.py with dexloop's writer twice: with
LeRobot's layout of the reference (one episode a video file), and with all episodes in one video
per camera, 1- and 2-frame episodes among them (LeRobot's own writer cannot append those); and the
same depth maps as image features (TIFF in the parquet). Each is
opened with LeRobot's ``LeRobotDataset`` and with dexloop's, in millimetres and metres, plain and
with delta_timestamps windows: every item must be equal (keys in order, dtypes, shapes, values).
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests" / "datasets"))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_CACHE", tempfile.mkdtemp(prefix="dexloop-check-cache-"))

import depth_recordings as recipe  # noqa: E402
import torch  # noqa: E402

REPO_ID = "dexloop/depth_check"
WINDOWS = {recipe.DEPTH_MM: [-0.2, -0.1, 0.0], recipe.DEPTH_M: [0.0, 0.1], "observation.state": [-0.1, 0.0]}


def record(root: Path, lengths: tuple[int, ...], images: bool = False, **kwargs) -> None:
    from dexloop.datasets import LeRobotDataset
    from dexloop.video.encoder import RGBEncoderConfig

    dataset = LeRobotDataset.create(
        REPO_ID,
        fps=recipe.FPS,
        features=recipe.features(images=images),
        root=root,
        rgb_encoder=RGBEncoderConfig(vcodec="h264", crf=23),  # Debian's SVT-AV1 needs 64 rows
        **kwargs,
    )
    for episode, length in enumerate(lengths):
        for index in range(length):
            dataset.add_frame({**recipe.frame(episode % 3, index, images), "task": recipe.TASKS[episode % 3]})
        dataset.save_episode()
    dataset.finalize()


def same(a: object, b: object) -> bool:
    if isinstance(a, torch.Tensor):
        return isinstance(b, torch.Tensor) and a.dtype == b.dtype and a.shape == b.shape and torch.equal(a, b)
    return a == b


def compare(name: str, root: Path) -> int:
    from lerobot.datasets.lerobot_dataset import LeRobotDataset as LeRobots

    from dexloop.datasets import LeRobotDataset as Dexloops

    failures = 0
    for unit in ("mm", "m"):
        for delta in (None, WINDOWS):
            theirs = LeRobots(REPO_ID, root=root, depth_output_unit=unit, delta_timestamps=delta)
            ours = Dexloops(REPO_ID, root=root, depth_output_unit=unit, delta_timestamps=delta)
            assert len(theirs) == len(ours)
            bad = []
            for index in range(len(ours)):
                a, b = theirs[index], ours[index]
                if list(a) != list(b) or not all(same(a[k], b[k]) for k in a):
                    bad.append(index)
            for key in (recipe.DEPTH_MM, recipe.DEPTH_M):
                for stat, value in theirs.meta.stats[key].items():
                    if not (value == ours.meta.stats[key][stat]).all():
                        bad.append(f"stats {key} {stat}")
            window = "windows" if delta else "plain"
            shape = tuple(ours[len(ours) - 1][recipe.DEPTH_MM].shape)
            print(
                f"{name} [{unit}, {window}]: {len(ours)} items, depth_mm {shape}: "
                f"{'all equal' if not bad else f'DIFFER at {bad[:5]}'}"
            )
            failures += len(bad)
    return failures


def main() -> int:
    base = Path(tempfile.mkdtemp(prefix="dexloop-depth-check-"))
    one_per_file = base / "one_episode_per_file"
    record(one_per_file, recipe.LENGTHS, video_files_size_in_mb=recipe.VIDEO_FILES_SIZE_IN_MB)
    shared = base / "one_video_per_camera"
    record(shared, (6, 1, 2, 4, 1, 3))
    depth_images = base / "depth_images"
    record(depth_images, recipe.LENGTHS, images=True)
    failures = (
        compare("one episode per file", one_per_file)
        + compare("one video per camera", shared)
        + compare("depth image features", depth_images)
    )
    print("OK: LeRobot 0.6.1 returns dexloop's items" if not failures else f"FAILED: {failures} differences")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
