"""push_to_hub against the local Hub (tests/hub_server.py): huggingface_hub's real upload calls, the
card and the v3.0 tag LeRobot pushes, and the pushed dataset read back (downloaded and streamed)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from support import LEROBOT_DATA, assert_same_values, writable_copy

from dexloop.datasets import LeRobotDataset, StreamingLeRobotDataset
from dexloop.errors import DatasetUnfinishedError, DatasetUploadError

from hub_server import LocalHub


@pytest.fixture
def hub(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    with LocalHub() as server:
        server.point_hub_here(monkeypatch)
        monkeypatch.setenv("HF_LEROBOT_HOME", str(tmp_path / "lerobot_home"))
        monkeypatch.setenv("HF_TOKEN", "hf_pushtoken")
        yield server


def test_push_then_read_back(hub: LocalHub, tmp_path: Path) -> None:
    root = writable_copy(LEROBOT_DATA / "fps50_multifile", tmp_path)
    local = LeRobotDataset("user/pushed", root=root, return_uint8=True)
    local.push_to_hub(tags=["so101"], dataset_description="Cubes, moved.")

    repo = hub.repos["user/pushed"]
    assert repo.tags == ["v3.0"]
    pushed = set(repo.files())
    expected = {str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()} | {"README.md"}
    assert pushed == expected
    for relative in expected - {"README.md"}:
        assert (repo.folder / relative).read_bytes() == (root / relative).read_bytes(), relative
    card = (repo.folder / "README.md").read_text()
    header = card.split("---")[1]
    for line in ("license: apache-2.0", "- LeRobot", "- so101", "- robotics", "data_files: data/*/*.parquet"):
        assert line in header, line
    assert "Cubes, moved." in card and '"codebase_version": "v3.0"' in card
    repository_calls = [r for r in hub.requests if "datasets/" in r.path or r.path.startswith("/api/repos")]
    unauthorised = [r for r in repository_calls if r.authorization != "Bearer hf_pushtoken"]
    assert not unauthorised

    # Read back from the Hub: downloaded (map-style) and streamed, the same items as the local copy.
    downloaded = LeRobotDataset("user/pushed", return_uint8=True)
    assert downloaded.root != root
    streamed = {
        int(item["index"]): item for item in StreamingLeRobotDataset("user/pushed", return_uint8=True)
    }
    assert len(downloaded) == len(streamed) == len(local)
    for index in range(len(local)):
        assert_same_values(downloaded[index], local[index])
        assert_same_values(streamed[index], local[index])


def test_push_a_new_recording_without_videos(hub: LocalHub, tmp_path: Path) -> None:
    features = {
        "observation.state": {"dtype": "float32", "shape": (2,), "names": ["a", "b"]},
        "observation.images.cam": {
            "dtype": "video",
            "shape": (64, 64, 3),
            "names": ["height", "width", "channels"],
        },
    }
    dataset = LeRobotDataset.create("user/fresh", fps=10, features=features, root=tmp_path / "fresh")
    for frame in range(4):
        dataset.add_frame(
            {
                "observation.state": np.full(2, frame, np.float32),
                "observation.images.cam": np.full((64, 64, 3), 40 * frame, np.uint8),
                "task": "wave",
            }
        )
    dataset.save_episode()
    with pytest.raises(DatasetUnfinishedError, match="finalize"):
        dataset.push_to_hub()
    assert "user/fresh" not in hub.repos
    dataset.finalize()
    dataset.push_to_hub(push_videos=False, tag_version=False, private=True)
    repo = hub.repos["user/fresh"]
    assert repo.tags == []
    assert not [f for f in repo.files() if f.startswith("videos/")]
    assert "meta/info.json" in repo.files() and "data/chunk-000/file-000.parquet" in repo.files()
    # A second push moves the tag instead of failing on it.
    dataset.push_to_hub()
    dataset.push_to_hub()
    assert repo.tags == ["v3.0"]


def test_push_failures_are_typed_and_leave_the_dataset_alone(
    hub: LocalHub, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = writable_copy(LEROBOT_DATA / "h264_fps30", tmp_path)
    before = {p: p.read_bytes() for p in root.rglob("*") if p.is_file()}
    dataset = LeRobotDataset("user/refused", root=root)
    hub.failures["/commit/"] = 500
    with pytest.raises(DatasetUploadError, match="uploading the files"):
        dataset.push_to_hub()
    hub.failures.clear()
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(DatasetUploadError, match="HF_HUB_OFFLINE"):
        dataset.push_to_hub()
    assert {p: p.read_bytes() for p in root.rglob("*") if p.is_file()} == before
