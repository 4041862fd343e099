#!/usr/bin/env python
"""What LeRobot 0.6.1's StreamingLeRobotDataset returns for datasets whose cameras have several mp4
files, next to its own map-style LeRobotDataset (the reference the tests hold dexloop's streaming
reader to: tests/datasets/test_streaming_dataset.py).

Run by hand in a LeRobot environment (shared/tools/lerobot-peer.sh):

    /tmp/lerobot-peer/bin/python tools/lerobot_reference/check_lerobot_streaming.py

For each LeRobot-written dataset of tests/data/lerobot (streamed from a local copy, as LeRobot
streams a local root), every streamed item's camera frames are compared with the map-style item of
the same ``index``; the counts of equal, wrong and failed items are printed per dataset.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_CACHE", tempfile.mkdtemp(prefix="dexloop-streaming-cache-"))

import torch
from lerobot.datasets.lerobot_dataset import LeRobotDataset
from lerobot.datasets.streaming_dataset import StreamingLeRobotDataset

DATA = Path(__file__).resolve().parents[2] / "tests" / "data" / "lerobot"
DATASETS = ["public_0", "fps50_multifile", "two_cams_fps10", "h264_fps30"]


def check(name: str, work: Path) -> str:
    root = work / name
    shutil.copytree(DATA / name, root)
    mapped = LeRobotDataset(f"local/{name}", root=root, return_uint8=True)
    cameras = mapped.meta.video_keys
    files = {str(mapped.meta.get_video_file_path(e, c)) for e in range(mapped.num_episodes) for c in cameras}
    equal = wrong = 0
    try:
        stream = StreamingLeRobotDataset(f"local/{name}", root=root, return_uint8=True, shuffle=False)
        for item in stream:
            reference = mapped[int(item["index"])]
            if all(torch.equal(item[c], reference[c]) for c in cameras):
                equal += 1
            else:
                wrong += 1
        failure = ""
    except Exception as error:  # LeRobot's reader fails on some of these: report how
        failure = f"; then failed: {type(error).__name__}: {str(error).splitlines()[0][:120]}"
    return (
        f"{name}: {len(files)} mp4 file(s) for {len(cameras)} camera(s), {len(mapped)} frames: "
        f"{equal} streamed items equal the map-style ones, {wrong} wrong{failure}"
    )


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="lerobot-streaming-") as work:
        for name in DATASETS:
            print(check(name, Path(work)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
