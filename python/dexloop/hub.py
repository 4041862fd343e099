"""Fetching repositories (datasets; later, policy checkpoints) from the Hugging Face Hub, where
LeRobot keeps them. The one module that talks to huggingface_hub.

Local copies live where LeRobot puts them: ``root`` when given, else ``$HF_LEROBOT_HOME/<repo_id>``
(default ``~/.cache/huggingface/lerobot``), and downloads without ``root`` go to the revision-safe
snapshot cache ``$HF_LEROBOT_HOME/hub``. Offline, a missing repository is a typed error (for datasets
DatasetNotFoundError) that says what is missing and how to fix it, never a hang.
"""

from __future__ import annotations

import contextlib
import os
import re
from pathlib import Path
from typing import Any
from urllib.parse import quote

from dexloop.errors import DatasetNotFoundError, DexloopError


def parse_version(text: str) -> tuple[int, int]:
    """(major, minor) of a version tag such as LeRobot's codebase versions ``v3.0`` or ``v2.1``."""
    match = re.fullmatch(r"v?(\d+)(?:\.(\d+))?(?:\.\d+)*", str(text).strip())
    if match is None:
        raise ValueError(f"not a codebase version: {text!r}")
    return int(match.group(1)), int(match.group(2) or 0)


def lerobot_home() -> Path:
    """``$HF_LEROBOT_HOME``, defaulting to ``$HF_HOME/lerobot`` as LeRobot does."""
    hf_home = os.environ.get("HF_HOME") or os.path.join(
        os.environ.get("XDG_CACHE_HOME", os.path.expanduser("~/.cache")), "huggingface"
    )
    return Path(os.environ.get("HF_LEROBOT_HOME", os.path.join(hf_home, "lerobot"))).expanduser()


def hub_cache() -> Path:
    return lerobot_home() / "hub"


def is_legacy_hub_download(root: Path) -> bool:
    """True when ``root`` is a mirror made by ``snapshot_download(local_dir=...)`` (it keeps its
    bookkeeping in ``.cache/huggingface/download``): LeRobot re-fetches such a copy through the
    revision-safe snapshot cache instead of reading it, and so does dexloop."""
    return (root / ".cache" / "huggingface" / "download").exists()


def is_offline() -> bool:
    value = os.environ.get("HF_HUB_OFFLINE", "")
    return value.strip().upper() in {"1", "ON", "YES", "TRUE"}


# The error raised when a repository of each type cannot be had, locally or from the Hub.
NOT_FOUND_ERRORS: dict[str, type[DexloopError]] = {"dataset": DatasetNotFoundError}


def _not_found(repo_id: str, repo_type: str, what: str, reason: str) -> DexloopError:
    return NOT_FOUND_ERRORS[repo_type](
        f"{repo_type} {repo_id!r}: {what} is not available locally and could not be downloaded from the "
        f"Hugging Face Hub ({reason}). Pass root= pointing at a complete local copy, or connect and "
        "unset HF_HUB_OFFLINE."
    )


def resolve_revision(
    repo_id: str,
    revision: str,
    what: str = "the dataset",
    token: str | bool | None = None,
    repo_type: str = "dataset",
) -> str:
    """The Hub revision to download: an explicit one as given; for LeRobot's codebase-version tags
    (``v3.0``, the datasets' default), the newest tag of the same major version not newer than
    requested."""
    wanted = revision
    if not re.fullmatch(r"v\d+(\.\d+)*", wanted):
        return wanted
    if is_offline():
        raise _not_found(repo_id, repo_type, what, "HF_HUB_OFFLINE is set")
    try:
        from huggingface_hub import HfApi

        refs = HfApi(token=token, endpoint=endpoint()).list_repo_refs(repo_id, repo_type=repo_type)
    except Exception as error:
        raise _not_found(repo_id, repo_type, what, f"{type(error).__name__}: {error}") from error
    target = parse_version(wanted)
    versions = []
    for ref in [*refs.branches, *refs.tags]:
        try:
            versions.append((parse_version(ref.name), ref.name))
        except ValueError:
            continue
    compatible = [(v, name) for v, name in versions if v[0] == target[0] and v <= target]
    if not compatible:
        found = sorted(name for _, name in versions) or "none"
        raise NOT_FOUND_ERRORS[repo_type](
            f"{repo_type} {repo_id!r} has no revision compatible with {wanted} on the Hub (version tags: {found})"
        )
    return max(compatible)[1]


def download(
    repo_id: str,
    *,
    revision: str,
    local_dir: Path | None,
    allow_patterns: list[str] | str | None = None,
    ignore_patterns: list[str] | str | None = None,
    what: str = "the dataset",
    token: str | bool | None = None,
    repo_type: str = "dataset",
) -> tuple[Path, str]:
    """Downloads files of a repository at ``revision`` (resolved with resolve_revision); returns the
    directory holding them and the revision used. Without ``local_dir`` the files go to the
    revision-safe snapshot cache and the directory returned is the snapshot's."""
    revision = resolve_revision(repo_id, revision, what, token, repo_type)
    if is_offline():
        raise _not_found(repo_id, repo_type, what, "HF_HUB_OFFLINE is set")
    try:
        from huggingface_hub import snapshot_download

        token_kwargs: dict[str, Any] = {"endpoint": endpoint()}
        if token is not None:
            token_kwargs["token"] = token
        if local_dir is None:
            snapshot = snapshot_download(
                repo_id,
                repo_type=repo_type,
                revision=revision,
                cache_dir=hub_cache(),
                allow_patterns=allow_patterns,
                ignore_patterns=ignore_patterns,
                **token_kwargs,
            )
            return Path(snapshot), revision
        local_dir.mkdir(parents=True, exist_ok=True)
        snapshot_download(
            repo_id,
            repo_type=repo_type,
            revision=revision,
            local_dir=local_dir,
            allow_patterns=allow_patterns,
            ignore_patterns=ignore_patterns,
            **token_kwargs,
        )
        return local_dir, revision
    except DexloopError:
        raise
    except Exception as error:
        raise _not_found(repo_id, repo_type, what, f"{type(error).__name__}: {error}") from error


def endpoint() -> str:
    """The Hub's base URL: ``HF_ENDPOINT`` as it is now (huggingface_hub reads it once, at import)."""
    from huggingface_hub import constants

    return (os.environ.get("HF_ENDPOINT") or constants.ENDPOINT).rstrip("/")


def remote_filesystem(token: str | bool | None = None) -> Any:
    """huggingface_hub's fsspec filesystem on the Hub: files opened through it are read by range
    requests, block by block, never downloaded whole."""
    from huggingface_hub import HfFileSystem

    return HfFileSystem(endpoint=endpoint(), token=token)


def remote_path(repo_id: str, revision: str, repo_type: str = "dataset") -> str:
    """The HfFileSystem path of a repository's root at ``revision``."""
    prefix = {"dataset": "datasets/", "model": ""}[repo_type]
    return f"{prefix}{repo_id}@{quote(revision, safe='')}"


def file_url(repo_id: str, revision: str, path: str, repo_type: str = "dataset") -> str:
    """The URL a file is downloaded from (``.../resolve/<revision>/<path>``), which answers range
    requests; FFmpeg's HTTP client reads videos there."""
    from huggingface_hub import hf_hub_url

    return hf_hub_url(repo_id, path, repo_type=repo_type, revision=revision, endpoint=endpoint())


def http_headers(token: str | bool | None = None) -> str:
    """The authorization header huggingface_hub would send (the given token, else the stored one),
    as the ``Name: value\\r\\n`` lines FFmpeg takes; "" without a token."""
    from huggingface_hub.utils import build_hf_headers

    headers = build_hf_headers(token=token)
    value = headers.get("authorization") or headers.get("Authorization")
    return f"Authorization: {value}\r\n" if value else ""


def upload_folder(
    repo_id: str,
    folder: Path,
    *,
    card: str | None = None,
    tag: str | None = None,
    branch: str | None = None,
    private: bool | None = None,
    allow_patterns: list[str] | str | None = None,
    ignore_patterns: list[str] | str | None = None,
    large_folder: bool = False,
    token: str | bool | None = None,
    repo_type: str = "dataset",
) -> None:
    """Pushes ``folder`` to the repository (created if missing, and the ``branch`` too), then its card
    as README.md, then moves ``tag`` to the new head: LeRobot's push_to_hub sequence. Any failure is a
    DatasetUploadError naming the step; the local folder is only read."""
    from dexloop.errors import DatasetUploadError

    if is_offline():
        raise DatasetUploadError(
            f"{repo_type} {repo_id!r}: cannot push {folder} to the Hugging Face Hub: HF_HUB_OFFLINE is set"
        )
    step = "connecting"
    try:
        from huggingface_hub import HfApi
        from huggingface_hub.errors import RevisionNotFoundError

        api = HfApi(endpoint=endpoint(), token=token)
        step = "creating the repository"
        api.create_repo(repo_id=repo_id, private=private, repo_type=repo_type, exist_ok=True)
        if branch:
            step = f"creating branch {branch!r}"
            api.create_branch(repo_id=repo_id, branch=branch, repo_type=repo_type, exist_ok=True)
        step = "uploading the files"
        upload = api.upload_large_folder if large_folder else api.upload_folder
        upload(
            repo_id=repo_id,
            folder_path=folder,
            repo_type=repo_type,
            revision=branch,
            allow_patterns=allow_patterns,
            ignore_patterns=ignore_patterns,
        )
        if card is not None:
            step = "uploading the card (README.md)"
            api.upload_file(
                path_or_fileobj=card.encode(),
                path_in_repo="README.md",
                repo_id=repo_id,
                repo_type=repo_type,
                revision=branch,
            )
        if tag:
            step = f"tagging {tag!r}"
            with contextlib.suppress(RevisionNotFoundError):  # a first push has no tag to move
                api.delete_tag(repo_id, tag=tag, repo_type=repo_type)
            api.create_tag(repo_id, tag=tag, revision=branch, repo_type=repo_type)
    except Exception as error:
        raise DatasetUploadError(
            f"{repo_type} {repo_id!r}: pushing {folder} to {endpoint()} failed while {step} "
            f"({type(error).__name__}: {error}); the local dataset is unchanged"
        ) from error
