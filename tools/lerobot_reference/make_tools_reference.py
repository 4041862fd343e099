"""Runs LeRobot 0.6.1's dataset tools (delete_episodes, split_dataset, merge_datasets, remove_feature)
on the reference datasets in tests/data/lerobot and stores the metadata they write (info.json, the
episode rows, stats.json, the tasks) in tests/data/lerobot_tools/, for
tests/datasets/test_dataset_tools_episodes.py to compare dexloop's tools with, file by file.

Run by hand in the LeRobot environment (the tests never need LeRobot):

    /tmp/lerobot-peer/bin/python tools/lerobot_reference/make_tools_reference.py --out tests/data/lerobot_tools

It re-executes itself with PYTHONHASHSEED=0: LeRobot orders a deletion's or split's tasks by
iterating a set of strings.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SOURCES = REPO / "tests" / "data" / "lerobot"

# (case name, tool, arguments): the same cases the tests run with dexloop's tools.
CASES = [
    ("delete_fps50_1_4", "delete", {"source": "fps50_multifile", "episode_indices": [1, 4]}),
    ("delete_two_cams_0_2", "delete", {"source": "two_cams_fps10", "episode_indices": [0, 2]}),
    ("delete_fps15_types_1", "delete", {"source": "fps15_types", "episode_indices": [1]}),
    ("split_fps50", "split", {"source": "fps50_multifile", "splits": {"train": [0, 2, 3], "val": [1, 4, 5]}}),
    ("split_two_cams_fractions", "split", {"source": "two_cams_fps10", "splits": {"train": 0.5, "val": 0.5}}),
    ("merge_fps50_splits", "merge", {"splits_of": "split_fps50", "names": ["val", "train"]}),
    ("merge_two_cams_splits", "merge", {"splits_of": "split_two_cams_fractions", "names": ["train", "val"]}),
    ("merge_fps15_types_twice", "merge", {"sources": ["fps15_types", "fps15_types"]}),
    (
        "remove_two_cams_wrist",
        "remove",
        {"source": "two_cams_fps10", "feature_names": ["observation.images.wrist"]},
    ),
    ("remove_fps15_types_state", "remove", {"source": "fps15_types", "feature_names": ["observation.state"]}),
]


def dump_meta(root: Path, out: Path) -> None:
    import pyarrow.parquet as pq

    out.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(root / "meta" / "info.json", out / "info.json")
    if (root / "meta" / "stats.json").exists():
        shutil.copyfile(root / "meta" / "stats.json", out / "stats.json")
    rows = []
    for path in sorted((root / "meta" / "episodes").glob("*/*.parquet")):
        table = pq.read_table(path)
        for row in table.to_pylist():
            row["_file"] = str(path.relative_to(root))
            rows.append(row)
    (out / "episodes.json").write_text("[\n" + ",\n".join(json.dumps(row) for row in rows) + "\n]\n")
    tasks = pq.read_table(root / "meta" / "tasks.parquet").to_pandas()
    (out / "tasks.json").write_text(
        json.dumps({str(k): int(v) for k, v in tasks["task_index"].items()}, indent=1) + "\n"
    )
    files = sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file() and "meta" not in p.parts)
    (out / "files.json").write_text(json.dumps(files, indent=1) + "\n")


def main() -> None:
    if os.environ.get("PYTHONHASHSEED") != "0":
        os.environ["PYTHONHASHSEED"] = "0"
        os.execv(sys.executable, [sys.executable, *sys.argv])
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", type=Path, default=REPO / "tests" / "data" / "lerobot_tools")
    args = parser.parse_args()

    from lerobot.datasets.dataset_tools import delete_episodes, merge_datasets, remove_feature, split_dataset
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    work = Path(tempfile.mkdtemp(prefix="lerobot-tools-"))
    outputs: dict[str, Path] = {}

    def source(name: str) -> LeRobotDataset:
        return LeRobotDataset(f"ref/{name}", root=SOURCES / name)

    for case, tool, kwargs in CASES:
        target = work / case
        if tool == "delete":
            delete_episodes(
                source(kwargs["source"]), kwargs["episode_indices"], output_dir=target, repo_id=f"ref/{case}"
            )
            outputs[case] = target
        elif tool == "split":
            split_dataset(source(kwargs["source"]), kwargs["splits"], output_dir=target)
            for name in kwargs["splits"]:
                outputs[f"{case}/{name}"] = target / name
        elif tool == "merge":
            if "splits_of" in kwargs:
                parts = [
                    LeRobotDataset(f"ref/{n}", root=work / kwargs["splits_of"] / n) for n in kwargs["names"]
                ]
            else:
                parts = [source(name) for name in kwargs["sources"]]
            merge_datasets(parts, output_repo_id=f"ref/{case}", output_dir=target)
            outputs[case] = target
        else:
            remove_feature(
                source(kwargs["source"]), kwargs["feature_names"], output_dir=target, repo_id=f"ref/{case}"
            )
            outputs[case] = target

    if args.out.exists():
        shutil.rmtree(args.out)
    for case, root in outputs.items():
        dump_meta(root, args.out / case)
    (args.out / "cases.json").write_text(json.dumps(CASES, indent=1) + "\n")
    shutil.rmtree(work)
    print(f"LeRobot 0.6.1's tools: {len(outputs)} datasets' metadata written to {args.out}")


if __name__ == "__main__":
    main()
