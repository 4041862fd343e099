#!/usr/bin/env python
"""Record the depth reference dataset with real LeRobot 0.6.1 and dump what its depth code returns.

Run by hand (it needs LeRobot, the tests do not):

    /tmp/lerobot-peer/bin/python tools/lerobot_reference/make_depth_reference.py --out tests/data/lerobot_depth

It writes, under ``<out>``:

* ``depth_fps10/``: the dataset LeRobot's ``LeRobotDataset.create`` / ``add_frame`` /
  ``save_episode`` / ``finalize`` write for the recipe of tests/datasets/depth_recordings.py (two
  depth cameras, uint16 millimetres and float32 metres, and an RGB camera);
* ``expected/<query>.npz``: ``LeRobotDataset(repo_id, root=..., delta_timestamps=...,
  depth_output_unit=...)[i]`` for each query of the recipe (every tensor as numpy, the task string
  and the key order), and ``expected/stats_<unit>.npz``: ``dataset.meta.stats`` of the depth
  cameras after LeRobot rescaled them to that unit;
* ``depth_images_fps10/`` and ``expected_images/``: the same for the depth maps recorded as image
  features (a quarter of the size, TIFF cells in the parquet);
* ``quantiser.npz``: ``quantize_depth`` of uint16 millimetre values over their whole range and of
  float32 metre values from -1 m to 15 m (depth_recordings.quantiser_*), ``dequantize_depth`` of every 12-bit code (the torch path
  LeRobot's dataset takes, metres and millimetres), and the 12-bit codes LeRobot decodes from its own depth videos
  next to ``quantize_depth`` of the recorded frames.

Only LeRobot's public API is called; nothing of LeRobot is copied into dexloop.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

if os.environ.get("PYTHONHASHSEED") != "0":
    os.environ["PYTHONHASHSEED"] = "0"
    os.execv(sys.executable, [sys.executable, *sys.argv])

os.environ.setdefault("HF_HUB_OFFLINE", "1")
_CACHE = tempfile.mkdtemp(prefix="dexloop-lerobot-depth-cache-")
os.environ.setdefault("HF_DATASETS_CACHE", _CACHE)
os.environ.setdefault("HF_LEROBOT_HOME", os.path.join(_CACHE, "lerobot-home"))

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tests" / "datasets"))

import depth_recordings as recipe  # noqa: E402

REPO_ID = "dexloop/depth_fps10"
IMAGES_REPO_ID = "dexloop/depth_images_fps10"


def item_arrays(item: dict) -> dict[str, np.ndarray]:
    """The item's values by key, with the key order; the RGB frame is left out (its decoding is
    tested elsewhere; the depth maps are what this reference is for)."""
    arrays = {"__keys__": np.array(list(item))}
    for key, value in item.items():
        if key == recipe.RGB:
            continue
        if isinstance(value, str):
            arrays[key] = np.array(value)
        else:
            arrays[key] = value.numpy()
    return arrays


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()

    import torch
    from lerobot.configs.video import DepthEncoderConfig
    from lerobot.datasets.depth_utils import dequantize_depth, quantize_depth
    from lerobot.datasets.lerobot_dataset import LeRobotDataset
    from lerobot.datasets.video_utils import decode_video_frames

    out: Path = args.out
    work = Path(tempfile.mkdtemp(prefix="dexloop-depth-ref-"))
    root = work / "depth_fps10"
    dataset = LeRobotDataset.create(
        REPO_ID,
        fps=recipe.FPS,
        features=recipe.features(),
        root=root,
        video_files_size_in_mb=recipe.VIDEO_FILES_SIZE_IN_MB,
    )
    recipe.record(dataset)

    target = out / "depth_fps10"
    shutil.rmtree(target, ignore_errors=True)
    shutil.copytree(root, target, ignore=shutil.ignore_patterns("images"))
    expected = out / "expected"
    shutil.rmtree(expected, ignore_errors=True)
    expected.mkdir(parents=True)

    for name, index, delta, unit in recipe.QUERIES:
        reader = LeRobotDataset(REPO_ID, root=target, delta_timestamps=delta, depth_output_unit=unit)
        np.savez_compressed(expected / f"{name}.npz", **item_arrays(reader[index]))
        print(f"{name}: item {index} ({unit}) of {len(reader)}")
    for unit in ("mm", "m"):
        reader = LeRobotDataset(REPO_ID, root=target, depth_output_unit=unit)
        stats = {
            f"{key}/{stat}": np.asarray(value)
            for key in (recipe.DEPTH_MM, recipe.DEPTH_M)
            for stat, value in reader.meta.stats[key].items()
        }
        np.savez_compressed(expected / f"stats_{unit}.npz", **stats)

    # The same depth maps as image features (TIFF in the parquet).
    images_root = work / "depth_images_fps10"
    dataset = LeRobotDataset.create(
        IMAGES_REPO_ID, fps=recipe.FPS, features=recipe.features(images=True), root=images_root
    )
    recipe.record(dataset, images=True)
    images_target = out / "depth_images_fps10"
    shutil.rmtree(images_target, ignore_errors=True)
    shutil.copytree(images_root, images_target, ignore=shutil.ignore_patterns("images"))
    images_expected = out / "expected_images"
    shutil.rmtree(images_expected, ignore_errors=True)
    images_expected.mkdir(parents=True)
    for name, index, delta, unit in recipe.QUERIES:
        reader = LeRobotDataset(
            IMAGES_REPO_ID, root=images_target, delta_timestamps=delta, depth_output_unit=unit
        )
        np.savez_compressed(images_expected / f"{name}.npz", **item_arrays(reader[index]))
    for unit in ("mm", "m"):
        reader = LeRobotDataset(IMAGES_REPO_ID, root=images_target, depth_output_unit=unit)
        stats = {
            f"{key}/{stat}": np.asarray(value)
            for key in (recipe.DEPTH_MM, recipe.DEPTH_M)
            for stat, value in reader.meta.stats[key].items()
        }
        np.savez_compressed(images_expected / f"stats_{unit}.npz", **stats)

    # The quantiser on its own, over its whole input range.
    config = DepthEncoderConfig()
    q = {"depth_min": config.depth_min, "depth_max": config.depth_max, "shift": config.shift, "use_log": True}
    all_mm = recipe.quantiser_millimetres()
    metres = recipe.quantiser_metres()
    codes = np.arange(4096, dtype=np.uint16).reshape(1, 64, 64)
    reference = {
        "quantize_mm": quantize_depth(all_mm, **q, video_backend=None),
        "quantize_m": quantize_depth(metres, **q, video_backend=None),
        "quantize_m_linear": quantize_depth(metres, **{**q, "use_log": False}, video_backend=None),
        "dequantize_torch_mm": dequantize_depth(torch.from_numpy(codes), **q, output_unit="mm").numpy(),
        "dequantize_torch_m": dequantize_depth(torch.from_numpy(codes), **q, output_unit="m").numpy(),
    }
    # The codes LeRobot reads back from its own depth videos, next to those of the recorded frames.
    for key, make in ((recipe.DEPTH_MM, recipe.depth_millimetres), (recipe.DEPTH_M, recipe.depth_metres)):
        total = sum(recipe.LENGTHS)
        decoded = torch.cat(
            [
                decode_video_frames(
                    target / f"videos/{key}/chunk-000/file-{episode:03d}.mp4",
                    [i / recipe.FPS for i in range(length)],
                    1e-4,
                    "pyav",
                    is_depth=True,
                )
                for episode, length in enumerate(recipe.LENGTHS)
            ]
        )
        recorded = np.stack(
            [quantize_depth(make(*recipe.frame_of_row(r)), **q, video_backend=None) for r in range(total)]
        )
        reference[f"decoded_codes/{key}"] = decoded.numpy()[:, 0]
        reference[f"quantized_codes/{key}"] = recorded
        same = bool((decoded.numpy()[:, 0] == recorded).all())
        print(f"{key}: LeRobot decodes the codes it quantised: {same}")
    np.savez_compressed(out / "quantiser.npz", **reference)

    info = json.loads((target / "meta/info.json").read_text())
    print(json.dumps(info["features"][recipe.DEPTH_M]["info"], indent=1))
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
