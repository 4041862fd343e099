"""LeRobot's dataset API beyond items, with LeRobot's meaning: the names LeRobot's scripts import
(``dataset_metadata``, ``EpisodeAwareSampler``, ``MultiLeRobotDataset``), the episode table's
``select`` / ``filter``, ``filter_episodes``, ``absolute_to_relative_idx``, ``hf_dataset``, the
image-transform setters, and LeRobot's keywords. Expected values come from LeRobot 0.6.1 itself
(tests/data/lerobot/api_reference.json, made by tools/lerobot_reference/make_api_reference.py).
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pytest
import torch
from support import LEROBOT_DATA, LEROBOT_V21_DATA

import dexloop.datasets.lerobot_dataset as lerobot_dataset_module
from dexloop.datasets import LeRobotDataset, LeRobotDatasetMetadata, MultiLeRobotDataset
from dexloop.datasets.dataset_metadata import LeRobotDatasetMetadata as MetadataByLeRobotPath
from dexloop.datasets.sampler import EpisodeAwareSampler, compute_sampler_state
from dexloop.errors import DatasetArgumentError, DatasetError, DatasetReadOnlyError

REFERENCE = json.loads((LEROBOT_DATA / "api_reference.json").read_text())
MULTIFILE = LEROBOT_DATA / "fps50_multifile"


def open_multifile(**kwargs) -> LeRobotDataset:
    return LeRobotDataset("dexloop/fps50_multifile", root=MULTIFILE, **kwargs)


def test_module_paths_mirror_lerobot() -> None:
    assert MetadataByLeRobotPath is LeRobotDatasetMetadata
    assert lerobot_dataset_module.CODEBASE_VERSION == "v3.0"
    assert lerobot_dataset_module.LeRobotDatasetMetadata is LeRobotDatasetMetadata


# -- the sampler --------------------------------------------------------------------------------


@pytest.mark.parametrize("case", ["plain", "drop", "subset_shuffled", "shuffled_drop"])
def test_sampler_orders_equal_lerobot(case: str) -> None:
    expected = REFERENCE["sampler"][case]
    episodes = open_multifile().meta.episodes
    sampler = EpisodeAwareSampler(
        episodes["dataset_from_index"], episodes["dataset_to_index"], **expected["kwargs"]
    )
    assert len(sampler) == expected["len"]
    assert [list(sampler), list(sampler)] == expected["epochs"]  # each iter() is the next epoch


def test_sampler_over_an_episode_subset_yields_item_positions() -> None:
    expected = REFERENCE["sampler"]["subset_mapped"]
    subset = open_multifile(episodes=expected["episodes"])
    episodes = subset.meta.episodes
    sampler = EpisodeAwareSampler(
        episodes["dataset_from_index"],
        episodes["dataset_to_index"],
        episode_indices_to_use=subset.episodes,
        shuffle=True,
        seed=expected["seed"],
        absolute_to_relative_idx=subset.absolute_to_relative_idx,
    )
    assert list(sampler) == expected["epochs"][0]
    assert sorted(sampler.indices) == list(range(len(subset)))


def test_sampler_resumes_mid_epoch() -> None:
    episodes = open_multifile().meta.episodes
    bounds = (episodes["dataset_from_index"], episodes["dataset_to_index"])
    full = EpisodeAwareSampler(*bounds, shuffle=True, seed=5)
    first, second = list(full), list(full)
    resumed = EpisodeAwareSampler(*bounds, shuffle=True, seed=5)
    resumed.load_state_dict(
        compute_sampler_state(step=3, num_frames=len(first), batch_size=4, num_processes=1)
    )
    assert list(resumed) == first[12:]
    assert list(resumed) == second


def test_sampler_refuses_what_leaves_no_frame() -> None:
    with pytest.raises(DatasetArgumentError, match="no frames remain"):
        EpisodeAwareSampler([0, 3], [3, 5], drop_n_first_frames=2, drop_n_last_frames=1)
    with pytest.raises(DatasetArgumentError, match=">= 0"):
        EpisodeAwareSampler([0], [3], drop_n_first_frames=-1)


# -- the episode table and metadata ---------------------------------------------------------------


def test_episodes_select_and_filter_equal_lerobot() -> None:
    episodes = open_multifile().meta.episodes
    selected = REFERENCE["episodes_select"]
    rows = list(episodes.select(selected["indices"]))
    assert [{key: row[key] for key in selected["rows"][0]} for row in rows] == selected["rows"]
    assert (
        episodes.filter(lambda ep: ep["length"] >= 18)["episode_index"]
        == REFERENCE["episodes_filter"]["episode_index"]
    )
    assert episodes.filter(lambda length: length >= 18, input_columns="length").num_rows == 3
    with pytest.raises(DatasetArgumentError, match="integer position"):
        episodes.select(["1"])


def test_filter_episodes_equals_lerobot() -> None:
    meta = LeRobotDatasetMetadata("dexloop/fps50_multifile", root=MULTIFILE)
    result = meta.filter_episodes(lambda ep: "reach" in ep["tasks"], candidates=[0, 2, 3, 5])
    assert result == REFERENCE["filter_episodes"]["result"]
    dataset = open_multifile(episodes=[0, 2, 3, 5], episode_filter=lambda ep: "reach" in ep["tasks"])
    assert dataset.episodes == result


def test_metadata_takes_lerobots_keywords() -> None:
    meta = LeRobotDatasetMetadata(
        "dexloop/fps50_multifile", root=MULTIFILE, metadata_buffer_size=4, repo_type="dataset", token=False
    )
    assert meta.has_language_columns is False
    assert meta.revision == "v3.0"
    assert str(meta._version) == "3.0"  # the private attribute LeRobot's streaming dataset reads
    with pytest.raises(DatasetArgumentError, match="repo_type must be"):
        LeRobotDatasetMetadata("dexloop/fps50_multifile", root=MULTIFILE, repo_type="model")
    with pytest.raises(DatasetError, match="bucket"):
        LeRobotDatasetMetadata("dexloop/fps50_multifile", root=MULTIFILE, repo_type="bucket")


def test_revision_of_a_local_v21_dataset_is_its_version() -> None:
    meta = LeRobotDatasetMetadata("dexloop/v21_0", root=LEROBOT_V21_DATA / "v21_0")
    assert meta.revision == "v2.1"


# -- LeRobotDataset's reading surface -------------------------------------------------------------


def test_absolute_to_relative_idx_equals_lerobot() -> None:
    expected = REFERENCE["absolute_to_relative_idx"]
    subset = open_multifile(episodes=expected["episodes"])
    assert sorted(subset.absolute_to_relative_idx.items()) == [tuple(pair) for pair in expected["mapping"]]
    assert open_multifile().absolute_to_relative_idx is None


def test_dataset_takes_lerobots_keywords() -> None:
    dataset = open_multifile(depth_output_unit="m", token=None, encoder_threads=2)
    assert dataset.depth_output_unit == "m"
    with pytest.raises(DatasetArgumentError, match="depth_output_unit"):
        open_multifile(depth_output_unit="cm")
    with pytest.raises(DatasetArgumentError, match="only reads"):
        open_multifile(streaming_encoding=True)


@pytest.mark.parametrize(
    ("episodes", "message"),
    [
        ([], r"episodes=\[\] selects no episode"),
        (["1"], "integer episode indices"),
        ([1.0], "integer"),
        ("12", "a list"),
    ],
)
def test_episode_lists_lerobot_would_misread_are_refused(episodes, message: str) -> None:
    with pytest.raises(DatasetArgumentError, match=message):
        open_multifile(episodes=episodes)


def test_image_transforms_can_be_set_and_cleared() -> None:
    dataset = LeRobotDataset("dexloop/two_cams_fps10", root=LEROBOT_DATA / "two_cams_fps10")
    plain = dataset[3]
    dataset.set_image_transforms(lambda frame: 1 - frame)
    flipped = dataset[3]
    for key in dataset.meta.camera_keys:
        torch.testing.assert_close(flipped[key], 1 - plain[key])
    torch.testing.assert_close(flipped["action"], plain["action"])
    dataset.clear_image_transforms()
    torch.testing.assert_close(dataset[3]["observation.images.front"], plain["observation.images.front"])
    with pytest.raises(TypeError, match="callable"):
        dataset.set_image_transforms("flip")


def test_empty_slice_of_an_image_dataset_is_empty() -> None:
    dataset = LeRobotDataset("dexloop/images_fps10", root=LEROBOT_DATA / "images_fps10")
    assert dataset[2:2] == []
    assert dataset.__getitems__([]) == []
    assert len(dataset[1:3]) == 2


# -- hf_dataset -----------------------------------------------------------------------------------


def _described(value) -> object:
    """A row value in api_reference.json's form."""
    if isinstance(value, torch.Tensor):
        described = {"dtype": str(value.dtype).removeprefix("torch."), "shape": list(value.shape)}
        if value.numel() > 64:
            return {**described, "sha256": hashlib.sha256(value.contiguous().numpy().tobytes()).hexdigest()}
        return {**described, "tensor": value.tolist()}
    return value


@pytest.mark.parametrize("name", ["nd_features", "images_fps10"])
def test_hf_dataset_equals_lerobots(name: str) -> None:
    expected = REFERENCE["hf_dataset"][name]
    dataset = LeRobotDataset(f"dexloop/{name}", root=LEROBOT_DATA / name, episodes=expected["episodes"])
    hf = dataset.hf_dataset
    assert len(hf) == expected["len"]
    assert {key: repr(feature) for key, feature in hf.features.items()} == expected["features"]
    for row, values in expected["rows"].items():
        assert {key: _described(value) for key, value in hf[int(row)].items()} == values, row
        assert {key: _described(value) for key, value in dataset.get_raw_item(int(row)).items()} == values
    assert hf.data.column("task_index").to_pylist() == expected["task_index"]
    assert dataset.select_columns("action").column_names == ["action"]


# -- MultiLeRobotDataset --------------------------------------------------------------------------


def test_multi_dataset_concatenates_with_dataset_index(tmp_path: Path) -> None:
    for name in ("fps15_types", "h264_fps30"):
        shutil.copytree(LEROBOT_DATA / name, tmp_path / "dexloop" / name)
    multi = MultiLeRobotDataset(["dexloop/fps15_types", "dexloop/h264_fps30"], root=tmp_path)
    first = LeRobotDataset("dexloop/fps15_types", root=tmp_path / "dexloop/fps15_types")
    second = LeRobotDataset("dexloop/h264_fps30", root=tmp_path / "dexloop/h264_fps30")
    assert len(multi) == len(first) + len(second)
    assert multi.repo_id_to_index == {"dexloop/fps15_types": 0, "dexloop/h264_fps30": 1}
    # features not in both datasets are left out of items
    assert multi.disabled_features == (set(first.features) ^ set(second.features))
    item = multi[len(first) + 2]
    assert int(item["dataset_index"]) == 1
    reference = second[2]
    for key in item:
        if key != "dataset_index":
            assert key not in multi.disabled_features
            value = reference[key]
            assert torch.equal(item[key], value) if isinstance(value, torch.Tensor) else item[key] == value
    assert int(multi[0]["dataset_index"]) == 0 and "observation.pose" not in multi[0]
    assert int(multi.stats["index"]["count"][0]) == len(multi)
    with pytest.raises(IndexError):
        multi[len(multi)]


def test_recording_calls_on_a_read_dataset_are_refused() -> None:
    dataset = open_multifile()
    for call in (lambda: dataset.add_frame({}), dataset.save_episode, dataset.clear_episode_buffer):
        with pytest.raises(DatasetReadOnlyError, match="read-only"):
            call()
    assert dataset.has_pending_frames() is False
    dataset.finalize()  # nothing to flush


def test_depth_stats_are_rescaled_to_the_output_unit(tmp_path: Path) -> None:
    root = tmp_path / "fps15_types"
    shutil.copytree(LEROBOT_DATA / "fps15_types", root)
    info_path = root / "meta/info.json"
    info = json.loads(info_path.read_text())
    info["features"]["observation.images.top"]["info"].update({"is_depth_map": True, "depth_unit": "m"})
    info_path.write_text(json.dumps(info))
    meta = LeRobotDatasetMetadata("dexloop/fps15_types", root=root)
    stored = {name: value.copy() for name, value in meta.stats["observation.images.top"].items()}
    meta.rescale_depth_stats("mm")
    rescaled = meta.stats["observation.images.top"]
    torch.testing.assert_close(torch.from_numpy(rescaled["max"]), torch.from_numpy(stored["max"] * 1000))
    assert (rescaled["count"] == stored["count"]).all()
    fresh = LeRobotDatasetMetadata("dexloop/fps15_types", root=root)
    fresh.rescale_depth_stats("m")  # the recorded unit: nothing to convert
    torch.testing.assert_close(
        torch.from_numpy(fresh.stats["observation.images.top"]["max"]), torch.from_numpy(stored["max"])
    )
