"""LeRobot's own Motor, MotorNormMode and MotorCalibration values work on dexloop's buses.

LeRobot's robot classes build their buses with ``lerobot.motors`` types. The stand-ins below have
exactly the shape of LeRobot 0.6.1's (``lerobot/motors/motors_bus.py``: two dataclasses and a str
enum, same field names and order, same enum values) without importing lerobot.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

import pytest

from dexloop.motors import Motor, MotorCalibration, MotorNormMode
from dexloop.motors.dynamixel import DynamixelMotorsBus
from dexloop.motors.feetech import FeetechMotorsBus
from dexloop.sim import simulated_bus


class LeRobotMotorNormMode(str, Enum):
    RANGE_0_100 = "range_0_100"
    RANGE_M100_100 = "range_m100_100"
    DEGREES = "degrees"


@dataclass
class LeRobotMotorCalibration:
    id: int
    drive_mode: int
    homing_offset: int
    range_min: int
    range_max: int


@dataclass
class LeRobotMotor:
    id: int
    model: str
    norm_mode: LeRobotMotorNormMode
    motor_type_str: str | None = None
    recv_id: int | None = None


SO_NAMES = ["shoulder_pan", "shoulder_lift", "elbow_flex", "wrist_flex", "wrist_roll", "gripper"]
# The simulator's thread may wait for a core on a loaded machine: a wide allowance beyond the wire time.
LATENCY_MARGIN_MS = 100
KOCH_MODELS = ["xl430-w250", "xl430-w250", "xl330-m288", "xl330-m288", "xl330-m288", "xl330-m288"]


def lerobot_motors(models: list[str], body=LeRobotMotorNormMode.RANGE_M100_100) -> dict[str, LeRobotMotor]:
    """The motors as LeRobot's SO / Koch follower classes declare them."""
    return {
        name: LeRobotMotor(i + 1, models[i], LeRobotMotorNormMode.RANGE_0_100 if name == "gripper" else body)
        for i, name in enumerate(SO_NAMES)
    }


def test_lerobot_motors_become_dexloop_motors_once():
    given = lerobot_motors(["sts3215"] * 6, LeRobotMotorNormMode.DEGREES)
    given["gripper"].recv_id = 16
    bus = FeetechMotorsBus("/dev/ttyNONE", given)
    assert list(bus.motors) == SO_NAMES
    assert all(type(m) is Motor for m in bus.motors.values())
    assert bus.motors["shoulder_pan"] == Motor(1, "sts3215", MotorNormMode.DEGREES)
    assert bus.motors["gripper"] == Motor(6, "sts3215", MotorNormMode.RANGE_0_100, None, 16)
    assert type(bus.motors["gripper"].norm_mode) is MotorNormMode
    # LeRobot's robot code compares modes with its own enum: equal values compare equal.
    assert bus.motors["gripper"].norm_mode == LeRobotMotorNormMode.RANGE_0_100
    assert bus.ids == [1, 2, 3, 4, 5, 6] and bus.models == ["sts3215"] * 6


def test_dexloop_motors_and_calibration_are_kept_as_given():
    motors = {"a": Motor(1, "sts3215", MotorNormMode.DEGREES)}
    calibration = {"a": MotorCalibration(1, 0, 0, 0, 4095)}
    bus = FeetechMotorsBus("/dev/ttyNONE", motors, calibration)
    assert bus.motors is motors and bus.calibration is calibration


def test_lerobot_calibration_becomes_dexloop_calibration():
    calibration = {"gripper": LeRobotMotorCalibration(6, 0, -12, 1000, 3000)}
    bus = FeetechMotorsBus("/dev/ttyNONE", lerobot_motors(["sts3215"] * 6), calibration)
    assert bus.calibration == {"gripper": MotorCalibration(6, 0, -12, 1000, 3000)}
    assert type(bus.calibration["gripper"]) is MotorCalibration
    bus.calibration = {"wrist_flex": LeRobotMotorCalibration(4, 1, 5, 10, 20)}
    assert bus.calibration == {"wrist_flex": MotorCalibration(4, 1, 5, 10, 20)}
    bus.calibration = None
    assert bus.calibration == {}


def test_motor_shaped_values_are_checked():
    @dataclass
    class NoNormMode:
        id: int
        model: str

    with pytest.raises(TypeError, match=r"motor 'a' must be a Motor\(id, model, norm_mode\).*no norm_mode"):
        FeetechMotorsBus("/dev/x", {"a": NoNormMode(1, "sts3215")})
    with pytest.raises(TypeError, match="motor 'a' must be a Motor.*no id, model, norm_mode"):
        FeetechMotorsBus("/dev/x", {"a": (1, "sts3215", "degrees")})
    with pytest.raises(TypeError, match="motors must be a dict"):
        FeetechMotorsBus("/dev/x", [LeRobotMotor(1, "sts3215", LeRobotMotorNormMode.DEGREES)])

    class OtherMode(str, Enum):
        RADIANS = "radians"

    with pytest.raises(ValueError, match="motor 'a': .*'radians'.* not a valid MotorNormMode.*degrees"):
        FeetechMotorsBus("/dev/x", {"a": LeRobotMotor(1, "sts3215", OtherMode.RADIANS)})
    with pytest.raises(
        TypeError,
        match="calibration of motor 'a' must be a MotorCalibration.*it has no drive_mode, homing_offset, range_min, range_max",
    ):
        FeetechMotorsBus(
            "/dev/x",
            {"a": Motor(1, "sts3215", MotorNormMode.DEGREES)},
            {"a": LeRobotMotor(1, "sts3215", LeRobotMotorNormMode.DEGREES)},
        )
    with pytest.raises(TypeError, match="calibration must be a dict"):
        FeetechMotorsBus("/dev/x", {"a": Motor(1, "sts3215", MotorNormMode.DEGREES)}, [1, 0, 0, 0, 4095])


def test_feetech_bus_with_lerobot_types_on_the_simulator():
    """What LeRobot's SOFollower does with its bus: calibrate, read normalised positions, send goals."""
    with simulated_bus("so101", time_constant_s=0.0) as sim:
        bus = FeetechMotorsBus(sim.port, lerobot_motors(["sts3215"] * 6), latency_margin_ms=LATENCY_MARGIN_MS)
        bus.connect()
        try:
            raw = bus.sync_read("Present_Position", normalize=False)
            calibration = {
                name: LeRobotMotorCalibration(m.id, 0, 0, raw[name] - 500, raw[name] + 500)
                for name, m in bus.motors.items()
            }
            bus.write_calibration(calibration)
            assert bus.is_calibrated
            assert all(type(c) is MotorCalibration for c in bus.calibration.values())
            positions = bus.sync_read("Present_Position")
            assert positions["shoulder_pan"] == pytest.approx(0.0, abs=0.2)
            assert positions["gripper"] == pytest.approx(50.0, abs=0.1)
            bus.enable_torque()
            bus.sync_write("Goal_Position", {"shoulder_pan": 100.0, "gripper": 0.0})
            bus.ping(1)  # a SYNC_WRITE gets no reply: one round trip after it, the simulator has it
            assert sim.read("shoulder_pan", "Goal_Position") == raw["shoulder_pan"] + 500
            assert sim.read("gripper", "Goal_Position") == raw["gripper"] - 500
        finally:
            bus.disconnect()


def test_dynamixel_is_calibrated_compares_lerobot_calibration():
    """Dynamixel's is_calibrated compares calibration dicts: LeRobot's values must equal dexloop's."""
    with simulated_bus("koch", time_constant_s=0.0) as sim:
        bus = DynamixelMotorsBus(sim.port, lerobot_motors(KOCH_MODELS), latency_margin_ms=LATENCY_MARGIN_MS)
        bus.connect()
        try:
            calibration = {
                name: LeRobotMotorCalibration(m.id, 0, 0, 1000, 3000) for name, m in bus.motors.items()
            }
            with bus.torque_disabled():
                bus.write_calibration(calibration)
            assert bus.is_calibrated
            calibration["gripper"].range_max = 3001
            bus.calibration = calibration
            assert not bus.is_calibrated
        finally:
            bus.disconnect()
