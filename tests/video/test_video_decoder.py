"""The Python face of the C++ decoder: metadata, decoding into numpy or torch memory, typed errors."""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch
from support import LEROBOT_DATA, requires_ffmpeg

from dexloop.errors import FrameTimestampError, VideoDecodeError
from dexloop.video import DecoderPool, VideoDecoder, decode_video_frames

from synth import CameraSpec, assert_painted_frame, write_v3_dataset

FIXTURE_VIDEO = LEROBOT_DATA / "public_0/videos/observation.images.top/chunk-000/file-000.mp4"


def test_stream_info_of_a_lerobot_video() -> None:
    info = VideoDecoder(str(FIXTURE_VIDEO)).info
    assert (info.codec, info.width, info.height) == ("av1", 96, 64)
    assert info.fps == pytest.approx(30)
    assert info.time_base == (1, 15360)
    assert info.frame_count == 75  # episodes 0 and 1: 45 + 30 frames
    assert info.duration_s == pytest.approx(2.5)


def test_decode_matches_lerobot_pixels() -> None:
    expected = np.load(LEROBOT_DATA / "expected/public_0__plain.npz")
    decoder = VideoDecoder(str(FIXTURE_VIDEO))
    # Items 0, 18 and 54: frames 0 and 18 of episode 0, frame 9 of episode 1 (starting at 1.5 s).
    times = np.array([0.0, 18 / 30, 1.5 + 9 / 30])
    frames = decoder.decode(times)
    assert frames.dtype == np.uint8 and frames.shape == (3, 3, 64, 96)
    for frame, index in zip(frames, (0, 18, 54), strict=True):
        np.testing.assert_array_equal(frame, expected[f"{index}/observation.images.top"])
    channels_last = decoder.decode(times, channels_last=True)
    np.testing.assert_array_equal(channels_last, frames.transpose(0, 2, 3, 1))


def test_decode_into_a_torch_tensor_without_copies() -> None:
    decoder = VideoDecoder(str(FIXTURE_VIDEO))
    out = torch.zeros(2, 3, 64, 96, dtype=torch.uint8)
    decoder.decode_into(np.array([0.5, 0.1]), out)
    np.testing.assert_array_equal(out.numpy(), decoder.decode(np.array([0.5, 0.1])))
    with pytest.raises(ValueError, match="holds 2 frames for 3 timestamps"):
        decoder.decode_into(np.array([0.0, 0.1, 0.2]), out)
    with pytest.raises(ValueError, match="holds 64x90 frames"):
        decoder.decode_into(np.array([0.0]), torch.zeros(1, 3, 64, 90, dtype=torch.uint8))


def test_lerobot_style_decode_function() -> None:
    floats = decode_video_frames(FIXTURE_VIDEO, [0.2, 0.4], tolerance_s=1e-4)
    uint8 = decode_video_frames(FIXTURE_VIDEO, [0.2, 0.4], tolerance_s=1e-4, return_uint8=True)
    assert floats.dtype == torch.float32 and uint8.dtype == torch.uint8
    torch.testing.assert_close(floats, uint8.float() / 255, rtol=0, atol=0)
    with pytest.raises(FrameTimestampError) as raised:
        decode_video_frames(FIXTURE_VIDEO, [0.21], tolerance_s=1e-4)
    assert isinstance(raised.value, ValueError) and "0.210000" in str(raised.value)


def test_open_errors_are_typed(tmp_path: Path) -> None:
    with pytest.raises(VideoDecodeError, match="missing.mp4"):
        VideoDecoder(str(tmp_path / "missing.mp4"))
    (tmp_path / "empty.mp4").write_bytes(b"")
    with pytest.raises(VideoDecodeError, match="empty.mp4"):
        VideoDecoder(str(tmp_path / "empty.mp4"))


@requires_ffmpeg()
def test_pool_decodes_a_batch_across_files_and_sizes(tmp_path: Path) -> None:
    spec = write_v3_dataset(
        tmp_path / "data",
        fps=15,
        episode_lengths=[6, 9],
        cameras={"a": CameraSpec(64, 64), "b": CameraSpec(32, 48, codec="libx264")},
        episodes_per_video_file=1,
    )
    files = [str(spec.episodes[e].videos[k].path) for e in (0, 1) for k in ("a", "b")]
    # Request n: file n % 4, frame n % 6 of that episode.
    count = 12
    file_index = np.arange(count, dtype=np.int32) % 4
    frames_of = np.arange(count) % 6
    timestamps = frames_of / 15
    outputs = [np.zeros((count, 3, 64, 64), np.uint8), torch.zeros(count, 3, 32, 48, dtype=torch.uint8)]
    target = (file_index % 2).astype(np.int32)
    slot = np.arange(count, dtype=np.int64)
    pool = DecoderPool(2)
    pool.decode(files, file_index, timestamps, target, slot, outputs)
    for n in range(count):
        frame = outputs[target[n]][n]
        frame = frame.numpy() if isinstance(frame, torch.Tensor) else frame
        assert_painted_frame(frame, int(file_index[n]) // 2, int(frames_of[n]))
    with pytest.raises(IndexError, match="targets frame 99"):
        pool.decode(files, file_index[:1], timestamps[:1], target[:1], np.array([99]), outputs)


def _ffmpeg_reports_errors(path: Path) -> bool:
    """Whether FFmpeg's command-line tool, decoding every frame, logs any error for `path`."""
    completed = subprocess.run(
        ["ffmpeg", "-nostdin", "-v", "error", "-i", str(path), "-f", "null", "-"], capture_output=True
    )
    return completed.returncode != 0 or bool(completed.stderr.strip())


@requires_ffmpeg()
def test_damage_only_the_demuxers_parser_reports_is_an_error(tmp_path: Path) -> None:
    """libdav1d decodes some AV1 frame headers with flipped bits into wrong pixels without a word;
    FFmpeg's AV1 parser, run by the demuxer over each packet, rejects them in its log. Every flip in
    the headers of a few packets either raises VideoDecodeError or leaves every frame as recorded."""
    spec = write_v3_dataset(
        tmp_path / "data", fps=10, episode_lengths=[10], cameras={"c": CameraSpec(64, 64)}
    )
    path = spec.episodes[0].videos["c"].path
    timestamps = np.arange(10) / 10
    recorded = VideoDecoder(str(path)).decode(timestamps, 1e-4)
    listing = subprocess.run(
        ["ffprobe", "-v", "error", "-select_streams", "0", "-show_entries", "packet=pos", "-of", "csv=p=0", str(path)],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    packet_starts = [int(line) for line in listing.stdout.split()]
    pristine = path.read_bytes()
    damaged = tmp_path / "damaged.mp4"
    outcomes = []
    for start in packet_starts[1:5]:
        for offset in range(start + 4, start + 28):
            data = bytearray(pristine)
            data[offset] ^= 0xFF
            damaged.write_bytes(bytes(data))
            if not _ffmpeg_reports_errors(damaged):
                continue  # a flip no decoder can tell from valid data
            try:
                frames = VideoDecoder(str(damaged)).decode(timestamps, 1e-4)
            except VideoDecodeError as error:
                assert "damaged.mp4" in str(error)
                outcomes.append("error")
                continue
            assert np.array_equal(frames, recorded), f"byte {offset} flipped: wrong frames without an error"
            outcomes.append("same")
    assert "error" in outcomes
