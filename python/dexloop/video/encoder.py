"""Streaming video encoding with LeRobot's encoder settings, on dexloop's C++ encoder.

LeRobot describes how a camera is encoded with ``VideoEncoderConfig`` (``lerobot.configs.video``):
codec, pixel format, GOP, CRF, preset, fast-decode and extra codec options, translated per codec
into FFmpeg options by ``get_codec_options``. The same dataclasses live here with the same fields,
defaults, validation and translation, so a config written into a dataset's ``info.json`` by either
library means the same encoding. ``open_encoder`` starts a ``StreamingEncoder`` for one camera file:

    config = RGBEncoderConfig()                        # libsvtav1, yuv420p, g=2, crf=30, preset=12
    encoder = open_encoder("videos/.../file-000.mp4", config, width=640, height=480, fps=30)
    encoder.add_frame(rgb)                             # uint8 (H, W, 3); waits if the queue is full
    episode = encoder.end_episode()                    # from_timestamp / to_timestamp of its frames
    encoder.close()                                    # a regular mp4, as LeRobot writes

Depth cameras get ``DepthEncoderConfig`` (hevc, gray12le, x265 lossless, and the quantiser's
depth_min / depth_max / shift / use_log): their encoder takes uint16 (H, W) frames of 12-bit codes
(``dexloop.datasets.depth.quantize_depth``), stored as they are.
"""

from __future__ import annotations

import logging
import os
import struct
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from dexloop._core.video import (
    PROGRESS_FRAMES_HEADER_BYTES,
    EncodedEpisode,
    EncoderQueueStats,
    StreamingEncoder,
    complete_frames,
    rewrite_as_regular_mp4,
    video_encoder_name,
)
from dexloop.errors import VideoEncodeError

__all__ = [
    "HW_VIDEO_CODECS",
    "LIBSVTAV1_DEFAULT_PRESET",
    "DepthEncoderConfig",
    "EncodedEpisode",
    "EncoderQueueStats",
    "RGBEncoderConfig",
    "StreamingEncoder",
    "VideoEncoderConfig",
    "complete_frames",
    "encode_progress_frames",
    "encoder_arguments",
    "encoder_from_arguments",
    "open_encoder",
    "read_progress_frames",
    "rewrite_as_regular_mp4",
]

logger = logging.getLogger(__name__)

# Hardware encoders "auto" tries, in LeRobot's order of preference.
HW_VIDEO_CODECS = [
    "h264_videotoolbox",
    "hevc_videotoolbox",
    "h264_nvenc",
    "hevc_nvenc",
    "h264_vaapi",
    "h264_qsv",
]
VALID_VIDEO_CODECS = frozenset({"h264", "hevc", "libsvtav1", "libaom-av1", "auto", *HW_VIDEO_CODECS})
VIDEO_CODECS_ALIASES = {"av1": "libsvtav1"}  # the stream's codec name, as info.json records it
LIBSVTAV1_DEFAULT_PRESET = 12
# The fields LeRobot records as ``video.<field>`` in a video feature's info and reads back.
VIDEO_ENCODER_INFO_FIELD_NAMES = ("g", "crf", "preset", "fast_decode", "extra_options", "video_backend")
DEPTH_ENCODER_INFO_FIELD_NAMES = ("depth_min", "depth_max", "shift", "use_log")

# LeRobot's depth quantiser defaults (``lerobot.configs.video``): metres, 12-bit codes.
DEFAULT_DEPTH_MIN = 0.01
DEFAULT_DEPTH_MAX = 10.0
DEFAULT_DEPTH_SHIFT = 3.5
DEFAULT_DEPTH_USE_LOG = True
DEFAULT_DEPTH_PIX_FMT = "gray12le"


@dataclass
class VideoEncoderConfig:
    """LeRobot's ``VideoEncoderConfig``: how one camera's frames are encoded."""

    vcodec: str = "libsvtav1"
    pix_fmt: str = "yuv420p"
    g: int | None = 2
    crf: int | float | None = 30
    preset: int | str | None = None
    fast_decode: int = 0
    video_backend: str = "pyav"  # recorded in info.json as LeRobot does; dexloop encodes in C++
    extra_options: dict[str, Any] = field(default_factory=dict)

    _DEFAULT_CHANNELS: ClassVar[int | None] = None

    def __post_init__(self) -> None:
        self.resolve_vcodec()
        if self.preset is None and self.vcodec == "libsvtav1":
            self.preset = LIBSVTAV1_DEFAULT_PRESET
        if self.g is not None and (not isinstance(self.g, int) or isinstance(self.g, bool) or self.g <= 0):
            raise ValueError(f"g (the keyframe interval) must be a positive integer, got {self.g!r}")

    @classmethod
    def _kwargs_from_video_info(cls, video_info: dict | None) -> dict[str, Any]:
        video_info = video_info or {}
        kwargs: dict[str, Any] = {}
        for source, target in (("video.codec", "vcodec"), ("video.pix_fmt", "pix_fmt")):
            if video_info.get(source) is not None:
                kwargs[target] = video_info[source]
        for name in VIDEO_ENCODER_INFO_FIELD_NAMES:
            value = video_info.get(f"video.{name}")
            if value is None or (name == "extra_options" and not value):
                continue
            kwargs[name] = value
        return kwargs

    @classmethod
    def from_video_info(cls, video_info: dict | None) -> VideoEncoderConfig:
        """LeRobot's ``from_video_info``: the config a feature's ``info`` block records (missing or
        null values take the class defaults)."""
        return cls(**cls._kwargs_from_video_info(video_info))

    def resolve_vcodec(self) -> None:
        """LeRobot's rule: aliases rewritten, the name checked, "auto" resolved to the first hardware
        encoder this FFmpeg has (else libsvtav1), and the encoder required to exist."""
        self.vcodec = VIDEO_CODECS_ALIASES.get(self.vcodec, self.vcodec)
        if self.vcodec not in VALID_VIDEO_CODECS:
            raise ValueError(f"Invalid vcodec '{self.vcodec}'. Must be one of: {sorted(VALID_VIDEO_CODECS)}")
        if self.vcodec == "auto":
            for encoder in HW_VIDEO_CODECS:
                if video_encoder_name(encoder):
                    logger.info("Auto-selected video codec: %s", encoder)
                    self.vcodec = encoder
                    return
            logger.warning("No hardware encoder available, falling back to software encoder 'libsvtav1'")
            self.vcodec = "libsvtav1"
        if not video_encoder_name(self.vcodec):
            raise ValueError(
                f"Unsupported video codec: {self.vcodec}: this FFmpeg build has no encoder for it"
            )

    def get_codec_options(
        self, encoder_threads: int | None = None, as_strings: bool = False
    ) -> dict[str, Any]:
        """The FFmpeg options of this config, per codec as LeRobot translates them (``g`` always;
        ``extra_options`` last, never overriding a structured field)."""
        options: dict[str, Any] = {}

        def set_if(key: str, value: Any) -> None:
            if value is not None:
                options[key] = str(value) if as_strings else value

        set_if("g", self.g)
        if self.vcodec == "libsvtav1":
            set_if("crf", self.crf)
            set_if("preset", self.preset)
            parts = []
            if self.fast_decode is not None:
                parts.append(f"fast-decode={max(0, min(2, self.fast_decode))}")
            if encoder_threads is not None:
                parts.append(f"lp={encoder_threads}")
            if parts:
                set_if("svtav1-params", ":".join(parts))
        elif self.vcodec in ("h264", "hevc"):
            set_if("crf", self.crf)
            set_if("preset", self.preset)
            if self.fast_decode:
                set_if("tune", "fastdecode")
            set_if("threads", encoder_threads)
        elif self.vcodec == "libaom-av1":
            set_if("crf", self.crf)
            set_if("preset", self.preset)
            if encoder_threads is not None:
                set_if("threads", encoder_threads)
                set_if("row-mt", 1)
        elif self.vcodec in ("h264_videotoolbox", "hevc_videotoolbox"):
            if self.crf is not None:
                set_if("q:v", max(1, min(100, 100 - self.crf * 2)))
        elif self.vcodec in ("h264_nvenc", "hevc_nvenc"):
            set_if("rc", 0)
            set_if("qp", self.crf)
            set_if("preset", self.preset)
        elif self.vcodec == "h264_vaapi":
            set_if("qp", self.crf)
        elif self.vcodec == "h264_qsv":
            set_if("global_quality", self.crf)
            set_if("preset", self.preset)
        else:
            set_if("crf", self.crf)
            set_if("preset", self.preset)
        for key, value in self.extra_options.items():
            if key not in options:
                set_if(key, value)
        return options


@dataclass
class RGBEncoderConfig(VideoEncoderConfig):
    """LeRobot's ``RGBEncoderConfig``: a VideoEncoderConfig for 3-channel camera streams."""

    _DEFAULT_CHANNELS: ClassVar[int] = 3


@dataclass
class DepthEncoderConfig(VideoEncoderConfig):
    """LeRobot's ``DepthEncoderConfig``: a depth camera's encoding (HEVC Main 12, gray12le, x265
    lossless, so the 12-bit codes come back exactly) and its quantiser's parameters, in metres."""

    vcodec: str = "hevc"
    pix_fmt: str = DEFAULT_DEPTH_PIX_FMT
    extra_options: dict[str, Any] = field(default_factory=lambda: {"x265-params": "lossless=1"})
    depth_min: float = DEFAULT_DEPTH_MIN
    depth_max: float = DEFAULT_DEPTH_MAX
    shift: float = DEFAULT_DEPTH_SHIFT
    use_log: bool = DEFAULT_DEPTH_USE_LOG

    _DEFAULT_CHANNELS: ClassVar[int] = 1

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.pix_fmt not in ("gray10le", "gray12le", "gray14le", "gray16le"):
            raise ValueError(
                f"pix_fmt {self.pix_fmt!r} does not hold single-channel depth codes: use gray12le "
                "(LeRobot's default) or another one-plane little-endian gray format"
            )
        if self.use_log and self.depth_min + self.shift <= 0:
            raise ValueError(
                "depth_min + shift must be positive for logarithmic quantization, got "
                f"depth_min={self.depth_min} + shift={self.shift} = {self.depth_min + self.shift}"
            )
        if not self.depth_max > self.depth_min:
            raise ValueError(f"depth_max ({self.depth_max}) must be above depth_min ({self.depth_min})")

    @classmethod
    def _kwargs_from_video_info(cls, video_info: dict | None) -> dict[str, Any]:
        kwargs = super()._kwargs_from_video_info(video_info)
        for name in DEPTH_ENCODER_INFO_FIELD_NAMES:
            value = (video_info or {}).get(f"video.{name}")
            if value is not None:
                kwargs[name] = value
        return kwargs


def encoder_arguments(
    config: VideoEncoderConfig,
    *,
    width: int,
    height: int,
    fps: int,
    encoder_threads: int | None = None,
) -> dict[str, Any]:
    """The StreamingEncoder arguments (all but the path and queue size) that encode frames of
    `width` x `height` at `fps` with `config`'s settings, as plain JSON values: a recording's
    journal keeps them, so that a repair encodes a camera's last frames exactly as its encoder
    would have. ``g`` becomes the keyframe interval, the other options go to the codec as given;
    ``threads`` sets the codec's own thread count where LeRobot passes it as an option."""
    options = config.get_codec_options(encoder_threads, as_strings=True)
    gop = int(options.pop("g", 0) or 0) or 12  # FFmpeg's own default where g is None
    if video_encoder_name(config.vcodec) == "libx265":
        # x265 prints its settings to stderr for every episode's codec instance; only errors are
        # worth that (the log level changes nothing in the stream).
        params = options.get("x265-params", "")
        if "log-level" not in params:
            options["x265-params"] = f"{params}:log-level=error" if params else "log-level=error"
    threads = int(options.pop("threads", 0) or 0)
    return {
        "codec": video_encoder_name(config.vcodec),
        "width": int(width),
        "height": int(height),
        "fps": int(fps),
        "pix_fmt": config.pix_fmt,
        "gop": gop,
        "options": [list(item) for item in options.items()],
        "threads": threads,
        "input_format": "gray16" if isinstance(config, DepthEncoderConfig) else "rgb24",
    }


def encoder_from_arguments(path: str, arguments: dict[str, Any], queue_frames: int = 30) -> StreamingEncoder:
    """A StreamingEncoder creating `path` from encoder_arguments' values (VideoEncodeError if the
    codec rejects them)."""
    try:
        return StreamingEncoder(
            str(path),
            **{**arguments, "options": [tuple(item) for item in arguments["options"]]},
            queue_frames=queue_frames,
        )
    except TypeError as error:
        raise VideoEncodeError(f"{path}: {error}") from error


def open_encoder(
    path: str,
    config: VideoEncoderConfig,
    *,
    width: int,
    height: int,
    fps: int,
    encoder_threads: int | None = None,
    queue_frames: int = 30,
) -> StreamingEncoder:
    """A StreamingEncoder creating `path` with `config`'s settings (VideoEncodeError if the codec
    rejects them); a DepthEncoderConfig's takes uint16 (H, W) frames of depth codes."""
    arguments = encoder_arguments(
        config, width=width, height=height, fps=fps, encoder_threads=encoder_threads
    )
    return encoder_from_arguments(path, arguments, queue_frames)


# The header of the raw frames StreamingEncoder.save_progress saves (streaming_encoder.hpp).
_PROGRESS_FRAMES_HEADER = struct.Struct("<8sIIiiqq")
assert _PROGRESS_FRAMES_HEADER.size == PROGRESS_FRAMES_HEADER_BYTES


def read_progress_frames(path: str | os.PathLike[str]) -> tuple[np.ndarray, int]:
    """The raw frames of an episode that save_progress saved before its codec drained, as a
    read-only (frames, H, W, 3) uint8 or (frames, H, W) uint16 array mapped from the file, and the
    index in its mp4 of the episode's first frame. VideoEncodeError when the file is not one, or
    holds fewer bytes than its header promises."""
    path = os.fspath(path)
    try:
        size = os.path.getsize(path)
        with open(path, "rb") as file:
            header = file.read(_PROGRESS_FRAMES_HEADER.size)
    except OSError as error:
        raise VideoEncodeError(f"{path}: cannot read the saved frames ({error})") from error
    if len(header) < _PROGRESS_FRAMES_HEADER.size:
        raise VideoEncodeError(f"{path}: {len(header)} bytes, shorter than a saved-frames header")
    magic, version, input_format, width, height, frames, first_frame = _PROGRESS_FRAMES_HEADER.unpack(header)
    if magic != b"DXLFRAME" or version != 1 or input_format not in (0, 1):
        raise VideoEncodeError(f"{path}: not a file of saved frames (magic {magic!r}, version {version})")
    if width <= 0 or height <= 0 or frames < 0:
        raise VideoEncodeError(f"{path}: its header gives {frames} frames of {width}x{height}")
    dtype, shape = (np.uint8, (height, width, 3)) if input_format == 0 else (np.uint16, (height, width))
    frame_bytes = int(np.prod(shape)) * np.dtype(dtype).itemsize
    expected = _PROGRESS_FRAMES_HEADER.size + frames * frame_bytes
    if size != expected:
        raise VideoEncodeError(
            f"{path}: {size} bytes where its header promises {frames} frames of {width}x{height} "
            f"({expected} bytes)"
        )
    if frames == 0:
        return np.empty((0, *shape), dtype), first_frame
    mapped = np.memmap(
        path, dtype=dtype, mode="r", offset=_PROGRESS_FRAMES_HEADER.size, shape=(frames, *shape)
    )
    return mapped, first_frame


def encode_progress_frames(
    frames_path: str | os.PathLike[str], arguments: dict[str, Any], output_path: str | os.PathLike[str]
) -> int:
    """Encodes the frames of `frames_path` (read_progress_frames) into a new mp4 at `output_path`
    with encoder_arguments' values, as one episode; returns the number of frames."""
    frames, _ = read_progress_frames(frames_path)
    if len(frames) == 0:
        raise VideoEncodeError(f"{os.fspath(frames_path)}: holds no frame")
    expected = (arguments["height"], arguments["width"])
    if frames.shape[1:3] != expected:
        raise VideoEncodeError(
            f"{os.fspath(frames_path)}: frames of {frames.shape[2]}x{frames.shape[1]} for a video of "
            f"{expected[1]}x{expected[0]}"
        )
    encoder = encoder_from_arguments(os.fspath(output_path), arguments)
    for frame in frames:
        encoder.add_frame(frame)
    encoder.end_episode()
    encoder.close()
    return len(frames)
