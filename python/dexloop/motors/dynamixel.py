"""Dynamixel X-series servos over Protocol 2.0: LeRobot's ``DynamixelMotorsBus``.

Dynamixel specifics (as LeRobot): signed registers are two's complement of their width;
``Present_Position = Actual_Position + Homing_Offset``; the drive direction is inverted by the servo
(``Drive_Mode`` bit 0), so normalisation ignores ``drive_mode`` (``apply_drive_mode = False``); EEPROM
(addresses below 64) is writable only with the torque off.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from enum import Enum
from typing import ClassVar

from ._tables import vendor_tables
from .motors_bus import DriveMode, Motor, MotorCalibration, MotorsBus, NameOrID, TorqueMode

logger = logging.getLogger(__name__)

PROTOCOL_VERSION = 2.0
DEFAULT_BAUDRATE = 1_000_000
DEFAULT_TIMEOUT_MS = 1000
NORMALIZED_DATA = ["Goal_Position", "Present_Position"]

_TABLES = vendor_tables("dynamixel")
MODEL_CONTROL_TABLE = _TABLES["ctrl"]
MODEL_RESOLUTION = _TABLES["resolution"]
MODEL_BAUDRATE_TABLE = _TABLES["baudrate"]
MODEL_ENCODING_TABLE = _TABLES["encoding"]
MODEL_NUMBER_TABLE = _TABLES["number"]
MODEL_OPERATING_MODES = _TABLES["operating_modes"]
AVAILABLE_BAUDRATES = [
    9_600,
    19_200,
    38_400,
    57_600,
    115_200,
    230_400,
    460_800,
    500_000,
    576_000,
    921_600,
    1_000_000,
    1_152_000,
    2_000_000,
    2_500_000,
    3_000_000,
    3_500_000,
    4_000_000,
]


class OperatingMode(Enum):
    """Dynamixel ``Operating_Mode`` values."""

    # Current (torque) only, whatever the speed and position.
    CURRENT = 0
    # Velocity control (the former wheel mode).
    VELOCITY = 1
    # Position control within Min/Max_Position_Limit (the former joint mode).
    POSITION = 3
    # Multi-turn position control (-256 to 256 turns); position limits are not used.
    EXTENDED_POSITION = 4
    # Position and current control (multi-turn), e.g. grippers that must not force.
    CURRENT_POSITION = 5
    # PWM (voltage) control.
    PWM = 16


class DynamixelMotorsBus(MotorsBus):
    """A Dynamixel Protocol 2.0 bus: ``DynamixelMotorsBus(port, motors, calibration=None)``."""

    vendor = "dynamixel"
    apply_drive_mode = False
    available_baudrates: ClassVar[list[int]] = list(AVAILABLE_BAUDRATES)
    default_baudrate = DEFAULT_BAUDRATE
    default_timeout = DEFAULT_TIMEOUT_MS
    model_ctrl_table = MODEL_CONTROL_TABLE
    model_resolution_table = MODEL_RESOLUTION
    model_baudrate_table = MODEL_BAUDRATE_TABLE
    model_encoding_table = MODEL_ENCODING_TABLE
    model_number_table = MODEL_NUMBER_TABLE
    normalized_data: ClassVar[list[str]] = list(NORMALIZED_DATA)
    _ping_status_size = 14

    def __init__(
        self,
        port: str,
        motors: dict[str, Motor],
        calibration: dict[str, MotorCalibration] | None = None,
        *,
        latency_margin_ms: float = 10.0,
        max_spin_us: int = 100,
    ):
        super().__init__(
            port,
            motors,
            calibration,
            protocol=2,
            latency_margin_ms=latency_margin_ms,
            max_spin_us=max_spin_us,
        )

    def _handshake(self) -> None:
        self._assert_motors_exist()

    def configure_motors(self, return_delay_time: int = 0) -> None:
        """Return_Delay_Time = 0 on every motor (the factory 250 is a 500 µs reply delay)."""
        for motor in self.motors:
            self.write("Return_Delay_Time", motor, return_delay_time)

    def disable_torque(self, motors: NameOrID | Sequence[NameOrID] | None = None, num_retry: int = 0) -> None:
        """``Torque_Enable = 0`` on each motor."""
        for motor in self._get_motors_list(motors):
            self.write("Torque_Enable", motor, TorqueMode.DISABLED.value, num_retry=num_retry)

    def _disable_torque(self, motor: int, model: str, num_retry: int = 0) -> None:
        self.servo_bus.write(
            motor, self._register(model, "Torque_Enable"), TorqueMode.DISABLED.value, num_retry
        )

    def enable_torque(self, motors: NameOrID | Sequence[NameOrID] | None = None, num_retry: int = 0) -> None:
        """``Torque_Enable = 1`` on each motor."""
        for motor in self._get_motors_list(motors):
            self.write("Torque_Enable", motor, TorqueMode.ENABLED.value, num_retry=num_retry)

    @property
    def is_calibrated(self) -> bool:
        """The cached calibration equals the one in the motors (drive_mode included)."""
        return self.calibration == self.read_calibration()

    def read_calibration(self) -> dict[str, MotorCalibration]:
        """Homing_Offset, Min/Max_Position_Limit and Drive_Mode of every motor (four SYNC_READs)."""
        offsets = self.sync_read("Homing_Offset", normalize=False)
        mins = self.sync_read("Min_Position_Limit", normalize=False)
        maxes = self.sync_read("Max_Position_Limit", normalize=False)
        drive_modes = self.sync_read("Drive_Mode", normalize=False)
        return {
            motor: MotorCalibration(
                id=m.id,
                drive_mode=int(drive_modes[motor]),
                homing_offset=int(offsets[motor]),
                range_min=int(mins[motor]),
                range_max=int(maxes[motor]),
            )
            for motor, m in self.motors.items()
        }

    def write_calibration(self, calibration_dict: dict[str, MotorCalibration], cache: bool = True) -> None:
        """Writes Homing_Offset, Min_Position_Limit and Max_Position_Limit of each motor (not Drive_Mode,
        as LeRobot); with `cache`, keeps `calibration_dict` as the bus's calibration."""
        for motor, calibration in calibration_dict.items():
            self.write("Homing_Offset", motor, calibration.homing_offset)
            self.write("Min_Position_Limit", motor, calibration.range_min)
            self.write("Max_Position_Limit", motor, calibration.range_max)
        if cache:
            self.calibration = calibration_dict

    def _get_half_turn_homings(self, positions: Mapping[str, int]) -> dict[str, int]:
        """Present_Position = Actual_Position + Homing_Offset, so offset = 2047 - position (12 bits)."""
        homings = {}
        for motor, pos in positions.items():
            max_res = self.model_resolution_table[self._get_motor_model(motor)] - 1
            homings[motor] = int(max_res / 2) - pos
        return homings


__all__ = [
    "AVAILABLE_BAUDRATES",
    "MODEL_BAUDRATE_TABLE",
    "MODEL_CONTROL_TABLE",
    "MODEL_ENCODING_TABLE",
    "MODEL_NUMBER_TABLE",
    "MODEL_OPERATING_MODES",
    "MODEL_RESOLUTION",
    "DriveMode",
    "DynamixelMotorsBus",
    "OperatingMode",
    "TorqueMode",
]
