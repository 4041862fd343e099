"""Synthetic LeRobot datasets for tests, and LeRobot's item rules stated independently.

Two halves, both free of dexloop imports so that they can judge dexloop:

* Writers (:func:`write_v3_dataset`, :func:`write_v21_dataset`) put a small dataset on disk in the
  layout LeRobot 0.6.1 (v3.0) or 0.3.3 (v2.1) writes (see ``shared/reference/lerobot-dataset-format.md``),
  with painted video frames (:func:`paint_frame`) whose (episode, frame) can be read back after a lossy
  codec (:func:`identify_frame`, :func:`assert_painted_frame`). Videos are encoded with the ``ffmpeg``
  command-line tool, one encode per episode followed by a stream-copy concatenation, as LeRobot does.
* Reference rules (:func:`reference_item`, :func:`check_delta_timestamps_reference`) state what
  ``LeRobotDataset(root, delta_timestamps=..., episodes=...)[position]`` returns in LeRobot 0.6.1,
  reading the files with pyarrow and plain Python. They are written to be obviously correct, not fast.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

# ----------------------------------------------------------------------------------------------
# Painted frames
# ----------------------------------------------------------------------------------------------
# The scheme of the shared LeRobot fixtures (and of tools/lerobot_reference): red encodes the frame,
# green the episode, blue is a horizontal ramp, and an inverted block moves 5 px per frame. The block
# sits 8 rows down when the image is tall enough (measured on the shared fixture's decoded frames).

RED_STEP = 23  # red levels between consecutive frames: (frame * 23) mod 256
GREEN_STEP = 67  # green levels between consecutive episodes: (episode * 67 + 30) mod 256
GREEN_OFFSET = 30
BLOCK_STEP = 5  # block moves 5 px per frame: x = (frame * 5) mod (width - block_width)

# Largest level error assert_painted_frame accepts. A neighbouring frame is 23 red levels away, so a
# frame is never confused with its neighbour; codec error measured at crf 30 is a few levels.
DEFAULT_LEVEL_TOLERANCE = 10


@dataclass(frozen=True)
class BlockGeometry:
    """Where the inverted block of a painted frame lies (it moves with the frame)."""

    top: int
    height: int
    width: int


def _block_width(width: int) -> int:
    return 16 if width >= 32 else width // 2


def block_geometry(height: int, width: int) -> BlockGeometry:
    if height < 1 or width < 2:
        raise ValueError(f"painted frames need height >= 1 and width >= 2, got {height}x{width}")
    block_width = _block_width(width)
    block_height = min(block_width, height)
    top = 8 if height >= block_height + 8 else 0
    return BlockGeometry(top=top, height=block_height, width=block_width)


def painted_levels(episode_index: int, frame_index: int) -> tuple[int, int]:
    """(red, green) levels painted outside the block of frame `frame_index` of episode `episode_index`."""
    return (frame_index * RED_STEP) % 256, (episode_index * GREEN_STEP + GREEN_OFFSET) % 256


def painted_block_x(frame_index: int, width: int) -> int:
    """Left edge of the inverted block in a painted frame of this width."""
    return (frame_index * BLOCK_STEP) % (width - _block_width(width))


# A frame source: (episode_index, frame_index, height, width) -> uint8 HWC RGB.
Painter = Callable[[int, int, int, int], np.ndarray]


def paint_frame(episode_index: int, frame_index: int, height: int, width: int) -> np.ndarray:
    """The uint8 HWC RGB image of frame `frame_index` of episode `episode_index`."""
    geometry = block_geometry(height, width)
    red, green = painted_levels(episode_index, frame_index)
    image = np.empty((height, width, 3), dtype=np.uint8)
    image[..., 0] = red
    image[..., 1] = green
    image[..., 2] = (np.arange(width) * 255 // (width - 1))[None, :]
    x = painted_block_x(frame_index, width)
    rows = slice(geometry.top, geometry.top + geometry.height)
    cols = slice(x, x + geometry.width)
    image[rows, cols] = 255 - image[rows, cols]
    return image


@dataclass(frozen=True)
class FrameReading:
    """What :func:`identify_frame` measured in a decoded frame.

    `red` and `green` are medians over rows clear of the block: painted values are
    ``(frame*23) mod 256`` and ``(episode*67+30) mod 256``, and after AV1 / H.264 at crf 30 they come
    back within a few levels. Red alone repeats every 256 frames and comes within 3 levels of frame
    f±11 (23*11 = 253), so the block position `block_x` (5 px per frame) separates those; it is None
    when the image has no block-free rows to compare against. Green separates episodes only within a
    short range (episodes 23 apart differ by 5 levels), so compare against known candidates.
    """

    red: float
    green: float
    block_x: int | None

    def mismatch(self, episode_index: int, frame_index: int, width: int) -> float:
        """Distance in grey levels to the painted values; a block offset of 5 px counts as 23 levels."""
        red, green = painted_levels(episode_index, frame_index)
        distance = abs(self.red - red) + abs(self.green - green)
        if self.block_x is not None:
            distance += abs(self.block_x - painted_block_x(frame_index, width)) * RED_STEP / BLOCK_STEP
        return distance


def as_hwc_uint8(image: Any) -> np.ndarray:
    """An HWC uint8 view of a CHW or HWC image (uint8, or float in [0, 1] as LeRobot 0.3.3 returned)."""
    array = np.asarray(image)
    if array.ndim != 3 or 3 not in (array.shape[0], array.shape[-1]):
        raise ValueError(f"expected a CHW or HWC RGB image, got shape {array.shape}")
    if array.shape[-1] != 3:
        array = array.transpose(1, 2, 0)
    if np.issubdtype(array.dtype, np.floating):
        array = np.clip(np.rint(array * 255.0), 0, 255)
    return array.astype(np.uint8, copy=False)


def identify_frame(image: Any) -> FrameReading:
    """Measure the painted levels and block position of a decoded frame (CHW or HWC)."""
    pixels = as_hwc_uint8(image).astype(np.float64)
    height, width, _ = pixels.shape
    geometry = block_geometry(height, width)
    # Two rows of margin around the block: 4:2:0 chroma is shared by 2x2 pixels, and codecs smear
    # a sharp edge over a pixel or two.
    clear = np.ones(height, dtype=bool)
    clear[max(0, geometry.top - 2) : geometry.top + geometry.height + 2] = False
    if not clear.any():
        # No row is clear of the block (height <= block width + 2): medians over the whole image,
        # right while the block covers less than half of it.
        return FrameReading(
            red=float(np.median(pixels[..., 0])), green=float(np.median(pixels[..., 1])), block_x=None
        )
    background = pixels[clear]
    # The painted background is constant down each column, so each column of the block rows either
    # matches the clear rows of that column or their inverse. Fit the block: per column, how much
    # better the inverse explains the block rows (squared error), summed over each window of
    # block-width columns. Signed, this ignores the half-inverted ghosts that P-frames leave behind.
    column_background = np.median(background, axis=0)
    block_rows = pixels[geometry.top : geometry.top + geometry.height]
    inversion_gain = (
        (block_rows - column_background) ** 2 - (block_rows - (255 - column_background)) ** 2
    ).sum(axis=(0, 2))
    window_gains = np.convolve(inversion_gain, np.ones(geometry.width), mode="valid")
    return FrameReading(
        red=float(np.median(background[..., 0])),
        green=float(np.median(background[..., 1])),
        block_x=int(np.argmax(window_gains)),
    )


def closest_painted_frame(image: Any, candidates: Iterable[tuple[int, int]]) -> tuple[int, int]:
    """The (episode_index, frame_index) among `candidates` whose painting is nearest to `image`."""
    width = as_hwc_uint8(image).shape[1]
    reading = identify_frame(image)
    return min(candidates, key=lambda pair: reading.mismatch(pair[0], pair[1], width))


def assert_painted_frame(
    image: Any, episode_index: int, frame_index: int, *, tolerance: float = DEFAULT_LEVEL_TOLERANCE
) -> None:
    """Raise AssertionError unless `image` is the painted frame (episode_index, frame_index)."""
    width = as_hwc_uint8(image).shape[1]
    reading = identify_frame(image)
    red, green = painted_levels(episode_index, frame_index)
    expected_x = painted_block_x(frame_index, width)
    block_ok = reading.block_x is None or abs(reading.block_x - expected_x) <= 1
    if abs(reading.red - red) > tolerance or abs(reading.green - green) > tolerance or not block_ok:
        raise AssertionError(
            f"decoded frame is not (episode {episode_index}, frame {frame_index}): measured {reading}, "
            f"painted red={red} green={green} block_x={expected_x} (tolerance {tolerance} levels)"
        )


# ----------------------------------------------------------------------------------------------
# ffmpeg command-line helpers
# ----------------------------------------------------------------------------------------------
CODEC_CANONICAL_NAMES = {"libsvtav1": "av1", "libx264": "h264", "libx265": "hevc"}
SVT_AV1_PRESET = 12  # LeRobot's default for libsvtav1 (SVT maps it to 10)
# Debian's SVT-AV1 1.4 rejects smaller frames ("Source Width must be at least 64"); the newer SVT-AV1
# bundled with PyAV (which LeRobot uses) accepts them, so LeRobot-recorded fixtures can be smaller.
SVT_AV1_MIN_SIDE = 64


def _run(command: Sequence[str], stdin: bytes | None = None) -> bytes:
    completed = subprocess.run(command, input=stdin, capture_output=True, check=False)
    if completed.returncode != 0:
        raise RuntimeError(
            f"{' '.join(command)} failed ({completed.returncode}): "
            f"{completed.stderr.decode(errors='replace')[-2000:]}"
        )
    return completed.stdout


@dataclass(frozen=True)
class CameraSpec:
    """Encoder settings of one camera, as LeRobot's encoder config names them."""

    height: int
    width: int
    codec: str = "libsvtav1"
    g: int = 2
    crf: int = 30
    pix_fmt: str = "yuv420p"

    def __post_init__(self) -> None:
        if self.codec not in CODEC_CANONICAL_NAMES:
            raise ValueError(f"codec {self.codec!r} is not one of {sorted(CODEC_CANONICAL_NAMES)}")
        block_geometry(self.height, self.width)
        if self.codec == "libsvtav1" and min(self.height, self.width) < SVT_AV1_MIN_SIDE:
            raise ValueError(
                f"the ffmpeg CLI's libsvtav1 needs frames of at least {SVT_AV1_MIN_SIDE}x{SVT_AV1_MIN_SIDE}, "
                f"got {self.height}x{self.width}; use libx264 for smaller frames"
            )


@dataclass(frozen=True)
class _EncodeJob:
    """One episode of one camera, to be encoded alone into `path`."""

    path: Path
    episode_index: int
    length: int
    camera: CameraSpec
    paint: Painter = paint_frame


def _encode_episode(job: _EncodeJob, fps: int) -> None:
    """Encode the painted frames of one episode to its own mp4, as LeRobot encodes each episode."""
    camera = job.camera
    frames = np.stack(
        [job.paint(job.episode_index, f, camera.height, camera.width) for f in range(job.length)]
    )
    preset = ["-preset", str(SVT_AV1_PRESET)] if camera.codec == "libsvtav1" else []
    job.path.parent.mkdir(parents=True, exist_ok=True)
    _run(
        [
            "ffmpeg", "-nostdin", "-v", "error", "-y",
            "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{camera.width}x{camera.height}",
            "-framerate", str(fps), "-i", "-",
            "-c:v", camera.codec, "-g", str(camera.g), "-crf", str(camera.crf), *preset,
            "-pix_fmt", camera.pix_fmt, str(job.path),
        ],
        stdin=frames.tobytes(),
    )  # fmt: skip


def _encode_episodes(jobs: Sequence[_EncodeJob], fps: int) -> None:
    """Run the encodes side by side: each is its own ffmpeg process, mostly start-up time."""
    with ThreadPoolExecutor() as pool:
        list(pool.map(lambda job: _encode_episode(job, fps), jobs))  # re-raises the first failure


def _join_episode_videos(parts: Sequence[_EncodeJob], path: Path, fps: int) -> None:
    """Put the encoded episodes `parts` back to back into the mp4 `path`, as LeRobot does: a file of
    one episode is the encoder's output as is (moov after mdat); more are joined by stream copy
    through the concat demuxer into a faststart file, each episode starting on its own keyframe."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if len(parts) == 1:
        shutil.move(parts[0].path, path)
        return
    # Explicit durations: by default the concat demuxer advances by each part's container duration,
    # which mp4 stores in whole milliseconds, leaving gaps of up to 1 ms whenever length/fps is not
    # a whole number of ms. LeRobot's PyAV concatenation gives continuous PTS; durations cut at
    # cumulative microsecond boundaries give the same, with no drift.
    lines = ["ffconcat version 1.0"]
    frames_so_far, start_us = 0, 0
    for part in parts:
        frames_so_far += part.length
        end_us = round(Fraction(frames_so_far * 1_000_000, fps))
        lines += [f"file '{part.path}'", f"duration {end_us - start_us}us"]
        start_us = end_us
    listing = parts[0].path.with_name("parts.ffconcat")  # beside the parts, in their temporary folder
    listing.write_text("\n".join(lines) + "\n")
    _run(
        [
            "ffmpeg", "-nostdin", "-v", "error", "-y", "-f", "concat", "-safe", "0", "-i", str(listing),
            "-c", "copy", "-movflags", "+faststart", str(path),
        ]
    )  # fmt: skip


@dataclass(frozen=True)
class VideoProbe:
    """Stream facts and packets of an mp4, from ffprobe. Packets are (pts, dts, duration, is_key)."""

    codec_name: str
    width: int
    height: int
    time_base: Fraction
    start_pts: int
    packets: tuple[tuple[int, int, int, bool], ...]


def probe_video(path: str | Path) -> VideoProbe:
    """ffprobe the first video stream of `path`."""
    report = json.loads(
        _run(
            [
                "ffprobe", "-v", "error", "-select_streams", "v:0", "-of", "json",
                "-show_entries", "stream=codec_name,width,height,time_base,start_pts:packet=pts,dts,duration,flags",
                str(path),
            ]
        )
    )  # fmt: skip
    stream = report["streams"][0]
    packets = tuple(
        (int(p["pts"]), int(p["dts"]), int(p["duration"]), "K" in p["flags"]) for p in report["packets"]
    )
    return VideoProbe(
        codec_name=stream["codec_name"],
        width=int(stream["width"]),
        height=int(stream["height"]),
        time_base=Fraction(stream["time_base"]),
        start_pts=int(stream["start_pts"]),
        packets=packets,
    )


def ffmpeg_decode_rgb(path: str | Path, height: int, width: int) -> np.ndarray:
    """Every frame of `path` in presentation order, decoded by the ffmpeg CLI: uint8 (N, H, W, 3)."""
    raw = _run(
        [
            "ffmpeg", "-nostdin", "-v", "error", "-i", str(path),
            "-fps_mode", "passthrough", "-f", "rawvideo", "-pix_fmt", "rgb24", "-",
        ]
    )  # fmt: skip
    return np.frombuffer(raw, dtype=np.uint8).reshape(-1, height, width, 3)


# ----------------------------------------------------------------------------------------------
# Dataset content
# ----------------------------------------------------------------------------------------------
DEFAULT_TASKS = ("pick the cube", "place the cube")
ROBOT_TYPE = "so101_follower"
SUPPORTED_DTYPES = ("float32", "float64", "int32", "int64", "bool")
DEFAULT_FEATURES = {
    "timestamp": "float32",
    "frame_index": "int64",
    "episode_index": "int64",
    "index": "int64",
    "task_index": "int64",
}

V3_DATA_PATH = "data/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet"
V3_VIDEO_PATH = "videos/{video_key}/chunk-{chunk_index:03d}/file-{file_index:03d}.mp4"
V3_EPISODES_PATH = "meta/episodes/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet"
V21_DATA_PATH = "data/chunk-{episode_chunk:03d}/episode_{episode_index:06d}.parquet"
V21_VIDEO_PATH = "videos/chunk-{episode_chunk:03d}/{video_key}/episode_{episode_index:06d}.mp4"


def _write_tasks_parquet(path: Path, tasks: Sequence[str]) -> None:
    """meta/tasks.parquet as LeRobot (pandas) writes it: see dexloop.datasets.parquet_files."""
    # Imported here: dexloop.datasets needs torch, and the encoder tests use synth without it.
    from dexloop.datasets.parquet_files import write_tasks

    write_tasks(path, tasks)


@dataclass(frozen=True)
class VideoSegment:
    """Where one episode of one camera lies in an mp4 file."""

    path: Path
    chunk_index: int
    file_index: int
    from_timestamp: float  # seconds into the file of the episode's first frame
    to_timestamp: float  # from_timestamp + length / fps
    frames_before: int  # frames of earlier episodes in the same file


@dataclass(frozen=True)
class EpisodeSpec:
    episode_index: int
    length: int
    task: str
    task_index: int
    dataset_from_index: int  # global index of the first frame
    dataset_to_index: int  # one past the global index of the last frame
    data_path: Path
    videos: dict[str, VideoSegment]


@dataclass(frozen=True)
class DatasetSpec:
    """Everything a writer put on disk, for tests to compare a loader against."""

    root: Path
    codebase_version: str
    fps: int
    cameras: dict[str, CameraSpec]
    tasks: tuple[str, ...]  # indexed by task_index
    episodes: tuple[EpisodeSpec, ...]
    # Every parquet column over all frames in `index` order: (N,) for shape-[1] features, (N, D) for
    # vectors, in the stored dtype.
    columns: dict[str, np.ndarray] = field(repr=False)
    features: dict[str, dict] = field(repr=False)  # info.json "features"

    @property
    def total_frames(self) -> int:
        return sum(episode.length for episode in self.episodes)

    @property
    def episode_lengths(self) -> list[int]:
        return [episode.length for episode in self.episodes]


@dataclass(frozen=True)
class _Plan:
    """The frame layout shared by both writers."""

    fps: int
    lengths: list[int]
    tasks: tuple[str, ...]  # distinct tasks in order of first use: position = task_index
    episode_task_index: list[int]
    from_index: list[int]


def _plan(fps: int, episode_lengths: Sequence[int], tasks: Sequence[str]) -> _Plan:
    if not isinstance(fps, int) or fps <= 0:
        raise ValueError(f"fps must be a positive int (LeRobot stores an int), got {fps!r}")
    lengths = [int(n) for n in episode_lengths]
    if not lengths or min(lengths) < 1:
        raise ValueError(f"need at least one episode and at least one frame each, got {lengths}")
    if not tasks:
        raise ValueError("need at least one task")
    # Episode e performs tasks[e % len(tasks)]; task_index follows first use, as LeRobot assigns it.
    used: list[str] = []
    for e in range(len(lengths)):
        task = tasks[e % len(tasks)]
        if task not in used:
            used.append(task)
    episode_task_index = [used.index(tasks[e % len(tasks)]) for e in range(len(lengths))]
    from_index = [sum(lengths[:e]) for e in range(len(lengths))]
    return _Plan(fps, lengths, tuple(used), episode_task_index, from_index)


def _check_extra_features(extra_features: Mapping[str, tuple[str, Sequence[int]]]) -> None:
    reserved = {"observation.state", "action", "next.done", *DEFAULT_FEATURES}
    for key, (dtype, shape) in extra_features.items():
        if key in reserved or "/" in key:
            raise ValueError(f"extra feature name {key!r} is reserved or contains '/'")
        if dtype not in SUPPORTED_DTYPES or len(shape) != 1 or shape[0] < 1:
            raise ValueError(
                f"extra feature {key!r}: dtype must be one of {SUPPORTED_DTYPES} and shape [D], got "
                f"{dtype!r} {list(shape)}"
            )


def _make_columns(
    plan: _Plan, state_dim: int, extra_features: Mapping[str, tuple[str, Sequence[int]]], seed: int
) -> dict[str, np.ndarray]:
    """Per-frame values that show which row they come from: every float value of a row has floor ==
    the row's global index (random fractions, so rows are not affine in the index), every int value
    is index*10 + element, every bool is (index + element) even."""
    rng = np.random.default_rng(seed)
    episode = np.concatenate([np.full(n, e, dtype=np.int64) for e, n in enumerate(plan.lengths)])
    frame = np.concatenate([np.arange(n, dtype=np.int64) for n in plan.lengths])
    index = np.arange(len(frame), dtype=np.int64)
    row = index[:, None].astype(np.float64)
    columns = {
        "observation.state": (row + 0.5 * rng.random((len(index), state_dim))).astype(np.float32),
        "action": (row + 0.5 + 0.4 * rng.random((len(index), state_dim))).astype(np.float32),
    }
    for key, (dtype, shape) in extra_features.items():
        width = shape[0]
        if dtype.startswith("float"):
            values = row + 0.5 * rng.random((len(index), width))
        elif dtype == "bool":
            values = (index[:, None] + np.arange(width)) % 2 == 0
        else:
            values = index[:, None] * 10 + np.arange(width)
        values = values.astype(dtype)
        columns[key] = values[:, 0] if width == 1 else values
    columns["next.done"] = frame == np.asarray(plan.lengths)[episode] - 1
    columns["timestamp"] = (frame / plan.fps).astype(np.float32)
    columns["frame_index"] = frame
    columns["episode_index"] = episode
    columns["index"] = index
    columns["task_index"] = np.asarray(plan.episode_task_index, dtype=np.int64)[episode]
    return columns


def _video_info(camera: CameraSpec, fps: int, codebase_version: str) -> dict[str, Any]:
    """The "info" block LeRobot stores for a video feature after encoding its first episode."""
    common = {
        "video.height": camera.height,
        "video.width": camera.width,
        "video.codec": CODEC_CANONICAL_NAMES[camera.codec],
        "video.pix_fmt": camera.pix_fmt,
    }
    if codebase_version == "v2.1":
        return {
            **common,
            "video.is_depth_map": False,
            "video.fps": fps,
            "video.channels": 3,
            "has_audio": False,
        }
    return {
        **common,
        "video.fps": fps,
        "video.channels": 3,
        "has_audio": False,
        "video.g": camera.g,
        "video.crf": camera.crf,
        "video.preset": SVT_AV1_PRESET if camera.codec == "libsvtav1" else None,
        "video.fast_decode": 0,
        "video.video_backend": "pyav",
        "video.extra_options": {},
        "is_depth_map": False,
    }


def _features(
    state_dim: int,
    cameras: Mapping[str, CameraSpec],
    extra_features: Mapping[str, tuple[str, Sequence[int]]],
    fps: int,
    codebase_version: str,
) -> dict[str, dict]:
    """info.json "features": user features in recording order, then LeRobot's five defaults."""
    joints = [f"j{i}.pos" for i in range(state_dim)]
    features: dict[str, dict] = {
        "observation.state": {"dtype": "float32", "shape": [state_dim], "names": joints},
        "action": {"dtype": "float32", "shape": [state_dim], "names": joints},
    }
    for key, camera in cameras.items():
        features[key] = {
            "dtype": "video",
            "shape": [camera.height, camera.width, 3],
            "names": ["height", "width", "channels"],
            "info": _video_info(camera, fps, codebase_version),
        }
    for key, (dtype, shape) in extra_features.items():
        features[key] = {"dtype": dtype, "shape": list(shape), "names": None}
    features["next.done"] = {"dtype": "bool", "shape": [1], "names": None}
    for key, dtype in DEFAULT_FEATURES.items():
        features[key] = {"dtype": dtype, "shape": [1], "names": None}
    return features


def _frames_table(
    columns: Mapping[str, np.ndarray], features: Mapping[str, dict], list_type: str
) -> pa.Table:
    """The data parquet table: scalars as plain columns, vectors as fixed_size_list, plus the
    `huggingface` schema metadata the HF datasets library writes (`list_type` is "List" in v3.0 files
    and "Sequence" in v2.1 files)."""
    arrays, hf_features = {}, {}
    for key, values in columns.items():
        value_type = {"dtype": features[key]["dtype"], "_type": "Value"}
        if values.ndim == 1:
            arrays[key] = pa.array(values)
            hf_features[key] = value_type
        else:
            arrays[key] = pa.FixedSizeListArray.from_arrays(pa.array(values.reshape(-1)), values.shape[1])
            hf_features[key] = {"feature": value_type, "length": values.shape[1], "_type": list_type}
    table = pa.table(arrays)
    metadata = {"huggingface": json.dumps({"info": {"features": hf_features}})}
    return table.replace_schema_metadata(metadata)


def _write_episode_row_groups(path: Path, table: pa.Table, episodes: Iterable[tuple[int, int]]) -> None:
    """Write `table` rows [from, from+length) of each episode as one row group, as LeRobot does."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with pq.ParquetWriter(path, table.schema, compression="snappy", use_dictionary=True) as writer:
        for start, length in episodes:
            writer.write_table(table.slice(start, length))


def _numeric_stats(values: np.ndarray, keep_dtype: bool) -> dict[str, list]:
    """min/max/mean/std/count over frames (population std, as LeRobot). `keep_dtype` keeps min/max
    in the column's type (v2.1 episodes_stats.jsonl); otherwise everything is float (v3 stats.json)."""
    flat = values.reshape(len(values), -1)
    as_float = flat.astype(np.float64)
    extremes = flat if keep_dtype else as_float
    return {
        "min": extremes.min(axis=0).tolist(),
        "max": extremes.max(axis=0).tolist(),
        "mean": as_float.mean(axis=0).tolist(),
        "std": as_float.std(axis=0).tolist(),
        "count": [len(values)],
    }


def _image_stats(frames: np.ndarray) -> dict[str, list]:
    """Per-channel stats of uint8 (N, H, W, 3) frames, in [0, 1] and shaped (3, 1, 1) like LeRobot's."""
    channels = frames.reshape(-1, 3).astype(np.float64) / 255.0

    def per_channel(values: np.ndarray) -> list:
        return values.reshape(3, 1, 1).tolist()

    return {
        "min": per_channel(channels.min(axis=0)),
        "max": per_channel(channels.max(axis=0)),
        "mean": per_channel(channels.mean(axis=0)),
        "std": per_channel(channels.std(axis=0)),
        "count": [len(frames)],
    }


def _stats(
    columns: Mapping[str, np.ndarray],
    cameras: Mapping[str, CameraSpec],
    rows: slice,
    episode_frames: Sequence[tuple[int, int]],
    keep_dtype: bool,
    paint: Painter = paint_frame,
) -> dict[str, dict]:
    """Stats of every feature over `rows`; camera stats from the painted frames `episode_frames`."""
    stats = {key: _numeric_stats(values[rows], keep_dtype) for key, values in columns.items()}
    for key, camera in cameras.items():
        frames = np.stack([paint(e, f, camera.height, camera.width) for e, f in episode_frames])
        stats[key] = _image_stats(frames)
    return stats


def _file_positions(
    n_episodes: int, episodes_per_file: int | None, chunks_size: int
) -> list[tuple[int, int]]:
    """(chunk_index, file_index) of each episode, `episodes_per_file` to a file (None: all in one),
    advancing with LeRobot's rule: the next file, or the next chunk after chunks_size files."""
    per_file = n_episodes if episodes_per_file is None else episodes_per_file
    if per_file < 1:
        raise ValueError(f"episodes per file must be >= 1, got {episodes_per_file}")
    positions, chunk, file = [], 0, 0
    for e in range(n_episodes):
        if e > 0 and e % per_file == 0:
            chunk, file = (chunk + 1, 0) if file == chunks_size - 1 else (chunk, file + 1)
        positions.append((chunk, file))
    return positions


def _group_by_file(positions: Sequence[tuple[int, int]]) -> dict[tuple[int, int], list[int]]:
    groups: dict[tuple[int, int], list[int]] = {}
    for episode_index, position in enumerate(positions):
        groups.setdefault(position, []).append(episode_index)
    return groups


def _prepare_root(root: str | Path) -> Path:
    # LeRobot globs data/*/*.parquet, so a stray file from an earlier write would be loaded too.
    root = Path(root)
    if root.exists() and any(root.iterdir()):
        raise FileExistsError(f"dataset root {root} exists and is not empty")
    root.mkdir(parents=True, exist_ok=True)
    return root


def _write_json(path: Path, content: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(content, indent=4))


def _write_jsonl(path: Path, rows: Iterable[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))


# ----------------------------------------------------------------------------------------------
# v3.0 writer
# ----------------------------------------------------------------------------------------------
def write_v3_dataset(
    root: str | Path,
    *,
    fps: int,
    episode_lengths: Sequence[int],
    cameras: Mapping[str, CameraSpec],
    state_dim: int = 6,
    extra_features: Mapping[str, tuple[str, Sequence[int]]] | None = None,
    episodes_per_video_file: int | Mapping[str, int] | None = None,
    episodes_per_data_file: int | None = None,
    tasks: Sequence[str] = DEFAULT_TASKS,
    seed: int = 0,
    chunks_size: int = 1000,
    paint: Painter = paint_frame,
) -> DatasetSpec:
    """Write a LeRobot v3.0 dataset under `root` (absent or empty) as LeRobot 0.6.1 lays it out.

    Features: ``observation.state`` and ``action`` float32[state_dim], one video per camera,
    ``next.done`` bool (true on each episode's last frame), `extra_features` ({name: (dtype, [D])},
    dtype in SUPPORTED_DTYPES), and the five default columns. Episode e performs
    ``tasks[e % len(tasks)]``. `episodes_per_data_file` / `episodes_per_video_file` (an int, or a
    dict per camera; None puts every episode in one file) group consecutive episodes into files, each
    kind and each camera rolling over independently; `chunks_size` is the number of files per
    chunk directory. Per-episode stats columns are not written (the loader drops them). `paint`
    makes each camera frame (default: the identifiable painted frames; benchmarks pass camera-like
    content, whose decoding costs what real footage costs).
    """
    extra_features = dict(extra_features or {})
    _check_extra_features(extra_features)
    plan = _plan(fps, episode_lengths, tasks)
    root = _prepare_root(root)
    cameras = dict(cameras)
    columns = _make_columns(plan, state_dim, extra_features, seed)
    features = _features(state_dim, cameras, extra_features, fps, "v3.0")
    n_episodes = len(plan.lengths)

    data_positions = _file_positions(n_episodes, episodes_per_data_file, chunks_size)
    table = _frames_table(columns, features, list_type="List")
    data_paths = {}
    for (chunk, file), episode_indices in _group_by_file(data_positions).items():
        path = root / V3_DATA_PATH.format(chunk_index=chunk, file_index=file)
        _write_episode_row_groups(
            path, table, [(plan.from_index[e], plan.lengths[e]) for e in episode_indices]
        )
        data_paths.update(dict.fromkeys(episode_indices, path))

    segments: list[dict[str, VideoSegment]] = [{} for _ in range(n_episodes)]
    with tempfile.TemporaryDirectory(prefix="synth-video-") as tmp:
        files: dict[Path, list[_EncodeJob]] = {}
        for key, camera in cameras.items():
            per_file = (
                episodes_per_video_file.get(key)
                if isinstance(episodes_per_video_file, Mapping)
                else episodes_per_video_file
            )
            positions = _file_positions(n_episodes, per_file, chunks_size)
            for (chunk, file), episode_indices in _group_by_file(positions).items():
                path = root / V3_VIDEO_PATH.format(video_key=key, chunk_index=chunk, file_index=file)
                files[path] = [
                    _EncodeJob(Path(tmp) / key / f"episode_{e:06d}.mp4", e, plan.lengths[e], camera, paint)
                    for e in episode_indices
                ]
                frames_before = 0
                for e in episode_indices:
                    # LeRobot: from = duration of the file before the episode was appended, to =
                    # from + the episode's own duration; both exact in the mp4's time base, then float.
                    start = float(Fraction(frames_before, fps))
                    segments[e][key] = VideoSegment(
                        path=path,
                        chunk_index=chunk,
                        file_index=file,
                        from_timestamp=start,
                        to_timestamp=start + float(Fraction(plan.lengths[e], fps)),
                        frames_before=frames_before,
                    )
                    frames_before += plan.lengths[e]
        _encode_episodes([job for parts in files.values() for job in parts], fps)
        for path, parts in files.items():
            _join_episode_videos(parts, path, fps)

    episodes = tuple(
        EpisodeSpec(
            episode_index=e,
            length=plan.lengths[e],
            task=plan.tasks[plan.episode_task_index[e]],
            task_index=plan.episode_task_index[e],
            dataset_from_index=plan.from_index[e],
            dataset_to_index=plan.from_index[e] + plan.lengths[e],
            data_path=data_paths[e],
            videos=segments[e],
        )
        for e in range(n_episodes)
    )
    _write_v3_episodes(root, episodes, data_positions, cameras)
    _write_tasks_parquet(root / "meta/tasks.parquet", plan.tasks)
    all_frames = [(e, f) for e, n in enumerate(plan.lengths) for f in range(n)]
    _write_json(
        root / "meta/stats.json",
        _stats(columns, cameras, slice(None), all_frames, keep_dtype=False, paint=paint),
    )
    _write_json(
        root / "meta/info.json",
        {
            "codebase_version": "v3.0",
            "fps": fps,
            "features": features,
            "total_episodes": n_episodes,
            "total_frames": len(columns["index"]),
            "total_tasks": len(plan.tasks),
            "chunks_size": chunks_size,
            "data_files_size_in_mb": 100,
            "video_files_size_in_mb": 200,
            "data_path": V3_DATA_PATH,
            "video_path": V3_VIDEO_PATH,
            "robot_type": ROBOT_TYPE,
            "splits": {"train": f"0:{n_episodes}"},
        },
    )
    return DatasetSpec(root, "v3.0", fps, cameras, plan.tasks, episodes, columns, features)


def _write_v3_episodes(
    root: Path,
    episodes: Sequence[EpisodeSpec],
    data_positions: Sequence[tuple[int, int]],
    cameras: Mapping[str, CameraSpec],
) -> None:
    """meta/episodes/chunk-000/file-000.parquet with the non-stats columns of §1.4, in LeRobot's order."""
    int64, float64 = pa.int64(), pa.float64()
    columns: dict[str, pa.Array] = {
        "episode_index": pa.array([ep.episode_index for ep in episodes], int64),
        "tasks": pa.array([[ep.task] for ep in episodes], pa.list_(pa.string())),
        "length": pa.array([ep.length for ep in episodes], int64),
        "data/chunk_index": pa.array([chunk for chunk, _ in data_positions], int64),
        "data/file_index": pa.array([file for _, file in data_positions], int64),
        "dataset_from_index": pa.array([ep.dataset_from_index for ep in episodes], int64),
        "dataset_to_index": pa.array([ep.dataset_to_index for ep in episodes], int64),
    }
    for key in cameras:
        segments = [ep.videos[key] for ep in episodes]
        columns[f"videos/{key}/chunk_index"] = pa.array([s.chunk_index for s in segments], int64)
        columns[f"videos/{key}/file_index"] = pa.array([s.file_index for s in segments], int64)
        columns[f"videos/{key}/from_timestamp"] = pa.array([s.from_timestamp for s in segments], float64)
        columns[f"videos/{key}/to_timestamp"] = pa.array([s.to_timestamp for s in segments], float64)
    columns["meta/episodes/chunk_index"] = pa.array([0] * len(episodes), int64)
    columns["meta/episodes/file_index"] = pa.array([0] * len(episodes), int64)
    path = root / V3_EPISODES_PATH.format(chunk_index=0, file_index=0)
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.table(columns), path, compression="snappy")


# ----------------------------------------------------------------------------------------------
# v2.1 writer
# ----------------------------------------------------------------------------------------------
def write_v21_dataset(
    root: str | Path,
    *,
    fps: int,
    episode_lengths: Sequence[int],
    cameras: Mapping[str, CameraSpec],
    state_dim: int = 6,
    extra_features: Mapping[str, tuple[str, Sequence[int]]] | None = None,
    tasks: Sequence[str] = DEFAULT_TASKS,
    seed: int = 0,
    chunks_size: int = 1000,
) -> DatasetSpec:
    """Write the same content as :func:`write_v3_dataset` in the v2.1 layout LeRobot 0.3.3 wrote:
    one parquet and one mp4 (starting at time 0) per episode, chunk = episode_index // chunks_size,
    and jsonl metadata (episodes, tasks, per-episode stats; no stats.json)."""
    extra_features = dict(extra_features or {})
    _check_extra_features(extra_features)
    plan = _plan(fps, episode_lengths, tasks)
    root = _prepare_root(root)
    cameras = dict(cameras)
    columns = _make_columns(plan, state_dim, extra_features, seed)
    features = _features(state_dim, cameras, extra_features, fps, "v2.1")
    table = _frames_table(columns, features, list_type="Sequence")
    n_episodes = len(plan.lengths)

    episodes, episode_stats, encode_jobs = [], [], []
    for e, length in enumerate(plan.lengths):
        chunk = e // chunks_size
        start = plan.from_index[e]
        data_path = root / V21_DATA_PATH.format(episode_chunk=chunk, episode_index=e)
        _write_episode_row_groups(data_path, table, [(start, length)])
        videos = {}
        for key, camera in cameras.items():
            path = root / V21_VIDEO_PATH.format(episode_chunk=chunk, video_key=key, episode_index=e)
            encode_jobs.append(_EncodeJob(path, e, length, camera))
            # v2.1 has no file index: each file holds one episode and is named after it.
            videos[key] = VideoSegment(path, chunk, e, 0.0, float(Fraction(length, fps)), 0)
        task_index = plan.episode_task_index[e]
        episodes.append(
            EpisodeSpec(
                e, length, plan.tasks[task_index], task_index, start, start + length, data_path, videos
            )
        )
        frames = [(e, f) for f in range(length)]
        stats = _stats(columns, cameras, slice(start, start + length), frames, keep_dtype=True)
        episode_stats.append({"episode_index": e, "stats": stats})
    _encode_episodes(encode_jobs, fps)

    _write_jsonl(
        root / "meta/episodes.jsonl",
        ({"episode_index": ep.episode_index, "tasks": [ep.task], "length": ep.length} for ep in episodes),
    )
    _write_jsonl(root / "meta/tasks.jsonl", ({"task_index": i, "task": t} for i, t in enumerate(plan.tasks)))
    _write_jsonl(root / "meta/episodes_stats.jsonl", episode_stats)
    _write_json(
        root / "meta/info.json",
        {
            "codebase_version": "v2.1",
            "robot_type": ROBOT_TYPE,
            "total_episodes": n_episodes,
            "total_frames": len(columns["index"]),
            "total_tasks": len(plan.tasks),
            "total_videos": n_episodes * len(cameras),
            "total_chunks": (n_episodes - 1) // chunks_size + 1,
            "chunks_size": chunks_size,
            "fps": fps,
            "splits": {"train": f"0:{n_episodes}"},
            "data_path": V21_DATA_PATH,
            "video_path": V21_VIDEO_PATH,
            "features": features,
        },
    )
    return DatasetSpec(root, "v2.1", fps, cameras, plan.tasks, tuple(episodes), columns, features)


# ----------------------------------------------------------------------------------------------
# LeRobot 0.6.1's item rules, stated independently
# ----------------------------------------------------------------------------------------------
def check_delta_timestamps_reference(
    delta_timestamps: Mapping[str, Sequence[float]], fps: int, tolerance_s: float
) -> None:
    """Raise ValueError, as LeRobot does, if some delta is not a whole number of frames within
    `tolerance_s`: each d needs |d*fps - round(d*fps)| / fps <= tolerance_s."""
    outside = {
        key: [d for d in deltas if abs(d * fps - round(d * fps)) / fps > tolerance_s]
        for key, deltas in delta_timestamps.items()
    }
    outside = {key: bad for key, bad in outside.items() if bad}
    if outside:
        raise ValueError(
            f"delta_timestamps {outside} are not multiples of 1/fps={1 / fps} within tolerance_s={tolerance_s}"
        )


@dataclass(frozen=True)
class VideoFrameQuery:
    """One frame a loader must decode: the file, the time inside it, and the painted frame there."""

    path: Path
    timestamp: float  # seconds: the episode's from_timestamp + the row's parquet timestamp
    episode_index: int
    frame_index: int


def _read_rows(paths: Iterable[Path]) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for path in paths:
        rows.extend(pq.read_table(path).to_pylist())
    return rows


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _lerobot_value(value: Any) -> np.ndarray:
    """A parquet value typed as LeRobot's torch conversion types it: floats float32, ints int64,
    bools bool; scalars 0-d; an image ({"bytes": PNG, "path"}) float32 CHW in [0, 1]."""
    if isinstance(value, dict) and value.get("bytes") is not None:
        from io import BytesIO

        from PIL import Image

        with Image.open(BytesIO(value["bytes"])) as image:
            return (np.asarray(image.convert("RGB"), dtype=np.float32) / 255.0).transpose(2, 0, 1)
    array = np.asarray(value)
    if array.dtype == np.bool_:
        return array
    if np.issubdtype(array.dtype, np.floating):
        return array.astype(np.float32)
    if np.issubdtype(array.dtype, np.integer):
        return array.astype(np.int64)
    raise TypeError(f"unexpected parquet value {value!r}")


@dataclass(frozen=True)
class _DatasetFiles:
    """A dataset's files read naively: every data row in load order (list of dicts), each episode's
    [from, to) global index range, and each (episode, camera)'s video file and start time."""

    fps: int
    video_keys: list[str]
    tasks: list[str]  # indexed by task_index
    rows: list[dict[str, Any]]
    bounds: dict[int, tuple[int, int]]
    videos: dict[tuple[int, str], tuple[Path, float]]


def _read_dataset(root: Path) -> _DatasetFiles:
    info = json.loads((root / "meta/info.json").read_text())
    video_keys = [key for key, feature in info["features"].items() if feature["dtype"] == "video"]
    rows: list[dict[str, Any]] = []
    bounds, videos = {}, {}
    if info["codebase_version"] == "v2.1":
        # One file per episode, read in episode order; ranges from cumulative lengths, as the
        # v2.1 -> v3.0 conversion assigns them.
        tasks_by_index = {t["task_index"]: t["task"] for t in _read_jsonl(root / "meta/tasks.jsonl")}
        tasks = [tasks_by_index[i] for i in range(len(tasks_by_index))]
        for episode in sorted(_read_jsonl(root / "meta/episodes.jsonl"), key=lambda ep: ep["episode_index"]):
            e = episode["episode_index"]
            chunk = e // info["chunks_size"]
            bounds[e] = (len(rows), len(rows) + episode["length"])
            rows.extend(_read_rows([root / info["data_path"].format(episode_chunk=chunk, episode_index=e)]))
            for key in video_keys:
                path = root / info["video_path"].format(episode_chunk=chunk, video_key=key, episode_index=e)
                videos[e, key] = (path, 0.0)
    else:
        # LeRobot loads every data/*/*.parquet and meta/episodes/*/*.parquet in string-sorted order.
        rows = _read_rows(sorted((root / "data").glob("*/*.parquet"), key=str))
        tasks = pq.read_table(root / "meta/tasks.parquet").column("task").to_pylist()
        for episode in _read_rows(sorted((root / "meta/episodes").glob("*/*.parquet"), key=str)):
            e = episode["episode_index"]
            bounds[e] = (episode["dataset_from_index"], episode["dataset_to_index"])
            for key in video_keys:
                path = root / info["video_path"].format(
                    video_key=key,
                    chunk_index=episode[f"videos/{key}/chunk_index"],
                    file_index=episode[f"videos/{key}/file_index"],
                )
                videos[e, key] = (path, episode[f"videos/{key}/from_timestamp"])
    return _DatasetFiles(info["fps"], video_keys, tasks, rows, bounds, videos)


def _selected_rows(files: _DatasetFiles, episodes: Sequence[int] | None) -> list[dict[str, Any]]:
    # LeRobot filters the data by episode_index and keeps file order; the order of `episodes` is moot.
    return [row for row in files.rows if episodes is None or row["episode_index"] in episodes]


def reference_length(root: str | Path, *, episodes: Sequence[int] | None = None) -> int:
    """``len(LeRobotDataset(..., episodes=episodes))``: the number of rows of the selected episodes."""
    return len(_selected_rows(_read_dataset(Path(root)), episodes))


def reference_item(
    root: str | Path,
    position: int,
    *,
    delta_timestamps: Mapping[str, Sequence[float]] | None = None,
    episodes: Sequence[int] | None = None,
    tolerance_s: float = 1e-4,
) -> dict[str, Any]:
    """What LeRobot 0.6.1's ``LeRobotDataset(..., delta_timestamps, episodes)[position]`` holds, from
    the files of a v3.0 or v2.1 dataset (v2.1 read with today's rules, as after conversion).

    Returned keys:
    * every parquet column of the row, typed like LeRobot (float32 / int64 / bool; 0-d for scalars);
    * for each non-video key in `delta_timestamps`: the values of the window rows stacked, (T, D) for
      vectors and (T,) for scalars, replacing the current value, and ``<key>_is_pad`` bool[T];
    * for each video key: a list of :class:`VideoFrameQuery`, the window rows if the key has deltas
      (plus ``<key>_is_pad``), else the current row. LeRobot returns (T, C, H, W) uint8, squeezed to
      (C, H, W) when the list has one entry;
    * ``task``: the task string of the row.

    `position` is a row position among the rows of the selected `episodes` (all when None), in file
    order. Window rule for global index i in an episode with rows [s, t) and an offset k =
    round(delta*fps): row clamp(i+k, s, t-1), padded where i+k < s or i+k >= t.
    """
    files = _read_dataset(Path(root))
    delta_timestamps = dict(delta_timestamps or {})
    check_delta_timestamps_reference(delta_timestamps, files.fps, tolerance_s)
    selected = _selected_rows(files, episodes)
    if not 0 <= position < len(selected):
        raise IndexError(f"position {position} outside the {len(selected)} selected rows")
    row_by_index = {row["index"]: row for row in files.rows}
    current = selected[position]
    item: dict[str, Any] = {key: _lerobot_value(value) for key, value in current.items()}

    def video_query(key: str, row: dict[str, Any]) -> VideoFrameQuery:
        path, from_timestamp = files.videos[row["episode_index"], key]
        # pyarrow gives the float32 parquet timestamp as the Python float LeRobot's tensor.item() gives.
        return VideoFrameQuery(
            path, from_timestamp + row["timestamp"], row["episode_index"], row["frame_index"]
        )

    i = current["index"]
    start, stop = files.bounds[current["episode_index"]]
    for key, deltas in delta_timestamps.items():
        offsets = [round(d * files.fps) for d in deltas]
        window_rows = [row_by_index[min(max(i + k, start), stop - 1)] for k in offsets]
        item[f"{key}_is_pad"] = np.array([i + k < start or i + k >= stop for k in offsets], dtype=bool)
        if key in files.video_keys:
            item[key] = [video_query(key, row) for row in window_rows]
        else:
            item[key] = np.stack([_lerobot_value(row[key]) for row in window_rows])
    for key in files.video_keys:
        if key not in delta_timestamps:
            item[key] = [video_query(key, current)]
    item["task"] = files.tasks[current["task_index"]]
    return item
