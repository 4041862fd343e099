"""Servo buses with LeRobot's MotorsBus API on dexloop's native driver.

``from dexloop.motors import Motor, MotorCalibration, MotorNormMode`` and
``from dexloop.motors.feetech import FeetechMotorsBus, OperatingMode`` (or ``.dynamixel``) work as the
``lerobot.motors`` imports of the same names. Calibration files: :mod:`dexloop.motors.calibration`.
"""

from __future__ import annotations

from .calibration import load_calibration, save_calibration
from .dynamixel import DynamixelMotorsBus
from .feetech import FeetechMotorsBus
from .motors_bus import Motor, MotorCalibration, MotorNormMode, MotorsBus, SerialMotorsBus

__all__ = [
    "DynamixelMotorsBus",
    "FeetechMotorsBus",
    "Motor",
    "MotorCalibration",
    "MotorNormMode",
    "MotorsBus",
    "SerialMotorsBus",
    "load_calibration",
    "save_calibration",
]
