"""LeRobot 0.6.1's own robot classes, with their bus classes swapped for dexloop's, drive dexloop's simulator.

The reverse of ``check_lerobot_on_simulator.py`` (LeRobot's buses on dexloop's simulator): here LeRobot's
``SOFollower`` (SO-101) and ``KochFollower`` run unchanged except that the ``FeetechMotorsBus`` /
``DynamixelMotorsBus`` names their modules imported from ``lerobot.motors`` now refer to dexloop's. They
build those buses with LeRobot's own ``Motor`` / ``MotorNormMode`` / ``MotorCalibration`` values.

Run by hand in a LeRobot environment with dexloop installed into it (see README, "Installing into a
LeRobot environment"):

    <lerobot env>/bin/python tools/lerobot_reference/check_lerobot_robots_on_dexloop_buses.py

For each robot: connect (LeRobot's handshake on dexloop's bus), LeRobot's interactive calibration with
its prompts answered and the joints "moved by hand" in the simulator, the calibration file and servo
registers compared, then a second robot object that finds the file (``connect()`` with calibration),
``get_observation`` and ``send_action`` until the joints reach their targets, and ``disconnect``. Every
check prints a line; the script exits non-zero on a failure.
"""

from __future__ import annotations

import builtins
import json
import sys
import tempfile
import threading
import time
from pathlib import Path

import dexloop.motors.motors_bus as dexloop_motors_bus
from dexloop.motors.dynamixel import DynamixelMotorsBus
from dexloop.motors.feetech import FeetechMotorsBus
from dexloop.sim import simulated_bus

sys.path.insert(0, str(Path(__file__).resolve().parent))
from check_lerobot_on_simulator import FAILURES, answer_prompts_and_move_joints, check


def swap_buses() -> None:
    """LeRobot's robot modules build their bus by the name they imported: point it at dexloop's class."""
    import lerobot.robots.koch_follower.koch_follower as koch_module
    import lerobot.robots.so_follower.so_follower as so_module

    so_module.FeetechMotorsBus = FeetechMotorsBus
    koch_module.DynamixelMotorsBus = DynamixelMotorsBus


def calibrate(robot, sim, ranges: dict[str, tuple[int, int]]) -> None:
    """LeRobot's robot.calibrate(): ENTER at each prompt; Enter "pressed" once the joints were swept."""
    stop = threading.Event()
    sweeper = answer_prompts_and_move_joints(sim, ranges, stop)
    original_input, original_enter = builtins.input, dexloop_motors_bus._stdin_enter_pressed

    def fake_input(prompt=""):
        print(f"      (prompt answered: {prompt.strip()[:70]})")
        return ""

    builtins.input = fake_input
    dexloop_motors_bus._stdin_enter_pressed = lambda: not sweeper.is_alive()
    original_homings = robot.bus.set_half_turn_homings

    def homings_then_sweep(*args, **kwargs):
        result = original_homings(*args, **kwargs)
        sweeper.start()
        return result

    robot.bus.set_half_turn_homings = homings_then_sweep
    try:
        for motor, (low, high) in ranges.items():
            sim.set_position(motor, (low + high) / 2)
        robot.calibrate()
    finally:
        stop.set()
        builtins.input = original_input
        dexloop_motors_bus._stdin_enter_pressed = original_enter
        del robot.bus.set_half_turn_homings


def check_robot(robot_class, config_class, preset: str, ranges, targets) -> None:
    with simulated_bus(preset) as sim, tempfile.TemporaryDirectory() as folder:
        config = config_class(port=sim.port, id="sim_arm", calibration_dir=Path(folder))
        robot = robot_class(config)
        check(
            type(robot.bus) in (FeetechMotorsBus, DynamixelMotorsBus), f"{robot} built {robot.bus!r:.60}..."
        )
        robot.connect(calibrate=False)
        check(robot.bus.is_connected, "connect: LeRobot's handshake on dexloop's bus")
        calibrate(robot, sim, ranges)
        written = json.loads((Path(folder) / "sim_arm.json").read_text())
        for motor in ranges:
            entry = written[motor]
            check(
                entry["homing_offset"] == sim.read(motor, "Homing_Offset")
                and entry["range_min"] == sim.read(motor, "Min_Position_Limit")
                and entry["range_max"] == sim.read(motor, "Max_Position_Limit"),
                f"{motor}: calibration file {entry} matches the servo's registers",
            )
        check(robot.bus.is_calibrated, "is_calibrated after LeRobot's calibration")
        robot.disconnect()

        # A new robot object finds the file: connect() checks it against the servos (no prompt) and
        # configures the motors (torque on).
        robot = robot_class(config)
        check(
            all(type(c).__module__.startswith("dexloop") for c in robot.bus.calibration.values()),
            "LeRobot's MotorCalibration values from the file became dexloop's in the bus",
        )
        robot.connect()
        check(robot.is_connected and robot.is_calibrated, "connect() with the calibration file")
        observation = robot.get_observation()
        check(set(observation) == set(targets), f"get_observation {observation}")
        sent = robot.send_action(targets)
        check(sent == targets, "send_action returns the action sent")
        deadline = time.monotonic() + 5.0
        while True:
            after = robot.get_observation()
            reached = all(abs(after[key] - value) < 1.0 for key, value in targets.items())
            if reached or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        check(reached, f"send_action reached its targets: {after}")
        # The existing calibration written back after ENTER at LeRobot's prompt.
        original_input = builtins.input
        builtins.input = lambda prompt="": ""
        try:
            robot.calibrate()
        finally:
            builtins.input = original_input
        check(robot.bus.is_calibrated, "calibrate() with the file: LeRobot's calibration written back")
        robot.disconnect()
        check(not robot.bus.is_connected, "disconnect")


if __name__ == "__main__":
    from lerobot.robots.koch_follower import KochFollower, KochFollowerConfig
    from lerobot.robots.so_follower import SO101FollowerConfig, SOFollower

    swap_buses()
    print("\nLeRobot's SO-101 follower (SOFollower) on dexloop's FeetechMotorsBus and simulator")
    so_ranges = {
        "shoulder_pan": (900, 3200),
        "shoulder_lift": (800, 3300),
        "elbow_flex": (850, 3100),
        "wrist_flex": (900, 3150),
        "gripper": (2000, 3500),
    }
    so_targets = {
        "shoulder_pan.pos": 30.0,
        "shoulder_lift.pos": -20.0,
        "elbow_flex.pos": 10.0,
        "wrist_flex.pos": 0.0,
        "wrist_roll.pos": 5.0,
        "gripper.pos": 20.0,
    }
    check_robot(SOFollower, SO101FollowerConfig, "so101", so_ranges, so_targets)

    print("\nLeRobot's Koch follower (KochFollower) on dexloop's DynamixelMotorsBus and simulator")
    koch_ranges = {
        "shoulder_lift": (800, 3300),
        "elbow_flex": (850, 3100),
        "wrist_flex": (900, 3150),
        "gripper": (2000, 3500),
    }
    koch_targets = {
        "shoulder_pan.pos": 10.0,
        "shoulder_lift.pos": -30.0,
        "elbow_flex.pos": 25.0,
        "wrist_flex.pos": 0.0,
        "wrist_roll.pos": -10.0,
        "gripper.pos": 40.0,
    }
    check_robot(KochFollower, KochFollowerConfig, "koch", koch_ranges, koch_targets)
    print(f"\n{len(FAILURES)} failure(s)")
    sys.exit(1 if FAILURES else 0)
