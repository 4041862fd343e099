"""Drive a simulated SO-101 arm with dexloop's FeetechMotorsBus, then break its bus on purpose.

python examples/02_simulated_arm_with_faults.py

The simulator speaks the Feetech protocol on a pty, as the arm would on /dev/ttyACM0. The same faults can
be injected from the command line: `dexloop sim-bus --robot.type=so101_follower`, then type `help`.
"""

from __future__ import annotations

import time

from dexloop.errors import BusProtocolError, BusTimeoutError, ServoError
from dexloop.motors import Motor, MotorCalibration, MotorNormMode
from dexloop.motors.feetech import FeetechMotorsBus
from dexloop.sim import simulated_bus
from dexloop.sim.commands import SimCommands

JOINTS = ["shoulder_pan", "shoulder_lift", "elbow_flex", "wrist_flex", "wrist_roll", "gripper"]


def main() -> None:
    with simulated_bus("so101_follower") as sim:
        motors = {
            name: Motor(
                i + 1, "sts3215", MotorNormMode.RANGE_0_100 if name == "gripper" else MotorNormMode.DEGREES
            )
            for i, name in enumerate(JOINTS)
        }
        bus = FeetechMotorsBus(sim.port, motors)
        bus.connect()
        print(f"connected to {sim.port}: raw positions {bus.sync_read('Present_Position', normalize=False)}")

        # A calibration as LeRobot's would be: the full encoder range, homing offsets at 0.
        bus.write_calibration({name: MotorCalibration(m.id, 0, 0, 0, 4095) for name, m in motors.items()})
        bus.enable_torque()
        bus.sync_write("Goal_Position", {"elbow_flex": 45.0, "gripper": 80.0})
        time.sleep(0.3)
        positions = bus.sync_read("Present_Position")
        print(
            f"after a goal: elbow_flex {positions['elbow_flex']:.1f} deg, gripper {positions['gripper']:.1f} %"
        )

        commands = SimCommands(sim)
        for fault, action in [
            ("vanish gripper", lambda: bus.read("Present_Position", "gripper")),
            ("corrupt wrist_flex", lambda: bus.read("Present_Position", "wrist_flex")),
            ("error_bits elbow_flex 0x20", lambda: bus.read("Present_Position", "elbow_flex")),
        ]:
            print(f"> {fault}: {commands.run(fault)}")
            try:
                action()
            except (BusTimeoutError, BusProtocolError, ServoError) as error:
                print(f"  {type(error).__name__}: {error}")
            print(f"> clear: {commands.run('clear')}")
        print(f"all answering again: {bus.sync_read('Present_Position', normalize=False)}")
        bus.disconnect()


if __name__ == "__main__":
    main()
