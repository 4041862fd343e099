"""Damaged datasets give typed exceptions from dexloop.errors that name the file and what was expected;
nothing crashes, hangs, or silently returns wrong data."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from support import LEROBOT_DATA

from dexloop.datasets import LeRobotDataset, LeRobotDatasetMetadata
from dexloop.errors import (
    DatasetError,
    DatasetIndexError,
    DatasetNotFoundError,
    DatasetVersionError,
    FrameTimestampError,
    VideoDecodeError,
)

from fake_hub import FakeHub

VIDEO = "videos/observation.images.top/chunk-000/file-001.mp4"
DATA = "data/chunk-000/file-001.parquet"
EPISODES = "meta/episodes/chunk-000/file-001.parquet"


def open_dataset(root: Path, **kwargs) -> LeRobotDataset:
    return LeRobotDataset("dexloop/damaged", root=root, return_uint8=True, **kwargs)


def edit_info(root: Path, change) -> None:
    path = root / "meta/info.json"
    info = json.loads(path.read_text())
    change(info)
    path.write_text(json.dumps(info))


def rewrite_parquet(path: Path, change) -> None:
    table = pq.read_table(path)
    pq.write_table(change(table), path)


# -- metadata ---------------------------------------------------------------------------------


def test_missing_info_json_offline_says_what_is_missing(public_0_copy: Path) -> None:
    (public_0_copy / "meta/info.json").unlink()
    with pytest.raises(DatasetNotFoundError, match="info.json") as raised:
        open_dataset(public_0_copy)
    assert "HF_HUB_OFFLINE" in str(raised.value)


def test_info_json_that_is_not_json(public_0_copy: Path) -> None:
    (public_0_copy / "meta/info.json").write_text('{"codebase_version": "v3.0", "fps": 30,')
    with pytest.raises(DatasetError, match=r"info\.json: not valid JSON"):
        open_dataset(public_0_copy)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda info: info.pop("fps"), "required key 'fps' is missing"),
        (lambda info: info.update(fps="thirty"), "'fps' must be a positive integer"),
        (lambda info: info.update(fps=0), "'fps' must be a positive integer"),
        (lambda info: info["features"].pop("index"), r"lack the default columns \['index'\]"),
        (lambda info: info["features"]["action"].update(shape="six"), "needs a 'shape'"),
        (lambda info: info.update(total_frames=-3), "'total_frames' must be a non-negative integer"),
    ],
)
def test_malformed_info_json(public_0_copy: Path, change, message: str) -> None:
    edit_info(public_0_copy, change)
    with pytest.raises(DatasetError, match=message) as raised:
        open_dataset(public_0_copy)
    assert "meta/info.json" in str(raised.value)


@pytest.mark.parametrize("version", ["v1.6", "v2.0", "v4.0"])
def test_unreadable_codebase_versions(public_0_copy: Path, version: str) -> None:
    edit_info(public_0_copy, lambda info: info.update(codebase_version=version))
    with pytest.raises(DatasetVersionError, match=version):
        open_dataset(public_0_copy)


def test_missing_tasks_parquet_offline(public_0_copy: Path) -> None:
    (public_0_copy / "meta/tasks.parquet").unlink()
    with pytest.raises(DatasetNotFoundError, match="tasks.parquet"):
        LeRobotDatasetMetadata("dexloop/damaged", root=public_0_copy)


def test_episode_metadata_out_of_order(public_0_copy: Path) -> None:
    rewrite_parquet(
        public_0_copy / EPISODES,
        lambda t: t.set_column(t.schema.get_field_index("episode_index"), "episode_index", pa.array([3, 2])),
    )
    with pytest.raises(DatasetError, match="episode_index must run"):
        open_dataset(public_0_copy)


def test_episode_metadata_that_disagrees_with_the_data(public_0_copy: Path) -> None:
    # Episode 3 claimed to start one frame later than its rows do.
    def shift(table: pa.Table) -> pa.Table:
        column = table.schema.get_field_index("dataset_from_index")
        return table.set_column(column, "dataset_from_index", pa.array([75, 88]))

    rewrite_parquet(public_0_copy / EPISODES, shift)
    with pytest.raises(
        DatasetError,
        match=r"file-001.parquet: episode 3 has dataset_from_index 88 .* ends at dataset_to_index 87",
    ):
        open_dataset(public_0_copy)


# -- data files -------------------------------------------------------------------------------


def test_missing_data_file_offline_names_it(public_0_copy: Path) -> None:
    (public_0_copy / DATA).unlink()
    with pytest.raises(DatasetNotFoundError, match="file-001.parquet"):
        open_dataset(public_0_copy)


def test_missing_data_file_of_unselected_episodes_is_not_needed(public_0_copy: Path) -> None:
    (public_0_copy / DATA).unlink()
    dataset = open_dataset(public_0_copy, episodes=[0, 1])
    assert len(dataset) == 75


def test_parquet_of_garbage_bytes(public_0_copy: Path) -> None:
    (public_0_copy / DATA).write_bytes(b"PAR1 this is not a parquet file" * 20)
    with pytest.raises(DatasetError, match="file-001.parquet: not a readable parquet file"):
        open_dataset(public_0_copy)


def test_column_not_declared_in_features(public_0_copy: Path) -> None:
    rewrite_parquet(public_0_copy / DATA, lambda t: t.append_column("reward", pa.array([0.5] * t.num_rows)))
    with pytest.raises(DatasetError, match=r"file-001.parquet: columns \['reward'\] are not declared"):
        open_dataset(public_0_copy)


def test_declared_column_missing_from_the_data(public_0_copy: Path) -> None:
    rewrite_parquet(public_0_copy / DATA, lambda t: t.drop_columns(["next.done"]))
    with pytest.raises(DatasetError, match=r"declared features \['next.done'\] have no column"):
        open_dataset(public_0_copy)


def test_vector_column_of_the_wrong_length(public_0_copy: Path) -> None:
    def five_values(table: pa.Table) -> pa.Table:
        rows = [values[:5] for values in table.column("action").to_pylist()]
        column = table.schema.get_field_index("action")
        return table.set_column(column, "action", pa.array(rows, pa.list_(pa.float32())))

    rewrite_parquet(public_0_copy / DATA, five_values)
    with pytest.raises(DatasetError, match=r"'action' row 0 has 5 values .* shape is \[6\]"):
        open_dataset(public_0_copy)


# -- video files ------------------------------------------------------------------------------


def test_missing_video_offline_names_it(public_0_copy: Path) -> None:
    (public_0_copy / VIDEO).unlink()
    with pytest.raises(DatasetNotFoundError, match="file-001.mp4"):
        open_dataset(public_0_copy)


def test_missing_video_without_download_fails_when_decoded(public_0_copy: Path) -> None:
    (public_0_copy / VIDEO).unlink()
    dataset = open_dataset(public_0_copy, download_videos=False)
    assert dataset[0]["index"] == 0  # episode 0 lives in file-000.mp4
    with pytest.raises(VideoDecodeError, match="file-001.mp4: cannot open"):
        dataset[100]


@pytest.mark.parametrize("keep", [0.0, 0.05, 0.3, 0.7, 0.95])
def test_truncated_video(public_0_copy: Path, keep: float) -> None:
    path = public_0_copy / VIDEO
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])
    dataset = open_dataset(public_0_copy)
    failures = 0
    for index in range(75, len(dataset)):  # every frame of file-001.mp4
        try:
            dataset[index]
        except (VideoDecodeError, FrameTimestampError) as error:
            assert "file-001.mp4" in str(error)
            failures += 1
    assert failures > 0


def test_text_file_in_place_of_a_video(public_0_copy: Path) -> None:
    (public_0_copy / VIDEO).write_text("not a video\n" * 100)
    dataset = open_dataset(public_0_copy)
    with pytest.raises(VideoDecodeError, match="file-001.mp4"):
        dataset[80]


def test_video_of_another_size_than_declared(public_0_copy: Path) -> None:
    edit_info(
        public_0_copy, lambda info: info["features"]["observation.images.top"].update(shape=[48, 96, 3])
    )
    dataset = open_dataset(public_0_copy)
    with pytest.raises(VideoDecodeError, match="frames are 64x96 .* expects 48x96"):
        dataset[3]


def test_timestamp_beyond_tolerance_names_both_times(public_0_copy: Path) -> None:
    # Episode 3's video claimed to start half a frame later than it does.
    def shift(table: pa.Table) -> pa.Table:
        name = "videos/observation.images.top/from_timestamp"
        column = table.schema.get_field_index(name)
        return table.set_column(column, name, pa.array([0.0, 0.4 + 0.5 / 30]))

    rewrite_parquet(public_0_copy / EPISODES, shift)
    dataset = open_dataset(public_0_copy)
    with pytest.raises(FrameTimestampError) as raised:
        dataset[87]  # first frame of episode 3
    assert isinstance(raised.value, ValueError)  # as LeRobot's FrameTimestampError
    message = str(raised.value)
    assert "file-001.mp4" in message and "0.416667" in message and "0.400000" in message
    # A tolerance admitting half a frame finds the frame.
    assert open_dataset(public_0_copy, tolerance_s=0.02)[87]["index"] == 87


# -- arguments --------------------------------------------------------------------------------


def test_index_out_of_range_is_an_index_error() -> None:
    dataset = open_dataset(LEROBOT_DATA / "public_0")
    with pytest.raises(DatasetIndexError, match="index 107 is out of range .* 107 frames"):
        dataset[107]
    with pytest.raises(IndexError):
        dataset.__getitems__([3, -200])
    assert dataset[-1]["index"] == 106


def test_iteration_stops_at_the_end() -> None:
    dataset = open_dataset(LEROBOT_DATA / "public_0", episodes=[2])
    assert [int(item["frame_index"]) for item in dataset] == list(range(12))


def test_episodes_outside_the_dataset() -> None:
    with pytest.raises(DatasetIndexError, match=r"episodes \[4, 9\] are not in this dataset of 4"):
        open_dataset(LEROBOT_DATA / "public_0", episodes=[1, 4, 9])


def test_delta_timestamps_between_frames_are_rejected_like_lerobot() -> None:
    with pytest.raises(ValueError, match=r"delta_timestamps\['action'\].*0\.05"):
        open_dataset(LEROBOT_DATA / "public_0", delta_timestamps={"action": [0.0, 0.05]})


def test_delta_timestamps_of_an_unknown_key() -> None:
    with pytest.raises(ValueError, match=r"\['observation.wrist'\] are not features"):
        open_dataset(LEROBOT_DATA / "public_0", delta_timestamps={"observation.wrist": [0.0]})


# -- the Hub ----------------------------------------------------------------------------------


def test_dataset_neither_local_nor_reachable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_LEROBOT_HOME", str(tmp_path / "home"))
    with pytest.raises(DatasetNotFoundError, match="'someone/absent'.*Pass root="):
        LeRobotDataset("someone/absent")


def test_download_fetches_metadata_then_the_selected_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The Hub flow with huggingface_hub's download stubbed by a copy from a local 'remote'."""
    hub = FakeHub(LEROBOT_DATA / "public_0", tags=["v2.1", "v3.0"]).install(monkeypatch)
    root = tmp_path / "local"
    dataset = LeRobotDataset("dexloop/public_0", root=root, episodes=[1], return_uint8=True)
    assert len(dataset) == 30 and dataset[0]["index"] == 45
    first = hub.calls[0]
    assert (first["repo_id"], first["revision"], first["allow"]) == ("dexloop/public_0", "v3.0", "meta/")
    assert sorted(hub.calls[1]["allow"]) == [
        "data/chunk-000/file-000.parquet",
        "videos/observation.images.top/chunk-000/file-000.mp4",
    ]
    assert not (root / DATA).exists()  # episode 1's files only
