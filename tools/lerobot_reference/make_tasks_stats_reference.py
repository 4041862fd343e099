#!/usr/bin/env python
"""What LeRobot 0.6.1's ``modify_tasks`` and ``recompute_stats`` make of the reference datasets.

Run by hand (it needs LeRobot, the tests do not):

    /tmp/lerobot-peer/bin/python tools/lerobot_reference/make_tasks_stats_reference.py --out tests/data/lerobot_tasks_stats

For each case below, a copy of a dataset of tests/data/lerobot is edited in place with
``lerobot.datasets.dataset_tools`` and the outcome stored as ``<out>/<case>.json``:

* modify_tasks cases: the call's arguments, then the tasks (tasks.parquet order), total_tasks, each
  episode's ``tasks`` and the data's task_index column, as LeRobot left them;
* recompute_stats cases: the call's arguments and the resulting meta/stats.json.

Only LeRobot's public API is called here; nothing of LeRobot is copied into dexloop.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
_CACHE = tempfile.mkdtemp(prefix="dexloop-lerobot-tools-cache-")
os.environ.setdefault("HF_DATASETS_CACHE", _CACHE)
os.environ.setdefault("HF_LEROBOT_HOME", os.path.join(_CACHE, "lerobot-home"))

REPO = Path(__file__).resolve().parents[2]
DATASETS = REPO / "tests" / "data" / "lerobot"

CASES = {
    "public_0__modify_tasks_new_and_episodes": (
        "public_0",
        "modify_tasks",
        {"new_task": "stack the cubes", "episode_tasks": {"1": "alpha", "3": "zeta"}},
    ),
    "two_cams_fps10__modify_tasks_replacements": (
        "two_cams_fps10",
        "modify_tasks",
        {"task_replacements": None, "episode_tasks": {"0": "first"}},
    ),
    "public_0__recompute_stats_relative": (
        "public_0",
        "recompute_stats",
        {"relative_action": True, "relative_exclude_joints": ["joint5"], "chunk_size": 5},
    ),
    "fps15_types__recompute_stats_relative_default": (
        "fps15_types",
        "recompute_stats",
        {"relative_action": True, "chunk_size": 3, "num_workers": 0},
    ),
}


def run_case(work: Path, name: str, dataset: str, operation: str, kwargs: dict) -> dict:
    import pyarrow.parquet as pq
    from lerobot.datasets import dataset_tools
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    root = work / name
    shutil.copytree(DATASETS / dataset, root)
    ds = LeRobotDataset(f"dexloop/{dataset}", root=root)
    call = dict(kwargs)
    if operation == "modify_tasks":
        if "task_replacements" in call and call["task_replacements"] is None:
            # Replace the dataset's first task by a new string.
            call["task_replacements"] = {str(ds.meta.tasks.index[0]): "renamed task"}
        if "episode_tasks" in call:
            call["episode_tasks"] = {int(k): v for k, v in call["episode_tasks"].items()}
        dataset_tools.modify_tasks(ds, **call)
        tasks = pq.read_table(root / "meta/tasks.parquet").to_pandas()
        episodes = (
            pq.read_table(sorted((root / "meta/episodes").glob("*/*.parquet"))).column("tasks").to_pylist()
        )
        data = pq.read_table(sorted((root / "data").glob("*/*.parquet")), columns=["task_index"])
        info = json.loads((root / "meta/info.json").read_text())
        outcome = {
            "tasks": [str(t) for t in tasks.index],
            "task_index": [int(i) for i in tasks["task_index"]],
            "total_tasks": info["total_tasks"],
            "episode_tasks": episodes,
            "data_task_index": data.column("task_index").to_pylist(),
        }
        call = {
            k: ({str(e): t for e, t in v.items()} if k == "episode_tasks" else v) for k, v in call.items()
        }
    else:
        dataset_tools.recompute_stats(ds, **call)
        outcome = {"stats": json.loads((root / "meta/stats.json").read_text())}
    return {"dataset": dataset, "operation": operation, "arguments": call, **outcome}


def main() -> int:
    import lerobot

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--out", type=Path, required=True, help="output folder, e.g. tests/data/lerobot_tasks_stats"
    )
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="dexloop-lerobot-tools-"))
    try:
        args.out.mkdir(parents=True, exist_ok=True)
        for name, (dataset, operation, kwargs) in CASES.items():
            doc = run_case(work, name, dataset, operation, kwargs)
            doc["lerobot_version"] = lerobot.__version__
            (args.out / f"{name}.json").write_text(json.dumps(doc, indent=1) + "\n")
            print(f"{name}: done", flush=True)
        return 0
    finally:
        shutil.rmtree(work, ignore_errors=True)
        shutil.rmtree(_CACHE, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
