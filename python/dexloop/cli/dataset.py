"""``dexloop dataset <operation>``: tools on LeRobot datasets.

dexloop dataset repair ROOT     complete a recording that was interrupted (killed, crashed, power
                                lost): keeps every episode whose save_episode() returned
dexloop dataset info ROOT       print a dataset's summary
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from dexloop.errors import DexloopError


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="dexloop dataset", description="Tools on LeRobot datasets.")
    operations = parser.add_subparsers(dest="operation", required=True, metavar="operation")
    repair = operations.add_parser(
        "repair",
        help="complete an interrupted recording, keeping every saved episode",
        description="Completes a recording that was interrupted: the dataset then holds exactly the "
        "episodes whose save_episode() returned. A dataset with nothing to repair is left as it is.",
    )
    repair.add_argument("root", type=Path, help="the dataset's folder")
    info = operations.add_parser("info", help="print a dataset's summary (info.json and counts)")
    info.add_argument("root", type=Path, help="the dataset's folder")
    return parser


def repair(root: Path) -> int:
    from dexloop.datasets.recording_journal import repair as repair_recording

    if not (root / "meta" / "info.json").is_file():
        print(f"dexloop dataset repair: {root} holds no dataset (no meta/info.json)", file=sys.stderr)
        return 1
    info = repair_recording(root)
    if info is None:
        print(f"{root}: nothing to repair")
    else:
        print(f"{root}: repaired; {info.total_episodes} episodes, {info.total_frames} frames")
    return 0


def info(root: Path) -> int:
    from dexloop.datasets.metadata import LeRobotDatasetMetadata

    meta = LeRobotDatasetMetadata(root.name, root=root)
    summary = {
        "root": str(root),
        "codebase_version": meta.info.codebase_version,
        "fps": meta.fps,
        "robot_type": meta.robot_type,
        "total_episodes": meta.total_episodes,
        "total_frames": meta.total_frames,
        "total_tasks": meta.total_tasks,
        "tasks": list(meta.tasks.index) if meta.tasks is not None else [],
        "features": {k: {"dtype": v["dtype"], "shape": list(v["shape"])} for k, v in meta.features.items()},
    }
    print(json.dumps(summary, indent=2))
    return 0


def main(argv: Sequence[str]) -> int:
    args = _parser().parse_args(list(argv))
    try:
        if args.operation == "repair":
            return repair(args.root)
        return info(args.root)
    except DexloopError as error:
        print(f"dexloop dataset {args.operation}: {error}", file=sys.stderr)
        return 1
