"""Where a dataset read without ``root`` comes from: LeRobot 0.6.1's rule.

``$HF_LEROBOT_HOME/<repo_id>`` is read when it holds the dataset, unless it is a legacy Hub mirror
(``snapshot_download(local_dir=...)``, recognised by ``.cache/huggingface/download``); otherwise
``meta/`` and then the data come through the revision-safe snapshot cache ``$HF_LEROBOT_HOME/hub``.
``force_cache_sync=True`` downloads metadata, data and videos again. The Hub is stubbed: a local
"remote" copied by a fake ``snapshot_download``.
"""

from __future__ import annotations

import fnmatch
import shutil
from pathlib import Path

import huggingface_hub
import pytest

from dexloop.datasets import LeRobotDataset

from conftest import LEROBOT_DATA

REMOTE = LEROBOT_DATA / "two_cams_fps10"
REPO = "dexloop/two_cams_fps10"


class FakeHub:
    """``snapshot_download`` copying files of REMOTE that match the patterns; records each call."""

    def __init__(self):
        self.calls: list[dict] = []

    def snapshot_download(
        self,
        repo_id,
        *,
        repo_type,
        revision,
        local_dir=None,
        cache_dir=None,
        allow_patterns=None,
        ignore_patterns=None,
        **_,
    ):
        self.calls.append(
            {
                "local_dir": local_dir,
                "cache_dir": cache_dir,
                "allow": allow_patterns,
                "ignore": ignore_patterns,
            }
        )
        target = (
            Path(local_dir)
            if local_dir
            else Path(cache_dir) / f"datasets--{repo_id.replace('/', '--')}" / "snapshots" / "abc123"
        )
        allow = [allow_patterns] if isinstance(allow_patterns, str) else allow_patterns
        ignore = [ignore_patterns] if isinstance(ignore_patterns, str) else ignore_patterns or []

        def matches(relative: str, patterns: list[str]) -> bool:
            return any(relative.startswith(p) or fnmatch.fnmatch(relative, p) for p in patterns)

        for path in REMOTE.rglob("*"):
            relative = path.relative_to(REMOTE).as_posix()
            if (
                path.is_file()
                and (allow is None or matches(relative, allow))
                and not matches(relative, ignore)
            ):
                (target / relative).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy(path, target / relative)
        return str(target)


@pytest.fixture
def hub(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> FakeHub:
    class Ref:
        def __init__(self, name: str):
            self.name = name

    class Refs:
        def __init__(self):
            self.branches = [Ref("main")]
            self.tags = [Ref("v3.0")]

    fake = FakeHub()
    monkeypatch.setenv("HF_LEROBOT_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("HF_HUB_OFFLINE")
    monkeypatch.setattr(huggingface_hub, "snapshot_download", fake.snapshot_download)
    monkeypatch.setattr(huggingface_hub.HfApi, "list_repo_refs", lambda self, repo_id, repo_type: Refs())
    return fake


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
