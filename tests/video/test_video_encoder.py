"""The streaming encoder: LeRobot's codecs and settings, episodes appended to one mp4 with exact
timestamps, every ended episode on disk when end_episode returns (a killed recording keeps them),
back-pressure instead of dropped frames, and typed errors for bad frames and settings."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
from support import requires_ffmpeg

from dexloop.errors import VideoEncodeError
from dexloop.video import (
    RGBEncoderConfig,
    VideoDecoder,
    VideoEncoderConfig,
    open_encoder,
    rewrite_as_regular_mp4,
)

from synth import assert_painted_frame, paint_frame, probe_video

pytestmark = requires_ffmpeg()

FPS = 10
HEIGHT, WIDTH = 64, 96  # SVT-AV1 takes frames of 64 pixels and more on each side
CONFIGS = {
    "av1": RGBEncoderConfig(),  # LeRobot's default: libsvtav1, yuv420p, g=2, crf=30, preset 12
    "h264": RGBEncoderConfig(vcodec="h264", preset="veryfast"),
    "hevc": RGBEncoderConfig(
        vcodec="hevc", preset="ultrafast", extra_options={"x265-params": "log-level=error"}
    ),
}


def record(path: Path, config: VideoEncoderConfig, lengths: list[int], **kwargs) -> list:
    encoder = open_encoder(str(path), config, width=WIDTH, height=HEIGHT, fps=FPS, **kwargs)
    episodes = []
    for episode, length in enumerate(lengths):
        for frame in range(length):
            encoder.add_frame(paint_frame(episode, frame, HEIGHT, WIDTH))
        episodes.append(encoder.end_episode())
    encoder.close()
    return episodes


def assert_episodes_read_back(path: Path, episodes: list, lengths: list[int]) -> None:
    decoder = VideoDecoder(str(path))
    assert decoder.info.frame_count == sum(lengths)
    for index, (episode, length) in enumerate(zip(episodes, lengths, strict=True)):
        assert episode.frames == length
        times = episode.from_timestamp + np.arange(length) / FPS
        frames = decoder.decode(times, 1e-4, channels_last=True)
        for frame_index in range(length):
            assert_painted_frame(frames[frame_index], index, frame_index)


@pytest.mark.parametrize("codec", sorted(CONFIGS))
def test_episodes_are_appended_to_one_mp4_with_exact_timestamps(tmp_path: Path, codec: str) -> None:
    lengths = [6, 5, 7]
    path = tmp_path / "file-000.mp4"
    episodes = record(path, CONFIGS[codec], lengths)
    starts = np.cumsum([0, *lengths[:-1]])
    assert [e.first_frame for e in episodes] == starts.tolist()
    assert [e.from_timestamp for e in episodes] == pytest.approx((starts / FPS).tolist(), abs=1e-12)
    assert [e.to_timestamp for e in episodes] == pytest.approx(((starts + lengths) / FPS).tolist(), abs=1e-12)
    assert_episodes_read_back(path, episodes, lengths)
    # A regular mp4 as LeRobot writes it: one stream in LeRobot's time base 1/(fps*1024), a frame
    # period apart from 0 across the episodes, the index (moov) before the frames, no fragments.
    probe = probe_video(path)
    assert (probe.codec_name, probe.width, probe.height) == (codec, WIDTH, HEIGHT)
    assert probe.time_base == Fraction(1, FPS * 1024) and probe.start_pts == 0
    assert sorted(p[0] for p in probe.packets) == (np.arange(sum(lengths)) * 1024).tolist()
    data = path.read_bytes()
    assert data.index(b"moov") < data.index(b"mdat") and b"moof" not in data


def test_lerobot_defaults_and_codec_options() -> None:
    config = RGBEncoderConfig()
    assert (config.vcodec, config.pix_fmt, config.g, config.crf, config.preset) == (
        "libsvtav1",
        "yuv420p",
        2,
        30,
        12,
    )
    assert config.get_codec_options(encoder_threads=3, as_strings=True) == {
        "g": "2", "crf": "30", "preset": "12", "svtav1-params": "fast-decode=0:lp=3",
    }  # fmt: skip
    h264 = RGBEncoderConfig(vcodec="h264", fast_decode=1, extra_options={"crf": 1, "tune": "film", "bf": 0})
    assert h264.get_codec_options(encoder_threads=2) == {
        "g": 2,
        "crf": 30,
        "tune": "fastdecode",
        "threads": 2,
        "bf": 0,
    }
    assert RGBEncoderConfig(vcodec="av1").vcodec == "libsvtav1"
    with pytest.raises(ValueError, match="Invalid vcodec 'vp9'"):
        RGBEncoderConfig(vcodec="vp9")


def test_the_episodes_ended_before_a_kill_survive_it(tmp_path: Path) -> None:
    """SIGKILL while an episode is being recorded: the file holds exactly the ended episodes, and
    the rewrite that repair makes turns it into a regular mp4 of those frames."""
    path = tmp_path / "killed.mp4"
    child = textwrap.dedent(f"""
        import sys
        sys.path.insert(0, {str(Path(__file__).parent.parent)!r})
        from synth import paint_frame
        from dexloop.video import RGBEncoderConfig, open_encoder
        encoder = open_encoder({str(path)!r}, RGBEncoderConfig(), width={WIDTH}, height={HEIGHT}, fps={FPS})
        for episode, length in enumerate([4, 6]):
            for frame in range(length):
                encoder.add_frame(paint_frame(episode, frame, {HEIGHT}, {WIDTH}))
            encoder.end_episode()
        for frame in range(5):
            encoder.add_frame(paint_frame(2, frame, {HEIGHT}, {WIDTH}))
        print("ready", flush=True)
        sys.stdin.read()
    """)
    process = subprocess.Popen(
        [sys.executable, "-c", child],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    assert process.stdout.readline().strip() == b"ready"
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    # The fragmented file reads as it is: the two ended episodes, none of the third.
    decoder = VideoDecoder(str(path))
    frames = decoder.decode(np.arange(10) / FPS, 1e-4, channels_last=True)
    for n, (episode, frame) in enumerate([(0, f) for f in range(4)] + [(1, f) for f in range(6)]):
        assert_painted_frame(frames[n], episode, frame)
    with pytest.raises(VideoEncodeError, match="10 complete frames where 11 were expected"):
        rewrite_as_regular_mp4(str(path), 11)
    assert rewrite_as_regular_mp4(str(path), 10) == 10
    assert b"moof" not in path.read_bytes()
    assert VideoDecoder(str(path)).info.frame_count == 10


def test_a_discarded_episode_leaves_no_frame(tmp_path: Path) -> None:
    path = tmp_path / "discard.mp4"
    encoder = open_encoder(str(path), CONFIGS["h264"], width=WIDTH, height=HEIGHT, fps=FPS)
    for frame in range(3):
        encoder.add_frame(paint_frame(0, frame, HEIGHT, WIDTH))
    first = encoder.end_episode()
    for frame in range(4):
        encoder.add_frame(paint_frame(9, frame, HEIGHT, WIDTH))
    encoder.discard_episode()
    for frame in range(2):
        encoder.add_frame(paint_frame(1, frame, HEIGHT, WIDTH))
    second = encoder.end_episode()
    encoder.close()
    assert (second.first_frame, second.from_timestamp) == (3, pytest.approx(0.3))
    assert_episodes_read_back(path, [first, second], [3, 2])


def test_a_full_queue_waits_and_loses_no_frame(tmp_path: Path) -> None:
    path = tmp_path / "pressure.mp4"
    encoder = open_encoder(str(path), CONFIGS["av1"], width=WIDTH, height=HEIGHT, fps=FPS, queue_frames=2)
    frames = [paint_frame(0, n, HEIGHT, WIDTH) for n in range(40)]
    for frame in frames:  # far faster than the encoder: the queue fills
        encoder.add_frame(frame)
    episode = encoder.end_episode()
    stats = encoder.stats
    encoder.close()
    assert (stats.capacity, stats.frames_added, stats.frames_encoded) == (2, 40, 40)
    assert stats.full_waits > 0 and stats.waited_s > 0 and stats.max_depth == 2
    assert_episodes_read_back(path, [episode], [40])


def test_frames_of_another_layout_are_copied_or_refused(tmp_path: Path) -> None:
    encoder = open_encoder(str(tmp_path / "a.mp4"), CONFIGS["h264"], width=WIDTH, height=HEIGHT, fps=FPS)
    padded = np.zeros((HEIGHT, WIDTH + 8, 3), np.uint8)
    padded[:, :WIDTH] = paint_frame(0, 0, HEIGHT, WIDTH)
    encoder.add_frame(padded[:, :WIDTH])  # rows apart by more than a row: taken as they are
    for bad, match in [
        (np.zeros((HEIGHT, WIDTH, 4), np.uint8), r"shape \(64, 96, 4\) where the video takes \(64, 96, 3\)"),
        (np.zeros((WIDTH, HEIGHT, 3), np.uint8), r"shape \(96, 64, 3\)"),
        (np.zeros((3, HEIGHT, WIDTH), np.uint8), r"shape \(3, 64, 96\)"),
        (np.zeros((HEIGHT, WIDTH, 3), np.uint8)[:, ::-1], "packed RGB"),
        (np.zeros((HEIGHT, WIDTH), np.uint8), r"shape \(64, 96\) where"),
    ]:
        with pytest.raises(VideoEncodeError, match=match) as raised:
            encoder.add_frame(bad)
        assert "a.mp4" in str(raised.value)
    with pytest.raises(VideoEncodeError, match="another dtype than uint8"):
        encoder.add_frame(np.full((HEIGHT, WIDTH, 3), 0.5, np.float32))  # never cast to uint8
    episode = encoder.end_episode()
    encoder.close()
    assert_episodes_read_back(tmp_path / "a.mp4", [episode], [1])


@pytest.mark.parametrize("codec", sorted(CONFIGS))
def test_an_existing_file_is_refused_and_kept(tmp_path: Path, codec: str) -> None:
    # The codec instance that makes the stream header is already open when the file is refused;
    # SVT-AV1 would never return from freeing it unless it is retired properly on that error.
    existing = tmp_path / "exists.mp4"
    existing.write_bytes(b"recorded")
    for _ in range(2):
        with pytest.raises(VideoEncodeError, match="exists.mp4: the file already exists"):
            open_encoder(str(existing), CONFIGS[codec], width=WIDTH, height=HEIGHT, fps=FPS)
    assert existing.read_bytes() == b"recorded"


def test_bad_settings_and_calls_are_typed_errors(tmp_path: Path) -> None:
    cases = [
        (
            RGBEncoderConfig(vcodec="h264", extra_options={"no-such-option": 1}),
            {},
            "has no option 'no-such-option'",
        ),
        (RGBEncoderConfig(pix_fmt="yuv999p"), {}, "unknown pixel format 'yuv999p'"),
        (RGBEncoderConfig(), {"height": 48}, "cannot open encoder libsvtav1 for 96x48"),
        (RGBEncoderConfig(vcodec="h264"), {"fps": 0}, "fps 0 is not positive"),
    ]
    for number, (config, override, match) in enumerate(cases):
        size = {"width": WIDTH, "height": HEIGHT, "fps": FPS, **override}
        with pytest.raises(VideoEncodeError, match=match):
            open_encoder(str(tmp_path / f"bad{number}.mp4"), config, **size)
    encoder = open_encoder(str(tmp_path / "calls.mp4"), CONFIGS["h264"], width=WIDTH, height=HEIGHT, fps=FPS)
    with pytest.raises(VideoEncodeError, match="at least one frame"):
        encoder.end_episode()
    encoder.add_frame(paint_frame(0, 0, HEIGHT, WIDTH))
    with pytest.raises(VideoEncodeError, match="episode in progress"):
        encoder.close()
    encoder.end_episode()
    encoder.close()
    with pytest.raises(VideoEncodeError, match="closed"):
        encoder.add_frame(paint_frame(0, 1, HEIGHT, WIDTH))


def test_a_full_disk_fails_the_episode_and_keeps_the_saved_ones(tmp_path: Path) -> None:
    """The file may not grow past a limit (RLIMIT_FSIZE, as a full disk): the episode that does not
    fit fails with a VideoEncodeError, and the episodes ended before it are intact."""
    path = tmp_path / "full.mp4"
    child = textwrap.dedent(f"""
        import json, resource, signal, sys
        sys.path.insert(0, {str(Path(__file__).parent.parent)!r})
        from synth import paint_frame
        from dexloop.errors import VideoEncodeError
        from dexloop.video import RGBEncoderConfig, open_encoder
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit then fails with EFBIG
        resource.setrlimit(resource.RLIMIT_FSIZE, (60_000, 60_000))
        encoder = open_encoder({str(path)!r}, RGBEncoderConfig(vcodec="h264", crf=0), width={WIDTH}, height={HEIGHT}, fps={FPS})
        saved = []
        try:
            for episode in range(100):
                for frame in range(5):
                    encoder.add_frame(paint_frame(episode, frame, {HEIGHT}, {WIDTH}))
                saved.append(encoder.end_episode().frames)
        except VideoEncodeError as error:
            print(json.dumps({{"saved": saved, "error": str(error)}}))
    """)
    completed = subprocess.run([sys.executable, "-c", child], capture_output=True, text=True, timeout=120)
    outcome = json.loads(completed.stdout)
    assert "full.mp4" in outcome["error"] and "File too large" in outcome["error"]
    saved = outcome["saved"]
    assert len(saved) >= 2
    decoder = VideoDecoder(str(path))
    frames = decoder.decode(np.arange(5 * len(saved)) / FPS, 1e-4, channels_last=True)
    for n in range(5 * len(saved)):
        assert_painted_frame(frames[n], n // 5, n % 5)
    assert rewrite_as_regular_mp4(str(path), 5 * len(saved)) == 5 * len(saved)


def depth_codes(frame: int, height: int = HEIGHT, width: int = WIDTH) -> np.ndarray:
    """12-bit codes of a depth map: a ramp drifting with the frame, a near block moving across it."""
    y, x = np.mgrid[0:height, 0:width]
    codes = 600 + 27 * x + 8 * y + 5 * frame
    codes[10:30, frame * 3 : frame * 3 + 16] = 250 + frame
    return codes.astype(np.uint16)


def test_depth_codes_round_trip_exactly_across_episodes_of_any_length(tmp_path: Path) -> None:
    from dexloop.video import DepthEncoderConfig

    config = DepthEncoderConfig()
    assert (config.vcodec, config.pix_fmt, config.g, config.crf) == ("hevc", "gray12le", 2, 30)
    assert config.get_codec_options(as_strings=True) == {"g": "2", "crf": "30", "x265-params": "lossless=1"}
    info = {"video.codec": "hevc", "video.depth_min": 0.05, "video.shift": 2.5, "video.extra_options": {}}
    restored = DepthEncoderConfig.from_video_info(info)
    assert (restored.depth_min, restored.depth_max, restored.shift) == (0.05, 10.0, 2.5)
    assert restored.extra_options == {"x265-params": "lossless=1"}  # {} means the default, as in LeRobot

    path = tmp_path / "depth.mp4"
    encoder = open_encoder(path, config, width=WIDTH, height=HEIGHT, fps=FPS)
    frame = 0
    for length in (1, 2, 6, 1, 3):  # x265 reorders only episodes of 3 frames or more
        for _ in range(length):
            codes = depth_codes(frame)
            if frame % 3 == 1:
                codes = codes[..., None]  # (H, W, 1)
            elif frame % 3 == 2:
                wide = np.zeros((HEIGHT, WIDTH + 5), np.uint16)
                wide[:, :WIDTH] = codes
                codes = wide[:, :WIDTH]  # rows further apart than the frame's width
            encoder.add_frame(codes)
            frame += 1
        encoder.end_episode()
    encoder.close()
    decoder = VideoDecoder(str(path))
    decoded = decoder.decode_gray16(np.arange(frame) / FPS)
    assert decoded.shape == (frame, 1, HEIGHT, WIDTH) and decoded.dtype == np.uint16
    assert decoder.info.codec == "hevc" and decoder.info.pix_fmt == "gray12le"
    for index in range(frame):
        np.testing.assert_array_equal(decoded[index, 0], depth_codes(index), err_msg=f"frame {index}")


def test_depth_frames_and_settings_of_another_kind_are_refused(tmp_path: Path) -> None:
    from dexloop.video import DepthEncoderConfig

    encoder = open_encoder(tmp_path / "d.mp4", DepthEncoderConfig(), width=WIDTH, height=HEIGHT, fps=FPS)
    with pytest.raises(VideoEncodeError, match="uint16"):
        encoder.add_frame(depth_codes(0).astype(np.uint8))
    with pytest.raises(VideoEncodeError, match="shape"):
        encoder.add_frame(np.zeros((HEIGHT, WIDTH, 3), np.uint16))
    with pytest.raises(VideoEncodeError, match="packed"):
        encoder.add_frame(np.zeros((HEIGHT, 2 * WIDTH), np.uint16)[:, ::2])
    too_large = depth_codes(0)
    too_large[3, 4] = 4096  # 13 bits
    encoder.add_frame(too_large)
    with pytest.raises(VideoEncodeError, match="4096"):
        encoder.end_episode()
    with pytest.raises(ValueError, match="pix_fmt"):
        DepthEncoderConfig(pix_fmt="yuv420p12le")
    with pytest.raises(VideoEncodeError, match="input_format"):
        from dexloop._core.video import StreamingEncoder

        StreamingEncoder(str(tmp_path / "e.mp4"), "libx265", WIDTH, HEIGHT, FPS, input_format="gray8")


def thread_policies() -> dict[int, tuple[int, int]]:
    """(policy, priority) of every thread of this process, by thread id."""
    policies = {}
    for name in os.listdir("/proc/self/task"):
        with contextlib.suppress(OSError):  # the thread ended meanwhile
            policies[int(name)] = (
                os.sched_getscheduler(int(name)),
                os.sched_getparam(int(name)).sched_priority,
            )
    return policies


def test_encoding_av1_leaves_every_threads_scheduling_alone(tmp_path):
    """SVT-AV1 switches the thread opening an encoder to SCHED_FIFO 99 where the process may, and
    its encoder threads inherit it. dexloop's encoder keeps the caller as it was and its threads
    off real-time policies. (Where this process may not raise itself to real time, SVT-AV1 cannot
    either and the assertions hold trivially; CI runs as root, where they are the check.)"""
    caller = threading.get_native_id()
    before = thread_policies()
    seen = []
    encoder = open_encoder(str(tmp_path / "av1.mp4"), RGBEncoderConfig(), width=128, height=96, fps=10)
    for episode in range(2):
        for index in range(12):
            encoder.add_frame(paint_frame(episode, index, 96, 128))
            seen.append(thread_policies())
        encoder.end_episode()
    encoder.close()
    seen.append(thread_policies())
    assert all(policies[caller] == before[caller] for policies in seen if caller in policies)
    realtime = {os.SCHED_FIFO, os.SCHED_RR}
    started = [policy for policies in seen for tid, policy in policies.items() if tid not in before]
    assert started, "the encoder's threads were not seen"
    assert not [policy for policy in started if policy[0] in realtime]
