"""``EpisodeAwareSampler``: LeRobot's training sampler over the frames of chosen episodes.

It yields item indices episode by episode (optionally dropping frames at each episode's start or end)
and, with ``shuffle``, in a permutation that is a pure function of ``(seed, epoch)``: a
``torch.randperm`` whose generator is seeded with the first 64-bit word of
``numpy.random.SeedSequence([seed, epoch])``. That is LeRobot 0.6.1's rule, so a run gets the same
order of frames with either library, on every rank, and resumes sample-exactly from
``state_dict()``. Each ``iter()`` starts the next epoch.

Only episode bounds are stored; a position becomes a frame index by a binary search over the
cumulated episode lengths, so construction costs O(episodes), not O(frames).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterator, Sequence

import numpy as np
import torch

from dexloop.errors import DatasetArgumentError

logger = logging.getLogger(__name__)


class EpisodeAwareSampler:
    """Frames ``[from + drop_n_first_frames, to - drop_n_last_frames)`` of each used episode.

    ``dataset_from_indices`` / ``dataset_to_indices`` are ``meta.episodes["dataset_from_index"]`` /
    ``["dataset_to_index"]`` (absolute frame indices); ``episode_indices_to_use`` picks episodes
    (None: all); ``absolute_to_relative_idx`` (``dataset.absolute_to_relative_idx``) turns absolute
    frame indices into item indices of an episode-subset dataset.
    """

    def __init__(
        self,
        dataset_from_indices: Sequence[int],
        dataset_to_indices: Sequence[int],
        episode_indices_to_use: Sequence[int] | None = None,
        drop_n_first_frames: int = 0,
        drop_n_last_frames: int = 0,
        shuffle: bool = False,
        seed: int = 0,
        absolute_to_relative_idx: dict[int, int] | None = None,
    ):
        if drop_n_first_frames < 0 or drop_n_last_frames < 0:
            raise DatasetArgumentError(
                f"drop_n_first_frames and drop_n_last_frames must be >= 0, got "
                f"{drop_n_first_frames} and {drop_n_last_frames}"
            )
        starts = np.asarray(dataset_from_indices, dtype=np.int64)
        ends = np.asarray(dataset_to_indices, dtype=np.int64)
        if starts.shape != ends.shape:
            raise DatasetArgumentError(
                f"dataset_from_indices ({len(starts)}) and dataset_to_indices ({len(ends)}) must have the same length"
            )
        used = np.zeros(len(starts), dtype=bool)
        if episode_indices_to_use is None:
            used[:] = True
        else:
            chosen = np.asarray(list(episode_indices_to_use), dtype=np.int64)
            outside = chosen[(chosen < 0) | (chosen >= len(starts))]
            if outside.size:
                raise DatasetArgumentError(
                    f"episode_indices_to_use {outside.tolist()} are not among the {len(starts)} episodes"
                )
            used[chosen] = True
        first = starts + drop_n_first_frames
        lengths = ends - drop_n_last_frames - first
        for episode in np.flatnonzero(used & (lengths <= 0)):
            logger.warning(
                "Episode %d has %d frames, all dropped by drop_n_first_frames=%d and drop_n_last_frames=%d; skipping it.",
                episode,
                ends[episode] - starts[episode],
                drop_n_first_frames,
                drop_n_last_frames,
            )
        used &= lengths > 0
        if not used.any():
            raise DatasetArgumentError(
                "no frames remain after drop_n_first_frames and drop_n_last_frames in the episodes used"
            )
        self._first = first[used]
        self._ends_cumulated = np.cumsum(lengths[used])
        self._num_frames = int(self._ends_cumulated[-1])
        self._absolute_to_relative = absolute_to_relative_idx
        self.shuffle = shuffle
        self.seed = seed
        self._epoch = 0
        self._start_index = 0

    @property
    def indices(self) -> list[int]:
        """Every index in unshuffled order (materialised: for inspection, O(frames))."""
        return [self._index_at(position) for position in range(self._num_frames)]

    def set_epoch(self, epoch: int) -> None:
        self._epoch = epoch

    def state_dict(self) -> dict:
        return {"epoch": self._epoch, "start_index": self._start_index}

    def load_state_dict(self, state: dict) -> None:
        self._epoch = state["epoch"]
        self._start_index = state["start_index"]

    def _permutation(self, epoch: int) -> torch.Tensor:
        word = np.random.SeedSequence([self.seed, epoch]).generate_state(1, dtype=np.uint64)[0]
        return torch.randperm(self._num_frames, generator=torch.Generator().manual_seed(int(word)))

    def _index_at(self, position: int) -> int:
        episode = int(np.searchsorted(self._ends_cumulated, position, side="right"))
        before = int(self._ends_cumulated[episode - 1]) if episode > 0 else 0
        absolute = int(self._first[episode]) + position - before
        return absolute if self._absolute_to_relative is None else self._absolute_to_relative[absolute]

    def __iter__(self) -> Iterator[int]:
        # The epoch advances when iteration is requested, not when the first index is consumed.
        epoch, start = self._epoch, self._start_index
        self._epoch += 1
        self._start_index = 0
        return self._epoch_indices(epoch, start)

    def _epoch_indices(self, epoch: int, start: int) -> Iterator[int]:
        order = self._permutation(epoch).tolist() if self.shuffle else None
        for k in range(start, self._num_frames):
            yield self._index_at(order[k] if order is not None else k)

    def __len__(self) -> int:
        return self._num_frames


def compute_sampler_state(step: int, num_frames: int, batch_size: int, num_processes: int) -> dict:
    """The sampler state after ``step`` optimisation steps (LeRobot's resume rule): each step
    consumes ``batch_size * num_processes`` positions, and an epoch has
    ``ceil(ceil(num_frames / batch_size) / num_processes)`` steps (accelerate's even batches)."""
    steps_per_epoch = math.ceil(math.ceil(num_frames / batch_size) / num_processes)
    epoch, steps_into_epoch = divmod(step, steps_per_epoch)
    return {"epoch": epoch, "start_index": min(steps_into_epoch * batch_size * num_processes, num_frames)}


__all__ = ["EpisodeAwareSampler", "compute_sampler_state"]
