"""Action selection from predicted chunks, with the torch policies' semantics, in numpy (a deployed
runtime needs no torch):

- ``ChunkQueue``: ACT's and Diffusion's queue: a new chunk when the queue is empty, its first
  ``n_action_steps`` actions played one per call;
- ``TemporalEnsembler``: ACT's temporal ensembling (``temporal_ensemble_coeff``): a chunk every call,
  each future step the running weighted mean of every prediction made for it, weights
  exp(-coeff * i) with i = 0 for the oldest prediction (ACTTemporalEnsembler's arithmetic).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable

import numpy as np


class ChunkQueue:
    """Plays chunks ``n_action_steps`` at a time; ``next(predict)`` calls ``predict()`` when empty."""

    def __init__(self, n_action_steps: int) -> None:
        self.n_action_steps = n_action_steps
        self._queue: deque[np.ndarray] = deque()

    def reset(self) -> None:
        self._queue.clear()

    def __len__(self) -> int:
        return len(self._queue)

    def next(self, predict: Callable[[], np.ndarray]) -> np.ndarray:
        if not self._queue:
            chunk = predict()  # (B, chunk, action_dim)
            self._queue.extend(np.swapaxes(chunk[:, : self.n_action_steps], 0, 1))
        return self._queue.popleft()


class TemporalEnsembler:
    """Online temporal ensembling of successive ``(B, chunk_size, action_dim)`` chunks."""

    def __init__(self, temporal_ensemble_coeff: float, chunk_size: int) -> None:
        self.chunk_size = chunk_size
        self.weights = np.exp(-temporal_ensemble_coeff * np.arange(chunk_size, dtype=np.float32)).astype(
            np.float32
        )
        self.weights_cumsum = np.cumsum(self.weights, dtype=np.float32)
        self.reset()

    def reset(self) -> None:
        self._actions: np.ndarray | None = None
        self._count: np.ndarray | None = None  # (chunk,): predictions in each future step's mean

    def update(self, chunk: np.ndarray) -> np.ndarray:
        """Blends ``chunk`` in; returns the action for this step, ``(B, action_dim)``."""
        chunk = np.asarray(chunk, dtype=np.float32)
        if self._actions is None:
            self._actions = chunk.copy()
            self._count = np.ones(self.chunk_size, dtype=np.int64)
        else:
            count = self._count
            means = self._actions * self.weights_cumsum[count - 1][None, :, None]
            means += chunk[:, :-1] * self.weights[count][None, :, None]
            means /= self.weights_cumsum[count][None, :, None]
            self._actions = np.concatenate([means, chunk[:, -1:]], axis=1)
            self._count = np.concatenate([np.minimum(count + 1, self.chunk_size), [1]])
        action = self._actions[:, 0]
        self._actions = self._actions[:, 1:]
        self._count = self._count[1:]
        return action


__all__ = ["ChunkQueue", "TemporalEnsembler"]
