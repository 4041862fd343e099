"""``StreamingLeRobotDataset``: LeRobot's iterable dataset, reading a dataset where it lies (the Hub,
by HTTP range requests, or a local folder) without downloading it first.

Each episode's rows are read from its data file (the row groups holding it, by range requests through
huggingface_hub's fsspec filesystem) and its frames are decoded by dexloop's FFmpeg decoder straight
from the mp4 URLs. Items are built by the map-style reader's own code over that one episode, so an
item equals ``LeRobotDataset(...)[i]`` for the same frame: the same keys, windows and pixels, and the
right frames when a camera has several mp4 files (LeRobot 0.6.1 computes a frame's time as
``index / fps`` there and returns wrong frames or fails, issues #2649, #3080, #4524).

Order follows LeRobot's scheme: data files are grouped into at most ``max_num_shards`` shards; each
step takes the next frame of a random shard into a shuffle buffer of ``buffer_size`` frames and, once
the buffer is full, yields a random frame of it. ``shuffle=False`` repeats the same (seeded) order on
every pass, ``shuffle=True`` draws a new one each pass. Differences from LeRobot, all corrections:
``episodes`` is honoured (LeRobot ignores it), ``delta_timestamps`` windows are exact at any distance
(LeRobot pads anything beyond 100 frames), ``len()`` is the number of frames, and in DataLoader
workers each worker streams its own share of the episodes.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from dexloop import _core, hub
from dexloop.errors import DatasetArgumentError, DatasetError, DatasetNotFoundError

from .dataset_files import HubFiles, LocalFiles
from .lerobot_dataset import (
    DEFAULT_DEPTH_UNIT,
    LeRobotDataset,
    check_reading_arguments,
    default_decode_threads,
)
from .metadata import LeRobotDatasetMetadata


class StreamingLeRobotDataset(torch.utils.data.IterableDataset):
    """A LeRobot dataset (v3.0) streamed frame by frame, with LeRobot 0.6.1's arguments.

    ``root`` given and holding the selected episodes' files: they are read there. Otherwise the data
    and videos are read from the Hub (``HF_ENDPOINT``) at ``revision`` by range requests; only
    ``meta/`` is downloaded (to ``root``, or the snapshot cache). ``streaming=False`` downloads the
    selected episodes' files first, then reads them locally. ``repo_type="bucket"`` is not supported.
    """

    def __init__(
        self,
        repo_id: str,
        root: str | Path | None = None,
        episodes: Sequence[int] | None = None,
        image_transforms: Callable | None = None,
        delta_timestamps: dict[str, Sequence[float]] | None = None,
        tolerance_s: float = 1e-4,
        revision: str | None = None,
        force_cache_sync: bool = False,
        streaming: bool = True,
        buffer_size: int = 1000,
        max_num_shards: int = 16,
        seed: int = 42,
        rng: np.random.Generator | None = None,
        shuffle: bool = True,
        return_uint8: bool = False,
        depth_output_unit: str = DEFAULT_DEPTH_UNIT,
        *,
        repo_type: str = "dataset",
        token: str | bool | None = None,
        decode_threads: int | None = None,
    ):
        super().__init__()
        check_reading_arguments(image_transforms, tolerance_s, decode_threads, depth_output_unit)
        for name, value in (("buffer_size", buffer_size), ("max_num_shards", max_num_shards)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise DatasetArgumentError(f"{name} must be a positive integer, got {value!r}")
        self.repo_id = repo_id
        self.repo_type = repo_type
        self.image_transforms = image_transforms
        self.tolerance_s = float(tolerance_s)
        self.streaming = streaming
        self.buffer_size = buffer_size
        self.max_num_shards = max_num_shards
        self.seed = seed
        self.rng = rng if rng is not None else np.random.default_rng(seed)
        self.shuffle = shuffle
        self._depth_output_unit = depth_output_unit
        self._decode_threads = decode_threads

        self.meta = LeRobotDatasetMetadata(
            repo_id, root, revision, force_cache_sync, repo_type=repo_type, token=token
        )
        self.root = self.meta.root
        self.revision = self.meta.revision
        if self.meta.is_v21:
            raise DatasetError(
                f"{self.root}: a v2.1 dataset cannot be streamed; convert it to v3.0 (`dexloop dataset convert`)"
            )
        # The map-style reader over no episode yet: it checks the arguments as LeRobotDataset does
        # and is copied for each episode streamed (see _episode_reader).
        self._template = LeRobotDataset._reader_template(
            self.meta,
            episodes=episodes,
            delta_timestamps=delta_timestamps,
            tolerance_s=tolerance_s,
            return_uint8=return_uint8,
            image_transforms=image_transforms,
            decode_threads=decode_threads,
            depth_output_unit=depth_output_unit,
        )
        self.meta.rescale_depth_stats(depth_output_unit)  # as LeRobot's streaming dataset does
        self.episodes = self._template.episodes
        self.delta_timestamps = self._template.delta_timestamps
        self.delta_indices = self._template.delta_indices
        self._files = self._locate_files(token)
        if not isinstance(self._files, LocalFiles):
            _core.video.set_http_headers(hub.http_headers(token))
        self._pool: Any = None
        self._pool_pid = -1
        self._checked_videos: set[str] = set()

    # -- where the files are ---------------------------------------------------------------------

    def _selected(self) -> list[int]:
        return self._template._loaded_episodes

    def _needed_files(self) -> list[Path]:
        data, videos = self._template._episode_files()
        return [Path(path) for path in sorted(data | videos)]

    def _locate_files(self, token: str | bool | None) -> LocalFiles | HubFiles:
        """Local when the folder holding meta/ has every file the selected episodes need; else the
        Hub: read in place when streaming, downloaded first with ``streaming=False``."""
        needed = self._needed_files()
        if all((self.root / path).is_file() for path in needed):
            return LocalFiles(self.root)
        if not self.streaming:
            self.root, self.revision = hub.download(
                self.repo_id,
                revision=self.revision,
                local_dir=self.meta._requested_root,
                allow_patterns=[path.as_posix() for path in needed],
                what=f"{len(needed)} data and video file(s)",
                token=token,
            )
            self.meta.root = self.root
            return LocalFiles(self.root)
        if hub.is_offline():
            missing = [str(p) for p in needed if not (self.root / p).is_file()]
            raise DatasetNotFoundError(
                f"dataset {self.repo_id!r}: cannot stream {len(missing)} file(s) ({', '.join(missing[:3])}"
                f"{', ...' if len(missing) > 3 else ''}) from the Hugging Face Hub: HF_HUB_OFFLINE is set. "
                "Pass root= pointing at a complete local copy, or connect and unset HF_HUB_OFFLINE."
            )
        return HubFiles(self.repo_id, self.revision, token)

    # -- LeRobot's attributes ----------------------------------------------------------------------

    @property
    def num_frames(self) -> int:
        return self.meta.total_frames

    @property
    def num_episodes(self) -> int:
        return self.meta.total_episodes

    @property
    def fps(self) -> int:
        return self.meta.fps

    @property
    def features(self) -> dict[str, dict]:
        return self.meta.features

    @property
    def depth_output_unit(self) -> str:
        return self._depth_output_unit

    @property
    def streams_from_hub(self) -> bool:
        return isinstance(self._files, HubFiles)

    def __len__(self) -> int:
        """Frames streamed by one pass over the selected episodes (all workers together)."""
        lengths = self.meta.episodes.column("length")
        return int(sum(int(lengths[e]) for e in self._selected()))

    # -- iteration -------------------------------------------------------------------------------

    def _shards(self, episodes: list[int]) -> list[list[int]]:
        """The episodes grouped by data file, files dealt out to at most max_num_shards shards."""
        by_file: dict[str, list[int]] = {}
        for episode in episodes:
            by_file.setdefault(str(self.meta.get_data_file_path(episode)), []).append(episode)
        files = list(by_file.values())
        count = min(len(files), self.max_num_shards)
        return [[e for group in files[s::count] for e in group] for s in range(count)]

    def _worker_share(self) -> tuple[list[int], int]:
        episodes = self._selected()
        worker = torch.utils.data.get_worker_info()
        if worker is None:
            return episodes, 0
        return episodes[worker.id :: worker.num_workers], worker.id + 1

    def _pass_rng(self, worker_key: int) -> np.random.Generator:
        if not self.shuffle:
            return np.random.default_rng([self.seed, worker_key])
        if worker_key == 0:
            return self.rng
        # In a worker, self.rng is the same copy in every worker: mix the worker in.
        return np.random.default_rng([int(self.rng.integers(2**62)), worker_key])

    def __iter__(self) -> Iterator[dict]:
        episodes, worker_key = self._worker_share()
        rng = self._pass_rng(worker_key)
        shards = {number: self._frames_of(shard) for number, shard in enumerate(self._shards(episodes))}
        buffer: list[tuple[LeRobotDataset, int]] = []
        while shards:
            number = list(shards)[int(rng.integers(len(shards)))]
            frame = next(shards[number], None)
            if frame is None:
                del shards[number]
                continue
            if len(buffer) == self.buffer_size:
                slot = int(rng.integers(self.buffer_size))
                yield self._item(buffer[slot])
                buffer[slot] = frame
            else:
                buffer.append(frame)
        order = rng.permutation(len(buffer))
        for slot in order:
            yield self._item(buffer[int(slot)])

    def _frames_of(self, episodes: list[int]) -> Iterator[tuple[LeRobotDataset, int]]:
        for episode in episodes:
            reader = self._episode_reader(episode)
            for row in range(len(reader)):
                yield reader, row

    def _item(self, frame: tuple[LeRobotDataset, int]) -> dict:
        reader, row = frame
        return reader.__getitems__([row])[0]

    def _episode_reader(self, episode: int) -> LeRobotDataset:
        """The map-style reader over one episode, its files where self._files says, sharing this
        dataset's decoder pool and the set of video files already checked against info.json."""
        reader = LeRobotDataset.__new__(LeRobotDataset)  # not copy.copy: pickling reopens the dataset
        reader.__dict__.update(self._template.__dict__)
        reader.episodes = [episode]
        reader._remote_files = None if isinstance(self._files, LocalFiles) else self._files
        reader.root = self.root
        reader._checked_videos = self._checked_videos
        reader._load_frames()
        reader._pool, reader._pool_pid = self._decoder_pool(), os.getpid()
        return reader

    def _decoder_pool(self) -> Any:
        if self._pool is None or self._pool_pid != os.getpid():
            threads = self._decode_threads or default_decode_threads()
            self._pool = _core.video.DecoderPool(threads)
            self._pool_pid = os.getpid()
        return self._pool

    # -- pickling (DataLoader workers started with spawn) ----------------------------------------

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state["_pool"], state["_pool_pid"] = None, -1
        return state

    def __repr__(self) -> str:
        where = f"hub {hub.endpoint()}" if self.streams_from_hub else f"root='{self.root}'"
        return (
            f"{type(self).__name__}(repo_id={self.repo_id!r}, {where}, episodes={len(self._selected())}, "
            f"frames={len(self)}, features={list(self.features)})"
        )


__all__ = ["StreamingLeRobotDataset"]
