"""Pacer: deadlines on a fixed grid that step durations do not shift; a late step restarts the grid
instead of a catch-up burst. On a fake clock, so the assertions hold on any machine."""

from __future__ import annotations

import pytest

from dexloop.control import pacing
from dexloop.control.pacing import Pacer


class FakeClock:
    def __init__(self):
        self.now = 100.0
        self.sleeps: list[float] = []

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


@pytest.fixture
def clock(monkeypatch):
    fake = FakeClock()
    monkeypatch.setattr(pacing.time, "monotonic", fake.monotonic)
    return fake


def test_deadlines_stay_on_the_grid_whatever_each_step_takes(clock):
    pacer = Pacer(50, sleep=clock.sleep)  # 20 ms
    for work in (0.001, 0.015, 0.0, 0.019):
        clock.now += work
        assert pacer.wait()
    assert clock.now == pytest.approx(100.0 + 4 * 0.020)
    assert clock.sleeps == pytest.approx([0.019, 0.005, 0.020, 0.001])
    assert pacer.late_steps == 0


def test_a_late_step_restarts_the_grid_instead_of_bursting(clock):
    pacer = Pacer(50, sleep=clock.sleep)
    clock.now += 0.050  # overran two and a half periods
    assert not pacer.wait()
    assert clock.sleeps == []
    assert pacer.late_steps == 1
    late_at = clock.now
    # The next steps are a full period apart from where it fell behind, not squeezed in.
    assert pacer.wait()
    assert clock.now == pytest.approx(late_at + 0.020)


@pytest.mark.parametrize("fps", [0, -5, float("nan")])
def test_a_rate_that_is_not_positive_is_refused(fps):
    with pytest.raises(ValueError, match="fps must be positive"):
        Pacer(fps)
