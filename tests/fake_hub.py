"""A stand-in for the Hugging Face Hub in tests: ``snapshot_download`` copies the files of a local
"remote" dataset folder that match its patterns, ``HfApi.list_repo_refs`` answers with given tags,
and every download call is recorded. No network is touched."""

from __future__ import annotations

import fnmatch
import shutil
from collections.abc import Sequence
from pathlib import Path
from types import SimpleNamespace

import huggingface_hub
import pytest


class FakeHub:
    def __init__(self, remote: Path, tags: Sequence[str] = ("v3.0",)):
        self.remote = remote
        self.tags = list(tags)
        self.calls: list[dict] = []

    def install(self, monkeypatch: pytest.MonkeyPatch) -> FakeHub:
        """Puts this hub in huggingface_hub's place (and lifts the tests' HF_HUB_OFFLINE)."""

        refs = SimpleNamespace(
            branches=[SimpleNamespace(name="main")], tags=[SimpleNamespace(name=tag) for tag in self.tags]
        )
        monkeypatch.delenv("HF_HUB_OFFLINE")
        monkeypatch.setattr(huggingface_hub, "snapshot_download", self.snapshot_download)
        monkeypatch.setattr(huggingface_hub.HfApi, "list_repo_refs", lambda api, repo_id, repo_type: refs)
        return self

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
                "repo_id": repo_id,
                "revision": revision,
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

        for path in self.remote.rglob("*"):
            relative = path.relative_to(self.remote).as_posix()
            if (
                path.is_file()
                and (allow is None or matches(relative, allow))
                and not matches(relative, ignore)
            ):
                (target / relative).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy(path, target / relative)
        return str(target)
