"""``dexloop sim-bus``: a simulated servo bus for an arm preset, until Ctrl-C or SIGTERM.

The first line on stdout is the port to give a driver (``--robot.port`` of a later command, or
LeRobot's ``port=``); a description goes to stderr. Faults cannot be injected from here: use
``dexloop.sim.SimulatedBus`` in Python for that.
"""

from __future__ import annotations

import signal
import sys
import threading
from collections.abc import Sequence
from dataclasses import dataclass

import draccus

from dexloop.sim import ALIASES, PRESETS, SimulatedBus, preset


@dataclass
class SimBusConfig:
    """Run a simulated servo bus on a pty and print its port (first line of stdout); Ctrl-C stops it."""

    # Arm preset: so100, so101, koch or aloha (the followers), or a full name such as so101_leader,
    # koch_leader, aloha_leader.
    robot: str = "so101"
    # Baud rate the motors are set to. A pty carries any rate; it sets the wire time and Baud_Rate.
    baudrate: int = 1_000_000
    # First-order time constant of the motion toward a new goal, in seconds.
    time_constant_s: float = 0.04
    # Delay each reply by its time on the wire (bytes x 10 bits / baudrate), as a real bus would.
    emulate_wire_time: bool = False
    # Seed of the random initial joint positions (near mid-range).
    seed: int = 0


def main(argv: Sequence[str] | None = None) -> int:
    config = draccus.parse(
        SimBusConfig, args=list(sys.argv[1:] if argv is None else argv), prog="dexloop sim-bus"
    )
    try:
        arm = preset(config.robot)
        bus = SimulatedBus(
            arm,
            baudrate=config.baudrate,
            time_constant_s=config.time_constant_s,
            emulate_wire_time=config.emulate_wire_time,
            seed=config.seed,
        )
    except ValueError as error:
        names = ", ".join([*ALIASES, *PRESETS])
        print(f"dexloop sim-bus: {error}\n  fix: pass --robot with one of {names}", file=sys.stderr)
        return 2

    stop = threading.Event()

    def request_stop(signum: int, frame: object) -> None:
        stop.set()

    previous = {sig: signal.signal(sig, request_stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    bus.start()
    try:
        print(bus.port, flush=True)
        motors = ", ".join(f"{m.name}={m.id} ({m.model})" for m in arm.motors)
        print(
            f"dexloop sim-bus: {arm.description} on {bus.port} ({arm.protocol}, {config.baudrate} baud): "
            f"{motors}. Ctrl-C to stop.",
            file=sys.stderr,
            flush=True,
        )
        while not stop.wait(1.0):
            pass
    finally:
        bus.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    print("dexloop sim-bus: stopped", file=sys.stderr, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
