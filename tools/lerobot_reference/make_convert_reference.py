#!/usr/bin/env python
"""Convert the v2.1 test dataset with LeRobot 0.6.1's own converter and store what it produced.

Run by hand (it needs LeRobot, the tests do not):

    /tmp/lerobot-peer/bin/python tools/lerobot_reference/make_convert_reference.py --out tests/data/lerobot_convert
    /tmp/lerobot-peer/bin/python tools/lerobot_reference/make_convert_reference.py \
        --out tests/data/lerobot_convert --check /path/to/dexloop-converted/v21_0

The first command copies tests/data/lerobot_v21/v21_0 (recorded by LeRobot 0.3.3) to a temporary
folder, converts it in place with ``lerobot.scripts.convert_dataset_v21_to_v30.convert_dataset``
(local root, ``push_to_hub=False``: no hub call is made), and stores under ``<out>``:

* ``v21_0/``: the converted dataset's files (info.json, stats.json, tasks.parquet, the episodes
  parquet, the data parquet, the mp4; 80 kB in all) and ``v21_0/files.json`` listing every file
  the conversion produced with its size;
* ``expected/v21_0__<query>.npz|json``: the items ``LeRobotDataset(repo_id, root=converted,
  delta_timestamps=..., episodes=..., return_uint8=True)[i]`` returned, for the queries and indices of
  tests/data/lerobot_v21/expected, in the format of tests/data/lerobot/expected.

It also converts a second copy with tiny file size limits (``SMALL_FILES``, in MB: several data
and video files, packed differently) and stores that conversion's episodes parquet and file list in
``v21_0_small_files/``, for the layout rule.

``--check ROOT`` instead loads a dataset converted by dexloop with LeRobot 0.6.1 and compares the
items LeRobot returns for it with the stored ones (exit status 1 on any difference).

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
_CACHE = tempfile.mkdtemp(prefix="dexloop-lerobot-convert-cache-")
os.environ.setdefault("HF_DATASETS_CACHE", _CACHE)
os.environ.setdefault("HF_LEROBOT_HOME", os.path.join(_CACHE, "lerobot-home"))

import numpy as np  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
SOURCE = REPO / "tests" / "data" / "lerobot_v21" / "v21_0"
SOURCE_EXPECTED = REPO / "tests" / "data" / "lerobot_v21" / "expected"
NAME = "v21_0"
EPISODES = "meta/episodes/chunk-000/file-000.parquet"
# data: episodes of 4474, 3138, 1602 and 2268 uncompressed bytes; videos: 7510, 5260, 2473, 3679 bytes.
SMALL_FILES = {"data_file_size_in_mb": 7000 / 1024**2, "video_file_size_in_mb": 12000 / 1024**2}
STORED_FILES = [
    "meta/info.json",
    "meta/stats.json",
    "meta/tasks.parquet",
    EPISODES,
    "data/chunk-000/file-000.parquet",
    "videos/observation.images.top/chunk-000/file-000.mp4",
]


def queries() -> dict[str, dict]:
    """The v2.1 reference's queries (delta_timestamps, episodes, indices), reused on the converted copy."""
    out = {}
    for path in sorted(SOURCE_EXPECTED.glob(f"{NAME}__*.json")):
        doc = json.loads(path.read_text())
        call = doc["loader_call"]
        out[doc["query"]] = {
            "delta_timestamps": call["delta_timestamps"],
            "episodes": call["episodes"],
            "indices": [int(i) for i in doc["items"]],
        }
    return out


def load(root: Path, delta_timestamps, episodes):
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    return LeRobotDataset(
        f"dexloop/{NAME}", root=root, delta_timestamps=delta_timestamps, episodes=episodes, return_uint8=True
    )


def dump_items(ds, indices: list[int]) -> tuple[dict, dict]:
    import torch

    arrays: dict[str, np.ndarray] = {}
    items: dict[str, dict] = {}
    for idx in indices:
        desc: dict = {}
        for key, val in ds[idx].items():
            if isinstance(val, torch.Tensor):
                arrays[f"{idx}/{key}"] = val.numpy()
                desc[key] = {"dtype": str(val.numpy().dtype), "shape": list(val.shape)}
            else:
                desc[key] = {"value": val}
        items[str(idx)] = desc
    return arrays, items


def convert_with_lerobot(work: Path, **sizes: float) -> Path:
    from lerobot.scripts.convert_dataset_v21_to_v30 import convert_dataset

    root = work / NAME
    shutil.copytree(SOURCE, root)
    convert_dataset(repo_id=f"dexloop/{NAME}", root=root, push_to_hub=False, **sizes)
    assert (work / f"{NAME}_old" / "meta" / "episodes.jsonl").is_file(), "the original is kept in <root>_old"
    return root


def list_files(root: Path) -> dict[str, int]:
    return {str(p.relative_to(root)): p.stat().st_size for p in sorted(root.rglob("*")) if p.is_file()}


def make(out: Path) -> None:
    import lerobot

    work = Path(tempfile.mkdtemp(prefix="dexloop-lerobot-convert-"))
    try:
        root = convert_with_lerobot(work)
        dest = out / NAME
        shutil.rmtree(dest, ignore_errors=True)
        for relative in STORED_FILES:
            (dest / relative).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(root / relative, dest / relative)
        files = list_files(root)
        (dest / "files.json").write_text(json.dumps(files, indent=1) + "\n")
        small = convert_with_lerobot(work / "small", **SMALL_FILES)
        small_dest = out / f"{NAME}_small_files"
        shutil.rmtree(small_dest, ignore_errors=True)
        (small_dest / EPISODES).parent.mkdir(parents=True)
        shutil.copyfile(small / EPISODES, small_dest / EPISODES)
        (small_dest / "files.json").write_text(json.dumps(list_files(small), indent=1) + "\n")
        (out / "expected").mkdir(parents=True, exist_ok=True)
        for old in (out / "expected").glob(f"{NAME}__*"):
            old.unlink()
        for qname, query in queries().items():
            ds = load(root, query["delta_timestamps"], query["episodes"])
            arrays, items = dump_items(ds, query["indices"])
            doc = {
                "dataset": NAME,
                "query": qname,
                "converted_by": f"lerobot {lerobot.__version__} convert_dataset_v21_to_v30",
                "delta_timestamps": query["delta_timestamps"],
                "episodes": query["episodes"],
                "return_uint8": True,
                "len": len(ds),
                "items": items,
            }
            np.savez_compressed(out / "expected" / f"{NAME}__{qname}.npz", **arrays)
            (out / "expected" / f"{NAME}__{qname}.json").write_text(json.dumps(doc, indent=1) + "\n")
            print(f"{qname}: len={len(ds)} indices={query['indices']}", flush=True)
        print(json.dumps(files, indent=1))
    finally:
        shutil.rmtree(work, ignore_errors=True)


def check(out: Path, root: Path) -> int:
    """LeRobot 0.6.1 loads `root` (converted by dexloop) and returns the stored items."""
    import torch

    failures = 0
    for jpath in sorted((out / "expected").glob(f"{NAME}__*.json")):
        doc = json.loads(jpath.read_text())
        shipped = np.load(jpath.with_suffix(".npz"))
        ds = load(root, doc["delta_timestamps"], doc["episodes"])
        problems = [] if len(ds) == doc["len"] else [f"len {len(ds)} != {doc['len']}"]
        for sidx, desc in doc["items"].items():
            item = ds[int(sidx)]
            if list(item) != list(desc):
                problems.append(f"{sidx}: keys {list(item)} != {list(desc)}")
            for key, d in desc.items():
                if "value" in d:
                    if item[key] != d["value"]:
                        problems.append(f"{sidx}/{key}: {item[key]!r} != {d['value']!r}")
                    continue
                got = item[key].numpy() if isinstance(item[key], torch.Tensor) else np.asarray(item[key])
                want = shipped[f"{sidx}/{key}"]
                if got.dtype != want.dtype or got.shape != want.shape or not np.array_equal(got, want):
                    problems.append(f"{sidx}/{key}: differs")
        print(f"{jpath.stem}: {'OK' if not problems else 'FAIL'} ({len(doc['items'])} items)")
        for problem in problems:
            print("   ", problem)
        failures += bool(problems)
    return failures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--out", type=Path, required=True, help="output folder, e.g. tests/data/lerobot_convert"
    )
    parser.add_argument("--check", type=Path, help="a dataset converted by dexloop: compare LeRobot's items")
    args = parser.parse_args()
    try:
        if args.check:
            return 1 if check(args.out, args.check) else 0
        make(args.out)
        return 0
    finally:
        shutil.rmtree(_CACHE, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
