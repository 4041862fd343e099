"""``dexloop dataset <operation>``: tools on LeRobot datasets.

dexloop dataset repair ROOT     complete a recording that was interrupted (killed, crashed, power
                                lost): keeps every episode whose save_episode() returned
dexloop dataset info ROOT       print a dataset's summary
dexloop dataset visualize ROOT --output-dir OUT [--episodes 0 3]
                                an offline HTML page per episode (videos, plots, a scrubber),
                                PNG plots and an index page
dexloop dataset convert ROOT [--new-root OUT]
                                convert a v2.1 dataset (LeRobot <= 0.3) to v3.0; in place, the
                                original is kept in ROOT_old
dexloop dataset modify-tasks ROOT --new-task T | --episode-tasks 0=T 3=U | --task-replacements OLD=NEW
                                set the episodes' tasks, in place
dexloop dataset recompute-stats ROOT [--no-skip-image-video] [--relative-action]
                                recompute the stats from the frames, in place
dexloop dataset delete-episodes ROOT --episode-indices 0 2 [--new-root OUT] [--new-repo-id ID]
                                a new dataset without some episodes
dexloop dataset split ROOT --splits train=0.8 val=0.2 | train=0,1,2 val=3 [--new-root OUT]
                                new datasets OUT/<split>, by fractions or episode indices
dexloop dataset merge --roots A B [...] --new-root OUT [--new-repo-id ID]
                                one dataset holding the episodes of A, B, ... in order
dexloop dataset remove-feature ROOT --feature-names F [G ...] [--new-root OUT] [--new-repo-id ID]
                                a new dataset without some features
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from dexloop.errors import DatasetArgumentError, DexloopError


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
    visualize = operations.add_parser(
        "visualize",
        help="write an offline HTML page and a PNG plot per episode, and an index page",
        description="Writes, per episode, a page that plays the camera videos in step with plots of "
        "every state and action dimension (one scrubber moves both) and a PNG plot, plus index.html. "
        "The output folder holds everything the pages need (videos are linked or copied in) and opens "
        "from disk with no network.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    visualize.add_argument("root", type=Path, help="the dataset's folder")
    # SUPPRESS: no "(default: None)" in --help for a required flag or one whose absence means all.
    visualize.add_argument(
        "--output-dir",
        type=Path,
        required=True,
        default=argparse.SUPPRESS,
        help="folder for the pages (created if needed; not inside the dataset)",
    )
    visualize.add_argument(
        "--episodes",
        type=int,
        nargs="+",
        default=argparse.SUPPRESS,
        help="episode indices to show (all when not given)",
    )
    visualize.add_argument(
        "--png", action=argparse.BooleanOptionalAction, default=True, help="write a PNG plot per episode"
    )
    _add_convert_and_in_place_operations(operations)
    _add_episode_operations(operations)
    return parser


def _add_episode_operations(operations: argparse._SubParsersAction) -> None:
    """delete-episodes, split, merge and remove-feature: each writes new datasets, sources untouched."""

    def new_root_flags(command: argparse.ArgumentParser, repo_id: bool = True) -> None:
        command.add_argument(
            "--new-root",
            type=Path,
            default=argparse.SUPPRESS,
            help="folder of the new dataset, which must not exist (default: $HF_LEROBOT_HOME/<new repo id>)",
        )
        if repo_id:
            command.add_argument(
                "--new-repo-id",
                default=argparse.SUPPRESS,
                help="repo id of the new dataset (default: <repo id>_modified, the repo id being ROOT's name)",
            )

    delete = operations.add_parser(
        "delete-episodes",
        help="a new dataset without some episodes (LeRobot's delete_episodes)",
        description="Writes a new dataset holding every episode but the given ones, renumbered in order. "
        "Video files are byte-copied, or stream-copied where they lose episodes.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    delete.add_argument("root", type=Path, help="the dataset's folder")
    delete.add_argument(
        "--episode-indices",
        type=int,
        nargs="+",
        required=True,
        default=argparse.SUPPRESS,
        help="episodes to delete",
    )
    new_root_flags(delete)
    split = operations.add_parser(
        "split",
        help="split a dataset into new ones (LeRobot's split_dataset)",
        description="Writes one new dataset per split, at NEW_ROOT/<split>: by fractions of the episodes "
        "(train=0.8 val=0.2, consecutive episodes) or by episode indices (train=0,1,2 val=3,4).",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    split.add_argument("root", type=Path, help="the dataset's folder")
    split.add_argument(
        "--splits",
        nargs="+",
        required=True,
        default=argparse.SUPPRESS,
        metavar="NAME=FRACTION|INDICES",
        help="the splits, e.g. train=0.8 val=0.2 or train=0,1,2 val=3",
    )
    split.add_argument(
        "--new-root",
        type=Path,
        default=argparse.SUPPRESS,
        help="folder holding the splits (default: $HF_LEROBOT_HOME/<repo id>_<split> each)",
    )
    merge = operations.add_parser(
        "merge",
        help="merge datasets into a new one (LeRobot's merge_datasets)",
        description="Writes one dataset holding the episodes of every --roots dataset, in order. They must "
        "agree on fps, robot_type and features.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    merge.add_argument(
        "--roots",
        type=Path,
        nargs="+",
        required=True,
        default=argparse.SUPPRESS,
        help="the datasets' folders",
    )
    merge.add_argument(
        "--new-root", type=Path, required=True, default=argparse.SUPPRESS, help="folder of the merged dataset"
    )
    merge.add_argument(
        "--new-repo-id",
        default=argparse.SUPPRESS,
        help="repo id of the merged dataset (default: NEW_ROOT's name)",
    )
    remove = operations.add_parser(
        "remove-feature",
        help="a new dataset without some features (LeRobot's remove_feature)",
        description="Writes a new dataset without the given features (their columns, or their videos). "
        "LeRobot's default columns (timestamp, frame_index, episode_index, index, task_index) stay.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    remove.add_argument("root", type=Path, help="the dataset's folder")
    remove.add_argument(
        "--feature-names", nargs="+", required=True, default=argparse.SUPPRESS, help="features to remove"
    )
    new_root_flags(remove)


def _add_convert_and_in_place_operations(operations: argparse._SubParsersAction) -> None:
    from dexloop.datasets.info import DEFAULT_DATA_FILE_SIZE_IN_MB, DEFAULT_VIDEO_FILE_SIZE_IN_MB

    convert = operations.add_parser(
        "convert",
        help="convert a v2.1 dataset to v3.0 (LeRobot's convert_dataset_v21_to_v30)",
        description="Converts a LeRobot v2.1 dataset to v3.0 as LeRobot 0.6.1's converter does. Without "
        "--new-root the conversion is in place and the original is kept in ROOT_old; nothing is replaced "
        "before the new dataset is complete.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    convert.add_argument("root", type=Path, help="the v2.1 dataset's folder")
    convert.add_argument(
        "--new-root",
        type=Path,
        default=argparse.SUPPRESS,
        help="write the v3.0 dataset here (default: in place)",
    )
    convert.add_argument(
        "--data-file-size-in-mb",
        type=int,
        default=DEFAULT_DATA_FILE_SIZE_IN_MB,
        help="size limit of data files",
    )
    convert.add_argument(
        "--video-file-size-in-mb",
        type=int,
        default=DEFAULT_VIDEO_FILE_SIZE_IN_MB,
        help="size limit of mp4 files",
    )
    convert.add_argument(
        "--force-conversion",
        action="store_true",
        help="convert again from ROOT_old a ROOT already converted, or replace an existing --new-root",
    )
    tasks = operations.add_parser(
        "modify-tasks",
        help="set the tasks of the episodes, in place (LeRobot's modify_tasks)",
        description="Sets each episode's task: --episode-tasks first, then --task-replacements of its "
        "current task, then --new-task, else it keeps its task. The dataset is replaced as a whole once "
        "the edited copy is complete.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    tasks.add_argument("root", type=Path, help="the dataset's folder")
    tasks.add_argument(
        "--new-task", default=argparse.SUPPRESS, help="task of every episode not given otherwise"
    )
    tasks.add_argument(
        "--episode-tasks",
        nargs="+",
        default=argparse.SUPPRESS,
        metavar="EPISODE=TASK",
        help="tasks of given episodes, e.g. 0='pick the cube' 3='place it'",
    )
    tasks.add_argument(
        "--task-replacements",
        nargs="+",
        default=argparse.SUPPRESS,
        metavar="OLD=NEW",
        help="replace existing task strings",
    )
    stats = operations.add_parser(
        "recompute-stats",
        help="recompute the stats from the frames, in place (LeRobot's recompute_stats)",
        description="Recomputes the per-episode stats and meta/stats.json from the data (and, without "
        "skipping, the image and video frames LeRobot samples).",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    stats.add_argument("root", type=Path, help="the dataset's folder")
    stats.add_argument(
        "--skip-image-video",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="keep the image and video stats as they are",
    )
    stats.add_argument(
        "--relative-action",
        action="store_true",
        help="action stats of chunks relative to the state, as relative-action policies see them",
    )
    stats.add_argument(
        "--relative-exclude-joints",
        nargs="*",
        default=["gripper"],
        help="action dimensions (by name) kept absolute with --relative-action",
    )
    stats.add_argument("--chunk-size", type=int, default=50, help="action chunk length for --relative-action")
    stats.add_argument("--num-workers", type=int, default=0, help="threads for --relative-action")


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


def visualize(args: argparse.Namespace) -> int:
    from dexloop.datasets.tools.visualize import INDEX_PAGE, visualize_dataset

    episodes = getattr(args, "episodes", None)
    pages = visualize_dataset(args.root, episodes, output_dir=args.output_dir, png=args.png)
    print(f"{len(pages)} episode pages; open {args.output_dir / INDEX_PAGE}")
    return 0


def convert(args: argparse.Namespace) -> int:
    from dexloop.datasets.tools import convert_dataset_v21_to_v30

    out = convert_dataset_v21_to_v30(
        args.root,
        output_dir=getattr(args, "new_root", None),
        data_file_size_in_mb=args.data_file_size_in_mb,
        video_file_size_in_mb=args.video_file_size_in_mb,
        force=args.force_conversion,
    )
    kept = f"; the original is in {args.root.parent / (args.root.name + '_old')}" if out == args.root else ""
    print(f"{out}: converted to v3.0{kept}")
    return 0


def _pairs(values: Sequence[str], flag: str, key_type: type) -> dict:
    pairs = {}
    for value in values:
        key, sep, text = value.partition("=")
        if not sep:
            raise DatasetArgumentError(f"{flag}: expected KEY=VALUE, got {value!r}")
        try:
            pairs[key_type(key)] = text
        except ValueError:
            raise DatasetArgumentError(f"{flag}: {key!r} is not an episode index") from None
    return pairs


def modify_tasks(args: argparse.Namespace) -> int:
    from dexloop.datasets.tools import modify_tasks as modify

    dataset = modify(
        args.root,
        new_task=getattr(args, "new_task", None),
        episode_tasks=_pairs(getattr(args, "episode_tasks", []), "--episode-tasks", int) or None,
        task_replacements=_pairs(getattr(args, "task_replacements", []), "--task-replacements", str) or None,
    )
    print(f"{args.root}: tasks {list(dataset.meta.tasks.index)}")
    return 0


def recompute_stats(args: argparse.Namespace) -> int:
    from dexloop.datasets.tools import recompute_stats as recompute

    dataset = recompute(
        args.root,
        skip_image_video=args.skip_image_video,
        relative_action=args.relative_action,
        relative_exclude_joints=args.relative_exclude_joints,
        chunk_size=args.chunk_size,
        num_workers=args.num_workers,
    )
    print(f"{args.root}: stats of {len(dataset.meta.stats or {})} features recomputed or kept")
    return 0


def _split_values(values: Sequence[str]) -> dict[str, float | list[int]]:
    splits: dict[str, float | list[int]] = {}
    for name, text in _pairs(values, "--splits", str).items():
        try:
            splits[name] = (
                [int(i) for i in text.split(",")] if "," in text or "." not in text else float(text)
            )
        except ValueError:
            raise DatasetArgumentError(
                f"--splits: {name}={text!r} is neither a fraction (0.8) nor episode indices (0,1,2)"
            ) from None
    return splits


def episode_operation(args: argparse.Namespace) -> int:
    from dexloop.datasets import tools

    new_root = getattr(args, "new_root", None)
    new_repo_id = getattr(args, "new_repo_id", None)
    if args.operation == "delete-episodes":
        dataset = tools.delete_episodes(
            args.root, args.episode_indices, output_dir=new_root, repo_id=new_repo_id
        )
    elif args.operation == "remove-feature":
        dataset = tools.remove_feature(
            args.root, args.feature_names, output_dir=new_root, repo_id=new_repo_id
        )
    elif args.operation == "merge":
        repo_id = new_repo_id if new_repo_id is not None else args.new_root.name
        dataset = tools.merge_datasets(list(args.roots), repo_id, output_dir=args.new_root)
    else:
        splits = tools.split_dataset(args.root, _split_values(args.splits), output_dir=new_root)
        for name, part in splits.items():
            print(
                f"{part.root}: split {name!r}, {part.meta.total_episodes} episodes, {part.meta.total_frames} frames"
            )
        return 0
    print(f"{dataset.root}: {dataset.meta.total_episodes} episodes, {dataset.meta.total_frames} frames")
    return 0


def main(argv: Sequence[str]) -> int:
    args = _parser().parse_args(list(argv))
    try:
        if args.operation == "convert":
            return convert(args)
        if args.operation == "modify-tasks":
            return modify_tasks(args)
        if args.operation == "recompute-stats":
            return recompute_stats(args)
        if args.operation == "visualize":
            return visualize(args)
        if args.operation in ("delete-episodes", "split", "merge", "remove-feature"):
            return episode_operation(args)
        if args.operation == "repair":
            return repair(args.root)
        return info(args.root)
    except DexloopError as error:
        print(f"dexloop dataset {args.operation}: {error}", file=sys.stderr)
        return 1
