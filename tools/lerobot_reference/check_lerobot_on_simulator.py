"""LeRobot 0.6.1's own buses and robots, pointed at dexloop's servo simulator, work as on real arms.

Run by hand in the LeRobot environment (shared/tools/lerobot-peer.sh) with dexloop installed there
(``/tmp/lerobot-peer/bin/pip install --no-build-isolation -e .``):

    /tmp/lerobot-peer/bin/python tools/lerobot_reference/check_lerobot_on_simulator.py

For an SO-101 follower (FeetechMotorsBus, 6 x STS3215) and a Koch follower (DynamixelMotorsBus) it
connects with LeRobot's handshake, reads, sync-reads and sync-writes, then runs LeRobot's own
interactive calibration with the prompts answered and the joints "moved by hand" in the simulator,
checks the calibration LeRobot wrote to the servos and to its JSON file, and finally reads normalised
positions and commands a goal. Every check prints a line; the script exits non-zero on a failure.
"""

from __future__ import annotations

import builtins
import json
import sys
import tempfile
import threading
import time
from pathlib import Path

from dexloop.sim import preset, simulated_bus

FAILURES: list[str] = []


def check(condition: bool, what: str) -> None:
    print(("ok    " if condition else "FAIL  ") + what, flush=True)
    if not condition:
        FAILURES.append(what)


def answer_prompts_and_move_joints(sim, ranges: dict[str, tuple[int, int]], stop: threading.Event):
    """While LeRobot records ranges of motion, sweep each joint through its range, as a person would."""

    def sweep():
        # Low end to high end and back to the middle, in small steps LeRobot's 20 ms loop samples.
        fractions = [i / 20 for i in range(21)] + [1 - i / 40 for i in range(1, 21)]
        for fraction in fractions:
            if stop.is_set():
                return
            for motor, (low, high) in ranges.items():
                sim.set_position(motor, low + (high - low) * fraction)
            time.sleep(0.03)

    return threading.Thread(target=sweep, daemon=True)


def calibrate_with_lerobot(robot_class, config, sim, ranges, enter_module) -> None:
    """LeRobot's robot.calibrate(): ENTER at each prompt, Enter pressed once the sweep is done."""
    stop = threading.Event()
    sweeper = answer_prompts_and_move_joints(sim, ranges, stop)
    original_input, original_enter = builtins.input, enter_module.enter_pressed

    def fake_input(prompt=""):
        print(f"      (prompt answered: {prompt.strip()[:70]})")
        return ""

    def fake_enter_pressed():
        return not sweeper.is_alive()

    builtins.input = fake_input
    enter_module.enter_pressed = fake_enter_pressed
    try:
        robot = robot_class(config)
        robot.connect(calibrate=False)
        # Middle of the range, then LeRobot's homing; the sweep starts with range recording.
        for motor, (low, high) in ranges.items():
            sim.set_position(motor, (low + high) / 2)
        original_homings = robot.bus.set_half_turn_homings

        def homings_then_sweep(*args, **kwargs):
            result = original_homings(*args, **kwargs)
            sweeper.start()
            return result

        robot.bus.set_half_turn_homings = homings_then_sweep
        robot.calibrate()
        return robot
    finally:
        stop.set()
        builtins.input = original_input
        enter_module.enter_pressed = original_enter


def check_feetech() -> None:
    from lerobot.motors import Motor, MotorNormMode, motors_bus
    from lerobot.motors.feetech import FeetechMotorsBus
    from lerobot.robots.so_follower import SO101FollowerConfig, SOFollower

    print("\nSO-101 follower (LeRobot FeetechMotorsBus, feetech-servo-sdk) on dexloop's simulator")
    with simulated_bus("so101") as sim:
        motors = {m.name: Motor(m.id, m.model, MotorNormMode.RANGE_M100_100) for m in preset("so101").motors}
        bus = FeetechMotorsBus(port=sim.port, motors=motors)
        bus.connect()
        check(bus.is_connected, "connect: ping, model numbers and firmware versions of 6 motors")
        found = bus.broadcast_ping()
        check(found is not None and sorted(found) == [1, 2, 3, 4, 5, 6], f"broadcast_ping found {found}")
        check(bus.read("ID", "gripper", normalize=False) == 6, "read ID of the gripper")
        raw = bus.sync_read("Present_Position", normalize=False)
        expected = {name: round(sim.position(name)) for name in motors}
        check(raw == expected, f"sync_read Present_Position {raw} matches the simulator")
        bus.configure_motors()
        phase = sim.read("shoulder_pan", "Phase")
        check(not phase & 0x10 and sim.read("shoulder_pan", "Return_Delay_Time") == 0, "configure_motors")
        bus.enable_torque()
        check(
            sim.read("elbow_flex", "Torque_Enable") == 1 and sim.read("elbow_flex", "Lock") == 1,
            "torque on + Lock",
        )
        bus.sync_write("Goal_Position", dict.fromkeys(motors, 2500), normalize=False)
        time.sleep(0.4)
        moved = bus.sync_read("Present_Position", normalize=False)
        check(
            all(abs(v - 2500) <= 2 for v in moved.values()), f"sync_write Goal_Position: arm moved to {moved}"
        )
        bus.disable_torque()
        bus.disconnect(disable_torque=False)

        ranges = {
            "shoulder_pan": (900, 3200),
            "shoulder_lift": (800, 3300),
            "elbow_flex": (850, 3100),
            "wrist_flex": (900, 3150),
            "gripper": (2000, 3500),
        }
        with tempfile.TemporaryDirectory() as folder:
            config = SO101FollowerConfig(port=sim.port, id="sim_arm", calibration_dir=Path(folder))
            robot = calibrate_with_lerobot(SOFollower, config, sim, ranges, motors_bus)
            calibration_file = Path(folder) / "sim_arm.json"
            check(calibration_file.exists(), f"LeRobot wrote {calibration_file.name}")
            written = json.loads(calibration_file.read_text())
            for motor in ranges:
                entry = written[motor]
                offset = sim.read(motor, "Homing_Offset")
                check(
                    entry["homing_offset"] == offset
                    and entry["range_min"] == sim.read(motor, "Min_Position_Limit")
                    and entry["range_max"] == sim.read(motor, "Max_Position_Limit"),
                    f"{motor}: file {entry} matches the servo's registers",
                )
            check(robot.bus.is_calibrated, "is_calibrated after calibration")
            observation = robot.get_observation()
            check(set(observation) >= {f"{m}.pos" for m in motors}, f"get_observation {observation}")
            # Calibration leaves torque off; configure() (as connect() does) turns it on.
            robot.configure()
            targets = {f"{m}.pos": 30.0 for m in motors}
            targets["gripper.pos"] = 20.0  # the gripper is normalised to 0..100
            robot.send_action(targets)
            time.sleep(0.5)
            after = robot.get_observation()
            reached = all(abs(after[key] - value) < 1.0 for key, value in targets.items())
            check(reached, f"send_action reached its targets: {after}")
            robot.disconnect()


def check_dynamixel() -> None:
    from lerobot.motors import Motor, MotorNormMode, motors_bus
    from lerobot.motors.dynamixel import DynamixelMotorsBus
    from lerobot.robots.koch_follower import KochFollower, KochFollowerConfig

    print("\nKoch follower (LeRobot DynamixelMotorsBus, dynamixel-sdk) on dexloop's simulator")
    with simulated_bus("koch") as sim:
        motors = {m.name: Motor(m.id, m.model, MotorNormMode.RANGE_M100_100) for m in preset("koch").motors}
        bus = DynamixelMotorsBus(port=sim.port, motors=motors)
        bus.connect()
        check(bus.is_connected, "connect: ping and model numbers of 6 motors")
        raw = bus.sync_read("Present_Position", normalize=False)
        expected = {name: round(sim.position(name)) for name in motors}
        check(raw == expected, f"sync_read Present_Position {raw} matches the simulator")
        bus.configure_motors()
        check(sim.read("gripper", "Return_Delay_Time") == 0, "configure_motors: Return_Delay_Time 0")
        bus.enable_torque()
        bus.sync_write("Goal_Position", dict.fromkeys(motors, 1500), normalize=False)
        time.sleep(0.4)
        moved = bus.sync_read("Present_Position", normalize=False)
        check(
            all(abs(v - 1500) <= 2 for v in moved.values()), f"sync_write Goal_Position: arm moved to {moved}"
        )
        bus.disable_torque()
        bus.disconnect(disable_torque=False)

        ranges = {
            "shoulder_lift": (800, 3300),
            "elbow_flex": (850, 3100),
            "wrist_flex": (900, 3150),
            "gripper": (2000, 3500),
        }
        with tempfile.TemporaryDirectory() as folder:
            config = KochFollowerConfig(port=sim.port, id="sim_koch", calibration_dir=Path(folder))
            robot = calibrate_with_lerobot(KochFollower, config, sim, ranges, motors_bus)
            written = json.loads((Path(folder) / "sim_koch.json").read_text())
            for motor in ranges:
                entry = written[motor]
                check(
                    entry["homing_offset"] == sim.read(motor, "Homing_Offset")
                    and entry["range_min"] == sim.read(motor, "Min_Position_Limit")
                    and entry["range_max"] == sim.read(motor, "Max_Position_Limit"),
                    f"{motor}: file {entry} matches the servo's registers",
                )
            check(robot.bus.is_calibrated, "is_calibrated after calibration")
            robot.disconnect()


if __name__ == "__main__":
    check_feetech()
    check_dynamixel()
    print(f"\n{len(FAILURES)} failure(s)")
    sys.exit(1 if FAILURES else 0)
