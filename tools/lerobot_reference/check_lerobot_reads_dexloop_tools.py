#!/usr/bin/env python
"""LeRobot 0.6.1 reads the datasets dexloop's dataset tools write, and returns the items dexloop
returns.

Run by hand in a LeRobot environment that also has dexloop (shared/tools/lerobot-peer.sh, then
``pip install --no-build-isolation --no-deps -e .`` of this repository into it):

    /tmp/lerobot-peer-main/bin/python tools/lerobot_reference/check_lerobot_reads_dexloop_tools.py

Sources: the datasets LeRobot 0.6.1 wrote (tests/data/lerobot) and those dexloop's writer records
from tests/datasets/reference_recordings. On each, dexloop's delete_episodes (a middle episode, so
video files are stream-copied around it), split_dataset (even and odd episodes: every file is cut),
merge_datasets (the odd split, then the even one: files joined) and remove_feature (a camera) are run;
every output is then read with LeRobot's and dexloop's LeRobotDataset, plain, with delta_timestamps
windows and as an episode subset, by check_lerobot_reads_dexloop_recordings.compare: every item equal,
video frames byte for byte.
"""

from __future__ import annotations

import importlib.util
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location(
    "check_recordings", Path(__file__).with_name("check_lerobot_reads_dexloop_recordings.py")
)
check_recordings = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(check_recordings)

LEROBOT_WRITTEN = [
    "fps50_multifile",
    "two_cams_fps10",
    "h264_fps30",
    "images_fps10",
    "fps15_types",
    "public_0",
]


def tool_outputs(name: str, source: Path, out: Path) -> list[tuple[str, Path, int, list[str], list[int]]]:
    from dexloop.datasets import LeRobotDataset
    from dexloop.datasets.tools import delete_episodes, merge_datasets, remove_feature, split_dataset

    dataset = LeRobotDataset(f"src/{name}", root=source)
    meta = dataset.meta
    n = meta.total_episodes
    cameras = list(meta.video_keys)
    results = []

    def case(label: str, root: Path, kept_cameras: list[str]) -> None:
        episodes = LeRobotDataset(f"out/{label}", root=root).meta.total_episodes
        results.append((f"{name}/{label}", root, meta.fps, kept_cameras, sorted({0, episodes - 1})))

    delete_episodes(dataset, [n // 2], output_dir=out / "delete", repo_id=f"out/{name}_delete")
    case("delete", out / "delete", cameras)
    even, odd = list(range(0, n, 2)), list(range(1, n, 2))
    parts = split_dataset(dataset, {"even": even, "odd": odd}, output_dir=out / "split")
    case("split-even", out / "split" / "even", cameras)
    case("split-odd", out / "split" / "odd", cameras)
    merge_datasets([parts["odd"], parts["even"]], f"out/{name}_merged", output_dir=out / "merged")
    case("merge", out / "merged", cameras)
    if cameras:
        remove_feature(dataset, cameras[-1], output_dir=out / "remove", repo_id=f"out/{name}_remove")
        case("remove-feature", out / "remove", cameras[:-1])
    return results


def main() -> int:
    base = Path(tempfile.mkdtemp(prefix="dexloop-tools-"))
    sources = [(name, REPO / "tests" / "data" / "lerobot" / name) for name in LEROBOT_WRITTEN]
    sources += [
        (f"dexloop-{name}", root)
        for name, root, *_ in check_recordings.record_reference_recipes(base / "recorded")
    ]
    cases = []
    for name, root in sources:
        cases += tool_outputs(name, root, base / "tools" / name)
    total = 0
    for name, root, fps, cameras, subset in cases:
        total += check_recordings.compare(name, root, fps, cameras, subset)
    print(
        f"LeRobot 0.6.1 and dexloop return the same {total} items from {len(cases)} datasets dexloop's "
        f"delete-episodes, split, merge and remove-feature wrote from {len(sources)} sources"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
