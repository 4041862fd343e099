"""A policy run in the robot's own process, on a thread of its own, with the transport calls of
``dexloop.async_inference.PolicyClient``: the deploy loop drives either the same way.

``send_observation`` never waits: the observation goes into a slot of one (a newer one replaces it),
and the worker thread predicts a chunk from whatever is newest when it is free, then hands it to
``sink(start_timestep, actions, observed_at_ns, received_at_ns)`` (the C++ action queue's push). The
control loop keeps its rate whatever inference costs; the chunk's first actions, for timesteps the loop
executed while it was being computed, are dropped by the queue.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from dexloop.async_inference.client import LatencyStats, should_send

log = logging.getLogger(__name__)

Sink = Callable[[int, np.ndarray, int, int], int]
STAGES = ("capture_to_infer", "infer", "total")


class LocalPolicy:
    """Runs ``policy.predict_chunk`` (a ``ChunkPolicy``: ``features`` and ``predict_chunk``) on a
    worker thread for the newest observation (see the module docstring)."""

    def __init__(self, policy: Any, *, sink: Sink, chunk_size_threshold: float = 0.5) -> None:
        self.policy = policy
        self.features = policy.features
        self.sink = sink
        self.chunk_size_threshold = chunk_size_threshold
        self.latency = LatencyStats(stages=STAGES)
        self._cond = threading.Condition()
        self._pending: tuple[dict[str, np.ndarray], int, int] | None = None
        self._must_go_armed = True
        self._chunk_size = -1
        self._closed = False
        self._error: BaseException | None = None
        self._counters = {
            "observations_sent": 0,
            "observations_replaced": 0,
            "chunks_received": 0,
            "errors": 0,
        }
        self._thread = threading.Thread(target=self._run, name="dexloop-local-policy", daemon=True)

    def connect(self) -> Any:
        self._thread.start()
        return self.features

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        if self._thread.is_alive():
            self._thread.join(timeout=30.0)

    def reset(self) -> None:
        """A new episode: the pending observation is dropped and the policy forgets its history."""
        with self._cond:
            self._pending = None
            self._must_go_armed = True
            if hasattr(self.policy, "reset"):
                self.policy.reset()

    def counters(self) -> dict[str, Any]:
        with self._cond:
            return {**self._counters, "state": "closed" if self._closed else "local"}

    def should_send(self, queue_depth: int) -> bool:
        return should_send(queue_depth, self._chunk_size, self.chunk_size_threshold)

    def must_go(self, queue_depth: int) -> bool:
        return self._must_go_armed and queue_depth == 0

    def send_observation(
        self,
        observation: Mapping[str, Any],
        *,
        timestep: int,
        must_go: bool = False,
        captured_monotonic_ns: int | None = None,
        **_: Any,
    ) -> None:
        if self._error is not None:
            raise self._error
        captured = time.monotonic_ns() if captured_monotonic_ns is None else captured_monotonic_ns
        with self._cond:
            if must_go:
                self._must_go_armed = False
            if self._pending is not None:
                self._counters["observations_replaced"] += 1
            self._pending = (dict(observation), int(timestep), captured)
            self._counters["observations_sent"] += 1
            self._cond.notify_all()

    def _run(self) -> None:
        while True:
            with self._cond:
                self._cond.wait_for(lambda: self._closed or self._pending is not None)
                if self._closed:
                    return
                observation, timestep, captured = self._pending
                self._pending = None
            started = time.monotonic_ns()
            try:
                actions = np.ascontiguousarray(self.policy.predict_chunk(observation), dtype=np.float32)
            except BaseException as error:  # surfaced to the sender's next call
                log.exception("the policy failed")
                with self._cond:
                    self._counters["errors"] += 1
                self._error = error
                return
            done = time.monotonic_ns()
            self.sink(timestep, actions, captured, done)
            with self._cond:
                self._chunk_size = len(actions)
                self._must_go_armed = True
                self._counters["chunks_received"] += 1
            self.latency.record(
                {"capture_to_infer": started - captured, "infer": done - started, "total": done - captured}
            )


__all__ = ["LocalPolicy"]
