"""``MultiLeRobotDataset``: several LeRobot datasets read as one, LeRobot's concatenation.

Items are those of the datasets one after the other, each with a ``dataset_index`` tensor (the
dataset's position in ``repo_ids``) and without the features that not every dataset has; ``stats``
aggregates the datasets' stats with LeRobot's rule. Each dataset lives at ``root / repo_id`` (root
defaults to ``$HF_LEROBOT_HOME``), as in LeRobot.
"""

from __future__ import annotations

import bisect
import logging
from collections.abc import Callable, Sequence
from pathlib import Path

import torch

from dexloop import hub
from dexloop.errors import DatasetArgumentError, DatasetIndexError

from .lerobot_dataset import LeRobotDataset
from .stats import aggregate_stats

logger = logging.getLogger(__name__)


class MultiLeRobotDataset(torch.utils.data.Dataset):
    """The datasets of ``repo_ids``, concatenated. ``episodes`` maps a repo_id to its episode list;
    ``tolerances_s`` a repo_id to its tolerance (default 1e-4).

    dexloop's ``features`` is the LeRobot-style features dict (LeRobot returns Hugging Face
    ``datasets.Features``, which leave out video features); ``camera_keys`` lists image and video
    features alike.
    """

    def __init__(
        self,
        repo_ids: Sequence[str],
        root: str | Path | None = None,
        episodes: dict[str, list[int]] | None = None,
        image_transforms: Callable | None = None,
        delta_timestamps: dict[str, list[float]] | None = None,
        tolerances_s: dict[str, float] | None = None,
        download_videos: bool = True,
        video_backend: str | None = None,
        *,
        token: str | bool | None = None,
    ):
        super().__init__()
        if isinstance(repo_ids, str) or len(repo_ids) == 0:
            raise DatasetArgumentError(
                f"repo_ids must be a non-empty list of repository ids, got {repo_ids!r}"
            )
        self.repo_ids = list(repo_ids)
        self.root = Path(root) if root else hub.lerobot_home()
        self.tolerances_s = tolerances_s if tolerances_s else dict.fromkeys(self.repo_ids, 1e-4)
        self._datasets = [
            LeRobotDataset(
                repo_id,
                root=self.root / repo_id,
                episodes=episodes[repo_id] if episodes else None,
                image_transforms=image_transforms,
                delta_timestamps=delta_timestamps,
                tolerance_s=self.tolerances_s[repo_id],
                download_videos=download_videos,
                video_backend=video_backend,
                token=token,
            )
            for repo_id in self.repo_ids
        ]
        common = set(self._datasets[0].features)
        for dataset in self._datasets[1:]:
            common &= set(dataset.features)
        if not common:
            raise DatasetArgumentError(f"datasets {self.repo_ids} have no feature in common")
        self.disabled_features: set[str] = set()
        for repo_id, dataset in zip(self.repo_ids, self._datasets, strict=True):
            extra = set(dataset.features) - common
            if extra:
                logger.warning("features %s of %s are left out: not every dataset has them", extra, repo_id)
                self.disabled_features |= extra
        self.delta_timestamps = delta_timestamps
        self.stats = aggregate_stats([d.meta.stats for d in self._datasets if d.meta.stats is not None])
        self._starts = [0]
        for dataset in self._datasets:
            self._starts.append(self._starts[-1] + len(dataset))
        self.set_image_transforms(image_transforms)

    def set_image_transforms(self, image_transforms: Callable | None) -> None:
        """Replaces the transform of camera frames, here and in every dataset."""
        if image_transforms is not None and not callable(image_transforms):
            raise TypeError("image_transforms must be callable or None")
        self.image_transforms = image_transforms
        for dataset in self._datasets:
            dataset.set_image_transforms(image_transforms)

    def clear_image_transforms(self) -> None:
        self.set_image_transforms(None)

    @property
    def repo_id_to_index(self) -> dict[str, int]:
        """The ``dataset_index`` each repository's items carry."""
        return {repo_id: i for i, repo_id in enumerate(self.repo_ids)}

    @property
    def fps(self) -> int:
        return self._datasets[0].meta.fps

    @property
    def video(self) -> bool:
        return len(self._datasets[0].meta.video_keys) > 0

    @property
    def features(self) -> dict[str, dict]:
        merged: dict[str, dict] = {}
        for dataset in self._datasets:
            merged.update({k: v for k, v in dataset.features.items() if k not in self.disabled_features})
        return merged

    @property
    def camera_keys(self) -> list[str]:
        return [key for key, feature in self.features.items() if feature["dtype"] in ("image", "video")]

    @property
    def video_frame_keys(self) -> list[str]:
        return [key for key, feature in self.features.items() if feature["dtype"] == "video"]

    @property
    def num_frames(self) -> int:
        return self._starts[-1]

    @property
    def num_episodes(self) -> int:
        return sum(dataset.num_episodes for dataset in self._datasets)

    @property
    def tolerance_s(self) -> float:
        """LeRobot's value: one frame period less 1e-4 s."""
        return 1 / self.fps - 1e-4

    def __len__(self) -> int:
        return self.num_frames

    def __getitem__(self, idx: int) -> dict:
        if not isinstance(idx, int) and not (isinstance(idx, torch.Tensor) and idx.ndim == 0):
            raise TypeError(f"MultiLeRobotDataset indices must be integers, got {idx!r}")
        idx = int(idx)
        if not 0 <= idx < len(self):
            raise DatasetIndexError(f"index {idx} is out of range for {len(self)} frames of {self.repo_ids}")
        number = bisect.bisect_right(self._starts, idx) - 1
        item = self._datasets[number][idx - self._starts[number]]
        item["dataset_index"] = torch.tensor(number)
        for key in self.disabled_features:
            item.pop(key, None)
        return item

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(repo_ids={self.repo_ids}, frames={self.num_frames}, "
            f"episodes={self.num_episodes}, fps={self.fps}, camera_keys={self.camera_keys})"
        )


__all__ = ["MultiLeRobotDataset"]
