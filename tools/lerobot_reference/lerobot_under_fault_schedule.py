"""LeRobot 0.6.1's own FeetechMotorsBus and DynamixelMotorsBus under the fault schedule of
tests/bus/test_fault_schedule.py, on dexloop's simulator: how many values it returns that the
registers do not hold, and which exceptions it raises. A by-hand comparison, never run by CI.

Run it in the environment of shared/tools/lerobot-peer.sh with dexloop and pytest installed there:

    /tmp/lerobot-peer/bin/python tools/lerobot_reference/lerobot_under_fault_schedule.py
"""

from __future__ import annotations

import sys
import types
from pathlib import Path

import lerobot.motors as lerobot_motors
from lerobot.motors.dynamixel import DynamixelMotorsBus
from lerobot.motors.feetech import FeetechMotorsBus

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tests" / "bus"))
import test_fault_schedule as schedule

# LeRobot's SDKs wait 10 ms beyond the packet time (their default latency), as dexloop's default.
LEROBOT_DEADLINE_MS = 10.2


def lerobot_bus(bus_class):
    """Builds LeRobot's bus where the schedule builds dexloop's (same port, same motors)."""

    def build(port: str, motors: dict, latency_margin_ms: float):
        del latency_margin_ms  # LeRobot's SDKs have their own
        mode = lerobot_motors.MotorNormMode.RANGE_M100_100
        bus = bus_class(port, {name: lerobot_motors.Motor(m.id, m.model, mode) for name, m in motors.items()})
        bus.servo_bus = types.SimpleNamespace(timeout_ms=lambda *args: LEROBOT_DEADLINE_MS)
        return bus

    return build


def main() -> None:
    schedule.ROBOTS["so101"]["bus"] = lerobot_bus(FeetechMotorsBus)
    schedule.ROBOTS["koch"]["bus"] = lerobot_bus(DynamixelMotorsBus)
    schedule.TYPED_BUS_ERRORS = (Exception,)  # count whatever LeRobot raises
    for robot, seed in (("so101", 11), ("koch", 12)):
        try:
            tally = schedule.run_schedule(robot, steps=3000, seed=seed)
        except AssertionError as error:
            print(f"{robot}: {error}")
            continue
        print(
            f"{robot}: {tally.transactions} transactions, {tally.values_checked} values checked, "
            f"{len(tally.wrong_values)} wrong (e.g. {tally.wrong_values[:2]}), raised {tally.failures}"
        )


if __name__ == "__main__":
    main()
