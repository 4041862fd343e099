"""Where a dataset read without ``root`` comes from: LeRobot 0.6.1's rule.

``$HF_LEROBOT_HOME/<repo_id>`` is read when it holds the dataset, unless it is a legacy Hub mirror
(``snapshot_download(local_dir=...)``, recognised by ``.cache/huggingface/download``); otherwise
``meta/`` and then the data come through the revision-safe snapshot cache ``$HF_LEROBOT_HOME/hub``.
``force_cache_sync=True`` downloads metadata, data and videos again. The Hub is stubbed: a local
"remote" copied by a fake ``snapshot_download``.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from support import LEROBOT_DATA

from dexloop.datasets import LeRobotDataset

from fake_hub import FakeHub

REMOTE = LEROBOT_DATA / "two_cams_fps10"
REPO = "dexloop/two_cams_fps10"


@pytest.fixture
def hub(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> FakeHub:
    monkeypatch.setenv("HF_LEROBOT_HOME", str(tmp_path / "home"))
    return FakeHub(REMOTE).install(monkeypatch)


def local_copy(home: Path, legacy: bool) -> Path:
    root = home / REPO
    shutil.copytree(REMOTE, root)
    if legacy:
        (root / ".cache/huggingface/download").mkdir(parents=True)
    return root


def test_a_local_copy_under_lerobot_home_is_read(tmp_path: Path, hub: FakeHub) -> None:
    root = local_copy(tmp_path / "home", legacy=False)
    dataset = LeRobotDataset(REPO)
    assert dataset.root == root and hub.calls == []


def test_a_legacy_hub_mirror_is_replaced_by_the_snapshot(tmp_path: Path, hub: FakeHub) -> None:
    legacy = local_copy(tmp_path / "home", legacy=True)
    dataset = LeRobotDataset(REPO, return_uint8=True)
    snapshots = tmp_path / "home" / "hub"
    assert dataset.root != legacy and dataset.root.is_relative_to(snapshots)
    assert dataset.meta.root == dataset.root
    assert [call["cache_dir"] for call in hub.calls] == [snapshots, snapshots]
    assert hub.calls[0]["allow"] == "meta/" and hub.calls[1]["allow"] is None  # then all the data
    assert len(dataset) == 25 and dataset[24]["index"] == 24


def test_force_cache_sync_downloads_data_and_videos_again(tmp_path: Path, hub: FakeHub) -> None:
    first = LeRobotDataset(REPO, episodes=[1, 3])
    assert hub.calls[0]["allow"] == "meta/"
    hub.calls.clear()
    again = LeRobotDataset(REPO, episodes=[1, 3], force_cache_sync=True)
    assert again.root == first.root
    assert hub.calls[0]["allow"] == "meta/"
    assert sorted(hub.calls[1]["allow"]) == sorted(
        ["data/chunk-000/file-000.parquet"]
        + [f"videos/observation.images.{camera}/chunk-000/file-000.mp4" for camera in ("front", "wrist")]
    )


def test_force_cache_sync_with_root_refreshes_that_folder(tmp_path: Path, hub: FakeHub) -> None:
    root = tmp_path / "mine"
    shutil.copytree(REMOTE, root)
    LeRobotDataset(REPO, root=root, force_cache_sync=True, download_videos=False)
    assert [call["local_dir"] for call in hub.calls] == [root, root]
    assert hub.calls[1]["allow"] is None and hub.calls[1]["ignore"] == "videos/"
