"""Real-time control: the C++ loop that drives a motors bus at a fixed rate, its action-chunk queue
(LeRobot's async aggregation, ACT's temporal ensembling) and its safety limits."""

from dexloop.control.control_loop import AGGREGATES, ControlLoop, LoopSnapshot
from dexloop.control.pacing import Pacer

__all__ = ["AGGREGATES", "ControlLoop", "LoopSnapshot", "Pacer"]
