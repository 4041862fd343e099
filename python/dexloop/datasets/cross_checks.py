"""Cross-checks between what a dataset's files say about each other, done when it is opened.

A damaged or inconsistent dataset would otherwise still return items, wrong ones: a row whose
timestamp is off by a frame, a task_index pointing at another episode's task, a camera's mp4
replaced by another recording (its frames come back wherever timestamps happen to coincide). Each
check here compares two independent sources (parquet rows and meta/episodes, a video stream and
meta/info.json) with numpy over whole columns, or once per video file, so the batch path pays
nothing for them. Failures raise DatasetError / VideoDecodeError naming the file and the column or
key that disagree.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from dexloop.errors import DatasetError, VideoDecodeError

from .frame_table import FrameTable
from .metadata import EpisodeTable, LeRobotDatasetMetadata


def check_frame_times(table: FrameTable, data_files: Sequence[Path], lengths: np.ndarray, fps: int) -> None:
    """Each row's frame_index is its position in its episode and its timestamp frame_index / fps
    (as LeRobot records them) within half a frame: video frames are looked up by timestamp, so a
    wrong one would return another frame's image."""
    position = np.arange(table.num_rows) - np.repeat(np.cumsum(lengths) - lengths, lengths)
    frame_index = table.numeric.get("frame_index")
    if frame_index is not None and not np.array_equal(frame_index, position):
        row = int(np.argmax(frame_index != position))
        raise DatasetError(
            f"{table.file_of_row(data_files, row)}: a row has frame_index {int(frame_index[row])}, "
            f"expected {int(position[row])} (its position in its episode)"
        )
    times = table.numeric["timestamp"].astype(np.float64)
    wrong = ~(np.abs(times - position / fps) <= 0.5 / fps)  # NaN counts as wrong
    if wrong.any():
        row = int(np.argmax(wrong))
        raise DatasetError(
            f"{table.file_of_row(data_files, row)}: frame {int(position[row])} of an episode has timestamp "
            f"{float(times[row])!r}, expected frame_index / fps = {position[row] / fps:.6f} s (fps {fps} in "
            "meta/info.json)"
        )


def check_episode_tasks(
    table: FrameTable,
    data_files: Sequence[Path],
    episodes: EpisodeTable,
    tasks: Sequence[str],
    loaded: Sequence[int],
    lengths: np.ndarray,
) -> None:
    """Each row's task is one of its episode's tasks in meta/episodes (column ``tasks``): an item's
    ``task`` string comes from the row's task_index, which nothing else confirms."""
    if "tasks" not in episodes.column_names:
        return
    task_index = table.numeric["task_index"]
    index_of = {task: number for number, task in enumerate(tasks)}
    episode_tasks = episodes["tasks"]
    start = 0
    for ordinal, episode in enumerate(loaded):
        rows = task_index[start : start + int(lengths[ordinal])]
        listed = episode_tasks[episode]
        allowed = {index_of.get(task, -1) for task in listed} if isinstance(listed, list) else set()
        stray = [int(t) for t in np.unique(rows) if int(t) not in allowed]
        if stray:
            row = start + int(np.argmax(rows == stray[0]))
            raise DatasetError(
                f"{table.file_of_row(data_files, row)}: episode {episode} has rows with task_index {stray[0]} "
                f"({tasks[stray[0]]!r}), which is not among the episode's tasks {listed!r} in meta/episodes "
                "(column 'tasks')"
            )
        start += int(lengths[ordinal])


def video_file_ends(episodes: EpisodeTable, key: str, fps: int) -> np.ndarray:
    """Per episode of the dataset: when the last episode sharing its video file of camera ``key``
    ends (from_timestamp + length / fps), i.e. how long that file must be."""
    where = np.stack(
        [episodes.column(f"videos/{key}/chunk_index"), episodes.column(f"videos/{key}/file_index")], axis=1
    )
    lengths = episodes.column("dataset_to_index") - episodes.column("dataset_from_index")
    ends = episodes.column(f"videos/{key}/from_timestamp").astype(np.float64) + lengths / fps
    _, file_of_episode = np.unique(where, axis=0, return_inverse=True)
    file_of_episode = file_of_episode.reshape(-1)
    file_end = np.full(file_of_episode.max() + 1, -np.inf)
    np.maximum.at(file_end, file_of_episode, ends)
    return file_end[file_of_episode]


def check_video_stream(
    path: str,
    stream: Any,
    meta: LeRobotDatasetMetadata,
    key: str,
    frame_size: tuple[int, int],
    *,
    expected_end_s: float,
    tolerance_s: float,
) -> None:
    """Compares one video file's stream (a ``StreamInfo``: frame size, codec, frame rate, duration)
    with what meta/info.json declares for camera `key` and with the end of the file's last episode,
    so that a file replaced by another recording fails loudly."""
    feature = meta.features[key]
    declared = {**(feature.get("video_info") or {}), **(feature.get("info") or {})}
    where = f"meta/info.json features[{key!r}]"
    height, width = frame_size
    if (stream.height, stream.width) != (height, width):
        raise VideoDecodeError(
            f"{path}: frames are {stream.height}x{stream.width} (height x width) but the dataset expects "
            f"{height}x{width} ({where} shape)"
        )
    for name, size in (("video.height", stream.height), ("video.width", stream.width)):
        if name in declared and declared[name] != size:
            raise VideoDecodeError(
                f"{path}: frames are {stream.height}x{stream.width} (height x width) but {where} declares "
                f"{name} {declared[name]!r}"
            )
    codec = declared.get("video.codec")
    if isinstance(codec, str) and codec != stream.codec:
        raise VideoDecodeError(
            f"{path}: the stream is {stream.codec} but {where} declares video.codec {codec!r}"
        )
    fps = declared.get("video.fps", meta.fps)
    if isinstance(fps, bool) or not isinstance(fps, (int, float)) or not math.isfinite(fps) or fps <= 0:
        raise DatasetError(
            f"{meta.root / 'meta/info.json'}: features[{key!r}] video.fps is {fps!r}, expected a positive number"
        )
    # The average rate of concatenated episodes is skewed by very short ones (a one-frame episode's
    # duration is rounded up); the base rate is not. Another recording's rates both differ by far
    # more than 1 %.
    if all(abs(rate - fps) > 0.01 * fps for rate in (stream.fps, stream.base_fps)):
        raise VideoDecodeError(
            f"{path}: the stream runs at {stream.base_fps:g} fps (average {stream.fps:g}) but {where} "
            f"declares video.fps {fps}"
        )
    # Another recording of the same kind still differs in length.
    stream_end_s = stream.start_s + stream.duration_s
    if stream.duration_s > 0 and abs(stream_end_s - expected_end_s) > 0.5 / meta.fps + tolerance_s:
        raise VideoDecodeError(
            f"{path}: the stream lasts until {stream_end_s:.6f} s but the episode metadata "
            f"(videos/{key}/from_timestamp + length / fps of its last episode) ends it at {expected_end_s:.6f} s; "
            "the file is not the recording of these episodes"
        )
