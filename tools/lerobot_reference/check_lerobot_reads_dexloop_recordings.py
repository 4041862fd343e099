#!/usr/bin/env python
"""LeRobot 0.6.1 reads what dexloop's writer records, and returns the items dexloop returns.

Run by hand in a LeRobot environment that also has dexloop (shared/tools/lerobot-peer.sh, then
``pip install --no-build-isolation --no-deps -e .`` of this repository into it):

    /tmp/lerobot-peer-main/bin/python tools/lerobot_reference/check_lerobot_reads_dexloop_recordings.py

Records every dataset of tests/datasets/reference_recordings with dexloop's ``LeRobotDataset.create``
/ ``resume`` (one and several files per camera, two cameras of different sizes, image features, a
resumed dataset), plus a recording at 640x480 and 320x240 with LeRobot's default AV1 encoder, then a
recording killed with SIGKILL and repaired, and one killed while its codecs drained the last saved
episode (repaired from the packets and raw frames saved for it). Each is opened with LeRobot's ``LeRobotDataset`` (plain,
with delta_timestamps windows, and an episode subset) and with dexloop's; every item must be equal:
same keys in the same order, dtypes, shapes and values (video frames byte for byte: both decode the
same mp4 and dexloop's RGB conversion is torchcodec's).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests" / "datasets"))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_CACHE", tempfile.mkdtemp(prefix="dexloop-check-cache-"))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from reference_recordings import DATASETS, build_features, paint_frame, record  # noqa: E402


def compare(name: str, root: Path, fps: int, cameras: list[str], episodes: list[int] | None) -> int:
    from lerobot.datasets.lerobot_dataset import LeRobotDataset as LeRobots

    from dexloop.datasets import LeRobotDataset as Dexloops

    windows = {
        "observation.state": [k / fps for k in (-3, -1, 0)],
        "action": [k / fps for k in range(8)],
        **{camera: [k / fps for k in (-2, 0)] for camera in cameras},
    }
    checked = 0
    for query, deltas, subset in (
        ("plain", None, None),
        ("window", windows, None),
        ("subset", windows, episodes),
    ):
        theirs = LeRobots(
            f"dexloop/{name}", root=root, delta_timestamps=deltas, episodes=subset, return_uint8=True
        )
        ours = Dexloops(
            f"dexloop/{name}", root=root, delta_timestamps=deltas, episodes=subset, return_uint8=True
        )
        assert len(theirs) == len(ours), (name, query, len(theirs), len(ours))
        for index in range(len(ours)):
            a, b = theirs[index], ours[index]
            assert list(a) == list(b), (name, query, index, list(a), list(b))
            for key in a:
                if isinstance(a[key], torch.Tensor):
                    assert a[key].dtype == b[key].dtype and a[key].shape == b[key].shape, (
                        name,
                        query,
                        index,
                        key,
                    )
                    assert torch.equal(a[key], b[key]), (name, query, index, key)
                else:
                    assert a[key] == b[key], (name, query, index, key)
            checked += 1
        print(f"  {name} {query}: {len(ours)} items equal")
    return checked


def record_reference_recipes(base: Path) -> list[tuple[str, Path, int, list[str], list[int]]]:
    from dexloop.datasets import LeRobotDataset
    from dexloop.video.encoder import RGBEncoderConfig

    cases = []
    for name, spec in DATASETS.items():
        root = base / name
        # Debian's SVT-AV1 takes no frame under 64 pixels high: the small cameras are H.264 here.
        encoder = RGBEncoderConfig(**spec.get("encoder", {"vcodec": "h264", "g": 2, "crf": 23}))
        record(LeRobotDataset, name, root, build_features(spec), encoder)
        cameras = list(spec["cameras"]) if spec.get("camera_storage", "video") == "video" else []
        cases.append((name, root, spec["fps"], cameras, spec["subset"]))
    return cases


def record_default_av1(base: Path) -> tuple[str, Path, int, list[str], list[int]]:
    from dexloop.datasets import LeRobotDataset

    features = {
        "observation.state": {"dtype": "float32", "shape": (6,), "names": [f"j{i}" for i in range(6)]},
        "action": {"dtype": "float32", "shape": (6,), "names": [f"j{i}" for i in range(6)]},
        "observation.images.top": {
            "dtype": "video",
            "shape": (480, 640, 3),
            "names": ["height", "width", "channels"],
        },
        "observation.images.wrist": {
            "dtype": "video",
            "shape": (240, 320, 3),
            "names": ["height", "width", "channels"],
        },
    }
    root = base / "av1_two_sizes"
    with LeRobotDataset.create(
        "dexloop/av1_two_sizes", 30, features, root=root, video_files_size_in_mb=1
    ) as dataset:
        for episode, length in enumerate([40, 25, 60, 30]):
            for f in range(length):
                dataset.add_frame(
                    {
                        "observation.state": np.full(6, episode + f / 100, dtype=np.float32),
                        "action": np.full(6, -episode - f / 100, dtype=np.float32),
                        "observation.images.top": paint_frame(episode, f, 480, 640),
                        "observation.images.wrist": paint_frame(episode, f, 240, 320),
                        "task": f"task {episode % 2}",
                    }
                )
            dataset.save_episode()
    return "av1_two_sizes", root, 30, list(features)[2:], [1, 3]


KILLED_CHILD = textwrap.dedent(
    """
    import sys
    import numpy as np
    from dexloop.datasets import LeRobotDataset
    features = {
        "observation.state": {"dtype": "float32", "shape": (2,), "names": None},
        "action": {"dtype": "float32", "shape": (2,), "names": None},
        "observation.images.cam": {"dtype": "video", "shape": (96, 128, 3), "names": ["height", "width", "channels"]},
    }
    sys.path.insert(0, sys.argv[2])
    from reference_recordings import paint_frame
    dataset = LeRobotDataset.create("dexloop/killed", 10, features, root=sys.argv[1])
    for episode in range(1000):
        for f in range(7 + episode % 5):
            dataset.add_frame({"observation.state": np.array([episode, f], np.float32),
                               "action": np.zeros(2, np.float32),
                               "observation.images.cam": paint_frame(episode, f, 96, 128), "task": "t"})
        dataset.save_episode()
        print("saved", episode, flush=True)
    """
)


def record_killed(base: Path) -> tuple[str, Path, int, list[str], list[int]]:
    root = base / "killed"
    child = subprocess.Popen(
        [sys.executable, "-c", KILLED_CHILD, str(root), str(REPO / "tests" / "datasets")],
        stdout=subprocess.PIPE,
        text=True,
    )
    while child.stdout.readline().strip() != "saved 3":
        pass
    time.sleep(0.13)
    child.send_signal(signal.SIGKILL)
    child.wait()
    subprocess.run([sys.executable, "-m", "dexloop.cli.main", "dataset", "repair", str(root)], check=True)
    return "killed", root, 10, ["observation.images.cam"], [0, 2]


DRAINING_CHILD = textwrap.dedent(
    """
    import os, signal, sys, time
    import numpy as np
    from dexloop.datasets import LeRobotDataset
    features = {
        "observation.state": {"dtype": "float32", "shape": (2,), "names": None},
        "action": {"dtype": "float32", "shape": (2,), "names": None},
        "observation.images.top": {"dtype": "video", "shape": (240, 320, 3), "names": ["height", "width", "channels"]},
        "observation.images.wrist": {"dtype": "video", "shape": (96, 128, 3), "names": ["height", "width", "channels"]},
    }
    sys.path.insert(0, sys.argv[2])
    from reference_recordings import paint_frame
    dataset = LeRobotDataset.create("dexloop/draining", 10, features, root=sys.argv[1])
    for episode, length in enumerate([12, 25, 18]):
        for f in range(length):
            dataset.add_frame({"observation.state": np.array([episode, f], np.float32),
                               "action": np.array([f, episode], np.float32),
                               "observation.images.top": paint_frame(episode, f, 240, 320),
                               "observation.images.wrist": paint_frame(episode, f, 96, 128), "task": "t"})
            time.sleep(0.01)
        dataset.save_episode()
    os.kill(os.getpid(), signal.SIGKILL)  # while the codecs drain the last episode
    """
)


def record_killed_while_draining(base: Path) -> tuple[str, Path, int, list[str], list[int]]:
    """A recording killed right after save_episode returned: its last episode's frames are in the
    journal's progress files (packets and raw frames), which the repair encodes."""
    root = base / "draining"
    subprocess.run([sys.executable, "-c", DRAINING_CHILD, str(root), str(REPO / "tests" / "datasets")])
    progress = sorted(p.name for p in (root / ".recording" / "videos").iterdir())
    assert any(name.endswith("episode-000002.frames") for name in progress), progress
    subprocess.run([sys.executable, "-m", "dexloop.cli.main", "dataset", "repair", str(root)], check=True)
    return "draining", root, 10, ["observation.images.top", "observation.images.wrist"], [1, 2]


def main() -> int:
    base = Path(tempfile.mkdtemp(prefix="dexloop-recordings-"))
    cases = [
        *record_reference_recipes(base),
        record_default_av1(base),
        record_killed(base),
        record_killed_while_draining(base),
    ]
    total = 0
    for name, root, fps, cameras, subset in cases:
        total += compare(name, root, fps, cameras, subset)
    print(
        f"LeRobot 0.6.1 and dexloop return the same {total} items from {len(cases)} datasets dexloop recorded"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
