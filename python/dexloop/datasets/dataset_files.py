"""Where a dataset's data and video files are read from: a local folder, or the Hugging Face Hub by
HTTP range requests (``StreamingLeRobotDataset``). The reader asks one of these for each file the
selected episodes need and hands the answer to pyarrow (a path, with the Hub's fsspec filesystem when
remote) and to the C++ decoder (a path or a URL, which FFmpeg reads by range requests itself)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from dexloop import hub


class LocalFiles:
    filesystem: Any = None

    def __init__(self, root: Path):
        self.root = Path(root)

    def data(self, relative: Path) -> Path:
        return self.root / relative

    def video(self, relative: Path) -> str:
        return str(self.root / relative)

    def relative(self, location: Path | str) -> str:
        """A location given out by data()/video() as the path inside the dataset, for messages."""
        return str(Path(location).relative_to(self.root))


class HubFiles:
    """The files of ``repo_id`` at ``revision`` on the Hub (``HF_ENDPOINT``), read where they are."""

    def __init__(self, repo_id: str, revision: str, token: str | bool | None = None):
        self.repo_id = repo_id
        self.revision = revision
        self.filesystem = hub.remote_filesystem(token)
        self._base = hub.remote_path(repo_id, revision)

    def data(self, relative: Path) -> str:
        return f"{self._base}/{Path(relative).as_posix()}"

    def video(self, relative: Path) -> str:
        return hub.file_url(self.repo_id, self.revision, Path(relative).as_posix())

    def relative(self, location: Path | str) -> str:
        text = str(location)
        return text[len(self._base) + 1 :] if text.startswith(self._base + "/") else text
