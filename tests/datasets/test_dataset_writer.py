"""dexloop's writer records what LeRobot 0.6.1 records.

Each reference dataset of tests/data/lerobot was recorded by LeRobot from the recipe in
reference_recordings; here dexloop's ``LeRobotDataset.create`` / ``add_frame`` / ``save_episode`` /
``resume`` / ``finalize`` record the same frames, and the files are compared with LeRobot's: info.json,
tasks.parquet, every data row and its parquet schema, every episode-metadata column (per-episode stats
included), stats.json. The items dexloop reads back equal the items LeRobot's loader returned (video
frames: the same painted frame, since the encoders differ). Debian's SVT-AV1 refuses frames under 64
pixels high, so the small reference cameras are recorded as H.264 here; the codec is the only
difference allowed in the video info blocks.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
from support import LEROBOT_DATA

from dexloop.datasets import LeRobotDataset
from dexloop.datasets.dataset_writer import video_info
from dexloop.errors import (
    DatasetArgumentError,
    DatasetExistsError,
    DatasetFrameError,
    DatasetReadOnlyError,
    DatasetUnfinishedError,
)
from dexloop.video.encoder import RGBEncoderConfig

from reference_recordings import DATASETS, build_features, paint_frame, record

SMALL_CAMERA_ENCODER = {"vcodec": "h264", "pix_fmt": "yuv420p", "g": 2, "crf": 23}


def encoder_for(spec: dict) -> RGBEncoderConfig:
    return RGBEncoderConfig(**spec.get("encoder", SMALL_CAMERA_ENCODER))


def reference_features(name: str) -> dict:
    """The recipe's features that LeRobot accepted (it refused some for some datasets)."""
    spec = DATASETS[name]
    declared = json.loads((LEROBOT_DATA / name / "meta/info.json").read_text())["features"]
    return {key: value for key, value in build_features(spec).items() if key in declared}


def record_reference(name: str, root: Path) -> None:
    record(LeRobotDataset, name, root, reference_features(name), encoder_for(DATASETS[name]))


@pytest.fixture(scope="module")
def recorded(tmp_path_factory) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("recorded")
    roots = {}
    for name in DATASETS:
        roots[name] = base / name
        record_reference(name, roots[name])
    return roots


def read_all(root: Path, pattern: str) -> pa.Table:
    return pa.concat_tables([pq.read_table(p) for p in sorted(root.glob(pattern))])


def layout_dependent(column: str) -> bool:
    """Columns saying which file holds an episode: LeRobot decides by the bytes its writers
    produced, so sub-kilobyte limits (fps50_multifile) split files at other episodes."""
    return column.endswith(("chunk_index", "file_index", "_timestamp"))


@pytest.mark.parametrize("name", sorted(DATASETS))
def test_info_json_is_lerobots(recorded, name) -> None:
    ours = json.loads((recorded[name] / "meta/info.json").read_text())
    theirs = json.loads((LEROBOT_DATA / name / "meta/info.json").read_text())
    spec = DATASETS[name]
    for _key, feature in theirs["features"].items():
        if "info" in feature:
            height, width, _ = feature["shape"]
            feature["info"] = video_info(encoder_for(spec), height, width, spec["fps"])
    assert ours == theirs


@pytest.mark.parametrize("name", sorted(DATASETS))
def test_tasks_parquet_is_lerobots(recorded, name) -> None:
    ours = pq.read_table(recorded[name] / "meta/tasks.parquet")
    theirs = pq.read_table(LEROBOT_DATA / name / "meta/tasks.parquet")
    assert ours.schema.remove_metadata() == theirs.schema.remove_metadata()
    assert json.loads(ours.schema.metadata[b"pandas"])["index_columns"] == ["task"]
    pd.testing.assert_frame_equal(
        pd.read_parquet(recorded[name] / "meta/tasks.parquet"),
        pd.read_parquet(LEROBOT_DATA / name / "meta/tasks.parquet"),
    )


@pytest.mark.parametrize("name", sorted(DATASETS))
def test_data_files_hold_lerobots_rows_and_schema(recorded, name) -> None:
    ours = sorted(recorded[name].glob("data/*/*.parquet"))
    theirs = sorted((LEROBOT_DATA / name).glob("data/*/*.parquet"))
    for path in ours:
        schema = pq.read_schema(path)
        reference = pq.read_schema(theirs[0])
        assert schema.remove_metadata().equals(reference.remove_metadata(), check_metadata=True)
        features = json.loads(schema.metadata[b"huggingface"])["info"]
        assert features == json.loads(reference.metadata[b"huggingface"])["info"]
        file = pq.ParquetFile(path)
        episodes = pq.read_table(path, columns=["episode_index"]).column(0).to_numpy()
        sizes = [file.metadata.row_group(g).num_rows for g in range(file.metadata.num_row_groups)]
        assert sizes == np.unique_counts(episodes).counts.tolist(), "one row group per episode"
        assert file.metadata.row_group(0).column(0).compression == "SNAPPY"
    mine = read_all(recorded[name], "data/*/*.parquet")
    reference = read_all(LEROBOT_DATA / name, "data/*/*.parquet")
    assert mine.column_names == reference.column_names
    for column in mine.column_names:
        ours, theirs = mine.column(column).to_pylist(), reference.column(column).to_pylist()
        if isinstance(ours[0], dict):  # image cells: the same pixels (Pillow versions differ in bytes)
            assert [cell["path"] for cell in ours] == [cell["path"] for cell in theirs]
            assert [png_pixels(a["bytes"]) for a in ours] == [png_pixels(b["bytes"]) for b in theirs]
        else:
            assert ours == theirs, column


def png_pixels(data: bytes) -> bytes:
    from io import BytesIO

    from PIL import Image

    return np.asarray(Image.open(BytesIO(data))).tobytes()


@pytest.mark.parametrize("name", sorted(DATASETS))
def test_episode_metadata_is_lerobots(recorded, name) -> None:
    ours = pq.read_table(sorted(recorded[name].glob("meta/episodes/*/*.parquet"))[0])
    theirs = pq.read_table(sorted((LEROBOT_DATA / name).glob("meta/episodes/*/*.parquet"))[0])
    assert ours.schema.remove_metadata() == theirs.schema.remove_metadata()
    mine, reference = (
        read_all(recorded[name], "meta/episodes/*/*.parquet"),
        read_all(LEROBOT_DATA / name, "meta/episodes/*/*.parquet"),
    )
    assert mine.column_names == reference.column_names
    multifile = "session_size_limits" in DATASETS[name]
    for column in mine.column_names:
        if multifile and layout_dependent(column):
            continue
        ours, theirs = mine.column(column).to_pylist(), reference.column(column).to_pylist()
        if column == "tasks":
            assert [sorted(t) for t in ours] == [sorted(t) for t in theirs]  # a set's order, as LeRobot's
        elif column.startswith("stats/"):
            np.testing.assert_allclose(
                np.array(ours), np.array(theirs), rtol=1e-9, atol=1e-12, err_msg=column
            )
        else:
            assert ours == theirs, column


@pytest.mark.parametrize("name", sorted(DATASETS))
def test_stats_json_is_lerobots(recorded, name) -> None:
    ours = json.loads((recorded[name] / "meta/stats.json").read_text())
    theirs = json.loads((LEROBOT_DATA / name / "meta/stats.json").read_text())
    assert ours.keys() == theirs.keys()
    for feature, stats in theirs.items():
        assert ours[feature].keys() == stats.keys()
        for stat, value in stats.items():
            np.testing.assert_allclose(
                ours[feature][stat], value, rtol=1e-9, atol=1e-12, err_msg=f"{feature} {stat}"
            )


def painted_frames(name: str) -> tuple[list[tuple[int, int]], dict[str, np.ndarray]]:
    """Every (episode, frame) of a reference dataset and, per camera, its painted frames (N, C, H, W)."""
    spec = DATASETS[name]
    pairs = [(e, f) for e, n in enumerate(spec["lengths"]) for f in range(n)]
    cameras = {
        key: np.stack([paint_frame(e, f, h, w).transpose(2, 0, 1) for e, f in pairs]).astype(np.int16)
        for key, (h, w) in spec["cameras"].items()
    }
    return pairs, cameras


def nearest_painted(frame: np.ndarray, painted: np.ndarray) -> int:
    return int(np.argmin(np.abs(painted - frame.astype(np.int16)).mean(axis=(1, 2, 3))))


EXPECTED_CASES = sorted(
    path.name.removesuffix(".json")
    for path in (LEROBOT_DATA / "expected").glob("*.json")
    if path.name.split("__")[0] in DATASETS  # not public_0, which LeRobot did not record from a recipe
)


@pytest.mark.parametrize("case", EXPECTED_CASES)
def test_items_read_back_equal_lerobots(recorded, case) -> None:
    name = case.split("__")[0]
    spec_file = json.loads((LEROBOT_DATA / "expected" / f"{case}.json").read_text())
    arrays = np.load(LEROBOT_DATA / "expected" / f"{case}.npz")
    call = spec_file.get("loader_call", spec_file)
    dataset = LeRobotDataset(
        f"dexloop/{name}",
        root=recorded[name],
        delta_timestamps=call["delta_timestamps"],
        episodes=call["episodes"],
        return_uint8=True,
    )
    assert len(dataset) == spec_file["len"]
    _, cameras = painted_frames(name)
    video_keys = [k for k in cameras if DATASETS[name].get("camera_storage", "video") == "video"]
    for index, described in spec_file["items"].items():
        item = dataset[int(index)]
        assert list(item) == list(described), f"item {index}: keys or their order differ"
        for key, value in described.items():
            if "value" in value:
                assert item[key] == value["value"], f"item {index} {key}"
                continue
            want = arrays[f"{index}/{key}"]
            got = item[key]
            assert isinstance(got, torch.Tensor) and str(got.dtype).removeprefix("torch.") == str(want.dtype)
            assert tuple(got.shape) == want.shape, f"item {index} {key}"
            if key in video_keys:
                for ours, theirs in zip(
                    got.reshape(-1, *want.shape[-3:]).numpy(), want.reshape(-1, *want.shape[-3:]), strict=True
                ):
                    assert nearest_painted(ours, cameras[key]) == nearest_painted(theirs, cameras[key]), (
                        f"item {index} {key}"
                    )
            else:
                np.testing.assert_array_equal(got.numpy(), want, err_msg=f"item {index} {key}")


# -- the recording API -------------------------------------------------------------------------------


FEATURES = {
    "observation.state": {"dtype": "float32", "shape": (3,), "names": ["a", "b", "c"]},
    "action": {"dtype": "float32", "shape": (3,), "names": ["a", "b", "c"]},
    "observation.images.cam": {
        "dtype": "video",
        "shape": (64, 80, 3),
        "names": ["height", "width", "channels"],
    },
}


def frame(episode: int, index: int) -> dict:
    return {
        "observation.state": np.full(3, episode * 100 + index, dtype=np.float32),
        "action": np.arange(3, dtype=np.float32) + index,
        "observation.images.cam": paint_frame(episode, index, 64, 80),
        "task": f"task {episode % 2}",
    }


def create(root: Path, **kwargs) -> LeRobotDataset:
    return LeRobotDataset.create("dexloop/test", 10, FEATURES, root=root, **kwargs)


def test_create_refuses_an_existing_folder(tmp_path) -> None:
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "keep.txt").write_text("mine")
    with pytest.raises(DatasetExistsError, match="already exists"):
        create(tmp_path / "data")
    assert (tmp_path / "data" / "keep.txt").read_text() == "mine"


def test_bad_frames_are_refused_and_damage_nothing(tmp_path) -> None:
    with create(tmp_path / "ds") as dataset:
        for i in range(4):
            dataset.add_frame(frame(0, i))
        dataset.save_episode()
        bad = [
            {**frame(1, 0), "observation.state": np.zeros(4, dtype=np.float32)},
            {**frame(1, 0), "observation.state": np.zeros(3, dtype=np.float64)},
            {k: v for k, v in frame(1, 0).items() if k != "action"},
            {k: v for k, v in frame(1, 0).items() if k != "task"},
            {**frame(1, 0), "observation.images.cam": np.zeros((64, 81, 3), dtype=np.uint8)},
            {**frame(1, 0), "observation.images.cam": np.full((64, 80, 3), 2.0, dtype=np.float32)},
            {**frame(1, 0), "index": np.zeros(1, dtype=np.int64)},
        ]
        for wrong in bad:
            with pytest.raises(DatasetFrameError):
                dataset.add_frame(wrong)
        assert not dataset.has_pending_frames()
        with pytest.raises(DatasetArgumentError, match="add one or several frames"):
            dataset.save_episode()
        with pytest.raises(DatasetUnfinishedError, match="finalize"):
            dataset[0]
        for i in range(3):
            dataset.add_frame(frame(1, i))
        dataset.save_episode()
    items = [dataset[i] for i in range(len(dataset))]
    assert [int(item["episode_index"]) for item in items] == [0] * 4 + [1] * 3
    assert [float(item["observation.state"][0]) for item in items] == [0, 1, 2, 3, 100, 101, 102]
    with pytest.raises(DatasetReadOnlyError):
        LeRobotDataset("dexloop/test", root=tmp_path / "ds").add_frame(frame(2, 0))


def test_cleared_episodes_leave_no_trace(tmp_path) -> None:
    pairs = []
    with create(tmp_path / "ds") as dataset:
        for episode, length in enumerate([5, 3, 6]):
            for i in range(length):
                dataset.add_frame(frame(episode, i))
            if episode == 1:
                dataset.clear_episode_buffer()
                continue
            dataset.save_episode()
            pairs += [(episode, i) for i in range(length)]
    reread = LeRobotDataset("dexloop/test", root=tmp_path / "ds", return_uint8=True)
    assert len(reread) == len(pairs) == 11
    painted = np.stack([paint_frame(e, i, 64, 80).transpose(2, 0, 1) for e, i in pairs]).astype(np.int16)
    for row, (episode, index) in enumerate(pairs):
        item = reread[row]
        assert (int(item["episode_index"]), int(item["frame_index"])) == ([0, 0, 1][episode], index)
        assert nearest_painted(item["observation.images.cam"].numpy(), painted) == row
    episodes = reread.meta.episodes
    assert [episodes[e]["videos/observation.images.cam/from_timestamp"] for e in range(2)] == [0.0, 0.5]


@pytest.mark.parametrize(
    "limits",
    [
        {"video_files_size_in_mb": 0.001},  # every episode its own mp4
        {"data_files_size_in_mb": 0.0005},  # every episode its own data file
    ],
)
def test_files_roll_over_by_size_and_read_back(tmp_path, limits) -> None:
    lengths = [4, 6, 3, 5]
    with create(tmp_path / "ds", **limits) as dataset:
        for episode, length in enumerate(lengths):
            for i in range(length):
                dataset.add_frame(frame(episode, i))
            dataset.save_episode()
    kind = "videos/observation.images.cam/*" if "video_files_size_in_mb" in limits else "data/*"
    assert len(list((tmp_path / "ds").glob(f"{kind}/*"))) >= 3
    pairs = [(e, i) for e, n in enumerate(lengths) for i in range(n)]
    painted = np.stack([paint_frame(e, i, 64, 80).transpose(2, 0, 1) for e, i in pairs]).astype(np.int16)
    reread = LeRobotDataset("dexloop/test", root=tmp_path / "ds", return_uint8=True)
    for row in range(len(pairs)):
        assert nearest_painted(reread[row]["observation.images.cam"].numpy(), painted) == row


def test_chunk_directories_advance_after_chunks_size_files(tmp_path) -> None:
    from dexloop.datasets.metadata import LeRobotDatasetMetadata

    with create(tmp_path / "ds", data_files_size_in_mb=0.0005, video_files_size_in_mb=0.001) as dataset:
        dataset.meta.update_chunk_settings(chunks_size=2)
        for episode in range(5):
            for i in range(3):
                dataset.add_frame(frame(episode, i))
            dataset.save_episode()
    meta = LeRobotDatasetMetadata("dexloop/test", root=tmp_path / "ds")
    assert [str(meta.get_data_file_path(e)) for e in range(5)] == [
        "data/chunk-000/file-000.parquet",
        "data/chunk-000/file-001.parquet",
        "data/chunk-001/file-000.parquet",
        "data/chunk-001/file-001.parquet",
        "data/chunk-002/file-000.parquet",
    ]
    reread = LeRobotDataset("dexloop/test", root=tmp_path / "ds")
    assert [int(reread[i]["episode_index"]) for i in range(len(reread))] == [
        e for e in range(5) for _ in range(3)
    ]


def test_image_cells_are_the_frames_as_added_though_encoded_later(tmp_path) -> None:
    """Image-feature cells are compressed in the background: each holds the frame as it was when
    add_frame returned, though the caller reuses one buffer for every frame, and a cleared
    episode's pending cells leave nothing behind."""
    features = {
        **FEATURES,
        "observation.images.wrist": {
            "dtype": "image",
            "shape": (48, 56, 3),
            "names": ["height", "width", "channels"],
        },
    }
    wrist = np.empty((48, 56, 3), np.uint8)  # the camera's one buffer
    kept = []
    with LeRobotDataset.create("dexloop/test", 10, features, root=tmp_path / "ds") as dataset:
        for episode, length in enumerate([6, 4, 5]):
            for i in range(length):
                wrist[...] = paint_frame(episode, i, 48, 56)
                dataset.add_frame({**frame(episode, i), "observation.images.wrist": wrist})
                wrist[...] = 0  # overwritten at once, as a capture loop would
            if episode == 1:
                dataset.clear_episode_buffer()
                continue
            dataset.save_episode()
            kept += [(episode, i) for i in range(length)]
    reread = LeRobotDataset("dexloop/test", root=tmp_path / "ds", return_uint8=True)
    assert len(reread) == len(kept)
    for row, (episode, index) in enumerate(kept):
        # Image features read back as float in [0, 1], as LeRobot's; PNG kept every level.
        image = reread[row]["observation.images.wrist"].numpy().transpose(1, 2, 0) * 255
        np.testing.assert_array_equal(np.round(image).astype(np.uint8), paint_frame(episode, index, 48, 56))


def test_frames_as_pil_read_only_float_and_torch(tmp_path) -> None:
    from PIL import Image

    image = paint_frame(0, 2, 64, 80)
    variants = [
        Image.fromarray(image),
        np.frombuffer(image.tobytes(), dtype=np.uint8).reshape(image.shape),  # read-only
        image.astype(np.float32) / 255.0,
        torch.from_numpy(image.copy()),
    ]
    with create(tmp_path / "ds") as dataset:
        for variant in variants:
            dataset.add_frame({**frame(0, 2), "observation.images.cam": variant})
        dataset.save_episode()
    reread = LeRobotDataset("dexloop/test", root=tmp_path / "ds", return_uint8=True)
    first = reread[0]["observation.images.cam"].numpy().astype(int)
    for row in range(1, 4):
        # float frames are truncated by LeRobot's rule (value * 255 -> uint8): within a level or two
        assert np.abs(reread[row]["observation.images.cam"].numpy().astype(int) - first).mean() < 3


FULL_DISK_CHILD = """
import resource, signal, sys
import numpy as np
sys.path.insert(0, sys.argv[2])
from test_dataset_writer import FEATURES, frame
from dexloop.datasets import LeRobotDataset
from dexloop.errors import DexloopError

signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG instead
dataset = LeRobotDataset.create("dexloop/full", 10, FEATURES, root=sys.argv[1])
soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
resource.setrlimit(resource.RLIMIT_FSIZE, (int(sys.argv[3]), hard))
saved = 0
try:
    for episode in range(1000):
        for i in range(8):
            dataset.add_frame(frame(episode, i))
        dataset.save_episode()
        saved += 1
except DexloopError as error:
    print("error", type(error).__name__, saved, str(error).replace(chr(10), " "), flush=True)
    try:
        dataset.add_frame(frame(saved, 0))
    except DexloopError as refused:
        print("refused", type(refused).__name__, flush=True)
resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
dataset.finalize()
print("finalized", flush=True)
"""


@pytest.mark.parametrize("limit", [40_000, 120_000])
def test_a_full_disk_fails_the_episode_and_keeps_the_saved_ones(tmp_path, limit) -> None:
    import subprocess
    import sys

    root = tmp_path / "full"
    result = subprocess.run(
        [sys.executable, "-c", FULL_DISK_CHILD, str(root), str(Path(__file__).parent), str(limit)],
        capture_output=True,
        text=True,
        timeout=240,
        env={**os.environ, "PYTHONPATH": f"{Path(__file__).parent}:{Path(__file__).parents[1]}"},
    )
    lines = result.stdout.splitlines()
    assert result.returncode == 0, result.stderr[-2000:]
    error = next(line for line in lines if line.startswith("error"))
    kind, saved = error.split()[1], int(error.split()[2])
    assert kind in ("DatasetWriteError", "VideoEncodeError"), error
    assert str(root) in error, "the message names the file"
    assert lines[-2].startswith("refused DatasetWriteError") and lines[-1] == "finalized"
    assert saved > 0
    dataset = LeRobotDataset("dexloop/full", root=root, return_uint8=True)
    assert dataset.num_episodes == saved
    # The first and last saved episode (their neighbours as candidates: far episodes are painted in
    # levels a lossy codec may confuse).
    for episode in (0, saved - 1):
        pairs = [(e, i) for e in range(max(0, episode - 1), min(saved, episode + 2)) for i in range(8)]
        painted = np.stack([paint_frame(e, i, 64, 80).transpose(2, 0, 1) for e, i in pairs]).astype(np.int16)
        for i in (0, 7):
            image = dataset[episode * 8 + i]["observation.images.cam"].numpy()
            assert pairs[nearest_painted(image, painted)] == (episode, i)


def test_an_encoder_falling_behind_is_reported_and_loses_no_frame(tmp_path, caplog) -> None:
    features = {"observation.images.cam": {"dtype": "video", "shape": (480, 640, 3), "names": None}}
    with LeRobotDataset.create(
        "dexloop/slow", 30, features, root=tmp_path / "ds", encoder_queue_maxsize=1
    ) as dataset:
        for i in range(12):
            dataset.add_frame({"observation.images.cam": paint_frame(0, i, 480, 640), "task": "t"})
        with caplog.at_level("WARNING", logger="dexloop.datasets.dataset_writer"):
            dataset.save_episode()
        stats = dataset.writer.encoder_stats()["observation.images.cam"]
    assert stats.full_waits > 0
    assert any("fell behind" in r.message and "No frame was dropped" in r.message for r in caplog.records)
    from dexloop.video import VideoDecoder

    path = tmp_path / "ds/videos/observation.images.cam/chunk-000/file-000.mp4"
    assert VideoDecoder(str(path)).info.frame_count == 12
