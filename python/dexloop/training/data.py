"""The training data: the dataset a policy needs, and the batches each process trains on.

``make_dataset`` opens dexloop's LeRobotDataset as ``lerobot-train`` does: the frames around each
sample that the policy's ``observation/action/reward_delta_indices`` ask for (as delta_timestamps in
seconds), camera frames as uint8 (the loop turns them into float / 255), ImageNet statistics for the
cameras when ``dataset.use_imagenet_stats``.

``ShardedBatchSampler`` cuts the order of dexloop's EpisodeAwareSampler (LeRobot's: a permutation
that is a pure function of seed and epoch, ``drop_n_last_frames`` per episode) into batches and
gives process ``rank`` of ``world_size`` its share as accelerate's ``BatchSamplerShard`` does under
``lerobot-train`` (whole batches in turn; the last round completed with the epoch's first samples),
so that N processes with batch B see, step by step, the samples one process with batch N*B sees,
and a resumed run (``compute_sampler_state``) continues with the very next samples.

``make_train_eval_datasets`` holds out, with ``dataset.eval_split``, the last episodes of each task
for the held-out loss, as LeRobot does.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch

from dexloop.datasets.lerobot_dataset import LeRobotDataset
from dexloop.datasets.sampler import EpisodeAwareSampler
from dexloop.errors import TrainingConfigError

logger = logging.getLogger(__name__)

# ImageNet's per-channel statistics, shaped (c, 1, 1) as LeRobot stores camera stats.
IMAGENET_STATS = {
    "mean": [[[0.485]], [[0.456]], [[0.406]]],
    "std": [[[0.229]], [[0.224]], [[0.225]]],
}


def resolve_delta_timestamps(policy_config: Any, ds_meta: Any) -> dict[str, list[float]] | None:
    """``{feature: [seconds, ...]}`` from the policy's delta indices (LeRobot's rule: rewards take
    ``reward_delta_indices``, ``action`` the action ones, every ``observation.*`` feature the
    observation ones); None when the policy wants only the current frame."""
    delta_timestamps: dict[str, list[float]] = {}
    fps = ds_meta.fps
    for key in ds_meta.features:
        if key == "next.reward" and policy_config.reward_delta_indices is not None:
            delta_timestamps[key] = [i / fps for i in policy_config.reward_delta_indices]
        if key == "action" and policy_config.action_delta_indices is not None:
            delta_timestamps[key] = [i / fps for i in policy_config.action_delta_indices]
        if key.startswith("observation.") and policy_config.observation_delta_indices is not None:
            delta_timestamps[key] = [i / fps for i in policy_config.observation_delta_indices]
    return delta_timestamps or None


def make_dataset(cfg: Any, episodes: list[int] | None = None) -> LeRobotDataset:
    """The dataset of a TrainPipelineConfig (or its `episodes`), read as ``lerobot-train`` reads it."""
    from dexloop.datasets.metadata import LeRobotDatasetMetadata

    dataset_cfg = cfg.dataset
    meta = LeRobotDatasetMetadata(dataset_cfg.repo_id, root=dataset_cfg.root, revision=dataset_cfg.revision)
    dataset = LeRobotDataset(
        dataset_cfg.repo_id,
        root=dataset_cfg.root,
        episodes=episodes if episodes is not None else dataset_cfg.episodes,
        delta_timestamps=resolve_delta_timestamps(cfg.trainable_config, meta),
        revision=dataset_cfg.revision,
        video_backend=dataset_cfg.video_backend,
        return_uint8=True,
        depth_output_unit=dataset_cfg.depth_output_unit,
        tolerance_s=cfg.tolerance_s,
    )
    if dataset_cfg.use_imagenet_stats:
        depth_keys = set(dataset.meta.depth_keys)
        for key in dataset.meta.camera_keys:
            if key in depth_keys or dataset.meta.stats is None or key not in dataset.meta.stats:
                continue
            for name, values in IMAGENET_STATS.items():
                dataset.meta.stats[key][name] = torch.tensor(values, dtype=torch.float32)
    return dataset


def split_episodes(episode_tasks: Any, episodes: list[int], eval_split: float) -> tuple[list[int], list[int]]:
    """LeRobot's held-out split: per task (an episode's first task), the last
    ``ceil(n * eval_split)`` of its `episodes` are for evaluation, the others for training."""
    by_task: dict[str, list[int]] = {}
    for episode in episodes:
        tasks = episode_tasks[episode]
        by_task.setdefault(tasks[0] if len(tasks) else "", []).append(episode)
    train, held_out = [], []
    for task_episodes in by_task.values():
        count = math.ceil(len(task_episodes) * eval_split)
        train.extend(task_episodes[: len(task_episodes) - count])
        held_out.extend(task_episodes[len(task_episodes) - count :])
    if not train:
        raise TrainingConfigError(
            f"dataset.eval_split={eval_split} leaves no training episode out of {len(episodes)}"
        )
    return train, held_out


def make_train_eval_datasets(cfg: Any) -> tuple[LeRobotDataset, LeRobotDataset | None]:
    """The training dataset and, with ``dataset.eval_split > 0``, the held-out one."""
    dataset = make_dataset(cfg)
    if cfg.dataset.eval_split == 0.0:
        return dataset, None
    episodes = dataset.episodes if dataset.episodes is not None else list(range(dataset.meta.total_episodes))
    train, held_out = split_episodes(dataset.meta.episodes["tasks"], list(episodes), cfg.dataset.eval_split)
    logger.info("train/eval split: %d episodes for training, %d held out", len(train), len(held_out))
    return make_dataset(cfg, train), make_dataset(cfg, held_out)


def eval_indices(dataset: LeRobotDataset, max_samples: int) -> list[int]:
    """Item indices of the held-out loss: all, or with `max_samples` > 0 at most
    ``max_samples // tasks`` first frames of each task (LeRobot's cap)."""
    if max_samples <= 0:
        return list(range(len(dataset)))
    episodes = dataset.meta.episodes
    chosen = (
        dataset.episodes if dataset.episodes is not None else list(range(len(episodes["dataset_from_index"])))
    )
    by_task: dict[str, list[int]] = {}
    position = 0
    for episode in sorted(chosen):
        length = int(episodes["dataset_to_index"][episode]) - int(episodes["dataset_from_index"][episode])
        tasks = episodes["tasks"][episode]
        by_task.setdefault(tasks[0] if len(tasks) else "", []).extend(range(position, position + length))
        position += length
    per_task = max(1, max_samples // max(1, len(by_task)))
    return [index for task in sorted(by_task) for index in by_task[task][:per_task]]


def make_sampler(dataset: LeRobotDataset, policy_config: Any, seed: int | None) -> EpisodeAwareSampler:
    """LeRobot's training sampler over `dataset`: shuffled, ``drop_n_last_frames`` of the policy
    left out at each episode's end (where its action chunk would run past the episode)."""
    episodes = dataset.meta.episodes
    return EpisodeAwareSampler(
        np.asarray(episodes["dataset_from_index"]),
        np.asarray(episodes["dataset_to_index"]),
        episode_indices_to_use=dataset.episodes,
        drop_n_last_frames=getattr(policy_config, "drop_n_last_frames", 0),
        shuffle=True,
        seed=seed if seed is not None else 0,
        absolute_to_relative_idx=dataset.absolute_to_relative_idx,
    )


class ShardedBatchSampler:
    """Batches of `batch_size` item indices for process `rank` of `world_size`, from one epoch of
    `sampler` per ``iter()``. With one process these are the sampler's indices in consecutive
    batches, the last one possibly short; with several, batch k of the epoch goes to process
    ``k % world_size``, and when the epoch does not fill a last round of full batches, the missing
    indices are taken from the epoch's first ones (accelerate's ``even_batches``), so every process
    runs the same number of steps."""

    def __init__(self, sampler: EpisodeAwareSampler, batch_size: int, rank: int = 0, world_size: int = 1):
        if batch_size <= 0:
            raise TrainingConfigError(f"batch_size must be positive, got {batch_size}")
        if not 0 <= rank < world_size:
            raise TrainingConfigError(f"rank {rank} is not among {world_size} processes")
        self.sampler = sampler
        self.batch_size = batch_size
        self.rank = rank
        self.world_size = world_size

    def __len__(self) -> int:
        batches = -(-len(self.sampler) // self.batch_size)
        return -(-batches // self.world_size)

    def __iter__(self) -> Iterator[list[int]]:
        indices = list(iter(self.sampler))
        size, world, rank = self.batch_size, self.world_size, self.rank
        batches = [indices[start : start + size] for start in range(0, len(indices), size)]
        if world == 1 or not batches:
            yield from batches
            return
        # A process's batch of a round is handed out once the round is complete with a full batch
        # from every process.
        mine = None
        for k, batch in enumerate(batches):
            if k % world == rank:
                mine = batch
            if k % world == world - 1 and len(batch) == size:
                yield mine
                mine = None
        if mine is not None and len(mine) == size:
            yield mine
        # The incomplete last round: its short batch, then whole missing batches, are filled from
        # the indices of the epoch's first `world` batches (repeated when the epoch is tiny).
        head = [index for batch in batches[:world] for index in batch]
        while len(head) < world * size:
            head += head
        last, k = batches[-1], len(batches) - 1
        if len(last) == size:
            last, k = [], k + 1
        position = 0
        while k % world != 0 or last:
            take = size - len(last)
            batch = last + head[position : position + take]
            if k % world == rank:
                yield batch
            position += take
            last, k = [], k + 1


def cycle(iterable: Any, first: Iterator[Any] | None = None) -> Iterator[Any]:
    """Endless iteration, from `first` (an iterator of `iterable` already opened) or a new one;
    each new pass over `iterable` starts the next epoch of its sampler."""
    iterator = first if first is not None else iter(iterable)
    while True:
        try:
            yield next(iterator)
        except StopIteration:
            iterator = iter(iterable)


__all__ = [
    "IMAGENET_STATS",
    "ShardedBatchSampler",
    "cycle",
    "eval_indices",
    "make_dataset",
    "make_sampler",
    "make_train_eval_datasets",
    "resolve_delta_timestamps",
    "split_episodes",
]
