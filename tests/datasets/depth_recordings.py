"""The depth reference recording of tests/data/lerobot_depth: its features, episodes and the
deterministic depth maps recorded.

LeRobot 0.6.1 recorded it from this recipe (tools/lerobot_reference/make_depth_reference.py); the
depth tests record the same frames with dexloop's writer and compare files and items with LeRobot's.

Two depth cameras and an RGB one: ``depth_mm`` gets uint16 millimetre frames (H, W, 1), ``depth_m``
float32 metre frames (H, W, 1). Each depth map is a smooth ramp (a floor tilting away from the
camera) that drifts from frame to frame, with a near block moving across it and a strip of pixels
without a measurement (0, which LeRobot stores as depth_min). Episodes of 6, 3 and 4 frames: LeRobot
0.6.1 cannot append an episode of 1 or 2 frames to a depth video (x265 does not reorder so few
frames, and its concatenation then refuses the decode times), which dexloop's writer can (tested on
its own).
"""

from __future__ import annotations

import numpy as np

FPS = 10
HEIGHT, WIDTH = 48, 64
IMAGE_HEIGHT, IMAGE_WIDTH = HEIGHT // 4, WIDTH // 4  # the depth-image recording's
LENGTHS = (6, 3, 4)
TASKS = ("look at the table", "look at the shelf", "look at the table")
DEPTH_MM = "observation.images.depth_mm"
DEPTH_M = "observation.images.depth_m"
RGB = "observation.images.rgb"
# Queries dumped by the reference tool: (name, index, delta_timestamps, depth_output_unit).
# Every episode in a video file of its own (the size limit is below any episode): LeRobot 0.6.1
# appends a depth episode to a video by stream copy, and its decoder then skips a frame at the
# episode boundary ("invalid undecodable NALU"), so its multi-episode depth videos cannot be read.
VIDEO_FILES_SIZE_IN_MB = 0.001
QUERIES = (
    ("mm_item0", 0, None, "mm"),
    ("m_item9", 9, None, "m"),
    ("mm_window", 8, {DEPTH_MM: [-0.2, -0.1, 0.0], DEPTH_M: [-0.1, 0.0]}, "mm"),
    ("m_window", 2, {DEPTH_MM: [-0.3, 0.0], DEPTH_M: [0.0, 0.1]}, "m"),
)


def features(images: bool = False) -> dict:
    """The features of the video recording, or with `images` of the depth-image one (the same depth
    cameras as image features of a quarter of the size, stored as TIFF in the parquet; no RGB camera)."""
    camera = {"names": ["height", "width", "channels"]}
    if images:
        depth = {
            "dtype": "image",
            "shape": (IMAGE_HEIGHT, IMAGE_WIDTH, 1),
            **camera,
            "info": {"is_depth_map": True},
        }
        return {
            "observation.state": {"dtype": "float32", "shape": (2,), "names": ["pan", "tilt"]},
            DEPTH_MM: dict(depth, info=dict(depth["info"])),
            DEPTH_M: dict(depth, info=dict(depth["info"])),
        }
    return {
        "observation.state": {"dtype": "float32", "shape": (2,), "names": ["pan", "tilt"]},
        DEPTH_MM: {
            "dtype": "video",
            "shape": (HEIGHT, WIDTH, 1),
            **camera,
            "info": {"is_depth_map": True},
        },
        DEPTH_M: {
            "dtype": "video",
            "shape": (HEIGHT, WIDTH, 1),
            **camera,
            "info": {"is_depth_map": True},
        },
        RGB: {"dtype": "video", "shape": (HEIGHT, WIDTH, 3), **camera},
    }


def depth_metres(episode: int, frame: int) -> np.ndarray:
    """float32 (H, W) metres: a ramp from 0.3 m to about 4 m, a block at 0.45 m, a strip of 0."""
    y, x = np.mgrid[0:HEIGHT, 0:WIDTH].astype(np.float64)
    t = episode * 10 + frame
    depth = 0.3 + 0.055 * x + 0.012 * y + 0.01 * t
    x0 = (4 + 5 * t) % (WIDTH - 12)
    depth[12:26, x0 : x0 + 12] = 0.45 + 0.002 * t
    depth[HEIGHT - 3 :, :8] = 0.0
    return depth.astype(np.float32)


def depth_millimetres(episode: int, frame: int) -> np.ndarray:
    """uint16 (H, W) millimetres: another view of the same scene (mirrored, 7 mm further)."""
    metres = depth_metres(episode, frame)[:, ::-1]
    return np.where(metres > 0, np.rint(metres * 1000.0 + 7.0), 0).astype(np.uint16)


def rgb(episode: int, frame: int) -> np.ndarray:
    image = np.empty((HEIGHT, WIDTH, 3), dtype=np.uint8)
    image[..., 0] = (frame * 23) % 256
    image[..., 1] = (episode * 67 + 30) % 256
    image[..., 2] = ((np.arange(WIDTH) * 255) // (WIDTH - 1)).astype(np.uint8)[None, :]
    return image


def frame(episode: int, index: int, images: bool = False) -> dict:
    """The frame add_frame gets (LeRobot takes depth cameras as (H, W, 1)); with `images`, the
    depth-image recording's (every fourth row and column of the same maps)."""
    if images:
        return {
            "observation.state": np.array([episode, index], dtype=np.float32),
            DEPTH_MM: depth_millimetres(episode, index)[::4, ::4, None].copy(),
            DEPTH_M: depth_metres(episode, index)[::4, ::4, None].copy(),
            "task": TASKS[episode],
        }
    return {
        "observation.state": np.array([episode, index], dtype=np.float32),
        DEPTH_MM: depth_millimetres(episode, index)[..., None],
        DEPTH_M: depth_metres(episode, index)[..., None],
        RGB: rgb(episode, index),
        "task": TASKS[episode],
    }


def record(dataset, images: bool = False) -> None:
    """Records every episode into a dataset made by ``LeRobotDataset.create`` (LeRobot's or
    dexloop's), then finalizes it."""
    for episode, length in enumerate(LENGTHS):
        for index in range(length):
            dataset.add_frame(frame(episode, index, images))
        dataset.save_episode()
    dataset.finalize()


def frame_of_row(row: int) -> tuple[int, int]:
    """(episode, frame index) of a global row."""
    for episode, length in enumerate(LENGTHS):
        if row < length:
            return episode, row
        row -= length
    raise IndexError(row)


def quantiser_millimetres() -> np.ndarray:
    """uint16 millimetres the quantiser reference covers: every 13th value of the whole range and the
    limits' neighbourhoods (10 mm, 10 m) value by value."""
    values = np.concatenate([np.arange(0, 65536, 13), np.arange(0, 40), np.arange(9980, 10020), [65535]])
    return np.unique(values).astype(np.uint16).reshape(1, -1)


def quantiser_metres() -> np.ndarray:
    """float32 metres the quantiser reference covers: -1 m to 15 m (negative, in range, beyond)."""
    return np.linspace(-1.0, 15.0, 8001, dtype=np.float32).reshape(1, -1)
