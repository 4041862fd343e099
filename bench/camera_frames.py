"""Synthetic camera frames whose encoding and decoding cost about what real footage costs: a smooth
random scene (fixed per episode) panning slowly, a bright object crossing it, and sensor noise.
Shared by the benchmarks, so that each measures the same kind of content."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np


def _scene(episode: int, height: int, width: int, pan_frames: int) -> np.ndarray:
    rng = np.random.default_rng(1000 + episode)
    coarse = rng.integers(0, 256, size=(height // 16 + 4, (width + 2 * pan_frames) // 16 + 4, 3))
    scene = np.kron(coarse, np.ones((16, 16, 1))).astype(np.float32)
    for axis in (0, 1):  # box-blur the blocks into smooth blobs
        scene = (scene + np.roll(scene, 8, axis=axis) + np.roll(scene, -8, axis=axis)) / 3
    return scene


def _frame_of(scene: np.ndarray, episode: int, frame: int, height: int, width: int) -> np.ndarray:
    x0 = frame * 2  # pans 2 px per frame
    image = scene[:height, x0 : x0 + width].copy()
    cx = int((frame * 3) % width)
    cy = height // 2 + int(30 * np.sin(frame / 15))
    image[max(0, cy - 12) : cy + 12, max(0, cx - 12) : cx + 12] = (230, 60, 40)
    noise = np.random.default_rng(episode * 100_000 + frame).normal(0, 2.0, image.shape)
    return np.clip(image + noise, 0, 255).astype(np.uint8)


def camera_like_frame(episode: int, frame: int, height: int, width: int, pan_frames: int) -> np.ndarray:
    """Frame `frame` (uint8 HWC) of an episode whose scene is wide enough to pan for `pan_frames`."""
    return _frame_of(_scene(episode, height, width, pan_frames), episode, frame, height, width)


def camera_like_episode(episode: int, height: int, width: int, frames: int) -> Iterator[np.ndarray]:
    """The `frames` frames of one episode, the scene made once."""
    scene = _scene(episode, height, width, frames)
    for frame in range(frames):
        yield _frame_of(scene, episode, frame, height, width)
