"""Simulated servo buses: every arm LeRobot drives has a twin that speaks the same bytes on a pty.

    from dexloop.sim import simulated_bus

    with simulated_bus("so101") as sim:          # six STS3215 on a fresh /dev/pts/N
        sim.port                                  # open it like /dev/ttyACM0
        sim.set_position("elbow_flex", 3000)      # a hand moving the joint (raw encoder steps)
        sim.drop_replies("gripper", 2)            # faults by motor name, id, or None for all
        sim.read("shoulder_pan", "Present_Position")

The simulator (C++, ``dexloop._core.sim.ServoSimulator``) holds each motor's control table with
LeRobot's register names, moves positions toward goals while torque is on (first order, time constant
``time_constant_s``), and applies each vendor's homing, limit and access rules. ``dexloop sim-bus
--robot.type=so101_follower`` runs one from the command line, with the fault commands of
:mod:`dexloop.sim.commands` on its stdin.

The arms come from :mod:`dexloop.robots.presets` (LeRobot's motor names, ids and models; LeRobot has
no ALOHA class any more, so ALOHA's layout is the legacy one: ``aloha_follower`` is a ViperX 300 with
xm540-w270 x 7 and xm430-w350 for wrist_rotate and gripper, ``aloha_leader`` a WidowX 250 with
xm430-w350 x 7, xl430-w250 wrist_rotate, xc430-w150 gripper; shoulder and elbow each have a shadow
motor). Short names: ``so100``, ``so101``, ``koch`` and ``aloha`` are the followers.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from dexloop._core.sim import ALL_MOTORS, UNTIL_CLEARED, ServoSimulator

# The arms are dexloop.robots' knowledge; the simulator builds its twins from their presets.
from dexloop.robots.presets import (
    ALIASES,
    ALOHA_JOINTS,
    PRESETS,
    SO_JOINTS,
    MotorPreset,
    RobotPreset,
    preset,
)

__all__ = [
    "ALIASES",
    "ALL_MOTORS",
    "ALOHA_JOINTS",
    "PRESETS",
    "SO_JOINTS",
    "UNTIL_CLEARED",
    "MotorPreset",
    "RobotPreset",
    "ServoSimulator",
    "SimulatedBus",
    "preset",
    "simulated_bus",
]


class SimulatedBus:
    """A started or stopped simulator for one preset arm, addressed by LeRobot's motor names.

    Every fault and introspection method takes a motor name, an id, or None (every motor)."""

    def __init__(
        self,
        robot: str | RobotPreset,
        *,
        baudrate: int = 1_000_000,
        time_constant_s: float = 0.04,
        emulate_wire_time: bool = False,
        match_baudrate: bool = False,
        seed: int = 0,
    ) -> None:
        self.preset = robot if isinstance(robot, RobotPreset) else preset(robot)
        self.simulator = ServoSimulator(
            self.preset.protocol,
            [(motor.id, motor.model) for motor in self.preset.motors],
            baudrate=baudrate,
            time_constant_s=time_constant_s,
            emulate_wire_time=emulate_wire_time,
            match_baudrate=match_baudrate,
            seed=seed,
        )
        self.baudrate = baudrate
        self._ids = {motor.name: motor.id for motor in self.preset.motors}

    @property
    def port(self) -> str:
        return self.simulator.port

    @property
    def motors(self) -> dict[str, MotorPreset]:
        return {motor.name: motor for motor in self.preset.motors}

    def start(self) -> SimulatedBus:
        self.simulator.start()
        return self

    def stop(self) -> None:
        self.simulator.stop()

    def __enter__(self) -> SimulatedBus:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def id_of(self, motor: str | int) -> int:
        """The id of a motor given by name (its preset id, unless an ID write moved it) or id."""
        if isinstance(motor, int):
            return motor
        if motor not in self._ids:
            raise ValueError(f"{self.preset.name} has no motor {motor!r}: {', '.join(self._ids)}")
        return self._ids[motor]

    def _target(self, motor: str | int | None) -> int | None:
        return None if motor is None else self.id_of(motor)

    # Introspection
    def read(self, motor: str | int, register: str) -> int:
        return self.simulator.read_register(self.id_of(motor), register)

    def write(self, motor: str | int, register: str, value: int) -> None:
        self.simulator.write_register(self.id_of(motor), register, value)

    def position(self, motor: str | int) -> float:
        """The raw encoder position in steps (before homing offset)."""
        return self.simulator.actual_position(self.id_of(motor))

    def set_position(self, motor: str | int, steps: float) -> None:
        """Moves a joint as a hand would (raw encoder steps); with torque on it is pulled back."""
        self.simulator.set_actual_position(self.id_of(motor), steps)

    def positions(self) -> dict[str, int]:
        """Present_Position of every motor, as the bus would read it."""
        return {
            name: self.simulator.read_register(motor_id, "Present_Position")
            for name, motor_id in self._ids.items()
        }

    # Faults
    def drop_replies(self, motor: str | int | None, count: int = 1) -> None:
        self.simulator.drop_replies(self._target(motor), count)

    def corrupt_replies(self, motor: str | int | None, count: int = 1) -> None:
        self.simulator.corrupt_replies(self._target(motor), count)

    def delay_replies(self, motor: str | int | None, microseconds: int, count: int = 1) -> None:
        self.simulator.delay_replies(self._target(motor), microseconds, count)

    def reply_as(self, motor: str | int | None, other_id: int, count: int = 1) -> None:
        self.simulator.reply_as(self._target(motor), other_id, count)

    def garbage_before_replies(self, motor: str | int | None, data: bytes, count: int = 1) -> None:
        self.simulator.garbage_before_replies(self._target(motor), data, count)

    def vanish(self, motor: str | int | None) -> None:
        self.simulator.vanish(self._target(motor))

    def reappear(self, motor: str | int | None) -> None:
        self.simulator.reappear(self._target(motor))

    def set_error_bits(self, motor: str | int | None, bits: int) -> None:
        self.simulator.set_error_bits(self._target(motor), bits)

    def clear_faults(self, motor: str | int | None = None) -> None:
        self.simulator.clear_faults(self._target(motor))

    # Faults on the line from the driver to the motors (the driver's next `count` writes)
    def damage_instructions(self, count: int = 1) -> None:
        self.simulator.damage_instructions(count)

    def drop_instructions(self, count: int = 1) -> None:
        self.simulator.drop_instructions(count)

    def noise_before_instructions(self, data: bytes, count: int = 1) -> None:
        self.simulator.noise_before_instructions(data, count)

    def __repr__(self) -> str:
        state = "running" if self.simulator.running else "stopped"
        return f"SimulatedBus({self.preset.name!r}, port={self.port!r}, {state})"


@contextmanager
def simulated_bus(robot: str | RobotPreset, **options: object) -> Iterator[SimulatedBus]:
    """A started SimulatedBus for `robot`, stopped on exit. Options as SimulatedBus's."""
    bus = SimulatedBus(robot, **options)  # type: ignore[arg-type]
    bus.start()
    try:
        yield bus
    finally:
        bus.stop()
