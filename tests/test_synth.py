"""Self-checks of tests/synth.py: its writers lay files out as LeRobot does, its painted frames survive
a real encode, and its reference rules give what LeRobot 0.6.1 returned for the datasets it recorded
in tests/data/lerobot."""

from __future__ import annotations

import json
import shutil
from fractions import Fraction
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from synth import (
    CameraSpec,
    VideoFrameQuery,
    assert_painted_frame,
    block_geometry,
    check_delta_timestamps_reference,
    closest_painted_frame,
    ffmpeg_decode_rgb,
    identify_frame,
    paint_frame,
    painted_block_x,
    painted_levels,
    probe_video,
    reference_item,
    reference_length,
    write_v3_dataset,
    write_v21_dataset,
)

LEROBOT_DATA = Path(__file__).parent / "data" / "lerobot"  # recorded by LeRobot 0.6.1
LEROBOT_V21_DATA = Path(__file__).parent / "data" / "lerobot_v21"  # recorded by LeRobot 0.3.3
TOP, WRIST = "observation.images.top", "observation.images.wrist"

needs_ffmpeg = pytest.mark.skipif(
    shutil.which("ffmpeg") is None or shutil.which("ffprobe") is None,
    reason="the ffmpeg and ffprobe executables are needed to encode, decode and probe videos",
)

# One small dataset in both layouts: an AV1 camera and a smaller H.264 one (the CLI's SVT-AV1 needs
# 64x64), a one-frame episode, extra dtypes, and (v3) files and chunks that roll over independently.
CONTENT = {
    "fps": 30,
    "episode_lengths": [5, 1, 4, 3, 2],
    "cameras": {TOP: CameraSpec(64, 64), WRIST: CameraSpec(32, 48, codec="libx264")},
    "extra_features": {"observation.pose": ("float64", [3]), "observation.counter": ("int32", [1])},
    "tasks": ("pick the cube", "place the cube", "wipe the table"),
}
WINDOW = {
    "observation.state": [-0.1, -1 / 30, 0.0],
    "action": [0.0, 1 / 30, 2 / 30],
    "observation.counter": [-1 / 30, 0.0],
    TOP: [-2 / 30, 0.0],
    WRIST: [1 / 30],
}


@pytest.fixture(scope="module")
def written_v3(tmp_path_factory):
    return write_v3_dataset(
        tmp_path_factory.mktemp("v3") / "ds",
        **CONTENT,
        episodes_per_video_file={TOP: 2},
        episodes_per_data_file=3,
        chunks_size=2,
    )


@pytest.fixture(scope="module")
def written_v21(tmp_path_factory):
    return write_v21_dataset(tmp_path_factory.mktemp("v21") / "ds", **CONTENT)


# ----------------------------------------------------------------------------------------------
# Painted frames
# ----------------------------------------------------------------------------------------------
def test_paint_frame_follows_the_fixture_scheme():
    image = paint_frame(2, 3, 64, 96)
    assert image.shape == (64, 96, 3) and image.dtype == np.uint8
    assert tuple(image[40, 50, :2]) == (69, 164)  # (3*23, 2*67+30)
    assert image[40, 0, 2] == 0 and image[40, 95, 2] == 255
    # the 16x16 block at x = 3*5, rows 8..23, is inverted
    assert tuple(image[8, 15]) == (255 - 69, 255 - 164, 255 - image[40, 15, 2])
    assert tuple(image[23, 30]) == tuple(255 - image[40, 30])
    assert tuple(image[24, 15]) == tuple(image[40, 15]) and tuple(image[8, 14]) == tuple(image[40, 14])
    assert tuple(image[7, 15]) == tuple(image[40, 15]) and tuple(image[8, 31]) == tuple(image[40, 31])


def test_block_geometry_of_small_images():
    assert block_geometry(64, 96) == block_geometry(24, 32)  # 16x16 at row 8
    assert (block_geometry(24, 32).top, block_geometry(23, 32).top) == (8, 0)
    assert block_geometry(10, 20).width == 10 and block_geometry(6, 20).height == 6


@pytest.mark.parametrize(("height", "width"), [(64, 96), (32, 48), (20, 24), (8, 40)])
def test_identify_frame_reads_exact_paintings(height, width):
    for episode, frame in [(0, 0), (3, 7), (11, 40)]:
        image = paint_frame(episode, frame, height, width)
        reading = identify_frame(image)
        assert (reading.red, reading.green) == painted_levels(episode, frame)
        # An 8-row image has no row clear of the block to compare it against.
        assert reading.block_x == (None if height == 8 else painted_block_x(frame, width))
        chw_float = image.transpose(2, 0, 1).astype(np.float32) / 255.0  # LeRobot 0.3.3's output
        assert identify_frame(chw_float) == reading


def test_identify_frame_tells_every_frame_of_an_episode_apart():
    candidates = [(e, f) for e in range(4) for f in range(60)]
    for episode, frame in candidates:
        assert closest_painted_frame(paint_frame(episode, frame, 64, 96), candidates) == (episode, frame)
    # f and f+11 differ by only 3 red levels (11*23 = 253); the block position tells them apart.
    with pytest.raises(AssertionError, match="not \\(episode 1, frame 12\\)"):
        assert_painted_frame(paint_frame(1, 1, 64, 96), 1, 12)
    with pytest.raises(AssertionError):
        assert_painted_frame(paint_frame(1, 5, 64, 96), 1, 6)


# ----------------------------------------------------------------------------------------------
# Reference rules against what LeRobot returned
# ----------------------------------------------------------------------------------------------
def _assert_item_equals_lerobot(item: dict, returned: dict, described: dict) -> None:
    """`item` from reference_item; `returned` {key: array} and `described` {key: {dtype, shape} or
    {value}} as LeRobot returned them (the npz/json format of tests/data/lerobot/expected)."""
    assert set(item) == set(described)
    for key, description in described.items():
        if "value" in description:
            assert item[key] == description["value"], key
            continue
        got = returned[key]
        if isinstance(item[key], list):  # video frames, squeezed to CHW when one frame is asked for
            queries = item[key]
            assert got.shape[-3] == 3 and (got.ndim == 3) == (len(queries) == 1), (key, got.shape)
            for frame, query in zip(got.reshape(-1, *got.shape[-3:]), queries, strict=True):
                assert_painted_frame(frame, query.episode_index, query.frame_index)
        else:
            assert (got.dtype, got.shape) == (item[key].dtype, item[key].shape), key
            np.testing.assert_array_equal(got, item[key], err_msg=key)


@pytest.mark.parametrize(
    "query_path",
    sorted([*(LEROBOT_DATA / "expected").glob("*.json"), *(LEROBOT_V21_DATA / "expected").glob("*.json")]),
    ids=lambda path: path.stem,
)
def test_reference_item_matches_lerobot(query_path):
    query = json.loads(query_path.read_text())
    # LeRobot 0.3.3's dumps (v2.1) name the loader arguments under "loader_call" and hold camera
    # frames as float32 uint8/255; assert_painted_frame reads both.
    arguments = query.get("loader_call", query)
    delta_timestamps, episodes = arguments["delta_timestamps"], arguments["episodes"]
    arrays = np.load(query_path.with_suffix(".npz"))
    root = query_path.parent.parent / query["dataset"]
    assert reference_length(root, episodes=episodes) == query["len"]
    for index, described in query["items"].items():
        item = reference_item(root, int(index), delta_timestamps=delta_timestamps, episodes=episodes)
        returned = {key: arrays[f"{index}/{key}"] for key in described if f"{index}/{key}" in arrays}
        _assert_item_equals_lerobot(item, returned, described)


def test_check_delta_timestamps_reference():
    check_delta_timestamps_reference({"a": [-1 / 30, 0.0, 0.1]}, 30, 1e-4)
    check_delta_timestamps_reference({"a": [0.0334]}, 30, 1e-4)  # 2e-3 frames off = 6.7e-5 s
    with pytest.raises(ValueError, match=r"0\.034"):
        check_delta_timestamps_reference({"a": [0.0], "b": [0.034]}, 30, 1e-4)
    with pytest.raises(ValueError):
        check_delta_timestamps_reference({"a": [0.05]}, 10, 1e-4)  # half a frame at 10 fps


@needs_ffmpeg
def test_reference_item_windows_by_hand(written_v3):
    root, columns = written_v3.root, written_v3.columns
    # Episode 2 holds indices 6..9. Position 6 is its first frame: earlier offsets clamp to it.
    item = reference_item(root, 6, delta_timestamps=WINDOW)
    np.testing.assert_array_equal(item["observation.state"], columns["observation.state"][[6, 6, 6]])
    assert item["observation.state_is_pad"].tolist() == [True, True, False]
    np.testing.assert_array_equal(item["action"], columns["action"][[6, 7, 8]])
    assert item["observation.counter"].dtype == np.int64 and item["observation.counter"].shape == (2,)
    assert item["index"].shape == () and item["index"] == 6 and item["task"] == "wipe the table"
    assert [(q.episode_index, q.frame_index) for q in item[TOP]] == [(2, 0), (2, 0)]
    assert item[f"{TOP}_is_pad"].tolist() == [True, False]
    # the top camera's file-001 starts with episode 2; the wrist file holds everything from episode 0
    assert item[TOP][1] == VideoFrameQuery(written_v3.episodes[2].videos[TOP].path, 0.0, 2, 0)
    assert item[WRIST][0].timestamp == pytest.approx(7 / 30, abs=1e-6)
    # The one-frame episode 1 (index 5): every offset clamps to its only row.
    item = reference_item(root, 5, delta_timestamps=WINDOW)
    assert item["action_is_pad"].tolist() == [False, True, True]
    np.testing.assert_array_equal(item["action"], columns["action"][[5, 5, 5]])
    # With episodes=[3, 1] (the order is moot), position 1 is the first row of episode 3 (index 10);
    # without deltas each camera gets the current frame.
    item = reference_item(root, 1, episodes=[3, 1])
    assert item["index"] == 10 and [(q.episode_index, q.frame_index) for q in item[WRIST]] == [(3, 0)]
    assert reference_length(root, episodes=[3, 1]) == 4
    with pytest.raises(IndexError):
        reference_item(root, 4, episodes=[3, 1])
    # A looser tolerance admits 0.049 s, and the offset is round(0.049 * 30) = 1 frame.
    with pytest.raises(ValueError):
        reference_item(root, 0, delta_timestamps={"action": [0.049]})
    item = reference_item(root, 0, delta_timestamps={"action": [0.049]}, tolerance_s=0.02)
    np.testing.assert_array_equal(item["action"], columns["action"][[1]])


# ----------------------------------------------------------------------------------------------
# v3.0 writer
# ----------------------------------------------------------------------------------------------
def _non_stats_schema(path: Path) -> pa.Schema:
    schema = pq.read_schema(path)
    return pa.schema([f for f in schema if not f.name.startswith("stats/")])


# Arguments that give the features (and, for public_0, the episodes and file grouping) of LeRobot's
# recordings; the CLI's SVT-AV1 cannot encode fps15_types' 40x56 frames, so that camera differs in size.
MIRRORS = {
    "public_0": {
        "fps": 30,
        "episode_lengths": [45, 30, 12, 20],
        "cameras": {TOP: CameraSpec(64, 96)},
        "episodes_per_data_file": 2,
        "episodes_per_video_file": 2,
    },
    "fps15_types": {
        "fps": 15,
        "episode_lengths": [9, 14, 1],
        "cameras": {TOP: CameraSpec(64, 64)},
        "state_dim": 4,
        "extra_features": {"observation.pose": ("float64", [3]), "observation.counter": ("int32", [1])},
    },
}


@needs_ffmpeg
@pytest.mark.parametrize("recording", list(MIRRORS))
def test_v3_layout_matches_lerobot(tmp_path, recording):
    """Mirror a LeRobot recording's features and compare every file's layout."""
    lerobot = LEROBOT_DATA / recording
    spec = write_v3_dataset(tmp_path / "ds", **MIRRORS[recording])
    ours_info = json.loads((spec.root / "meta/info.json").read_text())
    their_info = json.loads((lerobot / "meta/info.json").read_text())
    assert list(ours_info) == list(their_info)
    assert {k: v for k, v in ours_info.items() if k != "features"} == {
        **{k: v for k, v in their_info.items() if k != "features"},
        "robot_type": ours_info["robot_type"],
    }
    assert list(ours_info["features"]) == list(their_info["features"])
    for key, theirs in their_info["features"].items():
        ours = ours_info["features"][key]
        assert (ours["dtype"], len(ours["shape"])) == (theirs["dtype"], len(theirs["shape"])), key
        assert ours["shape"] == theirs["shape"] or key == TOP
    size_keys = {"video.height", "video.width"}
    ours_video, their_video = ours_info["features"][TOP]["info"], their_info["features"][TOP]["info"]
    assert {k: v for k, v in ours_video.items() if k not in size_keys} == {
        k: v for k, v in their_video.items() if k not in size_keys
    }

    data, their_data = (
        pq.ParquetFile(spec.episodes[0].data_path),
        pq.ParquetFile(lerobot / "data/chunk-000/file-000.parquet"),
    )
    assert data.schema_arrow.remove_metadata() == their_data.schema_arrow.remove_metadata()
    hf_info = [json.loads(f.schema_arrow.metadata[b"huggingface"])["info"] for f in (data, their_data)]
    assert hf_info[0] == hf_info[1]
    row_groups = [
        [f.metadata.row_group(i).num_rows for i in range(f.num_row_groups)] for f in (data, their_data)
    ]
    assert row_groups[0] == row_groups[1]
    assert data.metadata.row_group(0).column(0).compression == "SNAPPY"

    episodes_path = "meta/episodes/chunk-000/file-000.parquet"
    assert _non_stats_schema(spec.root / episodes_path) == _non_stats_schema(lerobot / episodes_path)
    ours_tasks, their_tasks = (
        pq.read_schema(spec.root / "meta/tasks.parquet"),
        pq.read_schema(lerobot / "meta/tasks.parquet"),
    )
    assert ours_tasks.remove_metadata() == their_tasks.remove_metadata()
    pandas_metadata = [json.loads(s.metadata[b"pandas"]) for s in (ours_tasks, their_tasks)]
    for metadata in pandas_metadata:
        metadata.pop("creator")
    assert pandas_metadata[0] == pandas_metadata[1]

    ours_video_path = spec.episodes[0].videos[TOP].path
    their_probe = probe_video(lerobot / "videos" / TOP / "chunk-000/file-000.mp4")
    assert (probe_video(ours_video_path).time_base, their_probe.time_base) == (Fraction(1, 15360),) * 2


@needs_ffmpeg
def test_v3_metadata_records_the_files(written_v3):
    root = written_v3.root
    info = json.loads((root / "meta/info.json").read_text())
    assert (info["total_episodes"], info["total_frames"], info["total_tasks"]) == (5, 15, 3)
    assert info["splits"] == {"train": "0:5"} and info["chunks_size"] == 2
    rows = pq.read_table(root / "meta/episodes/chunk-000/file-000.parquet").to_pylist()
    for row, episode in zip(rows, written_v3.episodes, strict=True):
        assert (row["dataset_from_index"], row["dataset_to_index"], row["length"]) == (
            episode.dataset_from_index,
            episode.dataset_to_index,
            episode.length,
        )
        assert row["tasks"] == [episode.task]
        assert (
            root
            / info["data_path"].format(chunk_index=row["data/chunk_index"], file_index=row["data/file_index"])
            == episode.data_path
        )
        for key, segment in episode.videos.items():
            assert (
                root
                / info["video_path"].format(
                    video_key=key,
                    chunk_index=row[f"videos/{key}/chunk_index"],
                    file_index=row[f"videos/{key}/file_index"],
                )
                == segment.path
            )
            assert row[f"videos/{key}/from_timestamp"] == segment.from_timestamp == segment.frames_before / 30
            assert row[f"videos/{key}/to_timestamp"] == segment.from_timestamp + episode.length / 30
    # Two episodes per top-camera file, two files per chunk; every episode in one wrist file;
    # three episodes per data file.
    top_files = [(r[f"videos/{TOP}/chunk_index"], r[f"videos/{TOP}/file_index"]) for r in rows]
    assert top_files == [(0, 0), (0, 0), (0, 1), (0, 1), (1, 0)]
    assert {r[f"videos/{WRIST}/file_index"] for r in rows} == {0}
    assert [r["data/file_index"] for r in rows] == [0, 0, 0, 1, 1]
    assert [r["tasks"][0] for r in rows] == [written_v3.tasks[i] for i in (0, 1, 2, 0, 1)]
    tasks = pq.read_table(root / "meta/tasks.parquet").to_pydict()
    assert tasks == {"task_index": [0, 1, 2], "task": list(written_v3.tasks)}
    stats = json.loads((root / "meta/stats.json").read_text())
    assert stats["index"]["max"] == [14.0] and stats["observation.state"]["count"] == [15]
    assert np.asarray(stats[TOP]["mean"]).shape == (3, 1, 1)


@needs_ffmpeg
def test_v3_data_files_hold_the_columns(written_v3):
    files = sorted({episode.data_path for episode in written_v3.episodes}, key=str)
    table = pa.concat_tables(pq.read_table(path) for path in files)
    assert table.column_names == list(written_v3.columns)
    for key, values in written_v3.columns.items():
        stored = table.column(key).combine_chunks()
        if values.ndim == 2:
            assert stored.type == pa.list_(pa.from_numpy_dtype(values.dtype), values.shape[1])
            stored = stored.flatten()
        np.testing.assert_array_equal(stored.to_numpy(zero_copy_only=False).reshape(values.shape), values)
    columns = written_v3.columns
    np.testing.assert_array_equal(
        np.floor(columns["observation.state"]), np.repeat(columns["index"][:, None], 6, 1)
    )
    np.testing.assert_array_equal(columns["timestamp"], (columns["frame_index"] / 30).astype(np.float32))
    assert columns["next.done"].tolist() == [f == n - 1 for n in CONTENT["episode_lengths"] for f in range(n)]
    assert (
        columns["observation.counter"].dtype == np.int32 and columns["observation.pose"].dtype == np.float64
    )
    first = pq.ParquetFile(files[0]).metadata
    assert [first.row_group(i).num_rows for i in range(first.num_row_groups)] == [5, 1, 4]


@needs_ffmpeg
def test_v3_videos_are_continuous_and_painted(written_v3):
    for key, camera in CONTENT["cameras"].items():
        files: dict[Path, list] = {}
        for episode in written_v3.episodes:
            files.setdefault(episode.videos[key].path, []).append(episode)
        for path, episodes in files.items():
            probe = probe_video(path)
            # LeRobot's muxer time base: fps doubled until >= 10000, here 1/15360.
            assert probe.time_base == Fraction(1, 15360) and probe.start_pts == 0
            tick = 15360 // 30
            by_pts = sorted(probe.packets)
            assert [pts for pts, *_ in by_pts] == [k * tick for k in range(sum(e.length for e in episodes))]
            for episode in episodes:
                first = episode.videos[key].frames_before
                assert by_pts[first][0] * probe.time_base == Fraction(first, 30)
                keys = [by_pts[first + f][3] for f in range(episode.length)]
                assert keys[0], f"{path.name}: episode {episode.episode_index} does not start on a keyframe"
                key_frames = [f for f, is_key in enumerate(keys) if is_key] + [episode.length]
                assert max(np.diff(key_frames), default=1) <= camera.g
            frames = ffmpeg_decode_rgb(path, camera.height, camera.width)
            expected = [(e.episode_index, f) for e in episodes for f in range(e.length)]
            assert len(frames) == len(expected)
            for frame, (episode_index, frame_index) in zip(frames, expected, strict=True):
                assert_painted_frame(frame, episode_index, frame_index)


# ----------------------------------------------------------------------------------------------
# v2.1 writer
# ----------------------------------------------------------------------------------------------
@needs_ffmpeg
def test_v21_layout_matches_lerobot(tmp_path):
    """Mirror LeRobot 0.3.3's v21_0 recording (same features, episodes and tasks)."""
    lerobot = LEROBOT_V21_DATA / "v21_0"
    spec = write_v21_dataset(
        tmp_path / "ds", fps=30, episode_lengths=[45, 30, 12, 20], cameras={TOP: CameraSpec(64, 96)}
    )
    ours_info = json.loads((spec.root / "meta/info.json").read_text())
    their_info = json.loads((lerobot / "meta/info.json").read_text())
    assert list(ours_info) == list(their_info)
    for info in (ours_info, their_info):  # LeRobot's recording names its robot and joints differently
        del info["robot_type"]
        for feature in info["features"].values():
            del feature["names"]
    assert ours_info == their_info
    for name in ("episodes.jsonl", "tasks.jsonl"):
        assert (spec.root / "meta" / name).read_text() == (lerobot / "meta" / name).read_text()
    ours_stats, their_stats = (
        [json.loads(line) for line in (root / "meta/episodes_stats.jsonl").read_text().splitlines()]
        for root in (spec.root, lerobot)
    )
    assert [list(row) for row in ours_stats] == [list(row) for row in their_stats]
    for ours, theirs in zip(ours_stats, their_stats, strict=True):
        assert {k: list(v) for k, v in ours["stats"].items()} == {
            k: list(v) for k, v in theirs["stats"].items()
        }
        for key in ("frame_index", "next.done", "index"):  # min/max keep the column's type
            assert (ours["stats"][key]["min"], ours["stats"][key]["max"]) == (
                theirs["stats"][key]["min"],
                theirs["stats"][key]["max"],
            )
    assert not (spec.root / "meta/stats.json").exists() and not (lerobot / "meta/stats.json").exists()
    for episode in spec.episodes:
        name = f"data/chunk-000/episode_{episode.episode_index:06d}.parquet"
        ours_data, their_data = pq.ParquetFile(spec.root / name), pq.ParquetFile(lerobot / name)
        assert ours_data.schema_arrow == their_data.schema_arrow  # metadata included
        assert ours_data.num_row_groups == their_data.num_row_groups == 1
        video = f"videos/chunk-000/{TOP}/episode_{episode.episode_index:06d}.mp4"
        assert episode.videos[TOP].path == spec.root / video and (lerobot / video).exists()


@needs_ffmpeg
def test_v21_files(written_v21):
    root = written_v21.root
    info = json.loads((root / "meta/info.json").read_text())
    assert (info["total_videos"], info["total_chunks"]) == (10, 1)
    episodes = [json.loads(line) for line in (root / "meta/episodes.jsonl").read_text().splitlines()]
    assert episodes[1] == {"episode_index": 1, "tasks": ["place the cube"], "length": 1}
    tasks = [json.loads(line) for line in (root / "meta/tasks.jsonl").read_text().splitlines()]
    assert tasks[2] == {"task_index": 2, "task": "wipe the table"}
    stats = [json.loads(line) for line in (root / "meta/episodes_stats.jsonl").read_text().splitlines()]
    assert stats[0]["stats"]["frame_index"] == {
        "min": [0],
        "max": [4],
        "mean": [2.0],
        "std": [2**0.5],
        "count": [5],
    }
    assert stats[0]["stats"]["next.done"]["max"] == [True]
    assert not (root / "meta/stats.json").exists()
    for episode in written_v21.episodes:
        assert episode.data_path == root / f"data/chunk-000/episode_{episode.episode_index:06d}.parquet"
        table = pq.read_table(episode.data_path)
        assert table.column("index").to_pylist() == list(
            range(episode.dataset_from_index, episode.dataset_to_index)
        )
        for key in CONTENT["cameras"]:
            name = f"videos/chunk-000/{key}/episode_{episode.episode_index:06d}.mp4"
            assert episode.videos[key].path == root / name and episode.videos[key].from_timestamp == 0.0
        # Each episode's mp4 starts at time 0 (the encodes themselves are checked for v3 above).
        top = episode.videos[TOP].path
        assert [pts for pts, *_ in sorted(probe_video(top).packets)] == [
            f * 512 for f in range(episode.length)
        ]
        frames = ffmpeg_decode_rgb(top, 64, 64)
        for frame_index, frame in enumerate(frames):
            assert_painted_frame(frame, episode.episode_index, frame_index)


@needs_ffmpeg
def test_v21_and_v3_give_the_same_items(written_v3, written_v21):
    for episodes in (None, [4, 0, 1]):
        assert reference_length(written_v21.root, episodes=episodes) == reference_length(
            written_v3.root, episodes=episodes
        )
        for position in range(reference_length(written_v3.root, episodes=episodes)):
            v3, v21 = (
                reference_item(spec.root, position, delta_timestamps=WINDOW, episodes=episodes)
                for spec in (written_v3, written_v21)
            )
            assert set(v3) == set(v21)
            for key, value in v3.items():
                if isinstance(value, list):  # same painted frames, from different files and times
                    assert [(q.episode_index, q.frame_index) for q in value] == [
                        (q.episode_index, q.frame_index) for q in v21[key]
                    ]
                elif isinstance(value, np.ndarray):
                    assert value.dtype == v21[key].dtype
                    np.testing.assert_array_equal(value, v21[key], err_msg=key)
                else:
                    assert value == v21[key]
