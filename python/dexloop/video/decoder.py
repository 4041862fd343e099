"""Frame-accurate video decoding with FFmpeg (the decoder LeRobotDataset uses), for direct use.

decoder = VideoDecoder("videos/observation.images.top/chunk-000/file-000.mp4")
decoder.info                       # codec, width, height, fps, time_base, frame_count, duration_s
frames = decoder.decode([0.0, 0.5, 1.0])          # uint8 numpy (3, 3, H, W), frames nearest each time
decode_video_frames(path, [0.0, 0.5], tolerance_s=1e-4)   # LeRobot's function: float32 torch (N, 3, H, W)
decoder.decode_gray16([0.0])      # a depth video's 12-bit codes: uint16 numpy (1, 1, H, W)
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from dexloop._core.video import DecoderPool, StreamInfo, VideoDecoder

if TYPE_CHECKING:
    import torch

__all__ = ["DecoderPool", "StreamInfo", "VideoDecoder", "decode_video_frames"]


def decode_video_frames(
    video_path: str | Path,
    timestamps: Sequence[float],
    tolerance_s: float,
    backend: str | None = None,
    return_uint8: bool = False,
    is_depth: bool = False,
) -> torch.Tensor:
    """LeRobot's ``decode_video_frames``: the frames nearest `timestamps` (seconds) as a torch tensor
    (N, 3, H, W), float32 in [0, 1] or uint8 with `return_uint8`; with `is_depth`, a depth video's
    12-bit codes as uint16 (N, 1, H, W), as LeRobot returns them. `backend` is accepted for
    compatibility and ignored. Raises FrameTimestampError when a frame is further than tolerance_s."""
    import torch  # here: decoding into numpy and encoding need no torch

    decoder = VideoDecoder(str(video_path))
    if is_depth:
        return torch.from_numpy(decoder.decode_gray16(np.asarray(timestamps, dtype=np.float64), tolerance_s))
    frames = torch.from_numpy(decoder.decode(np.asarray(timestamps, dtype=np.float64), tolerance_s))
    return frames if return_uint8 else frames.to(torch.float32).div_(255)
