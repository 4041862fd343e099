"""Stream-copy remuxing of mp4 files, on dexloop's C++ FFmpeg core.

The dataset tools move episodes between video files: a merge appends whole files, a split or an
episode deletion keeps some episodes of a file. ``remux_segments`` copies the packets of time ranges
of source files into one new mp4 without decoding, so every frame keeps its encoded bytes and
decodes to the same pixels; timestamps are shifted so the output's frames follow each other one
frame period apart:

    ranges = remux_segments([("file-000.mp4", 2.0, 3.5), ("file-001.mp4", 0.0, None)], "out.mp4")
    # [(0.0, 1.5), (1.5, 1.5 + frames / fps)]: where each segment lies in out.mp4

Each episode of a dexloop or LeRobot recording starts on a keyframe, so episode ranges can always be
copied. A range that cannot (not starting on a keyframe, streams of other parameters) raises
``VideoRemuxError``; the caller then decodes and re-encodes.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence

from dexloop._core.video import remux_segments as _remux_segments
from dexloop.errors import VideoRemuxError

__all__ = ["Segment", "remux_segments"]

# (path, start_s, end_s): seconds in the file's timeline, end exclusive, None: to the end of the file.
Segment = tuple[str | os.PathLike[str], float, float | None]


def remux_segments(
    segments: Sequence[Segment],
    output_path: str | os.PathLike[str],
) -> list[tuple[float, float]]:
    """Writes the frames of each ``(path, start_s, end_s)`` segment, in order, into a new mp4 at
    ``output_path`` (index first; an existing file is an error) and returns, per segment, the
    ``(from_timestamp, to_timestamp)`` it occupies there (to = from + frames / fps, LeRobot's
    convention). ``start_s``/``end_s`` are seconds in the source file's timeline, ``end_s``
    exclusive, ``None`` meaning the end of the file: ``(path, 0.0, None)`` is the whole file.

    Raises VideoRemuxError (a VideoEncodeError) naming the file and segment: a segment that does not
    start on a keyframe or holds no frame, files whose streams differ (codec, size, pixel format,
    time base, frame rate, stream headers), a missing or damaged source."""
    converted: list[tuple[str, float, float | None]] = []
    for number, segment in enumerate(segments):
        try:
            path, start_s, end_s = segment
        except (TypeError, ValueError):
            raise VideoRemuxError(
                f"segment {number}: expected (path, start_s, end_s), got {segment!r}"
            ) from None
        if isinstance(start_s, bool) or not isinstance(start_s, (int, float)):
            raise VideoRemuxError(f"segment {number} ({path}): start_s must be a number of seconds")
        if end_s is not None and (isinstance(end_s, bool) or not isinstance(end_s, (int, float))):
            raise VideoRemuxError(f"segment {number} ({path}): end_s must be seconds or None")
        if not math.isfinite(float(start_s)):
            raise VideoRemuxError(f"segment {number} ({path}): start_s must be finite")
        converted.append((os.fspath(path), float(start_s), None if end_s is None else float(end_s)))
    return [tuple(span) for span in _remux_segments(converted, os.fspath(output_path))]
