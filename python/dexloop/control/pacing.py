"""Absolute-deadline pacing for the Python loops that run beside the C++ control loop.

The control loop keeps its own rate in C++. Around it, a few Python loops also run at a rate but
need no real-time guarantee: a deploy client offering observations each control period, the
simulated twin stepping its physics, a benchmark's robot client. They all pace the same way:
deadlines on a fixed grid (``deadline += period``), so that the time a step takes does not add up
into drift as it does with ``sleep(period - elapsed)``; and a loop that falls behind restarts the
grid at the present instead of running a burst of steps to catch up, which would bunch work the
rate is meant to spread.
"""

from __future__ import annotations

import time
from collections.abc import Callable


class Pacer:
    """Waits out each period of a fixed-rate loop: call :meth:`wait` once per step.

    ``sleep`` is how to wait a number of seconds; an ``threading.Event().wait`` makes the wait end
    early when the event is set (a loop being stopped).
    """

    def __init__(self, fps: float, sleep: Callable[[float], object] = time.sleep):
        if not fps > 0:
            raise ValueError(f"fps must be positive, got {fps}")
        self.period_s = 1.0 / fps
        self._sleep = sleep
        self._deadline = time.monotonic()
        self.late_steps = 0

    def wait(self) -> bool:
        """Sleeps until the next deadline. Returns False, without sleeping, when the step already
        overran it; the grid then restarts now, and ``late_steps`` counts it."""
        self._deadline += self.period_s
        delay = self._deadline - time.monotonic()
        if delay > 0:
            self._sleep(delay)
            return True
        self.late_steps += 1
        self._deadline = time.monotonic()
        return False


__all__ = ["Pacer"]
