"""Crash-safe recording: the journal of a writer session, and turning it into LeRobot's files.

LeRobot appends each saved episode to parquet files that stay open until ``finalize()``, so a crash
leaves files without footers and the recording is lost. dexloop never exposes a half-written file:

* every saved episode is *committed* to the session's journal (``<root>/.recording/``): its frame rows
  as a small complete parquet file, then its episode-metadata row (chunk/file placement, video
  timestamps, per-episode stats, new tasks) as a JSON file. Both are written atomically (temporary
  name, fsync, rename). Each camera's frames are on disk before the commit: in its mp4, a fragmented
  mp4 with one fragment per episode (see VideoEncoder), or, while the codec still drains, in the
  episode's progress files under ``videos/`` (the packets encoded so far and the frames the codec
  held, raw: StreamingEncoder.save_progress), which the encoder removes once the fragment is
  written. Writing the metadata row is the commit: an episode is saved exactly when its row file
  exists.
* ``finalize()`` and ``repair()`` assemble the committed episodes into LeRobot's layout: data files
  with one row group per episode, episode-metadata files, mp4s rewritten as regular files holding
  exactly the committed episodes' frames (those whose fragments never reached the mp4 are encoded
  again from their progress files), ``tasks.parquet``, ``stats.json`` and, last, ``info.json``.
  Every step is a pure function of the journal, so an assembly interrupted by another crash is simply
  done again; the journal is removed only when all files are in place.

``session.json`` holds what the session started from (episode and frame counts, tasks, aggregated
stats, the features with their video info) and every mp4 the session created with its encoder's
settings, so that files of an episode that was never committed are removed, nothing of earlier
sessions is touched, and a camera's last frames are encoded as its encoder would have.
"""

from __future__ import annotations

import dataclasses
import fcntl
import json
import logging
import os
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from dexloop.errors import DatasetError, DatasetUnfinishedError

from .durable import TEMPORARY_SUFFIX, fsync_directory, write_bytes_atomically, write_json_atomically
from .info import INFO_PATH, STATS_PATH, TASKS_PATH, DatasetInfo, info_from_dict
from .parquet_files import episodes_table, frames_schema, write_row_groups, write_tasks
from .stats import Stats

logger = logging.getLogger(__name__)

JOURNAL_DIR = ".recording"
SESSION_FILE = "session.json"
LOCK_FILE = "lock"
EPISODES_PATH = "meta/episodes/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet"
# What an interrupted atomic write or mp4 rewrite leaves behind.
LEFTOVER_SUFFIXES = (TEMPORARY_SUFFIX, ".rewrite.tmp")


def stats_to_json(stats: Stats) -> dict[str, dict[str, Any]]:
    """Stats as LeRobot serialises them: every array as a (nested) list."""
    return {
        key: {name: np.asarray(value).tolist() for name, value in values.items()}
        for key, values in stats.items()
    }


def has_journal(root: Path) -> bool:
    """True when `root` holds a recording that was neither finalized nor repaired."""
    return (Path(root) / JOURNAL_DIR / SESSION_FILE).is_file()


@dataclass
class Session:
    """What a writer session started from, and the mp4 files it created."""

    first_episode: int
    first_frame: int
    tasks: list[str]
    stats: dict[str, dict[str, Any]] | None
    info: dict[str, Any]
    created_videos: list[str] = field(default_factory=list)
    # StreamingEncoder arguments of each created mp4 (dexloop.video.encoder.encoder_arguments)
    video_encoders: dict[str, dict[str, Any]] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass
class CommittedEpisode:
    row: dict[str, Any]  # the episode-metadata row, LeRobot's columns in LeRobot's order
    new_tasks: list[str]  # tasks this episode added to the dataset, in task_index order
    dataset_stats: dict[str, dict[str, Any]]  # meta/stats.json once this episode is in


class RecordingJournal:
    """The on-disk journal of one writer session under ``<root>/.recording``."""

    def __init__(self, root: Path):
        self.root = Path(root)
        self.directory = self.root / JOURNAL_DIR
        self._lock: int | None = None

    def lock(self) -> None:
        """Takes the journal's lock, held until this process ends or release() (the kernel drops
        it when the process dies, even by SIGKILL). Raises DatasetUnfinishedError when another
        process holds it: that recording is alive and must not be repaired under it."""
        self.directory.mkdir(parents=True, exist_ok=True)
        descriptor = os.open(self.directory / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(descriptor)
            raise DatasetUnfinishedError(
                f"{self.root}: another process is recording this dataset right now"
            ) from None
        self._lock = descriptor

    def release(self) -> None:
        if self._lock is not None:
            os.close(self._lock)
            self._lock = None

    # -- writing (the recorder) ----------------------------------------------------------------

    def start(self, session: Session) -> None:
        self.lock()
        if has_journal(self.root):
            self.release()
            raise DatasetUnfinishedError(
                f"{self.directory}: an interrupted recording is there; repair it first "
                f"(`dexloop dataset repair {self.root}`)"
            )
        for folder in ("data", "episodes", "videos"):
            (self.directory / folder).mkdir(parents=True, exist_ok=True)
        fsync_directory(self.directory)
        self.write_session(session)

    def write_session(self, session: Session) -> None:
        write_json_atomically(self.directory / SESSION_FILE, session.to_json())

    def staged_data_path(self, episode_index: int) -> Path:
        return self.directory / "data" / f"episode-{episode_index:06d}.parquet"

    def progress_path(self, video_key: str, episode_index: int) -> Path:
        """Where a camera's encoder saves an episode's progress (``.packets.mp4``, ``.frames``)."""
        return self.directory / "videos" / f"{video_key}.episode-{episode_index:06d}"

    def row_path(self, episode_index: int) -> Path:
        return self.directory / "episodes" / f"episode-{episode_index:06d}.json"

    def stage_frames(self, episode_index: int, table: pa.Table) -> int:
        """Writes the episode's rows durably; returns the staged file's size in bytes."""
        path = self.staged_data_path(episode_index)
        write_row_groups(path, table.schema, [table])
        return path.stat().st_size

    def commit(self, episode: CommittedEpisode) -> None:
        """Makes the episode saved: after this returns, a crash keeps it."""
        index = int(episode.row["episode_index"])
        content = {"row": episode.row, "new_tasks": episode.new_tasks, "dataset_stats": episode.dataset_stats}
        write_bytes_atomically(self.row_path(index), json.dumps(content).encode("utf-8"))

    # -- reading (finalize, repair) --------------------------------------------------------------

    def session(self) -> Session:
        path = self.directory / SESSION_FILE
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
            return Session(**raw)
        except (OSError, ValueError, TypeError) as error:
            raise DatasetError(f"{path}: unreadable recording journal ({error})") from error

    def committed(self, session: Session) -> list[CommittedEpisode]:
        """The committed episodes, in order: those whose row file exists, contiguous from the
        session's first episode (a row is only written after the one before it)."""
        episodes = []
        index = session.first_episode
        while self.row_path(index).is_file():
            path = self.row_path(index)
            try:
                raw = json.loads(path.read_text(encoding="utf-8"))
                episode = CommittedEpisode(
                    row=raw["row"], new_tasks=list(raw["new_tasks"]), dataset_stats=raw["dataset_stats"]
                )
            except (OSError, ValueError, KeyError, TypeError) as error:
                raise DatasetError(f"{path}: unreadable committed episode ({error})") from error
            if not self.staged_data_path(index).is_file():
                raise DatasetError(f"{path}: episode {index} is committed but its rows are missing")
            episodes.append(episode)
            index += 1
        return episodes

    def remove(self) -> None:
        shutil.rmtree(self.directory)
        fsync_directory(self.root)
        self.release()


# -- assembly --------------------------------------------------------------------------------------


def _grouped(
    rows: Sequence[Mapping[str, Any]], prefix: str
) -> dict[tuple[int, int], list[Mapping[str, Any]]]:
    groups: dict[tuple[int, int], list[Mapping[str, Any]]] = {}
    for row in rows:
        groups.setdefault((int(row[f"{prefix}/chunk_index"]), int(row[f"{prefix}/file_index"])), []).append(
            row
        )
    return groups


def assemble(journal: RecordingJournal, closed_videos: Sequence[str] = ()) -> DatasetInfo:
    """Writes LeRobot's files for the journal's committed episodes, then removes the journal (the
    caller holds its lock).

    `closed_videos` are the session's mp4s already finished as regular files by their encoder
    (``finalize()``); the others are rewritten keeping exactly the committed episodes' frames."""
    root = journal.root
    session = journal.session()
    committed = journal.committed(session)
    rows = [episode.row for episode in committed]
    info = info_from_dict(session.info, journal.directory / SESSION_FILE)

    for leftover in (p for suffix in LEFTOVER_SUFFIXES for p in root.glob(f"[dmv]*/**/*{suffix}")):
        leftover.unlink()

    schema = frames_schema(info.features)
    for (chunk, file), group in _grouped(rows, "data").items():
        tables = [_read_staged(journal.staged_data_path(int(row["episode_index"])), schema) for row in group]
        write_row_groups(root / info.data_path.format(chunk_index=chunk, file_index=file), schema, tables)
    for (chunk, file), group in _grouped(rows, "meta/episodes").items():
        table = episodes_table(group)
        write_row_groups(
            root / EPISODES_PATH.format(chunk_index=chunk, file_index=file), table.schema, [table]
        )

    video_keys = [key for key, feature in info.features.items() if feature["dtype"] == "video"]
    referenced = set()
    for key in video_keys:
        for (chunk, file), group in _grouped(rows, f"videos/{key}").items():
            relative = info.video_path.format(video_key=key, chunk_index=chunk, file_index=file)
            referenced.add(relative)
            if relative not in closed_videos:
                _finish_video(journal, session, key, relative, group)
    for relative in session.created_videos:
        if relative not in referenced and (root / relative).exists():
            (root / relative).unlink()  # an mp4 opened for an episode that was never saved

    tasks = list(session.tasks)
    for episode in committed:
        tasks.extend(episode.new_tasks)
    if tasks:
        write_tasks(root / TASKS_PATH, tasks)
    stats = committed[-1].dataset_stats if committed else session.stats
    if stats is not None:
        write_json_atomically(root / STATS_PATH, stats)

    info.total_episodes = session.first_episode + len(rows)
    info.total_frames = session.first_frame + sum(int(row["length"]) for row in rows)
    info.total_tasks = len(tasks)
    info.splits = {"train": f"0:{info.total_episodes}"}
    write_json_atomically(root / INFO_PATH, info.to_dict())
    journal.remove()
    return info


def _finish_video(
    journal: RecordingJournal, session: Session, key: str, relative: str, rows: Sequence[Mapping[str, Any]]
) -> None:
    """Rewrites a camera's fragmented mp4 as a regular one holding exactly the frames of its
    committed `rows`. Episodes whose fragments never reached the file (the recording died while
    the codec drained) come from their progress files: the packets encoded before the save, then
    the frames the codec held, encoded again with the file's encoder settings."""
    from dexloop.video.encoder import complete_frames, encode_progress_frames, rewrite_as_regular_mp4
    from dexloop.video.remux import remux_segments

    path = journal.root / relative
    needed = sum(int(row["length"]) for row in rows)
    progress_saved = any(
        Path(f"{journal.progress_path(key, int(row['episode_index']))}{suffix}").is_file()
        for row in rows
        for suffix in (".packets.mp4", ".frames")
    )
    # Without progress files every fragment reached the file (the encoder removes them only then):
    # the rewrite alone reads it, once.
    present = complete_frames(str(path)) if progress_saved else needed
    if present >= needed:
        rewrite_as_regular_mp4(str(path), needed)
        return
    # Fragments are whole episodes, written in order: the file ends where an episode starts.
    starts = np.cumsum([0] + [int(row["length"]) for row in rows])
    if present not in starts:
        raise DatasetError(f"{path}: holds {present} frames, which is not where one of its episodes ends")
    missing = [row for row, start in zip(rows, starts[:-1], strict=True) if start >= present]
    settings = session.video_encoders.get(relative)
    if settings is None:
        raise DatasetError(f"{journal.directory / SESSION_FILE}: no encoder settings recorded for {relative}")
    segments: list[tuple[str, float, float | None]] = []
    if present > 0:
        rewrite_as_regular_mp4(str(path), present)
        segments.append((str(path), 0.0, None))
    for row in missing:
        index, length = int(row["episode_index"]), int(row["length"])
        progress = journal.progress_path(key, index)
        packets, frames = Path(f"{progress}.packets.mp4"), Path(f"{progress}.frames")
        found = 0
        if packets.is_file():
            found += complete_frames(str(packets))
            segments.append((str(packets), 0.0, None))
        if frames.is_file():
            tail = Path(f"{progress}.tail.mp4")
            tail.unlink(missing_ok=True)  # from an assembly interrupted before
            found += encode_progress_frames(frames, settings, tail)
            segments.append((str(tail), 0.0, None))
        if found != length:
            raise DatasetError(
                f"{path}: the fragment of episode {index} ({length} frames) was never written, and its "
                f"progress files in {progress.parent} hold {found} of its frames"
            )
    rebuilt = Path(f"{path}.rewrite.tmp")
    rebuilt.unlink(missing_ok=True)
    remux_segments(segments, rebuilt)
    os.replace(rebuilt, path)
    fsync_directory(path.parent)


def _read_staged(path: Path, schema: pa.Schema) -> pa.Table:
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(path)
    except (pa.ArrowException, OSError) as error:
        raise DatasetError(f"{path}: staged episode rows are unreadable ({error})") from error
    # With Hugging Face `datasets` imported, pyarrow reads ArrayND columns as its extension types:
    # the file keeps their storage, which is what `schema` declares.
    columns = [
        pa.chunked_array([chunk.storage for chunk in column.chunks], type=column.type.storage_type)
        if isinstance(column.type, pa.ExtensionType)
        else column
        for column in table.columns
    ]
    return pa.Table.from_arrays(columns, schema=schema)


def repair(root: Path) -> DatasetInfo | None:
    """Completes an interrupted recording at `root`: keeps every episode whose ``save_episode()``
    returned and nothing else. Returns the dataset's info, or None when there was nothing to do."""
    root = Path(root)
    if not has_journal(root):
        return None
    journal = RecordingJournal(root)
    journal.lock()
    try:
        count = len(journal.committed(journal.session()))
        info = assemble(journal)
    finally:
        journal.release()
    logger.warning("%s: recovered an interrupted recording (%d saved episodes of this session)", root, count)
    return info
