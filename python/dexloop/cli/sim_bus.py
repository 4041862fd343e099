"""``dexloop sim-bus``: a simulated servo bus for an arm, until Ctrl-C, SIGTERM or ``quit``.

    dexloop sim-bus --robot.type=so101_follower
    dexloop sim-bus --robot.type=koch_follower --fault.motor=gripper --fault.drop=-1

The first line on stdout is the port to give a driver (LeRobot's ``--robot.port=``, dexloop's
``FeetechMotorsBus(port)``); a description goes to stderr. Faults are set at start with ``--fault.*``
and at any time by typing the commands of :mod:`dexloop.sim.commands` on stdin (``help`` lists them);
each answer is one line on stdout.

Flags are LeRobot-style dotted names parsed by draccus. ``--robot so101`` (the form before
``--robot.type``) still works. A bad value is answered with one line on stderr naming it and what is
accepted, and exit code 2.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field

from draccus.argparsing import ArgumentParser
from draccus.utils import ParsingError

from dexloop._core import bus as _bus
from dexloop.sim import ALIASES, PRESETS, RobotPreset, SimulatedBus, preset
from dexloop.sim.commands import SimCommandError, SimCommands

PROG = "dexloop sim-bus"


@dataclass
class RobotConfig:
    # Arm: so100_follower, so100_leader, so101_follower, so101_leader, koch_follower, koch_leader,
    # aloha_follower, aloha_leader (LeRobot's --robot.type / --teleop.type names), or so100, so101,
    # koch, aloha for the followers.
    type: str = "so101_follower"


@dataclass
class FaultConfig:
    # Motor the faults below apply to: a motor name (e.g. gripper) or id; all for every motor.
    motor: str = "all"
    # Replies not sent: how many of the first ones (-1: every one, until `clear` on stdin).
    drop: int = 0
    # Replies sent with a wrong checksum / CRC: how many (-1: every one).
    corrupt: int = 0
    # Replies sent this many microseconds late ...
    delay_us: int = 0
    # ... how many of them (-1: every one).
    delay_count: int = -1
    # The motor neither hears nor answers (until `reappear` on stdin).
    vanish: bool = False
    # Status error bits ORed into every reply (e.g. 32: overload; 0: none).
    error_bits: int = 0
    # The driver's first writes lost before any motor hears them: how many (-1: every one).
    drop_instructions: int = 0
    # The driver's first writes with one bit flipped: how many (-1: every one).
    damage_instructions: int = 0


@dataclass
class SimBusConfig:
    """Run a simulated servo bus on a pty and print its port (first line of stdout). Type `help` on
    stdin for fault commands; Ctrl-C or `quit` stops it."""

    robot: RobotConfig = field(default_factory=RobotConfig)
    fault: FaultConfig = field(default_factory=FaultConfig)
    # Baud rate the motors are set to (one the model supports). A pty carries any rate; it sets the
    # wire time and the Baud_Rate register.
    baudrate: int = 1_000_000
    # Motors answer only when the port's baud rate matches theirs, as on a real bus.
    match_baudrate: bool = False
    # First-order time constant of the motion toward a new goal, in seconds (0: at once).
    time_constant_s: float = 0.04
    # Delay each reply by its time on the wire (bytes x 10 bits / baudrate), as a real bus would.
    emulate_wire_time: bool = False
    # Seed of the random initial joint positions (near mid-range).
    seed: int = 0


class UsageError(Exception):
    """A bad flag or value; its message is the one line printed for the user."""


def _robot_choices() -> str:
    return f"{', '.join(PRESETS)} (or {', '.join(ALIASES)})"


def _legacy_robot_flag(args: list[str]) -> list[str]:
    """``--robot X`` / ``--robot=X`` (the flag before ``--robot.type``) as ``--robot.type=X``."""
    rewritten: list[str] = []
    items = iter(args)
    for arg in items:
        if arg == "--robot":
            value = next(items, None)
            if value is None or value.startswith("--"):
                raise UsageError(f"--robot needs a value: one of {_robot_choices()}")
            rewritten.append(f"--robot.type={value}")
        elif arg.startswith("--robot="):
            rewritten.append("--robot.type=" + arg.removeprefix("--robot="))
        else:
            rewritten.append(arg)
    return rewritten


def _raise_usage_error(message: str) -> None:
    raise UsageError(message)


def parse_config(args: Sequence[str]) -> SimBusConfig:
    """The config of `args`, or UsageError naming the bad flag or value (``--help`` exits 0)."""
    args = _legacy_robot_flag(list(args))
    parser = ArgumentParser(SimBusConfig, prog=PROG, exit_on_error=False)
    # argparse reports unknown flags and missing values through error(), which prints its usage
    # and exits; one line is all a user needs.
    parser.parser.error = _raise_usage_error  # type: ignore[method-assign]
    # draccus offers `--robot FILE` / `--fault FILE` (a config file per group), listed twice in the
    # help; --config_path covers that need, so they are left out of the help.
    actions = [*parser.parser._actions]
    for group in parser.parser._action_groups:
        actions += group._group_actions
    for action in actions:
        if (action.help or "").startswith("Config file for "):
            action.help = argparse.SUPPRESS
    try:
        return parser.parse_args(args)
    except ParsingError as error:
        # draccus's DecodingError reads "`baudrate`: Couldn't parse 'fast' into an int".
        text = str(error).strip()
        if text.startswith("Failed to load config"):  # draccus names the file object, not its path
            text = "--config_path: the file is not a YAML mapping of these flags"
        elif text.startswith("`") and "`: " in text:
            name, _, reason = text[1:].partition("`: ")
            text = f"--{name}: {reason[:1].lower()}{reason[1:]}"
        raise UsageError(text) from None
    except UsageError as error:
        raise UsageError(f"{error}; see `{PROG} --help`") from None
    except Exception as error:  # argparse's ArgumentError and friends
        raise UsageError(f"{error}; see `{PROG} --help`") from None


def _check_values(config: SimBusConfig) -> RobotPreset:
    """The preset of `config`, once every value is known to be usable (else UsageError)."""
    try:
        arm = preset(config.robot.type)
    except ValueError:
        raise UsageError(
            f"--robot.type: unknown robot {config.robot.type!r}; choose one of {_robot_choices()}"
        ) from None
    supported = sorted(
        set.intersection(*(set(_bus.find_model(m.model).baudrates) for m in arm.motors)), reverse=True
    )
    if config.baudrate not in supported:
        raise UsageError(
            f"--baudrate: {config.robot.type} motors cannot be set to {config.baudrate} baud; "
            f"choose one of {', '.join(map(str, supported))}"
        )
    if config.time_constant_s < 0:
        raise UsageError(f"--time_constant_s: must be >= 0 seconds, got {config.time_constant_s}")
    fault = config.fault
    for name in ("drop", "corrupt", "delay_count", "drop_instructions", "damage_instructions"):
        if getattr(fault, name) < -1:
            raise UsageError(f"--fault.{name}: a count, or -1 for every one; got {getattr(fault, name)}")
    if not 0 <= fault.delay_us <= 10_000_000:
        raise UsageError(f"--fault.delay_us: microseconds in 0..10000000, got {fault.delay_us}")
    if not 0 <= fault.error_bits <= 255:
        raise UsageError(f"--fault.error_bits: a status error byte in 0..255, got {fault.error_bits}")
    return arm


def _fault_commands(fault: FaultConfig) -> list[str]:
    """The --fault.* flags as command lines of dexloop.sim.commands (one mechanism for both)."""
    motor = fault.motor
    lines = []
    if fault.drop:
        lines.append(f"drop {motor} {fault.drop}")
    if fault.corrupt:
        lines.append(f"corrupt {motor} {fault.corrupt}")
    if fault.delay_us and fault.delay_count:
        lines.append(f"delay {motor} {fault.delay_us} {fault.delay_count}")
    if fault.vanish:
        lines.append(f"vanish {motor}")
    if fault.error_bits:
        lines.append(f"error_bits {motor} {fault.error_bits}")
    if fault.drop_instructions:
        lines.append(f"drop_instructions {fault.drop_instructions}")
    if fault.damage_instructions:
        lines.append(f"damage_instructions {fault.damage_instructions}")
    return lines


def _serve_commands(commands: SimCommands, stop: threading.Event) -> None:
    """Runs command lines from stdin until EOF or ``quit``; answers on stdout, errors on stderr.

    Started in the background of a shell (``dexloop sim-bus &``), reading the terminal fails (SIGTTIN
    is ignored, so the read gets EIO instead of stopping the process): the bus runs on, without commands."""
    try:
        for line in sys.stdin:
            if line.strip() in ("quit", "exit"):
                stop.set()
                return
            try:
                answer = commands.run(line)
            except SimCommandError as error:
                print(f"{PROG}: {error}", file=sys.stderr, flush=True)
                continue
            if answer:
                print(answer, flush=True)
    except OSError:
        return


def main(argv: Sequence[str] | None = None) -> int:
    try:
        config = parse_config(sys.argv[1:] if argv is None else argv)
        arm = _check_values(config)
        bus = SimulatedBus(
            arm,
            baudrate=config.baudrate,
            time_constant_s=config.time_constant_s,
            emulate_wire_time=config.emulate_wire_time,
            match_baudrate=config.match_baudrate,
            seed=config.seed,
        )
        commands = SimCommands(bus)
        try:
            commands.motor(config.fault.motor)
        except SimCommandError as error:
            raise UsageError(f"--fault.motor: {error}") from None
        answers = []
        for line in _fault_commands(config.fault):
            try:
                answers.append(commands.run(line))
            except SimCommandError as error:
                raise UsageError(f"--fault: {error}") from None
    except UsageError as error:
        print(f"{PROG}: {error}", file=sys.stderr)
        return 2

    stop = threading.Event()

    def request_stop(signum: int, frame: object) -> None:
        stop.set()

    previous = {sig: signal.signal(sig, request_stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    previous[signal.SIGTTIN] = signal.signal(signal.SIGTTIN, signal.SIG_IGN)
    bus.start()
    try:
        print(bus.port, flush=True)
        motors = ", ".join(f"{m.name}={m.id} ({m.model})" for m in arm.motors)
        print(
            f"{PROG}: {arm.description} on {bus.port} ({arm.protocol}, {config.baudrate} baud): "
            f"{motors}. Faults: type `help`. Ctrl-C or `quit` to stop.",
            file=sys.stderr,
            flush=True,
        )
        for answer in answers:
            print(f"{PROG}: {answer}", file=sys.stderr, flush=True)
        threading.Thread(target=_serve_commands, args=(commands, stop), daemon=True).start()
        while not stop.wait(0.2):
            pass
    finally:
        bus.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    print(f"{PROG}: stopped", file=sys.stderr, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
