"""``DatasetWriter``: records episodes into a LeRobot v3.0 dataset, as LeRobot 0.6.1's writer does,
in real time and without losing a saved episode to a crash.

What LeRobot does after the fact, dexloop does while frames arrive:

* each camera frame goes straight to its camera's StreamingEncoder (a C++ thread per camera behind a
  bounded queue; a full queue makes ``add_frame`` wait, never drops a frame, and is reported), into
  the camera's current mp4, episode after episode; LeRobot writes PNGs and encodes after each episode;
* the frames image statistics need are kept, downsampled, as they arrive, so ``save_episode()``
  computes LeRobot's per-episode stats without reading anything back;
* image-dtype features (PNG cells in the parquet, as LeRobot stores them) are compressed by a small
  thread pool while recording goes on (Pillow's encoder runs without the GIL); ``save_episode()``
  collects the cells before it commits the episode's rows;
* ``save_episode()`` ends each camera's episode without waiting for its codec to drain (the frames
  the codec still holds, about a third of a second of them for SVT-AV1, are saved raw to the journal
  with the packets encoded so far: StreamingEncoder.save_progress; the fragment follows on the
  encoder's thread) and commits the episode to the recording journal (see recording_journal), so it
  returns in milliseconds and a saved episode survives SIGKILL; ``finalize()`` assembles LeRobot's
  files.

Depth maps (features whose info says ``is_depth_map``) are recorded as LeRobot records them: uint16
millimetres or float32 metres, the unit inferred from the first frame's dtype and kept as
``info["depth_unit"]``, stats computed on the depth itself, in that unit. A depth video's frames are
quantised to 12-bit codes (dexloop.datasets.depth) and encoded losslessly with the ``depth_encoder``
(hevc gray12le); a depth image feature's are stored as they are, as uncompressed TIFF in the parquet.

Files roll over as LeRobot's do: a new data file when the current one plus the episode would reach
``data_files_size_in_mb``, a new mp4 when the current one plus an episode would reach
``video_files_size_in_mb`` (the size of the camera's previous episode stands for the coming one,
since the decision is made before its first frame is encoded), a new chunk directory every
``chunks_size`` files, and new files for every writer session.
"""

from __future__ import annotations

import io
import logging
import os
from collections import deque
from collections.abc import Mapping
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from dexloop.errors import (
    DatasetArgumentError,
    DatasetError,
    DatasetFrameError,
    DatasetWriteError,
    VideoEncodeError,
)

from .compute_stats import compute_episode_stats, downsample_for_stats, sample_indices
from .depth import depth_frame, infer_depth_unit, quantize_depth
from .frame_validation import validate_frame
from .info import DatasetInfo, frame_size
from .parquet_files import frames_schema, frames_table
from .recording_journal import CommittedEpisode, RecordingJournal, Session, assemble, stats_to_json
from .stats import aggregate_stats

logger = logging.getLogger(__name__)

MIB = 1024**2
# PNG compression LeRobot uses for image features stored in parquet.
IMAGE_PNG_COMPRESS_LEVEL = 6
CODEC_CANONICAL_NAMES = {"libsvtav1": "av1", "libaom-av1": "av1", "h264": "h264", "hevc": "hevc"}


def next_file(chunk: int, file: int, chunks_size: int) -> tuple[int, int]:
    """LeRobot's ``update_chunk_file_indices``: the next file, or the next chunk after chunks_size files."""
    return (chunk + 1, 0) if file == chunks_size - 1 else (chunk, file + 1)


def as_numpy(value: Any) -> Any:
    """A torch tensor as a numpy array (LeRobot converts them too); anything else unchanged."""
    if type(value).__module__.startswith("torch") and hasattr(value, "numpy"):
        return value.detach().cpu().numpy()
    return value


def rgb_frame(value: Any, key: str) -> np.ndarray:
    """A camera frame as uint8 HWC, as LeRobot's image writer turns it into a PNG: PIL images as RGB,
    channels-first arrays transposed, float images in [0, 1] scaled by 255 and truncated."""
    if not isinstance(value, np.ndarray):  # a PIL image (validate_frame allows nothing else)
        value = np.array(value.convert("RGB"))
    elif value.shape[-1] != 3 and value.shape[0] == 3:
        value = value.transpose(1, 2, 0)
    if value.shape[-1] != 3:
        raise DatasetFrameError(
            f"The feature '{key}' of shape {value.shape} is not an RGB image (3 channels first or last)"
        )
    if value.dtype != np.uint8:
        low, high = float(value.min()), float(value.max())
        if not (np.issubdtype(value.dtype, np.floating) and low >= 0.0 and high <= 1.0):
            raise DatasetFrameError(
                f"The feature '{key}' holds {value.dtype} values in [{low}, {high}]: camera frames must be "
                "uint8, or float in [0.0, 1.0]"
            )
        value = (value * 255).astype(np.uint8)
    if value.strides[1:] != (3, 1):  # the encoder takes any row stride, but packed pixels
        value = np.ascontiguousarray(value)
    return value


def png_cell(image: np.ndarray, frame_index: int) -> dict[str, Any]:
    """An image-dtype cell as LeRobot embeds it: PNG bytes (compress level 6) and the file's name."""
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="PNG", compress_level=IMAGE_PNG_COMPRESS_LEVEL)
    return {"bytes": buffer.getvalue(), "path": f"frame-{frame_index:06d}.png"}


def tiff_cell(depth: np.ndarray, frame_index: int) -> dict[str, Any]:
    """A depth image cell as LeRobot embeds it: an uncompressed TIFF of the (H, W) uint16 or float32
    depth (PIL mode I;16 or F, the values as recorded) and the file's name."""
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(depth)).save(buffer, format="TIFF", compression="raw")
    return {"bytes": buffer.getvalue(), "path": f"frame-{frame_index:06d}.tiff"}


def video_info(
    config: Any, height: int, width: int, fps: int, existing: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """The ``info`` block LeRobot stores for a video feature once its first episode is encoded: what
    the feature's info held (`existing`, e.g. ``is_depth_map`` and ``depth_unit``) updated with the
    stream's and the encoder's settings (a depth encoder's quantiser parameters included)."""
    from dexloop.video.encoder import DEPTH_ENCODER_INFO_FIELD_NAMES, DepthEncoderConfig

    depth = isinstance(config, DepthEncoderConfig)
    new = {
        "video.height": height,
        "video.width": width,
        "video.codec": CODEC_CANONICAL_NAMES.get(config.vcodec, config.vcodec),
        "video.pix_fmt": config.pix_fmt,
        "video.fps": fps,
        "video.channels": 1 if depth else 3,
        "has_audio": False,
        "video.g": config.g,
        "video.crf": config.crf,
        "video.preset": config.preset,
        "video.fast_decode": config.fast_decode,
        "video.video_backend": config.video_backend,
        "video.extra_options": dict(config.extra_options),
    }
    if depth:
        new.update({f"video.{name}": getattr(config, name) for name in DEPTH_ENCODER_INFO_FIELD_NAMES})
    new["is_depth_map"] = depth
    merged = {**(existing or {}), **new}
    if "video.is_depth_map" in merged:  # LeRobot migrates the legacy marker
        merged.setdefault("is_depth_map", merged.pop("video.is_depth_map"))
    return merged


def _settings(info: Mapping[str, Any]) -> dict[str, Any]:
    """info.json without the counters a session's episodes change."""
    return {
        k: v for k, v in info.items() if k not in ("total_episodes", "total_frames", "total_tasks", "splits")
    }


@dataclass
class EpisodeBuffer:
    """The frames of the episode being recorded (camera frames are already in their encoders)."""

    size: int = 0
    tasks: list[str] = field(default_factory=list)
    values: dict[str, list] = field(default_factory=dict)  # numeric and string features, image cells
    stats_frames: dict[str, list[np.ndarray]] = field(default_factory=dict)  # downsampled CHW frames


@dataclass
class _Camera:
    """One video feature's current mp4 and its encoder."""

    key: str
    height: int
    width: int
    depth: bool = False  # a depth camera: frames quantised to 12-bit codes
    chunk: int = 0
    file: int = 0
    encoder: Any = None
    saved_episodes: int = 0  # in the current file
    written_bytes: int = 0  # the file's size once its last written episode's fragment is in
    last_episode_bytes: int = 0  # the last written episode's fragment; 0 until one is measured
    file_end_s: float = 0.0  # to_timestamp of the current file's last saved episode
    # (frames, from_timestamp) of the saved episodes whose fragments the encoder is still writing
    unwritten: deque = field(default_factory=deque)
    full_waits: int = 0  # the encoder's back-pressure counters when last reported
    waited_s: float = 0.0

    def place(self, length: int, fps: int) -> tuple[float, float]:
        """from_timestamp / to_timestamp of the episode just ended, summed the way LeRobot sums
        them (each episode starts where the previous one's duration ends); checked against where
        the encoder puts its frames once its fragment is written (collect_written)."""
        start = self.file_end_s
        self.unwritten.append((length, start))
        self.file_end_s = start + length / fps
        return start, self.file_end_s

    def collect_written(self, wait: bool = False) -> None:
        """Takes the encoder's written episodes (all of them with `wait`): each must lie where its
        row says, and its fragment's size stands for the next episode's in the rollover rule."""
        for encoded in self.encoder.take_ended(wait):
            self.check_written(encoded)

    def check_written(self, encoded: Any) -> None:
        length, start = self.unwritten.popleft()
        if encoded.frames != length or abs(encoded.from_timestamp - start) > 1e-6:
            raise VideoEncodeError(
                f"camera {self.key}: the encoder holds {encoded.frames} frames from "
                f"{encoded.from_timestamp} s for an episode of {length} frames expected from {start} s"
            )
        self.last_episode_bytes = encoded.file_bytes - self.written_bytes
        self.written_bytes = encoded.file_bytes

    def projected_bytes(self) -> int:
        """The file's size once its saved episodes and one more are written: each episode whose
        fragment is not measured yet counted as large as the last one measured."""
        if self.unwritten and self.last_episode_bytes == 0:
            self.collect_written(wait=True)  # the file's first episode: nothing to estimate from
        else:
            self.collect_written()
        return self.written_bytes + self.last_episode_bytes * (len(self.unwritten) + 1)

    def relative_path(self, info: DatasetInfo) -> str:
        return info.video_path.format(video_key=self.key, chunk_index=self.chunk, file_index=self.file)


class DatasetWriter:
    """Records episodes into the dataset of `meta` (created or resumed): see the module docstring.

    `rgb_encoder` is a VideoEncoderConfig (LeRobot's defaults when None), `depth_encoder` a
    DepthEncoderConfig for the depth cameras (LeRobot's defaults when None), `encoder_threads` the
    codec's thread count, `encoder_queue_maxsize` the frames each camera's queue holds."""

    def __init__(
        self,
        meta: Any,
        rgb_encoder: Any = None,
        encoder_threads: int | None = None,
        encoder_queue_maxsize: int = 30,
        depth_encoder: Any = None,
    ):
        from dexloop.video.encoder import DepthEncoderConfig, RGBEncoderConfig

        if depth_encoder is not None and not isinstance(depth_encoder, DepthEncoderConfig):
            raise DatasetArgumentError(
                f"depth_encoder must be a DepthEncoderConfig, got {type(depth_encoder).__name__}"
            )
        if encoder_queue_maxsize < 1:
            raise DatasetArgumentError(f"encoder_queue_maxsize must be >= 1, got {encoder_queue_maxsize}")
        self.meta = meta
        self.root = Path(meta.root)
        self.rgb_encoder = rgb_encoder if rgb_encoder is not None else RGBEncoderConfig()
        if depth_encoder is None and meta.depth_keys and meta.total_episodes > 0:
            # Resuming: the depth cameras go on with the quantiser their info records.
            depth_encoder = DepthEncoderConfig.from_video_info(meta.features[meta.depth_keys[0]].get("info"))
        self.depth_encoder = depth_encoder if depth_encoder is not None else DepthEncoderConfig()
        self.encoder_threads = encoder_threads
        self.encoder_queue_maxsize = encoder_queue_maxsize
        self.episode_buffer = EpisodeBuffer()
        self._features = meta.features
        self._schema = frames_schema(self._features)
        self._stored_keys = [f.name for f in self._schema]
        self._closed_videos: list[str] = []
        self._finalized = False
        self._broken: BaseException | None = None
        self._image_pool: ThreadPoolExecutor | None = None  # made at the first image feature's frame
        self._save_pool: ThreadPoolExecutor | None = None  # made at the first save

        info = meta.info
        last = (
            meta.episodes[len(meta.episodes) - 1]
            if meta.episodes is not None and len(meta.episodes)
            else None
        )
        # A resumed session always starts new data, metadata and video files (LeRobot's rule).
        self._data_file = (0, 0)
        self._meta_file = (0, 0)
        self._cameras = {}
        depth_keys = self._depth_keys = set(meta.depth_keys)
        for key in meta.video_keys:
            height, width = frame_size(self._features[key])
            self._cameras[key] = _Camera(key, height, width, depth=key in depth_keys)
        if last is not None:
            size = info.chunks_size
            self._data_file = next_file(int(last["data/chunk_index"]), int(last["data/file_index"]), size)
            meta_position = (int(last["meta/episodes/chunk_index"]), int(last["meta/episodes/file_index"]))
            self._meta_file = next_file(*meta_position, size)
            for camera in self._cameras.values():
                chunk, file = (
                    int(last[f"videos/{camera.key}/chunk_index"]),
                    int(last[f"videos/{camera.key}/file_index"]),
                )
                camera.chunk, camera.file = next_file(chunk, file, size)
        self._data_file_bytes = 0
        self._data_file_frames = 0
        self._meta_file_bytes = 0
        self._session_episodes = 0

        self._journal = RecordingJournal(self.root)
        self._session = Session(
            first_episode=meta.total_episodes,
            first_frame=meta.total_frames,
            tasks=list(meta.tasks.index) if meta.tasks is not None else [],
            stats=stats_to_json(meta.stats) if meta.stats is not None else None,
            info=info.to_dict(),
        )
        self._journal.start(self._session)

    # -- frames ---------------------------------------------------------------------------------

    def add_frame(self, frame: dict) -> None:
        """Validates `frame` as LeRobot does and adds it to the episode; camera frames are queued for
        encoding (waiting while a camera's queue is full)."""
        self._require_open("add_frame")
        frame = {name: as_numpy(value) for name, value in frame.items()}
        validate_frame(frame, self._features)
        buffer = self.episode_buffer
        frame_index = buffer.size
        camera_frames, depth_maps, images = {}, {}, {}
        for key, camera in self._cameras.items():
            if camera.depth:
                depth_maps[key] = self._depth_frame(frame[key], key, frame_index)
                camera_frames[key] = quantize_depth(depth_maps[key], *self._quantiser())
            else:
                camera_frames[key] = rgb_frame(frame[key], key)
        for key, feature in self._features.items():
            if feature["dtype"] != "image":
                continue
            if key in self._depth_keys:
                depth_maps[key] = images[key] = self._depth_frame(frame[key], key, frame_index)
            else:
                images[key] = rgb_frame(frame[key], key)
        if frame_index == 0:
            for camera in self._cameras.values():
                self._open_episode_video(camera)
        for key, rgb in camera_frames.items():
            self._cameras[key].encoder.add_frame(rgb)
        for key, rgb in {**camera_frames, **images}.items():
            # Stats are computed on the depth itself (in its unit), as LeRobot computes them from the
            # depth images it writes before encoding; on the RGB pixels otherwise. Copied: a view would
            # keep the caller's whole frame alive until the episode is saved.
            chw = depth_maps[key][None] if key in depth_maps else rgb.transpose(2, 0, 1)
            buffer.stats_frames.setdefault(key, []).append(downsample_for_stats(chw).copy())
        for key, image in images.items():
            encode = tiff_cell if key in depth_maps else png_cell
            # An owned copy: the caller may reuse its frame buffer before the cell is encoded.
            cell = self._images().submit(encode, np.array(image, copy=True), frame_index)
            buffer.values.setdefault(key, []).append(cell)
        for key, feature in self._features.items():
            if key in frame and feature["dtype"] not in ("video", "image"):
                value = frame[key]
                buffer.values.setdefault(key, []).append(
                    value.copy() if isinstance(value, np.ndarray) else value
                )
        buffer.tasks.append(frame["task"])
        buffer.size += 1

    def _images(self) -> ThreadPoolExecutor:
        """The pool that encodes image-feature cells (PNG, or TIFF for depth images)."""
        if self._image_pool is None:
            workers = max(1, min(4, (os.cpu_count() or 1)))
            self._image_pool = ThreadPoolExecutor(workers, thread_name_prefix="dexloop-image-cells")
        return self._image_pool

    def _saving(self) -> ThreadPoolExecutor:
        """The threads save_episode waits on: one per camera, one for the episode's rows, one for
        the journal's session file."""
        if self._save_pool is None:
            self._save_pool = ThreadPoolExecutor(len(self._cameras) + 2, thread_name_prefix="dexloop-save")
        return self._save_pool

    def _save_camera_progress(self, episode_index: int) -> dict[str, Future]:
        """Every camera's episode made durable at once, each waited for on a thread of its own, side
        by side (and beside the rows and stats work), where one after the other the waits would
        add up: its progress saved without draining the codec (StreamingEncoder.save_progress), or,
        where that cannot be (a codec that reorders frames, a full disk), the episode ended by
        draining it. Each future gives the camera's EncodedEpisode when it was drained, else None."""

        def save(key: str, camera: _Camera) -> Any:
            if camera.encoder.save_progress(str(self._journal.progress_path(key, episode_index))):
                return None
            return camera.encoder.end_episode()

        return {key: self._saving().submit(save, key, camera) for key, camera in self._cameras.items()}

    def _quantiser(self) -> tuple[float, float, float, bool]:
        config = self.depth_encoder
        return config.depth_min, config.depth_max, config.shift, config.use_log

    def _depth_frame(self, value: Any, key: str, frame_index: int) -> np.ndarray:
        """A depth feature's frame checked (depth_frame), its unit recorded at an episode's first
        frame when the feature has none yet (LeRobot's rule), and held to that unit afterwards: a
        frame in another unit would be stored right but mix units in the stats."""
        feature = self._features[key]
        depth = depth_frame(value, key, *frame_size(feature))
        unit = infer_depth_unit(depth.dtype)
        recorded = (feature.get("info") or {}).get("depth_unit")
        if recorded is None and frame_index == 0:
            feature["info"] = {**(feature.get("info") or {}), "depth_unit": unit}
        elif recorded is not None and recorded != unit:
            raise DatasetFrameError(
                f"The depth feature '{key}' is recorded in {recorded!r} but this frame is "
                f"{depth.dtype} ({unit!r}): give uint16 millimetres or float32 metres throughout"
            )
        return depth

    def has_pending_frames(self) -> bool:
        return self.episode_buffer.size > 0

    def clear_episode_buffer(self, delete_images: bool = True) -> None:
        """Discards the episode being recorded; none of its frames reach the dataset."""
        for camera in self._cameras.values():
            if camera.encoder is not None:
                camera.encoder.discard_episode()
        for values in self.episode_buffer.values.values():
            for value in values:
                if isinstance(value, Future):
                    value.cancel()
        self.episode_buffer = EpisodeBuffer()

    # -- episodes -------------------------------------------------------------------------------

    def save_episode(self, episode_data: dict | None = None, parallel_encoding: bool = True) -> None:
        """Saves the recorded episode: when this returns, the episode survives a crash."""
        self._require_open("save_episode")
        if episode_data is not None:
            raise DatasetArgumentError(
                "save_episode(episode_data=...) is not supported: add the frames with add_frame()"
            )
        buffer = self.episode_buffer
        if buffer.size == 0:
            raise DatasetArgumentError(
                "You must add one or several frames with `add_frame` before calling `save_episode`."
            )
        try:
            self._save_episode(buffer)
        except BaseException as error:
            # Some cameras may have ended the episode, or the disk refused its rows: the files are
            # no longer in step with the journal, so the recording stops here. finalize() (or a
            # repair) keeps exactly the episodes saved before.
            self._broken = error
            raise

    def _save_episode(self, buffer: EpisodeBuffer) -> None:
        meta, info = self.meta, self.meta.info
        episode_index, length = meta.total_episodes, buffer.size
        first_frame = meta.total_frames
        episode_tasks = list(set(buffer.tasks))  # LeRobot's order: a set's
        known = list(meta.tasks.index) if meta.tasks is not None else []
        new_tasks = [task for task in episode_tasks if task not in known]
        task_of = {task: i for i, task in enumerate(known + new_tasks)}

        # The cameras' progress, the rows and the stats are saved side by side; the codecs drain
        # once the episode is committed, so as not to take the CPU from this.
        progress = self._save_camera_progress(episode_index)
        saving = list(progress.values())
        if episode_index == 0:
            for key, camera in self._cameras.items():
                info.features[key]["info"] = video_info(
                    self.depth_encoder if camera.depth else self.rgb_encoder,
                    camera.height,
                    camera.width,
                    info.fps,
                    existing=info.features[key].get("info"),
                )
        saving.append(self._saving().submit(self._sync_session_info))
        try:
            columns = self._columns(buffer, episode_index, first_frame, task_of)
            data_file = self._place_data(length)
            staged = self._saving().submit(self._stage_rows, episode_index, columns)
            saving.append(staged)
            stats = self._episode_stats(buffer, columns)
        finally:
            wait(saving)  # nothing of this episode goes on behind an error
        drained = {key: future.result() for key, future in progress.items()}
        for camera in self._cameras.values():
            camera.saved_episodes += 1
            self._report_back_pressure(camera)

        staged_bytes = staged.result()
        self._data_file_bytes += staged_bytes
        self._data_file_frames += length

        row: dict[str, Any] = {"episode_index": episode_index, "tasks": episode_tasks, "length": length}
        row["data/chunk_index"], row["data/file_index"] = data_file
        row["dataset_from_index"], row["dataset_to_index"] = first_frame, first_frame + length
        for key, camera in self._cameras.items():
            row[f"videos/{key}/chunk_index"], row[f"videos/{key}/file_index"] = camera.chunk, camera.file
            row[f"videos/{key}/from_timestamp"], row[f"videos/{key}/to_timestamp"] = camera.place(
                length, info.fps
            )
        for feature, values in stats.items():
            for name, value in values.items():
                row[f"stats/{feature}/{name}"] = np.asarray(value).tolist()
        row["meta/episodes/chunk_index"], row["meta/episodes/file_index"] = self._place_metadata(row)

        # The dataset's stats after this episode, aggregated in memory as LeRobot does (its float32
        # per-episode stats give other roundings than the float64 lists of the row would).
        dataset_stats = aggregate_stats([meta.stats, stats]) if meta.stats is not None else stats
        self._journal.commit(
            CommittedEpisode(row=row, new_tasks=new_tasks, dataset_stats=stats_to_json(dataset_stats))
        )

        self._session_episodes += 1
        info.total_episodes += 1
        info.total_frames += length
        if new_tasks:
            from .metadata import tasks_frame

            meta.tasks = tasks_frame(known + new_tasks)
        info.total_tasks = len(task_of)
        info.splits = {"train": f"0:{info.total_episodes}"}
        meta.stats = dataset_stats
        meta.latest_episode = row
        self.episode_buffer = EpisodeBuffer()
        for key, camera in self._cameras.items():
            if drained[key] is None:
                camera.encoder.end_episode_soon(str(self._journal.progress_path(key, episode_index)))
            else:
                camera.collect_written()
                camera.check_written(drained[key])

    def _stage_rows(self, episode_index: int, columns: Mapping[str, Any]) -> int:
        """The episode's rows written to the journal; their size in bytes."""
        table = frames_table({key: columns[key] for key in self._stored_keys}, self._schema)
        return self._journal.stage_frames(episode_index, table)

    def _sync_session_info(self) -> None:
        """The journal's copy of info.json follows what changed since (video info, chunk settings)."""
        info = self.meta.info.to_dict()
        if _settings(info) != _settings(self._session.info):
            self._session.info = info
            self._journal.write_session(self._session)

    def _columns(
        self, buffer: EpisodeBuffer, episode_index: int, first_frame: int, task_of: Mapping[str, int]
    ) -> dict[str, Any]:
        """The episode's column values, stacked as LeRobot stacks them (shape-(1,) features 1-D)."""
        length, fps = buffer.size, self.meta.fps
        columns: dict[str, Any] = {}
        for key, feature in self._features.items():
            if key not in buffer.values:
                continue
            values = buffer.values[key]
            if feature["dtype"] == "image":
                columns[key] = [cell.result() for cell in values]
                continue
            if feature["dtype"] == "string":
                columns[key] = values
                continue
            stacked = np.stack(values)
            columns[key] = stacked.reshape(length) if tuple(feature["shape"]) == (1,) else stacked
        frame_index = np.arange(length, dtype=np.int64)
        columns["timestamp"] = frame_index / fps  # float64 for the stats; stored as float32
        columns["frame_index"] = frame_index
        columns["episode_index"] = np.full(length, episode_index, dtype=np.int64)
        columns["index"] = np.arange(first_frame, first_frame + length, dtype=np.int64)
        columns["task_index"] = np.array([task_of[task] for task in buffer.tasks], dtype=np.int64)
        return columns

    def _episode_stats(self, buffer: EpisodeBuffer, columns: Mapping[str, Any]) -> dict:
        data: dict[str, Any] = {}
        picked = sample_indices(buffer.size)
        for key, feature in self._features.items():
            if feature["dtype"] in ("image", "video"):
                frames = buffer.stats_frames[key]
                data[key] = np.stack([frames[i] for i in picked])
            elif feature["dtype"] not in ("string", "language") and key in columns:
                data[key] = columns[key]
        return compute_episode_stats(data, self._features)

    def _place_data(self, length: int) -> tuple[int, int]:
        """The data file of the next episode, by LeRobot's size rule."""
        if self._session_episodes > 0 and self._data_file_frames > 0:
            per_frame = self._data_file_bytes / self._data_file_frames
            if (self._data_file_bytes + per_frame * length) / MIB >= self.meta.info.data_files_size_in_mb:
                self._data_file = next_file(*self._data_file, self.meta.info.chunks_size)
                self._data_file_bytes = self._data_file_frames = 0
        return self._data_file

    def _place_metadata(self, row: Mapping[str, Any]) -> tuple[int, int]:
        """The episode-metadata file of the episode. Its row's size in JSON stands for its size in
        parquet (larger), so these files roll over no later than LeRobot's."""
        import json

        row_bytes = len(json.dumps(row))
        limit = self.meta.info.data_files_size_in_mb * MIB
        if self._session_episodes > 0 and self._meta_file_bytes + row_bytes >= limit:
            self._meta_file = next_file(*self._meta_file, self.meta.info.chunks_size)
            self._meta_file_bytes = 0
        self._meta_file_bytes += row_bytes
        return self._meta_file

    # -- video files ----------------------------------------------------------------------------

    def _open_episode_video(self, camera: _Camera) -> None:
        """Before an episode's first frame: rolls the camera over to a new mp4 when the current one
        would reach the size limit with another episode, and opens the encoder if needed."""
        from dexloop.video.encoder import encoder_arguments, encoder_from_arguments

        info = self.meta.info
        if (
            camera.encoder is not None
            and camera.saved_episodes > 0
            and camera.projected_bytes() / MIB >= info.video_files_size_in_mb
        ):
            # The fragmented file is finished by finalize(), once its last episodes are written.
            camera.collect_written(wait=True)
            camera.encoder = None
            camera.chunk, camera.file = next_file(camera.chunk, camera.file, info.chunks_size)
            camera.saved_episodes = 0
            camera.file_end_s = 0.0
        if camera.encoder is None:
            relative = camera.relative_path(info)
            # Recorded before the file exists, so that repair removes it if no episode gets saved,
            # with its encoder's settings, so that repair can encode the frames of an episode
            # whose fragment was not written.
            self._session.created_videos.append(relative)
            self._session.video_encoders[relative] = encoder_arguments(
                self.depth_encoder if camera.depth else self.rgb_encoder,
                width=camera.width,
                height=camera.height,
                fps=self.meta.fps,
                encoder_threads=self.encoder_threads,
            )
            self._journal.write_session(self._session)
            path = self.root / relative
            path.parent.mkdir(parents=True, exist_ok=True)
            camera.encoder = encoder_from_arguments(
                str(path), self._session.video_encoders[relative], self.encoder_queue_maxsize
            )
            camera.full_waits, camera.waited_s = 0, 0.0
            camera.written_bytes = self._video_bytes(camera)

    def _video_bytes(self, camera: _Camera) -> int:
        return os.path.getsize(self.root / camera.relative_path(self.meta.info))

    def _report_back_pressure(self, camera: _Camera) -> None:
        stats = camera.encoder.stats
        if stats.full_waits > camera.full_waits:
            logger.warning(
                "camera %s: the encoder fell behind; add_frame waited for it %d times this episode (%.2f s in "
                "all, queue of %d frames). No frame was dropped.",
                camera.key,
                stats.full_waits - camera.full_waits,
                stats.waited_s - camera.waited_s,
                stats.capacity,
            )
        camera.full_waits, camera.waited_s = stats.full_waits, stats.waited_s

    def encoder_stats(self) -> dict[str, Any]:
        """Each camera's queue statistics (EncoderQueueStats) for its current file."""
        return {key: c.encoder.stats for key, c in self._cameras.items() if c.encoder is not None}

    # -- the end --------------------------------------------------------------------------------

    def finalize(self) -> None:
        """Finishes the recording: LeRobot's files for every saved episode. An episode still being
        recorded is discarded (as LeRobot does), with a warning. Idempotent."""
        if self._finalized:
            return
        if self.episode_buffer.size:
            logger.warning("finalize(): discarding %d frames that were never saved", self.episode_buffer.size)
            self.clear_episode_buffer()
        for camera in self._cameras.values():
            if camera.encoder is None:
                continue
            if self._broken is None:
                try:
                    camera.collect_written(wait=True)
                except VideoEncodeError as error:
                    # A saved episode's fragment was not written: its frames are in the journal,
                    # from which the assembly below encodes them.
                    logger.error(
                        "camera %s: %s; the saved episodes are rebuilt from the journal", camera.key, error
                    )
                    self._broken = error
            # After a failed save the file may hold frames of an episode never committed: it is
            # rewritten from the journal instead, keeping only the saved episodes' frames.
            if camera.saved_episodes > 0 and self._broken is None:
                camera.encoder.close()
                self._closed_videos.append(camera.relative_path(self.meta.info))
            camera.encoder = None
        for pool in (self._image_pool, self._save_pool):
            if pool is not None:
                pool.shutdown(wait=True, cancel_futures=True)
        self._image_pool = self._save_pool = None
        self._sync_session_info()
        self.meta.info = assemble(self._journal, self._closed_videos)
        self._finalized = True

    def _require_open(self, method: str) -> None:
        if self._finalized:
            raise DatasetError(f"{self.root}: cannot call {method}() after finalize()")
        if self._broken is not None:
            raise DatasetWriteError(
                f"{self.root}: the recording stopped when saving episode {self.meta.total_episodes} failed "
                f"({self._broken}); finalize() keeps the {self.meta.total_episodes} episodes saved before"
            )
