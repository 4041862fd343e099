#!/usr/bin/env python
"""Record what LeRobot 0.6.1's dataset API returns beyond items, for dexloop's tests to compare with.

Run by hand (it needs LeRobot, the tests do not):

    /tmp/lerobot-peer/bin/python tools/lerobot_reference/make_api_reference.py \
        --data tests/data/lerobot --out tests/data/lerobot/api_reference.json

It opens the reference datasets in ``--data`` with LeRobot's own classes and writes, as JSON: the
``EpisodeAwareSampler`` orders for a few settings (shuffled ones across two epochs),
``meta.episodes.select`` / ``.filter`` rows, ``meta.filter_episodes``, ``absolute_to_relative_idx``
of an episode subset, and ``hf_dataset`` rows (features, values) of datasets with 2-D..5-D features
and images. Only LeRobot's public API is called.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import tempfile
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
_CACHE = tempfile.mkdtemp(prefix="dexloop-lerobot-api-cache-")
os.environ.setdefault("HF_DATASETS_CACHE", _CACHE)
os.environ.setdefault("HF_LEROBOT_HOME", os.path.join(_CACHE, "lerobot-home"))

SAMPLER_CASES = {
    "plain": {},
    "drop": {"drop_n_first_frames": 1, "drop_n_last_frames": 2},
    "subset_shuffled": {"episode_indices_to_use": [0, 2, 4, 5], "shuffle": True, "seed": 1234},
    "shuffled_drop": {"drop_n_last_frames": 3, "shuffle": True, "seed": 7},
}


def plain(value):
    """JSON-able form of a row value (tensors and arrays as nested lists)."""
    import numpy as np
    import torch

    if isinstance(value, torch.Tensor):
        described = {"dtype": str(value.dtype).removeprefix("torch."), "shape": list(value.shape)}
        if value.numel() > 64:  # images: their bytes' digest instead of the values
            return {**described, "sha256": hashlib.sha256(value.contiguous().numpy().tobytes()).hexdigest()}
        return {**described, "tensor": value.tolist()}
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [plain(v) for v in value]
    return value


def main() -> None:
    from lerobot.datasets.lerobot_dataset import LeRobotDataset
    from lerobot.datasets.sampler import EpisodeAwareSampler

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    out: dict = {}

    multi = LeRobotDataset("dexloop/fps50_multifile", root=args.data / "fps50_multifile")
    episodes = multi.meta.episodes
    bounds = (list(episodes["dataset_from_index"]), list(episodes["dataset_to_index"]))
    samplers = {}
    for name, kwargs in SAMPLER_CASES.items():
        sampler = EpisodeAwareSampler(*bounds, **kwargs)
        samplers[name] = {"kwargs": kwargs, "len": len(sampler), "epochs": [list(sampler), list(sampler)]}
    subset = LeRobotDataset("dexloop/fps50_multifile", root=args.data / "fps50_multifile", episodes=[1, 4])
    mapped = EpisodeAwareSampler(
        *bounds,
        episode_indices_to_use=subset.episodes,
        shuffle=True,
        seed=3,
        absolute_to_relative_idx=subset.absolute_to_relative_idx,
    )
    samplers["subset_mapped"] = {"episodes": [1, 4], "seed": 3, "len": len(mapped), "epochs": [list(mapped)]}
    out["sampler"] = samplers
    out["absolute_to_relative_idx"] = {
        "episodes": [1, 4],
        "mapping": sorted(subset.absolute_to_relative_idx.items()),
    }

    columns = [
        "episode_index",
        "length",
        "tasks",
        "dataset_from_index",
        "dataset_to_index",
        "data/file_index",
    ]
    out["episodes_select"] = {
        "indices": [4, 0, 2],
        "rows": [{c: row[c] for c in columns} for row in episodes.select([4, 0, 2])],
    }
    out["episodes_filter"] = {
        "rule": "length >= 18",
        "episode_index": list(episodes.filter(lambda ep: ep["length"] >= 18)["episode_index"]),
    }
    out["filter_episodes"] = {
        "rule": "'reach' in tasks, candidates [0, 2, 3, 5]",
        "result": multi.meta.filter_episodes(lambda ep: "reach" in ep["tasks"], candidates=[0, 2, 3, 5]),
    }

    hf = {}
    for name, episodes_subset in (("nd_features", [1, 2]), ("images_fps10", None)):
        ds = LeRobotDataset(f"dexloop/{name}", root=args.data / name, episodes=episodes_subset)
        rows = [0, len(ds.hf_dataset) - 1]
        hf[name] = {
            "episodes": episodes_subset,
            "len": len(ds.hf_dataset),
            "features": {k: repr(v) for k, v in ds.hf_dataset.features.items()},
            "rows": {str(r): plain(ds.hf_dataset[r]) for r in rows},
            "task_index": ds.hf_dataset.data.column("task_index").to_pylist(),
        }
    out["hf_dataset"] = hf
    args.out.write_text(json.dumps(out, indent=1) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
