"""A line-oriented command set that drives a running SimulatedBus: faults, joints, registers.

``dexloop sim-bus`` reads these from its stdin while a driver (dexloop's or LeRobot's) talks to the
port, so faults can be injected by hand or by a script at any moment::

    drop gripper 3          the gripper's next 3 replies are not sent (-1: until cleared)
    vanish 4                motor id 4 stops answering until `reappear 4`
    move elbow_flex 3000    a hand moving the joint (raw encoder steps)
    clear                   every fault cleared

Each command returns its one-line answer; a bad command raises SimCommandError (a ValueError) whose
message names the bad word and what was expected. MOTOR is a motor name, an id, or ``all``.
"""

from __future__ import annotations

import shlex
from collections.abc import Callable

from . import SimulatedBus

HELP = """commands (MOTOR: a motor name, an id, or all; COUNT: how many of the next replies, -1 until cleared):
  drop MOTOR [COUNT]                 replies not sent (default COUNT 1)
  corrupt MOTOR [COUNT]              replies sent with a wrong checksum / CRC
  delay MOTOR MICROSECONDS [COUNT]   replies sent late
  reply_as MOTOR OTHER_ID [COUNT]    replies carry another id
  garbage MOTOR HEX_BYTES [COUNT]    bytes (e.g. ff00aa) sent before the replies
  vanish MOTOR / reappear MOTOR      the motor stops / resumes hearing and answering
  error_bits MOTOR BITS              status error bits ORed into every reply (0 clears; 0x20 overload)
  drop_instructions [COUNT]          the driver's next writes lost before any motor hears them
  damage_instructions [COUNT]        one bit flipped in each of the driver's next writes
  noise_instructions HEX_BYTES [COUNT]  bytes reaching the motors before each of the driver's next writes
  clear [MOTOR]                      faults cleared (by default every motor's and the driver's line's)
  move MOTOR STEPS                   set the raw encoder position, as a hand moving the joint
  read MOTOR REGISTER                a register's value (LeRobot's register names)
  positions                          Present_Position of every motor
  help                               this list"""


class SimCommandError(ValueError):
    """A command line that cannot be run: unknown command, wrong arguments, unknown motor."""


def _integer(text: str, what: str, low: int, high: int) -> int:
    try:
        value = int(text, 0)
    except ValueError:
        raise SimCommandError(f"{what} must be an integer, got {text!r}") from None
    if not low <= value <= high:
        raise SimCommandError(f"{what} must be in {low}..{high}, got {value}")
    return value


def _hex_bytes(text: str) -> bytes:
    try:
        data = bytes.fromhex(text)
    except ValueError:
        raise SimCommandError(f"HEX_BYTES must be hexadecimal bytes such as ff00aa, got {text!r}") from None
    if not data:
        raise SimCommandError("HEX_BYTES must hold at least one byte")
    return data


def _count(args: list[str], index: int) -> int:
    return _integer(args[index], "COUNT", -1, 1_000_000) if len(args) > index else 1


class SimCommands:
    """Runs command lines (see the module docstring and HELP) on `bus`."""

    def __init__(self, bus: SimulatedBus) -> None:
        self.bus = bus
        # name -> (handler, least and most arguments, usage)
        self._commands: dict[str, tuple[Callable[[list[str]], str], int, int, str]] = {
            "drop": (self._drop, 1, 2, "drop MOTOR [COUNT]"),
            "corrupt": (self._corrupt, 1, 2, "corrupt MOTOR [COUNT]"),
            "delay": (self._delay, 2, 3, "delay MOTOR MICROSECONDS [COUNT]"),
            "reply_as": (self._reply_as, 2, 3, "reply_as MOTOR OTHER_ID [COUNT]"),
            "garbage": (self._garbage, 2, 3, "garbage MOTOR HEX_BYTES [COUNT]"),
            "vanish": (self._vanish, 1, 1, "vanish MOTOR"),
            "reappear": (self._reappear, 1, 1, "reappear MOTOR"),
            "error_bits": (self._error_bits, 2, 2, "error_bits MOTOR BITS"),
            "drop_instructions": (self._drop_instructions, 0, 1, "drop_instructions [COUNT]"),
            "damage_instructions": (self._damage_instructions, 0, 1, "damage_instructions [COUNT]"),
            "noise_instructions": (self._noise_instructions, 1, 2, "noise_instructions HEX_BYTES [COUNT]"),
            "clear": (self._clear, 0, 1, "clear [MOTOR]"),
            "move": (self._move, 2, 2, "move MOTOR STEPS"),
            "read": (self._read, 2, 2, "read MOTOR REGISTER"),
            "positions": (self._positions, 0, 0, "positions"),
            "help": (lambda args: HELP, 0, 0, "help"),
        }

    def run(self, line: str) -> str:
        """Runs one command line and returns its answer (empty for a blank line or a # comment)."""
        try:
            words = shlex.split(line, comments=True)
        except ValueError as error:
            raise SimCommandError(f"cannot parse {line.strip()!r}: {error}") from None
        if not words:
            return ""
        name, args = words[0], words[1:]
        if name not in self._commands:
            raise SimCommandError(f"unknown command {name!r}; commands: {', '.join(self._commands)}")
        handler, least, most, usage = self._commands[name]
        if not least <= len(args) <= most:
            raise SimCommandError(f"{name} takes {least}..{most} arguments, got {len(args)}: usage {usage}")
        return handler(args)

    def motor(self, text: str) -> int | None:
        """The id of a motor given by name or id, or None for ``all``."""
        if text == "all":
            return None
        names = self.bus.motors
        if text in names:
            return self.bus.id_of(text)
        ids = list(self.bus.simulator.ids)
        if text.isdigit() and int(text) in ids:
            return int(text)
        raise SimCommandError(
            f"no motor {text!r} on {self.bus.preset.name}: use a name ({', '.join(names)}), "
            f"an id ({', '.join(map(str, ids))}) or all"
        )

    def _label(self, motor_id: int | None) -> str:
        if motor_id is None:
            return "every motor"
        names = [name for name, m in self.bus.motors.items() if m.id == motor_id]
        return f"motor {motor_id}" + (f" ({names[0]})" if names else "")

    @staticmethod
    def _replies(count: int) -> str:
        if count == -1:
            return "every reply until cleared"
        if count == 0:
            return "no more replies"
        return "next reply" if count == 1 else f"next {count} replies"

    def _drop(self, args: list[str]) -> str:
        motor, count = self.motor(args[0]), _count(args, 1)
        self.bus.drop_replies(motor, count)
        return f"{self._label(motor)}: {self._replies(count)} dropped"

    def _corrupt(self, args: list[str]) -> str:
        motor, count = self.motor(args[0]), _count(args, 1)
        self.bus.corrupt_replies(motor, count)
        return f"{self._label(motor)}: {self._replies(count)} corrupted"

    def _delay(self, args: list[str]) -> str:
        motor = self.motor(args[0])
        microseconds = _integer(args[1], "MICROSECONDS", 0, 10_000_000)
        count = _count(args, 2)
        self.bus.delay_replies(motor, microseconds, count)
        return f"{self._label(motor)}: {self._replies(count)} delayed by {microseconds} us"

    def _reply_as(self, args: list[str]) -> str:
        motor = self.motor(args[0])
        other_id = _integer(args[1], "OTHER_ID", 0, 253)
        count = _count(args, 2)
        self.bus.reply_as(motor, other_id, count)
        return f"{self._label(motor)}: {self._replies(count)} sent as id {other_id}"

    def _garbage(self, args: list[str]) -> str:
        motor = self.motor(args[0])
        data = _hex_bytes(args[1])
        count = _count(args, 2)
        self.bus.garbage_before_replies(motor, data, count)
        return f"{self._label(motor)}: {self._replies(count)} preceded by {data.hex()}"

    def _vanish(self, args: list[str]) -> str:
        motor = self.motor(args[0])
        self.bus.vanish(motor)
        return f"{self._label(motor)}: vanished (reappear to bring it back)"

    def _reappear(self, args: list[str]) -> str:
        motor = self.motor(args[0])
        self.bus.reappear(motor)
        return f"{self._label(motor)}: answering again"

    def _error_bits(self, args: list[str]) -> str:
        motor = self.motor(args[0])
        bits = _integer(args[1], "BITS", 0, 255)
        self.bus.set_error_bits(motor, bits)
        return f"{self._label(motor)}: error bits 0x{bits:02x}"

    @staticmethod
    def _instructions(count: int) -> str:
        if count == -1:
            return "every write of the driver until cleared"
        return "the driver's next write" if count == 1 else f"the driver's next {count} writes"

    def _drop_instructions(self, args: list[str]) -> str:
        count = _count(args, 0)
        self.bus.drop_instructions(count)
        return f"{self._instructions(count)} lost"

    def _damage_instructions(self, args: list[str]) -> str:
        count = _count(args, 0)
        self.bus.damage_instructions(count)
        return f"{self._instructions(count)} damaged (one bit flipped)"

    def _noise_instructions(self, args: list[str]) -> str:
        data = _hex_bytes(args[0])
        count = _count(args, 1)
        self.bus.noise_before_instructions(data, count)
        return f"{self._instructions(count)} preceded by {data.hex()}"

    def _clear(self, args: list[str]) -> str:
        motor = self.motor(args[0]) if args else None
        self.bus.clear_faults(motor)
        return f"{self._label(motor)}: faults cleared"

    def _single(self, text: str, command: str) -> int:
        motor = self.motor(text)
        if motor is None:
            raise SimCommandError(f"{command} needs one motor, not all")
        return motor

    def _move(self, args: list[str]) -> str:
        motor = self._single(args[0], "move")
        try:
            steps = float(args[1])
        except ValueError:
            raise SimCommandError(f"STEPS must be a number, got {args[1]!r}") from None
        self.bus.set_position(motor, steps)
        return f"{self._label(motor)}: moved to {steps:g} steps"

    def _read(self, args: list[str]) -> str:
        motor = self._single(args[0], "read")
        try:
            value = self.bus.read(motor, args[1])
        except (KeyError, ValueError) as error:
            raise SimCommandError(error.args[0] if error.args else repr(error)) from None
        return f"{self._label(motor)}: {args[1]} = {value}"

    def _positions(self, args: list[str]) -> str:
        return " ".join(f"{name}={value}" for name, value in self.bus.positions().items())
