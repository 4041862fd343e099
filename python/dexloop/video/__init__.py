"""Video for LeRobot datasets, on dexloop's C++ FFmpeg core.

decoder: frame-accurate decoding by timestamp (VideoDecoder, DecoderPool, LeRobot's decode_video_frames).
encoder: streaming encoding of camera frames into a dataset's mp4 files with LeRobot's encoder settings
(VideoEncoderConfig, RGBEncoderConfig, DepthEncoderConfig, StreamingEncoder, open_encoder).
remux: stream-copy joining of time ranges of mp4 files (remux_segments), for the dataset tools.
"""

from .decoder import DecoderPool, StreamInfo, VideoDecoder, decode_video_frames
from .encoder import (
    DepthEncoderConfig,
    EncodedEpisode,
    EncoderQueueStats,
    RGBEncoderConfig,
    StreamingEncoder,
    VideoEncoderConfig,
    open_encoder,
    rewrite_as_regular_mp4,
)
from .remux import remux_segments

__all__ = [
    "DecoderPool",
    "DepthEncoderConfig",
    "EncodedEpisode",
    "EncoderQueueStats",
    "RGBEncoderConfig",
    "StreamInfo",
    "StreamingEncoder",
    "VideoDecoder",
    "VideoEncoderConfig",
    "decode_video_frames",
    "open_encoder",
    "remux_segments",
    "rewrite_as_regular_mp4",
]
