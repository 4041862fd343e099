"""Random corruption of a dataset's metadata and data files: loading and reading items either works or
raises an error from dexloop.errors; never another exception type, a crash or a hang.
(The C++ decoder's own fuzz driver feeds corrupted mp4 bytes; see cpp/tests/fuzz_video_decoder.cpp.)"""

from __future__ import annotations

import json
import random
import shutil
from pathlib import Path

import pytest
from support import LEROBOT_DATA

from dexloop.datasets import LeRobotDataset
from dexloop.errors import DexloopError

TARGETS = [
    "meta/info.json",
    "meta/tasks.parquet",
    "meta/episodes/chunk-000/file-001.parquet",
    "data/chunk-000/file-000.parquet",
]


def mutate_bytes(data: bytes, rng: random.Random) -> bytes:
    data = bytearray(data)
    for _ in range(rng.randint(1, 6)):
        kind = rng.randrange(4)
        at = rng.randrange(len(data)) if data else 0
        if kind == 0 and data:
            data[at] ^= 1 << rng.randrange(8)
        elif kind == 1:
            data[at : at + rng.randint(1, 32)] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 32)))
        elif kind == 2:
            del data[at : at + rng.randint(1, 64)]
        else:
            data = data[: rng.randrange(len(data) + 1)]
    return bytes(data)


def mutate_json(text: str, rng: random.Random) -> str:
    """Structural damage to info.json: values of other types, removed or renamed keys."""
    info = json.loads(text)
    strange = [None, -1, 0, 2.5, "x", [], {}, [0], True, 10**12]
    for _ in range(rng.randint(1, 3)):
        node, path = info, []
        while isinstance(node, dict) and node and rng.random() < 0.7:
            key = rng.choice(list(node))
            path.append(key)
            if not isinstance(node[key], dict):
                break
            node = node[key]
        parent = info
        for key in path[:-1]:
            parent = parent[key]
        if not path:
            continue
        if rng.random() < 0.3:
            parent.pop(path[-1], None)
        else:
            parent[path[-1]] = rng.choice(strange)
    return json.dumps(info)


@pytest.mark.parametrize("target", TARGETS)
def test_corrupted_files_give_typed_errors(tmp_path: Path, target: str) -> None:
    source = LEROBOT_DATA / "public_0"
    rng = random.Random(f"fuzz-{target}")
    outcomes = {"loaded": 0, "typed error": 0}
    for iteration in range(40):
        root = tmp_path / f"case{iteration}"
        shutil.copytree(source, root)
        path = root / target
        if target.endswith(".json") and rng.random() < 0.6:
            path.write_text(mutate_json(path.read_text(), rng))
        else:
            path.write_bytes(mutate_bytes(path.read_bytes(), rng))
        try:
            dataset = LeRobotDataset("fuzz/public_0", root=root, return_uint8=True)
            for index in (0, len(dataset) // 2, len(dataset) - 1):
                dataset[index]
            outcomes["loaded"] += 1
        except DexloopError:
            outcomes["typed error"] += 1
        shutil.rmtree(root)
    assert outcomes["typed error"] > 0, outcomes
