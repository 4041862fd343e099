"""The real-time control loop, driven from Python: a motors bus's joints at a fixed rate, in C++.

``ControlLoop`` wraps ``dexloop._core.control.ControlLoop``. Its thread reads every joint in one sync
read, takes this tick's action from the action queue, applies the safety limits and writes the goals
in one sync write, on absolute deadlines; it never takes the GIL, so a slow policy, a garbage
collection or a busy Python thread cannot make it late. Python feeds it action chunks
(``push_chunk``), reads what it saw (``snapshot``) and how it kept time (``stats``).

Example, an SO-101 follower at 30 Hz::

    bus = FeetechMotorsBus(port, motors, calibration)
    bus.connect()
    with ControlLoop(bus, fps=30, max_relative_target=10.0) as loop:
        loop.push_chunk(chunk, start_timestep=0)   # (n, 6) actions in the bus's normalised units
        ...
        loop.raise_for_faults()

Positions and actions are in the units of the bus's normalisation (``MotorNormMode``), computed in C++
with the formulas of ``dexloop.motors.normalization`` (same values). While the loop runs it owns the
bus: other transactions on it raise ``BusError`` until ``stop()``.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from dexloop._core import control as _control
from dexloop.errors import (
    BusError,
    BusProtocolError,
    BusTimeoutError,
    CalibrationError,
    ControlLoopFaultError,
    DeviceNotConnectedError,
    SafetyLimitError,
    ServoError,
)

logger = logging.getLogger(__name__)

AGGREGATES = ("weighted_average", "latest_only", "average", "conservative", "temporal_ensemble")
HISTOGRAMS = ("lateness", "read", "write", "work", "action_age")
PERCENTILES = (0.5, 0.9, 0.99, 0.999)


@dataclass(frozen=True)
class LoopSnapshot:
    """What the loop saw at its newest tick. Times are ``time.monotonic_ns()`` values."""

    tick: int
    deadline_ns: int
    read_started_ns: int
    read_finished_ns: int
    present_valid: bool  # False when this tick's read failed (present holds the last good positions)
    goal_valid: bool
    action_timestep: int  # the timestep of the last action executed (-1 before the first)
    faults: tuple[str, ...]
    torque_enabled: bool
    present: np.ndarray  # float64, one per joint
    goal: np.ndarray

    def observation(self, names: Sequence[str]) -> dict[str, float]:
        """LeRobot's observation dict of the joints: ``{"<motor>.pos": position}``."""
        return {f"{name}.pos": float(value) for name, value in zip(names, self.present, strict=True)}


def _per_joint(
    value: float | Mapping[str, float] | None, names: Sequence[str], what: str
) -> np.ndarray | None:
    """A float for every joint, or one per motor name (LeRobot's ``max_relative_target`` forms)."""
    if value is None:
        return None
    if isinstance(value, Mapping):
        unknown = sorted(set(value) - set(names))
        if unknown:
            raise ValueError(
                f"{what} names motors the loop does not drive: {unknown} (it drives {list(names)})"
            )
        out = np.array([float(value.get(name, math.inf)) for name in names], dtype=np.float64)
    else:
        out = np.full(len(names), float(value), dtype=np.float64)
    if np.isnan(out).any() or (out < 0).any():
        raise ValueError(f"{what} must be non-negative numbers, got {value!r}")
    return out


class ControlLoop:
    """A fixed-rate loop over the joints of a connected, calibrated ``MotorsBus``.

    Arguments (keyword only after ``bus``):

    - ``fps``: the loop's rate in Hz.
    - ``motors``: the motors it drives, in action order (default: every motor of the bus).
    - ``max_relative_target``: LeRobot's cap on how far a goal may be from the present position, one
      float or ``{motor: float}``; ``max_step``: the most a goal may move per tick, same forms.
    - ``joint_limits``: ``{motor: (lower, upper)}`` overriding the calibrated range (the default).
    - ``strict``: a goal that needed clamping latches a ``safety_limit`` fault (the arm holds) and
      ``push_chunk`` / ``raise_for_faults`` raise ``SafetyLimitError``, instead of sending it clamped.
    - ``on_fault``: ``"hold"`` (keep the last goal) or ``"disable_torque"`` while a fault is active.
    - ``action_timeout_s``: no fresh action for this long, once actions started, is a fault (a
      policy server gone); ``None`` disables it. ``bus_fault_ticks``: failed reads in a row that make
      a bus fault; ``overrun_ticks``: late ticks in a row that make an overrun fault.
    - ``latency_margin_ms``: the bus's allowance beyond a read's wire time while the loop runs
      (default: the bus's own); below the period, a silent motor costs one tick, not several.
    - ``aggregate_fn_name``: how a chunk merges with queued actions for the same timesteps (LeRobot's
      async names, or ``"temporal_ensemble"`` with ``temporal_ensemble_coeff``).
    - ``realtime``: ask for SCHED_FIFO at ``priority``; ``cpu`` pins the thread; ``lock_memory``
      mlockall()s. Refusals are logged and reported by ``start()``; the loop runs anyway.
    - ``spin_us``: the loop polls the clock for this long before each deadline instead of sleeping.
    """

    def __init__(
        self,
        bus: Any,
        *,
        fps: float,
        motors: Sequence[str] | None = None,
        max_relative_target: float | Mapping[str, float] | None = None,
        max_step: float | Mapping[str, float] | None = None,
        joint_limits: Mapping[str, tuple[float, float]] | None = None,
        strict: bool = False,
        on_fault: str = "hold",
        action_timeout_s: float | None = None,
        bus_fault_ticks: int = 3,
        overrun_ticks: int = 5,
        read_retries: int = 0,
        latency_margin_ms: float | None = None,
        aggregate_fn_name: str = "weighted_average",
        temporal_ensemble_coeff: float = 0.01,
        queue_capacity: int = 1024,
        realtime: bool = False,
        priority: int = 50,
        cpu: int | None = None,
        lock_memory: bool = False,
        spin_us: float = 100.0,
        write_goals: bool = True,
    ) -> None:
        if not bus.is_connected:
            raise DeviceNotConnectedError(f"{type(bus).__name__} is not connected. Run `.connect()` first.")
        if not getattr(bus, "_has_sync_read", True):
            raise BusError(
                f"{type(bus).__name__} on '{bus.port}': protocol {bus.protocol} has no SYNC_READ, which the "
                "control loop reads the joints with"
            )
        if aggregate_fn_name not in AGGREGATES:
            raise ValueError(
                f"aggregate_fn_name must be one of {', '.join(AGGREGATES)}, got {aggregate_fn_name!r}"
            )
        if not (math.isfinite(fps) and fps > 0):
            raise ValueError(f"fps must be a positive number, got {fps!r}")
        self.bus = bus
        self.fps = float(fps)
        self.strict = strict
        self.motor_names = list(bus.motors) if motors is None else list(motors)
        unknown = [name for name in self.motor_names if name not in bus.motors]
        if unknown:
            raise ValueError(f"motors {unknown} are not on {type(bus).__name__} (it has {list(bus.motors)})")
        self.action_names = [f"{name}.pos" for name in self.motor_names]

        calibrations = [self._joint_calibration(name) for name in self.motor_names]
        lower = upper = None
        if joint_limits:
            unknown = sorted(set(joint_limits) - set(self.motor_names))
            if unknown:
                raise ValueError(f"joint_limits names motors the loop does not drive: {unknown}")
            lower = np.empty(len(self.motor_names))
            upper = np.empty(len(self.motor_names))
            for i, (name, calibration) in enumerate(zip(self.motor_names, calibrations, strict=True)):
                lower[i], upper[i] = joint_limits.get(name, _control.position_limits(calibration))
        timeout_ticks = 0 if action_timeout_s is None else max(1, math.ceil(action_timeout_s * self.fps))
        self._loop = _control.ControlLoop(
            bus.servo_bus,
            [bus.motors[name].id for name in self.motor_names],
            [bus.motors[name].model for name in self.motor_names],
            calibrations,
            lower=lower,
            upper=upper,
            max_relative_target=_per_joint(max_relative_target, self.motor_names, "max_relative_target"),
            max_step=_per_joint(max_step, self.motor_names, "max_step"),
            rate_hz=self.fps,
            spin_us=spin_us,
            fifo=realtime,
            priority=priority,
            cpu=-1 if cpu is None else cpu,
            lock_memory=lock_memory,
            read_retries=read_retries,
            latency_margin_ms=-1.0 if latency_margin_ms is None else float(latency_margin_ms),
            write_goals=write_goals,
            bus_fault_ticks=bus_fault_ticks,
            action_timeout_ticks=timeout_ticks,
            overrun_ticks=overrun_ticks,
            on_fault=on_fault,
            strict_safety=strict,
            aggregate=aggregate_fn_name,
            ensemble_coeff=temporal_ensemble_coeff,
            queue_capacity=queue_capacity,
        )
        self.realtime_report: dict[str, Any] | None = None

    def _joint_calibration(self, name: str) -> Any:
        calibration = self.bus.calibration.get(name)
        if calibration is None:
            raise CalibrationError(
                f"{type(self.bus).__name__} on '{self.bus.port}' has no calibration for motor '{name}': the "
                "control loop drives normalised positions. Calibrate the robot, or pass calibration= to the bus."
            )
        if calibration.range_min == calibration.range_max:
            raise CalibrationError(
                f"{type(self.bus).__name__} on '{self.bus.port}': invalid calibration for motor '{name}': "
                f"range_min and range_max are both {calibration.range_min}. Recalibrate."
            )
        motor = self.bus.motors[name]
        return _control.JointCalibration(
            calibration.range_min,
            calibration.range_max,
            inverted=bool(self.bus.apply_drive_mode and calibration.drive_mode),
            max_resolution=self.bus.model_resolution_table[motor.model] - 1,
            mode=motor.norm_mode.value,
        )

    # ------------------------------------------------------------------------------------------------
    # Running

    def start(self) -> dict[str, Any]:
        """Starts the loop's thread; returns what real-time treatment it got
        (``{fifo, pinned, memory_locked, refused}``)."""
        self.realtime_report = self._loop.start()
        if self.realtime_report["refused"]:
            logger.warning("control loop runs without: %s", self.realtime_report["refused"])
        return self.realtime_report

    def stop(self) -> None:
        """Stops the thread after its current tick; the bus is free again."""
        self._loop.stop()

    @property
    def running(self) -> bool:
        return self._loop.running

    @property
    def period_ns(self) -> int:
        return self._loop.period_ns

    def __enter__(self) -> ControlLoop:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def estop(self) -> None:
        """Torque off on every joint at the next tick; latched until the loop is restarted."""
        self._loop.estop()

    def clear_faults(self) -> None:
        """Clears a latched ``safety_limit`` fault, so that actions are taken again. The actions queued
        behind the refused one are dropped first (they came with it); the policy's next chunk resumes."""
        self._loop.clear_queue()  # while the fault holds the arm, the tick takes nothing
        self._loop.clear_faults()

    def enable_torque(self) -> None:
        """Torque back on (after ``on_fault="disable_torque"``), the goals first set to where the joints are."""
        self._loop.enable_torque()

    # ------------------------------------------------------------------------------------------------
    # Actions

    def push_chunk(
        self,
        actions: Any,
        start_timestep: int,
        observed_at_ns: int | None = None,
        received_at_ns: int | None = None,
    ) -> int:
        """Queues actions for timesteps ``start_timestep, start_timestep + 1, ...``.

        ``actions`` is ``(n, joints)`` (or one ``(joints,)`` action) in the order of ``motor_names``.
        ``observed_at_ns`` is when the observation that predicted them was captured (for the action-age
        histogram). Returns how many were queued: actions for timesteps already executed are dropped.
        Raises ``SafetyLimitError`` when strict safety has latched a refused goal (``clear_faults()``).
        """
        if self.strict and "safety_limit" in self._loop.faults:
            self.raise_for_faults()
        chunk = np.ascontiguousarray(actions, dtype=np.float32)
        if chunk.ndim == 1:
            chunk = chunk[None]
        if chunk.ndim != 2 or chunk.shape[1] != len(self.motor_names):
            raise ValueError(
                f"a chunk needs shape (n, {len(self.motor_names)}) for motors {self.motor_names}, got {chunk.shape}"
            )
        now = time.monotonic_ns()
        return self._loop.push(
            int(start_timestep),
            chunk,
            now if observed_at_ns is None else int(observed_at_ns),
            now if received_at_ns is None else int(received_at_ns),
        )

    def clear_queue(self) -> None:
        self._loop.clear_queue()

    @property
    def queue_depth(self) -> int:
        """Actions queued after the last one executed."""
        return self._loop.queue_depth

    @property
    def timestep(self) -> int:
        """Timestep of the last action executed (-1 before the first)."""
        return self._loop.last_taken

    # ------------------------------------------------------------------------------------------------
    # Telemetry

    def snapshot(self) -> LoopSnapshot:
        """The newest tick's positions, goals, faults and timestamps."""
        raw = self._loop.snapshot()
        raw["faults"] = tuple(raw["faults"])
        return LoopSnapshot(**raw)

    def get_observation(self) -> dict[str, float]:
        """``{"<motor>.pos": position}`` from the newest tick (no bus transaction)."""
        return self.snapshot().observation(self.motor_names)

    @property
    def faults(self) -> list[str]:
        """Active faults: bus_fault, action_timeout, overrun, safety_limit, estop."""
        return list(self._loop.faults)

    @property
    def counters(self) -> dict[str, Any]:
        return dict(self._loop.counters)

    def histogram(self, name: str) -> Any:
        """A live ``LatencyHistogram`` (nanoseconds): lateness, read, write, work or action_age."""
        return self._loop.histogram(name)

    def reset_histograms(self) -> None:
        self._loop.reset_histograms()

    def stats(self) -> dict[str, Any]:
        """Counters, faults and every histogram's count, mean, percentiles and maximum, in microseconds."""
        out: dict[str, Any] = {"fps": self.fps, "faults": self.faults, **self.counters}
        for name in HISTOGRAMS:
            histogram = self._loop.histogram(name)
            entry = {"count": histogram.count, "mean_us": histogram.mean / 1e3, "max_us": histogram.max / 1e3}
            for fraction in PERCENTILES:
                entry[f"p{fraction * 100:g}_us"] = histogram.percentile(fraction) / 1e3
            out[name] = entry
        return out

    def raise_for_faults(self) -> None:
        """Raises the error an active fault stands for (``SafetyLimitError``, ``BusTimeoutError``,
        ``BusProtocolError``, ``ServoError`` or ``BusError``), naming the motor; nothing when healthy."""
        faults = self._loop.faults
        if not faults:
            return
        where = f"control loop on {type(self.bus).__name__} '{self.bus.port}'"
        if "safety_limit" in faults:
            counters = self._loop.counters
            kinds = [
                kind
                for kind, key in (
                    ("joint limit", "safety_joint_limit"),
                    ("max_relative_target", "safety_relative_target"),
                    ("rate limit", "safety_rate_limit"),
                    ("non-finite value", "safety_not_finite"),
                )
                if counters[key]
            ]
            raise SafetyLimitError(
                f"{where}: a goal outside the safety limits ({', '.join(kinds) or 'clamped'}) was refused and the "
                "arm holds (strict mode); clear_faults() resumes"
            )
        if "bus_fault" in faults:
            failure = self._loop.last_bus_failure or {}
            motor_id = failure.get("motor_id")
            names = [name for name in self.motor_names if self.bus.motors[name].id == motor_id]
            motor = f"motor '{names[0]}' (id {motor_id})" if names else f"motor id {motor_id}"
            # The core's text of the failure (the same as the bus's own exception would carry).
            text = (
                f"{where}: reads keep failing, the arm holds its last goal; the last, at tick "
                f"{failure.get('tick')}, concerned {motor}: {failure.get('message', 'unknown failure')}"
            )
            error_class = {
                "BusTimeoutError": BusTimeoutError,
                "BusProtocolError": BusProtocolError,
                "ServoError": ServoError,
            }.get(failure.get("kind"), BusError)
            raise error_class(text)
        reasons = {
            "action_timeout": "no fresh action within the action timeout (is the policy still sending chunks?)",
            "overrun": "ticks keep running past their deadline (the bus or the machine is too slow for this rate)",
            "estop": "e-stop (torque is off)",
        }
        raise ControlLoopFaultError(
            f"{where}: the arm holds: " + "; ".join(reasons.get(fault, fault) for fault in faults)
        )

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        return f"ControlLoop({type(self.bus).__name__} '{self.bus.port}', {self.fps:g} Hz, {self.motor_names}, {state})"
