"""dexloop's v2.1 → v3.0 converter gives what LeRobot 0.6.1's converter gives.

tests/data/lerobot_convert holds LeRobot's conversion of tests/data/lerobot_v21/v21_0 (made by
tools/lerobot_reference/make_convert_reference.py): its files, and the items LeRobot's loader returned
for the converted dataset. dexloop converts the same v2.1 dataset; every file must equal LeRobot's
(schemas and their metadata, rows, stats, info.json; the mp4 decodes to the same pixels, its packets
being copied), the items dexloop reads back must equal LeRobot's, and bad input must fail with a
typed error that leaves the original untouched.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch
from support import DATA, LEROBOT_DATA, LEROBOT_V21_DATA, tree_digest, writable_copy
from test_lerobot_parity import Expected, assert_item_equal

from dexloop.datasets import LeRobotDataset
from dexloop.datasets.tools import convert_dataset_v21_to_v30
from dexloop.errors import DatasetError, DatasetExistsError, DatasetVersionError
from dexloop.video import VideoDecoder

CONVERTED = DATA / "lerobot_convert"
REFERENCE = CONVERTED / "v21_0"
SOURCE = LEROBOT_V21_DATA / "v21_0"
CAMERA = "observation.images.top"
PARQUET_FILES = [
    "meta/tasks.parquet",
    "meta/episodes/chunk-000/file-000.parquet",
    "data/chunk-000/file-000.parquet",
]
# The file sizes (MB) the reference's small-files conversion used (see make_convert_reference.py).
SMALL_FILES = {"data_file_size_in_mb": 7000 / 1024**2, "video_file_size_in_mb": 12000 / 1024**2}


def file_list(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


@pytest.fixture(scope="module")
def converted(tmp_path_factory) -> Path:
    """v21_0 converted in place by dexloop."""
    root = writable_copy(SOURCE, tmp_path_factory.mktemp("convert"))
    assert convert_dataset_v21_to_v30(root) == root
    return root


def without_versions(metadata: dict[bytes, bytes]) -> dict[str, object]:
    """Schema metadata with the writing library's version removed (it names the installed pyarrow)."""
    out = {}
    for key, value in metadata.items():
        parsed = json.loads(value)
        parsed.pop("creator", None)
        out[key.decode()] = parsed
    return out


def test_the_original_is_kept_in_root_old(converted) -> None:
    old = converted.parent / "v21_0_old"
    assert tree_digest(old) == tree_digest(SOURCE)
    assert sorted(p.name for p in converted.parent.iterdir()) == ["v21_0", "v21_0_old"], "no staging left"


def test_the_same_files_as_lerobots(converted) -> None:
    assert file_list(converted) == sorted(json.loads((REFERENCE / "files.json").read_text()))


def test_info_json_is_lerobots(converted) -> None:
    assert (converted / "meta/info.json").read_text() == (REFERENCE / "meta/info.json").read_text()


def test_stats_json_is_lerobots(converted) -> None:
    ours = json.loads((converted / "meta/stats.json").read_text())
    assert ours == json.loads((REFERENCE / "meta/stats.json").read_text())
    assert ours["next.done"]["min"] == [False] and ours["index"]["max"] == [106]  # types kept, as LeRobot


@pytest.mark.parametrize("relative", PARQUET_FILES)
def test_parquet_files_are_lerobots(converted, relative) -> None:
    ours, theirs = pq.read_table(converted / relative), pq.read_table(REFERENCE / relative)
    assert ours.schema.remove_metadata().equals(theirs.schema.remove_metadata())
    assert without_versions(ours.schema.metadata) == without_versions(theirs.schema.metadata)
    assert ours.equals(theirs), relative
    ours_file, theirs_file = pq.ParquetFile(converted / relative), pq.ParquetFile(REFERENCE / relative)
    assert ours_file.metadata.num_row_groups == theirs_file.metadata.num_row_groups
    assert ours_file.metadata.row_group(0).column(0).compression == "SNAPPY"


def all_frames(path: Path, count: int, fps: int) -> np.ndarray:
    return VideoDecoder(str(path)).decode(np.arange(count, dtype=np.float64) / fps)


def test_the_mp4_holds_the_same_frames_as_lerobots(converted) -> None:
    relative = f"videos/{CAMERA}/chunk-000/file-000.mp4"
    ours, theirs = VideoDecoder(str(converted / relative)), VideoDecoder(str(REFERENCE / relative))
    assert (
        (ours.info.frame_count, ours.info.codec)
        == (theirs.info.frame_count, theirs.info.codec)
        == (107, "av1")
    )
    np.testing.assert_array_equal(
        all_frames(converted / relative, 107, 30), all_frames(REFERENCE / relative, 107, 30)
    )
    # Stream copy: each episode's frames are its v2.1 file's frames, bit for bit.
    sources = [
        all_frames(p, n, 30)
        for p, n in zip(sorted(SOURCE.glob(f"videos/*/{CAMERA}/*.mp4")), [45, 30, 12, 20], strict=True)
    ]
    np.testing.assert_array_equal(all_frames(converted / relative, 107, 30), np.concatenate(sources))


EXPECTED_CASES = sorted(path.name.removesuffix(".json") for path in (CONVERTED / "expected").glob("*.json"))


def assert_items_equal_lerobots(root: Path, case: str) -> None:
    """The items of the converted dataset at `root` equal those LeRobot returned for `case`. Video
    frames too are exact: the packets were copied, and dexloop decodes as torchcodec."""
    expected = Expected(CONVERTED, case)
    dataset = LeRobotDataset(
        "dexloop/v21_0",
        root=root,
        delta_timestamps=expected.delta_timestamps,
        episodes=expected.episodes,
        return_uint8=True,
    )
    assert len(dataset) == expected.spec["len"]
    for index in expected.items:
        assert_item_equal(dataset[int(index)], expected, index)


def test_the_references_are_there() -> None:
    assert len(EXPECTED_CASES) == 3, f"references missing in {CONVERTED / 'expected'}"


@pytest.mark.parametrize("case", EXPECTED_CASES)
def test_items_equal_lerobots(converted, case) -> None:
    assert_items_equal_lerobots(converted, case)


def test_small_file_limits_pack_episodes_as_lerobot(tmp_path) -> None:
    source = writable_copy(SOURCE, tmp_path / "source")
    before = tree_digest(source)
    out = convert_dataset_v21_to_v30(source, output_dir=tmp_path / "out" / "v21_0", **SMALL_FILES)
    assert tree_digest(source) == before and not (tmp_path / "source" / "v21_0_old").exists()
    reference = CONVERTED / "v21_0_small_files"
    assert file_list(out) == sorted(json.loads((reference / "files.json").read_text()))
    episodes = "meta/episodes/chunk-000/file-000.parquet"
    assert pq.read_table(out / episodes).equals(pq.read_table(reference / episodes))
    for case in EXPECTED_CASES:
        assert_items_equal_lerobots(out, case)


# -- bad input ---------------------------------------------------------------------------------------


@pytest.fixture
def v21(tmp_path) -> Path:
    return writable_copy(SOURCE, tmp_path)


def assert_untouched(root: Path, before: dict[str, str]) -> None:
    assert tree_digest(root) == before
    assert sorted(p.name for p in root.parent.iterdir()) == [root.name], "no staging or _old folder left"


def test_a_folder_without_a_dataset_is_refused(tmp_path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetError, match="info.json"):
        convert_dataset_v21_to_v30(tmp_path / "empty")


def test_a_v30_dataset_is_refused(tmp_path) -> None:
    root = writable_copy(LEROBOT_DATA / "public_0", tmp_path)
    before = tree_digest(root)
    with pytest.raises(DatasetVersionError, match="already v3.0"):
        convert_dataset_v21_to_v30(root)
    with pytest.raises(DatasetVersionError, match="already v3.0"):
        convert_dataset_v21_to_v30(root, force=True)  # there is no original to convert from
    assert_untouched(root, before)


def test_other_versions_are_refused(v21) -> None:
    info = json.loads((v21 / "meta/info.json").read_text())
    info["codebase_version"] = "v2.0"
    (v21 / "meta/info.json").write_text(json.dumps(info, indent=4))
    before = tree_digest(v21)
    with pytest.raises(DatasetVersionError, match="v2.0"):
        convert_dataset_v21_to_v30(v21)
    assert_untouched(v21, before)


def test_force_converts_again_from_the_kept_original(v21) -> None:
    convert_dataset_v21_to_v30(v21)
    (v21 / "meta/stats.json").write_text("{}")  # the earlier result, damaged
    with pytest.raises(DatasetVersionError, match="force"):
        convert_dataset_v21_to_v30(v21)
    convert_dataset_v21_to_v30(v21, force=True)
    assert json.loads((v21 / "meta/stats.json").read_text()) == json.loads(
        (REFERENCE / "meta/stats.json").read_text()
    )
    assert tree_digest(v21.parent / "v21_0_old") == tree_digest(SOURCE)
    assert sorted(p.name for p in v21.parent.iterdir()) == ["v21_0", "v21_0_old"]


def test_existing_destinations_are_not_overwritten(v21, tmp_path) -> None:
    (tmp_path / "v21_0_old").mkdir()
    with pytest.raises(DatasetExistsError, match="v21_0_old"):
        convert_dataset_v21_to_v30(v21)
    out = tmp_path / "elsewhere"
    (out / "keep").mkdir(parents=True)
    with pytest.raises(DatasetExistsError, match="elsewhere"):
        convert_dataset_v21_to_v30(v21, output_dir=out)
    assert (out / "keep").is_dir()
    convert_dataset_v21_to_v30(v21, output_dir=out, force=True)
    assert not (out / "keep").exists() and (out / "meta/tasks.parquet").is_file()


def damage_missing_episode(root: Path) -> str:
    (root / "data/chunk-000/episode_000002.parquet").unlink()
    return "episode_000002.parquet"


def damage_jsonl_line(root: Path) -> str:
    path = root / "meta/episodes.jsonl"
    lines = path.read_text().splitlines()
    lines[2] = lines[2][:-5]
    path.write_text("\n".join(lines) + "\n")
    return r"episodes.jsonl:3"


def damage_stats_line(root: Path) -> str:
    path = root / "meta/episodes_stats.jsonl"
    lines = path.read_text().splitlines()
    path.write_text("\n".join(lines[:3]) + "\n")
    return "episodes_stats.jsonl"


def damage_mp4(root: Path) -> str:
    path = root / f"videos/chunk-000/{CAMERA}/episode_000001.mp4"
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    return "episode_000001.mp4"


def damage_missing_mp4(root: Path) -> str:
    (root / f"videos/chunk-000/{CAMERA}/episode_000003.mp4").unlink()
    return "episode_000003.mp4"


def damage_parquet(root: Path) -> str:
    path = root / "data/chunk-000/episode_000001.parquet"
    path.write_bytes(path.read_bytes()[:-100])
    return "episode_000001.parquet"


def damage_length(root: Path) -> str:
    path = root / "meta/episodes.jsonl"
    path.write_text(path.read_text().replace('"length": 12', '"length": 13'))
    return "episode_000002.parquet"


DAMAGES = [
    damage_missing_episode,
    damage_jsonl_line,
    damage_stats_line,
    damage_mp4,
    damage_missing_mp4,
    damage_parquet,
    damage_length,
]


@pytest.mark.parametrize("damage", DAMAGES, ids=lambda d: d.__name__.removeprefix("damage_"))
def test_bad_input_fails_naming_the_file_and_changes_nothing(v21, damage) -> None:
    names = damage(v21)
    before = tree_digest(v21)
    with pytest.raises(DatasetError, match=names):
        convert_dataset_v21_to_v30(v21)
    assert_untouched(v21, before)


def test_a_failure_while_writing_leaves_the_output_absent(v21, tmp_path) -> None:
    damage_mp4(v21)  # found only when the videos are concatenated, after the data was written
    with pytest.raises(DatasetError):
        convert_dataset_v21_to_v30(v21, output_dir=tmp_path / "out" / "v21_0")
    assert list((tmp_path / "out").iterdir()) == []


@pytest.mark.skipif(
    shutil.which("ffmpeg") is None, reason="the synthetic v2.1 dataset is encoded with ffmpeg"
)
def test_any_v21_dataset_reads_the_same_after_conversion(tmp_path) -> None:
    """A synthetic v2.1 dataset with two cameras, episodes in several chunk folders, float64 and
    int32 features: dexloop reads the same items from it and from its v3.0 conversion (packed into
    several files), and the frames are the painted ones."""
    from synth import CameraSpec, assert_painted_frame, write_v21_dataset

    spec = write_v21_dataset(
        tmp_path / "synthetic",
        fps=10,
        episode_lengths=[6, 3, 5, 4],
        cameras={
            "observation.images.front": CameraSpec(32, 48, codec="libx264"),
            "observation.images.wrist": CameraSpec(24, 32, codec="libx264"),
        },
        extra_features={"observation.pose": ("float64", [3]), "observation.counter": ("int32", [1])},
        chunks_size=2,
        tasks=("a", "b", "c"),
    )
    deltas = {
        "observation.state": [-0.2, 0.0],
        "action": [0.0, 0.1, 0.2],
        "observation.images.front": [-0.1, 0.0],
    }
    original = LeRobotDataset("synthetic", root=spec.root, delta_timestamps=deltas, return_uint8=True)
    expected = [original[i] for i in range(len(original))]
    out = convert_dataset_v21_to_v30(
        spec.root, output_dir=tmp_path / "v30", data_file_size_in_mb=0.002, video_file_size_in_mb=0.004
    )
    assert len(list(out.glob("data/*/*.parquet"))) > 1 and len(list(out.glob("videos/*/*/*.mp4"))) > 2
    converted = LeRobotDataset("synthetic", root=out, delta_timestamps=deltas, return_uint8=True)
    assert len(converted) == len(expected)
    for index, want in enumerate(expected):
        item = converted[index]
        assert list(item) == list(want)
        for key, value in want.items():
            if isinstance(value, torch.Tensor):
                torch.testing.assert_close(item[key], value, rtol=0, atol=0, msg=f"item {index} {key}")
            else:
                assert item[key] == value, f"item {index} {key}"
        episode, frame = int(item["episode_index"]), int(item["frame_index"])
        assert_painted_frame(item["observation.images.wrist"], episode, frame)


def test_an_interrupted_swap_is_completed_by_the_next_call(v21) -> None:
    """A conversion killed after the new dataset took `root`'s place but before the original was
    renamed `<root>_old` leaves the original under the staging name; the next call names it."""
    convert_dataset_v21_to_v30(v21)
    old, staging = v21.parent / "v21_0_old", v21.parent / ".v21_0.v30.partial"
    old.rename(staging)
    with pytest.raises(DatasetVersionError, match="already v3.0"):
        convert_dataset_v21_to_v30(v21)
    assert sorted(p.name for p in v21.parent.iterdir()) == ["v21_0", "v21_0_old"]
    assert tree_digest(old) == tree_digest(SOURCE)


def test_bad_arguments_are_refused(v21) -> None:
    from dexloop.errors import DatasetArgumentError

    before = tree_digest(v21)
    with pytest.raises(DatasetArgumentError, match="data_file_size_in_mb"):
        convert_dataset_v21_to_v30(v21, data_file_size_in_mb=0)
    with pytest.raises(DatasetArgumentError, match="inside the dataset"):
        convert_dataset_v21_to_v30(v21, output_dir=v21 / "v30")
    assert_untouched(v21, before)
