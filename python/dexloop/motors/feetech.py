"""Feetech STS/SMS (protocol 0) and SCS (protocol 1) servos: LeRobot's ``FeetechMotorsBus``.

Feetech specifics (as LeRobot): positions are sign-magnitude encoded (bit 15; Homing_Offset bit 11);
``Present_Position = Actual_Position - Homing_Offset``; the drive mode is applied in software
(``apply_drive_mode = True``); EPROM writes persist only with ``Lock = 0``, so torque off also writes
``Lock = 0`` and torque on ``Lock = 1``; protocol 1 (SCS series) has no SYNC_READ and no broadcast ping.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from enum import Enum
from pprint import pformat
from typing import ClassVar

from dexloop.errors import HandshakeError

from ._tables import vendor_tables
from .motors_bus import MAX_ID, DriveMode, Motor, MotorCalibration, MotorsBus, NameOrID, TorqueMode

logger = logging.getLogger(__name__)

DEFAULT_PROTOCOL_VERSION = 0
DEFAULT_BAUDRATE = 1_000_000
DEFAULT_TIMEOUT_MS = 1000
NORMALIZED_DATA = ["Goal_Position", "Present_Position"]

_TABLES = vendor_tables("feetech")
MODEL_CONTROL_TABLE = _TABLES["ctrl"]
MODEL_RESOLUTION = _TABLES["resolution"]
MODEL_BAUDRATE_TABLE = _TABLES["baudrate"]
MODEL_ENCODING_TABLE = _TABLES["encoding"]
MODEL_NUMBER_TABLE = _TABLES["number"]
MODEL_PROTOCOL = _TABLES["protocol"]
SCAN_BAUDRATES = [4_800, 9_600, 14_400, 19_200, 38_400, 57_600, 115_200, 128_000, 250_000, 500_000, 1_000_000]


class OperatingMode(Enum):
    """Feetech ``Operating_Mode`` values."""

    # Position servo mode.
    POSITION = 0
    # Constant speed from Goal_Velocity (0x2E), bit 15 the direction.
    VELOCITY = 1
    # Open-loop PWM speed from the running-time parameter (0x2C), bit 11 the direction.
    PWM = 2
    # Step servo mode: steps from Goal_Position (0x2A), bit 15 the direction.
    STEP = 3


class FeetechMotorsBus(MotorsBus):
    """A Feetech bus: ``FeetechMotorsBus(port, motors, calibration=None, protocol_version=0)``."""

    vendor = "feetech"
    apply_drive_mode = True
    available_baudrates: ClassVar[list[int]] = list(SCAN_BAUDRATES)
    default_baudrate = DEFAULT_BAUDRATE
    default_timeout = DEFAULT_TIMEOUT_MS
    model_ctrl_table = MODEL_CONTROL_TABLE
    model_resolution_table = MODEL_RESOLUTION
    model_baudrate_table = MODEL_BAUDRATE_TABLE
    model_encoding_table = MODEL_ENCODING_TABLE
    model_number_table = MODEL_NUMBER_TABLE
    normalized_data: ClassVar[list[str]] = list(NORMALIZED_DATA)
    _ping_status_size = 6

    def __init__(
        self,
        port: str,
        motors: dict[str, Motor],
        calibration: dict[str, MotorCalibration] | None = None,
        protocol_version: int = DEFAULT_PROTOCOL_VERSION,
        *,
        latency_margin_ms: float = 10.0,
        max_spin_us: int = 100,
    ):
        if protocol_version not in (0, 1):
            raise ValueError(
                f"Feetech protocol_version must be 0 (STS/SMS) or 1 (SCS), got {protocol_version}"
            )
        self.protocol_version = protocol_version
        self._has_sync_read = protocol_version == 0
        super().__init__(
            port,
            motors,
            calibration,
            protocol=protocol_version,
            latency_margin_ms=latency_margin_ms,
            max_spin_us=max_spin_us,
        )
        wrong = {
            name: m.model for name, m in self.motors.items() if MODEL_PROTOCOL[m.model] != protocol_version
        }
        if wrong:
            raise ValueError(
                f"Some motors are incompatible with protocol_version={protocol_version}: {wrong} "
                "(STS/SMS models use protocol 0, SCS models protocol 1)."
            )

    def _assert_protocol_is_compatible(self, instruction_name: str) -> None:
        if instruction_name == "sync_read" and self.protocol_version == 1:
            raise NotImplementedError(
                "'Sync Read' is not available with Feetech motors using Protocol 1. Use 'Read' sequentially instead."
            )
        if instruction_name == "broadcast_ping" and self.protocol_version == 1:
            raise NotImplementedError(
                "'Broadcast Ping' is not available with Feetech motors using Protocol 1. Use 'Ping' sequentially instead."
            )

    # ------------------------------------------------------------------------------------------------
    # Handshake

    def _handshake(self) -> None:
        self._assert_motors_exist()
        self._assert_same_firmware()

    def _read_firmware_version(self, motor_ids: Sequence[int]) -> dict[int, str]:
        versions = {}
        for id_ in motor_ids:
            model = self._id_to_model(id_)
            major = self.servo_bus.read(id_, self._register(model, "Firmware_Major_Version"))
            minor = self.servo_bus.read(id_, self._register(model, "Firmware_Minor_Version"))
            versions[id_] = f"{major}.{minor}"
        return versions

    def _assert_same_firmware(self) -> None:
        versions = self._read_firmware_version(self.ids)
        if len(set(versions.values())) > 1:
            named = {f"{id_} '{self._id_to_name(id_)}'": version for id_, version in versions.items()}
            raise HandshakeError(
                f"Some motors on port '{self.port}' use different firmware versions:\n{pformat(named)}\n"
                "Update their firmware first using Feetech's software. Visit https://www.feetechrc.com/software."
            )

    # ------------------------------------------------------------------------------------------------
    # Set-up

    def _find_ids(self) -> dict[int, int] | None:
        if self.protocol_version == 0:
            return self.broadcast_ping()
        # Protocol 1 has no broadcast ping: ping every id in turn.
        for id_ in range(MAX_ID + 1):
            model_nb = self.ping(id_)
            if model_nb is not None:
                return {id_: model_nb}
        return None

    def configure_motors(
        self, return_delay_time: int = 0, maximum_acceleration: int = 254, acceleration: int = 254
    ) -> None:
        """Return_Delay_Time = 0 (the factory 250 is a 500 µs reply delay), Maximum_Acceleration = 254
        (protocol 0), Acceleration = 254, and on STS3215 bit 4 of Phase cleared so that positions stay in
        [0, 4095]."""
        for motor in self.motors:
            self.write("Return_Delay_Time", motor, return_delay_time)
            if self.protocol_version == 0:
                self.write("Maximum_Acceleration", motor, maximum_acceleration)
            self.write("Acceleration", motor, acceleration)
            if self.motors[motor].model == "sts3215":
                phase = self.read("Phase", motor, normalize=False)
                if phase & 0x10:
                    self.write("Phase", motor, phase & ~0x10)

    # ------------------------------------------------------------------------------------------------
    # Torque

    def disable_torque(self, motors: NameOrID | Sequence[NameOrID] | None = None, num_retry: int = 0) -> None:
        """``Torque_Enable = 0`` then ``Lock = 0`` on each motor (EPROM writes then persist)."""
        for motor in self._get_motors_list(motors):
            self.write("Torque_Enable", motor, TorqueMode.DISABLED.value, num_retry=num_retry)
            self.write("Lock", motor, 0, num_retry=num_retry)

    def _disable_torque(self, motor: int, model: str, num_retry: int = 0) -> None:
        self.servo_bus.write(
            motor, self._register(model, "Torque_Enable"), TorqueMode.DISABLED.value, num_retry
        )
        self.servo_bus.write(motor, self._register(model, "Lock"), 0, num_retry)

    def enable_torque(self, motors: NameOrID | Sequence[NameOrID] | None = None, num_retry: int = 0) -> None:
        """``Torque_Enable = 1`` then ``Lock = 1`` on each motor."""
        for motor in self._get_motors_list(motors):
            self.write("Torque_Enable", motor, TorqueMode.ENABLED.value, num_retry=num_retry)
            self.write("Lock", motor, 1, num_retry=num_retry)

    # ------------------------------------------------------------------------------------------------
    # Calibration

    @property
    def is_calibrated(self) -> bool:
        """The cached calibration's ranges (and, protocol 0, homing offsets) equal the motors' registers."""
        motors_calibration = self.read_calibration()
        if set(motors_calibration) != set(self.calibration):
            return False
        same_ranges = all(
            self.calibration[motor].range_min == cal.range_min
            and self.calibration[motor].range_max == cal.range_max
            for motor, cal in motors_calibration.items()
        )
        if self.protocol_version == 1:
            return same_ranges
        return same_ranges and all(
            self.calibration[motor].homing_offset == cal.homing_offset
            for motor, cal in motors_calibration.items()
        )

    def read_calibration(self) -> dict[str, MotorCalibration]:
        """Homing_Offset (protocol 0), Min_Position_Limit and Max_Position_Limit of every motor; drive_mode
        is always 0 (Feetech has no drive-mode register).

        One READ per register and motor, as LeRobot makes them: a READ reports the motor's error bits
        (a sync read ignores them), and protocol 1 (SCS series) has no SYNC_READ at all."""
        offsets, mins, maxes = {}, {}, {}
        for motor in self.motors:
            mins[motor] = self.read("Min_Position_Limit", motor, normalize=False)
            maxes[motor] = self.read("Max_Position_Limit", motor, normalize=False)
            offsets[motor] = (
                self.read("Homing_Offset", motor, normalize=False) if self.protocol_version == 0 else 0
            )
        return {
            motor: MotorCalibration(
                id=m.id,
                drive_mode=0,
                homing_offset=int(offsets[motor]),
                range_min=int(mins[motor]),
                range_max=int(maxes[motor]),
            )
            for motor, m in self.motors.items()
        }

    def write_calibration(self, calibration_dict: dict[str, MotorCalibration], cache: bool = True) -> None:
        """Writes Homing_Offset (protocol 0), Min_Position_Limit and Max_Position_Limit of each motor in
        `calibration_dict`; with `cache`, keeps `calibration_dict` as the bus's calibration."""
        for motor, calibration in calibration_dict.items():
            if self.protocol_version == 0:
                self.write("Homing_Offset", motor, calibration.homing_offset)
            self.write("Min_Position_Limit", motor, calibration.range_min)
            self.write("Max_Position_Limit", motor, calibration.range_max)
        if cache:
            self.calibration = calibration_dict

    def _get_half_turn_homings(self, positions: Mapping[str, int]) -> dict[str, int]:
        """Present_Position = Actual_Position - Homing_Offset, so offset = position - 2047 (12 bits)."""
        homings = {}
        for motor, pos in positions.items():
            max_res = self.model_resolution_table[self._get_motor_model(motor)] - 1
            homings[motor] = pos - int(max_res / 2)
        return homings


__all__ = [
    "MODEL_BAUDRATE_TABLE",
    "MODEL_CONTROL_TABLE",
    "MODEL_ENCODING_TABLE",
    "MODEL_NUMBER_TABLE",
    "MODEL_PROTOCOL",
    "MODEL_RESOLUTION",
    "SCAN_BAUDRATES",
    "DriveMode",
    "FeetechMotorsBus",
    "OperatingMode",
    "TorqueMode",
]
