"""Episodes saved without waiting for the codec: save_progress returns once the episode's frames are on
disk (the packets encoded so far, the frames the codec holds as raw frames), end_episode_soon has
the fragment follow; a process killed before it keeps the episode in those progress files, from
which the episode's video is rebuilt; a codec that reorders frames must be drained instead."""

from __future__ import annotations

import os
import signal
import struct
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
from support import requires_ffmpeg

from dexloop.errors import VideoEncodeError
from dexloop.video import DepthEncoderConfig, RGBEncoderConfig, VideoDecoder, open_encoder, remux_segments
from dexloop.video.encoder import (
    complete_frames,
    encode_progress_frames,
    encoder_arguments,
    read_progress_frames,
    rewrite_as_regular_mp4,
)

from synth import assert_painted_frame, paint_frame

pytestmark = requires_ffmpeg()

FPS = 10
CONFIGS = {
    "av1": RGBEncoderConfig(),  # LeRobot's default: libsvtav1, its lookahead holds frames back
    "h264": RGBEncoderConfig(vcodec="h264", preset="veryfast"),
    "hevc": RGBEncoderConfig(
        vcodec="hevc", preset="ultrafast", extra_options={"x265-params": "log-level=error"}
    ),
}


@pytest.mark.parametrize("codec", sorted(CONFIGS))
def test_episodes_ended_soon_are_written_in_order_and_their_progress_removed(
    tmp_path: Path, codec: str
) -> None:
    height, width, lengths = 64, 96, [6, 5, 7]
    path, progress = tmp_path / "file-000.mp4", tmp_path / "progress"
    progress.mkdir()
    encoder = open_encoder(str(path), CONFIGS[codec], width=width, height=height, fps=FPS)
    for episode, length in enumerate(lengths):
        for frame in range(length):
            encoder.add_frame(paint_frame(episode, frame, height, width))
        assert encoder.save_progress(str(progress / f"episode-{episode}"))
        encoder.end_episode_soon(str(progress / f"episode-{episode}"))
    episodes = encoder.take_ended(wait=True)
    assert encoder.ends_pending == 0 and encoder.take_ended() == []
    assert list(progress.iterdir()) == []
    starts = np.cumsum([0, *lengths[:-1]])
    assert [e.first_frame for e in episodes] == starts.tolist()
    assert [e.frames for e in episodes] == lengths
    assert [e.from_timestamp for e in episodes] == pytest.approx((starts / FPS).tolist(), abs=1e-12)
    sizes = [e.file_bytes for e in episodes]
    assert sizes == sorted(sizes) and sizes[-1] == path.stat().st_size
    encoder.close()
    decoder = VideoDecoder(str(path))
    assert decoder.info.frame_count == sum(lengths)
    for episode, (start, length) in enumerate(zip(starts, lengths, strict=True)):
        frames = decoder.decode((start + np.arange(length)) / FPS, 1e-4, channels_last=True)
        for frame in range(length):
            assert_painted_frame(frames[frame], episode, frame)


KILLED_CHILD = textwrap.dedent(
    """
    import os, signal, sys, time
    sys.path.insert(0, sys.argv[3])
    from synth import paint_frame
    from dexloop.video import RGBEncoderConfig, open_encoder

    path, progress = sys.argv[1], sys.argv[2]
    encoder = open_encoder(path, RGBEncoderConfig(), width=320, height=240, fps=10)
    for frame in range(4):
        encoder.add_frame(paint_frame(0, frame, 240, 320))
    encoder.end_episode()
    for frame in range(30):
        encoder.add_frame(paint_frame(1, frame, 240, 320))
        time.sleep(0.01)  # paced, so that the codec has put out some packets and holds the others
    print("saved", encoder.save_progress(progress), flush=True)
    os.kill(os.getpid(), signal.SIGKILL)  # before the codec drains: the progress files hold the episode
    """
)


def test_a_kill_while_the_codec_drains_keeps_the_episode_in_its_progress_files(tmp_path: Path) -> None:
    path, progress = tmp_path / "file-000.mp4", tmp_path / "episode-1"
    result = subprocess.run(
        [sys.executable, "-c", KILLED_CHILD, str(path), str(progress), str(Path(__file__).parents[1])],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == -signal.SIGKILL, result.stderr[-2000:]
    assert result.stdout.split() == ["saved", "True"]
    # The mp4 holds the first episode only; the progress files hold all 30 frames of the second.
    assert complete_frames(str(path)) == 4
    packets = Path(f"{progress}.packets.mp4")
    encoded = complete_frames(str(packets))
    raw, first_frame = read_progress_frames(f"{progress}.frames")
    assert first_frame == 4
    assert encoded > 0 and len(raw) > 0 and encoded + len(raw) == 30
    for index, frame in enumerate(raw):
        np.testing.assert_array_equal(frame, paint_frame(1, encoded + index, 240, 320))

    # Rebuilt as a repair does: the frames the file holds, the packets, the held frames encoded again.
    rewrite_as_regular_mp4(str(path), 4)
    tail = tmp_path / "tail.mp4"
    settings = encoder_arguments(RGBEncoderConfig(), width=320, height=240, fps=FPS)
    assert encode_progress_frames(f"{progress}.frames", settings, tail) == len(raw)
    rebuilt = tmp_path / "rebuilt.mp4"
    spans = remux_segments([(path, 0.0, None), (packets, 0.0, None), (tail, 0.0, None)], rebuilt)
    assert spans[-1][1] == pytest.approx(34 / FPS)
    frames = VideoDecoder(str(rebuilt)).decode(np.arange(34) / FPS, 1e-4, channels_last=True)
    for index, frame in enumerate(frames):
        episode, number = (0, index) if index < 4 else (1, index - 4)
        assert_painted_frame(frame, episode, number)


def test_a_codec_that_reorders_frames_cannot_save_its_progress(tmp_path: Path) -> None:
    """x265 (LeRobot's depth encoder) with keyframes 12 frames apart puts B-frames out of order:
    the packets out so far may need frames it holds, so the episode can only be saved by draining,
    and no progress file is written."""
    height, width = 64, 96
    encoder = open_encoder(
        str(tmp_path / "depth.mp4"), DepthEncoderConfig(g=12), width=width, height=height, fps=FPS
    )
    for episode in range(2):
        for frame in range(40):
            encoder.add_frame(np.full((height, width), 100 * episode + frame, np.uint16))
        while encoder.stats.frames_encoded < 40 * (episode + 1):  # past the codec's lookahead
            time.sleep(0.01)
        assert not encoder.save_progress(str(tmp_path / f"episode-{episode}"))
        assert encoder.end_episode().frames == 40
    assert sorted(p.name for p in tmp_path.iterdir()) == ["depth.mp4"]
    encoder.close()
    codes = VideoDecoder(str(tmp_path / "depth.mp4")).decode_gray16(np.arange(80) / FPS)
    assert [int(code.flat[0]) for code in codes] == [100 * (i // 40) + i % 40 for i in range(80)]


HEADER = struct.Struct("<8sIIiiqq")


def progress_file(
    path: Path, frames: int, *, magic=b"DXLFRAME", version=1, form=0, size=(4, 6), extra=0
) -> Path:
    height, width = size
    frame_bytes = height * width * (3 if form == 0 else 2)
    path.write_bytes(
        HEADER.pack(magic, version, form, width, height, frames, 0) + bytes(frames * frame_bytes + extra)
    )
    return path


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        ({"magic": b"NOTFRAME"}, "not a file of saved frames"),
        ({"version": 2}, "not a file of saved frames"),
        ({"form": 7}, "not a file of saved frames"),
        ({"size": (0, 6)}, "its header gives"),
        ({"extra": -5}, "where its header promises"),
        ({"extra": 9}, "where its header promises"),
    ],
)
def test_damaged_progress_frames_are_refused(tmp_path: Path, damage: dict, message: str) -> None:
    good, _ = read_progress_frames(progress_file(tmp_path / "good.frames", 3))
    assert good.shape == (3, 4, 6, 3)
    gray, _ = read_progress_frames(progress_file(tmp_path / "gray.frames", 2, form=1))
    assert gray.shape == (2, 4, 6) and gray.dtype == np.uint16
    bad = progress_file(tmp_path / "bad.frames", 3, **damage)
    with pytest.raises(VideoEncodeError, match=message) as caught:
        read_progress_frames(bad)
    assert str(bad) in str(caught.value)
    for cut in (0, 10, HEADER.size - 1):
        (tmp_path / "short.frames").write_bytes(bad.read_bytes()[:cut])
        with pytest.raises(VideoEncodeError, match="shorter than a saved-frames header"):
            read_progress_frames(tmp_path / "short.frames")
    os.remove(bad)
    with pytest.raises(VideoEncodeError, match="cannot read the saved frames"):
        read_progress_frames(bad)


def test_a_frame_failing_after_its_progress_was_saved_is_reported_not_lost(tmp_path: Path) -> None:
    """A queued frame whose encoding fails once the episode's progress is saved (here a depth code
    above gray12's range) keeps the fragment from the file: end_episode_soon still queues the end
    (the episode is saved in its progress files), and take_ended and every later call raise."""
    height, width = 64, 96
    encoder = open_encoder(
        str(tmp_path / "depth.mp4"), DepthEncoderConfig(), width=width, height=height, fps=FPS
    )
    for frame in range(6):
        encoder.add_frame(np.full((height, width), frame, np.uint16))
    encoder.add_frame(np.full((height, width), 5000, np.uint16))  # gray12 holds 0..4095
    progress = str(tmp_path / "episode-0")
    try:
        saved = encoder.save_progress(progress)
    except VideoEncodeError as error:  # the bad frame was encoded before the progress was saved
        assert "above the 4095" in str(error)
        return
    assert saved
    raw, _ = read_progress_frames(f"{progress}.frames")
    assert int(raw[-1].max()) == 5000  # the progress holds the frames as given
    encoder.end_episode_soon(progress)
    with pytest.raises(VideoEncodeError, match="above the 4095"):
        encoder.take_ended(wait=True)
    with pytest.raises(VideoEncodeError, match="above the 4095"):
        encoder.add_frame(np.zeros((height, width), np.uint16))
