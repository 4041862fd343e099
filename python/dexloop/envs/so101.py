"""The simulated SO-101 follower's joints in the units of LeRobot's real one.

LeRobot's ``so101_follower`` reports and takes ``<motor>.pos`` values: degrees from the middle of the
calibrated range (``use_degrees=True``, LeRobot's default) or -100..100 over the range
(``use_degrees=False``) for the five body joints, 0..100 over the range for the gripper. The simulator
works in radians. This module maps one to the other through a calibration, so the numbers pass
through the same normalisation code as the real bus (:mod:`dexloop.motors.normalization`):

* an encoder step is 2*pi/4096 rad (STS3215, 12 bits) and joint zero of dexloop's model is the
  middle of the calibrated range (the SO-ARM100 "new calibration" convention);
* each body joint's calibrated range is the model's joint range; ``wrist_roll``'s is the full turn
  [0, 4095], as LeRobot's calibration forces it; the gripper's 0..100 spans closed to open;
* readings are whole encoder steps (``Present_Position`` is an integer register), goals are
  truncated to whole steps as the bus's ``_unnormalize`` does, then held inside the range as the
  servo's position limits do.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from dexloop.errors import EnvError
from dexloop.motors import MotorCalibration, MotorNormMode
from dexloop.motors.normalization import normalize_values, unnormalize_values
from dexloop.sim import SO_JOINTS

MOTOR_NAMES: tuple[str, ...] = SO_JOINTS
STATE_NAMES: list[str] = [f"{name}.pos" for name in MOTOR_NAMES]
RESOLUTION = 4096
MAX_RES = RESOLUTION - 1
STEPS_PER_RAD = RESOLUTION / (2 * np.pi)
# The joint ranges of dexloop's SO-101 model (radians), as published with the arm.
JOINT_RANGES: dict[str, tuple[float, float]] = {
    "shoulder_pan": (-1.91986, 1.91986),
    "shoulder_lift": (-1.74533, 1.74533),
    "elbow_flex": (-1.69, 1.69),
    "wrist_flex": (-1.65806, 1.65806),
    "wrist_roll": (-2.79253, 2.79253),
    "gripper": (-0.174533, 1.74533),
}


def _calibration() -> dict[str, MotorCalibration]:
    calibration = {}
    for motor_id, name in enumerate(MOTOR_NAMES, start=1):
        if name == "wrist_roll":
            low, high = 0, MAX_RES
        else:
            lower, upper = JOINT_RANGES[name]
            low = round(MAX_RES / 2 + lower * STEPS_PER_RAD)
            high = round(MAX_RES / 2 + upper * STEPS_PER_RAD)
        calibration[name] = MotorCalibration(
            id=motor_id, drive_mode=0, homing_offset=0, range_min=low, range_max=high
        )
    return calibration


# The simulated arm's calibration, in the shape of a LeRobot calibration file.
SO101_SIM_CALIBRATION: dict[str, MotorCalibration] = _calibration()
# Joint zero sits at encoder step 2047.5 (the middle of the turn, where LeRobot's homing puts the
# calibration pose); the body joints' ranges are symmetric about it, so DEGREES reads 0 there.
_ZERO = MAX_RES / 2
_RAW_MIN = np.array([c.range_min for c in SO101_SIM_CALIBRATION.values()])
_RAW_MAX = np.array([c.range_max for c in SO101_SIM_CALIBRATION.values()])


def norm_modes(use_degrees: bool = True) -> list[MotorNormMode]:
    """The follower's norm modes: DEGREES (or RANGE_M100_100) for the body, RANGE_0_100 for the gripper."""
    body = MotorNormMode.DEGREES if use_degrees else MotorNormMode.RANGE_M100_100
    return [body] * (len(MOTOR_NAMES) - 1) + [MotorNormMode.RANGE_0_100]


class MotorUnits:
    """Conversions between joint angles (radians) and ``<motor>.pos`` values for one norm setting."""

    def __init__(self, use_degrees: bool = True) -> None:
        self.use_degrees = use_degrees
        self.modes = norm_modes(use_degrees)
        self._names = list(MOTOR_NAMES)
        self._max_res = [MAX_RES] * len(MOTOR_NAMES)

    def _check(self, values: Sequence[float] | np.ndarray, what: str) -> np.ndarray:
        array = np.asarray(values, dtype=np.float64)
        if array.shape != (len(MOTOR_NAMES),):
            raise EnvError(
                f"{what} must hold {len(MOTOR_NAMES)} values ({', '.join(STATE_NAMES)}), got shape {array.shape}"
            )
        if not np.all(np.isfinite(array)):
            bad = [STATE_NAMES[i] for i in np.flatnonzero(~np.isfinite(array))]
            raise EnvError(f"{what} is not finite for {', '.join(bad)}: {array.tolist()}")
        return array

    def raw_from_radians(self, q: np.ndarray) -> np.ndarray:
        return _ZERO + np.asarray(q, dtype=np.float64) * STEPS_PER_RAD

    def to_motor(self, q: Sequence[float] | np.ndarray, quantize: bool = False) -> np.ndarray:
        """``<motor>.pos`` values (float64) of joint angles `q` (radians). `quantize` reads them as the
        bus would: whole encoder steps."""
        raw = self.raw_from_radians(self._check(q, "joint angles"))
        if quantize:
            raw = np.rint(raw)
        values = normalize_values(
            self._names, raw.tolist(), self.modes, self._max_res, SO101_SIM_CALIBRATION, True, "SO-101 sim"
        )
        return np.asarray(values, dtype=np.float64)

    def to_radians(self, values: Sequence[float] | np.ndarray) -> np.ndarray:
        """Joint goals (radians) of ``<motor>.pos`` goal values, after the bus's conversion to whole
        encoder steps and the servo's range limits."""
        array = self._check(values, "action")
        raw = unnormalize_values(
            self._names, array.tolist(), self.modes, self._max_res, SO101_SIM_CALIBRATION, True, "SO-101 sim"
        )
        return self.radians_from_raw(raw)

    @staticmethod
    def radians_from_raw(raw: Sequence[float] | np.ndarray) -> np.ndarray:
        """Joint angles (radians) of raw goal positions (encoder steps, homing offset 0), held inside
        the calibrated ranges as the servos' position limits hold them."""
        raw = np.clip(np.asarray(raw, dtype=np.float64), _RAW_MIN, _RAW_MAX)
        return (raw - _ZERO) / STEPS_PER_RAD


__all__ = [
    "JOINT_RANGES",
    "MOTOR_NAMES",
    "SO101_SIM_CALIBRATION",
    "STATE_NAMES",
    "MotorUnits",
    "norm_modes",
]
