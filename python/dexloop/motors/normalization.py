"""Joint normalisation, bit-exact with LeRobot's ``MotorsBus._normalize`` / ``_unnormalize``.

Raw positions (already sign-decoded) map to user units from a motor's calibration (``range_min``,
``range_max``, ``drive_mode``) and its model's resolution:

================  ===================================================  =================================================
mode              raw -> normalised                                    normalised -> raw
================  ===================================================  =================================================
RANGE_M100_100    ``c = clamp(v, min, max)``;                          ``n = -n`` if inverted; ``n = clamp(n, -100, 100)``;
                  ``n = (c - min) / (max - min) * 200 - 100``;         ``int((n + 100) / 200 * (max - min) + min)``
                  ``-n`` if inverted
RANGE_0_100       ``c = clamp(v, min, max)``;                          ``n = 100 - n`` if inverted; ``n = clamp(n, 0, 100)``;
                  ``n = (c - min) / (max - min) * 100``;               ``int(n / 100 * (max - min) + min)``
                  ``100 - n`` if inverted
DEGREES           ``(v - (min + max) / 2) * 360 / (resolution - 1)``   ``int(d * (resolution - 1) / 360 + (min + max) / 2)``
                  (no clamp, no drive mode)
================  ===================================================  =================================================

"Inverted" is ``apply_drive_mode and calibration.drive_mode`` (Feetech buses apply the drive mode in
software, Dynamixel buses leave it to the servo). ``int()`` truncates toward zero. The expressions are
LeRobot's, evaluated in the same order on the same Python objects, so results are bit-identical for
every input type LeRobot accepts (ints, floats, numpy scalars of any width).

A NaN or infinite target raises ``ValueError`` / ``OverflowError`` naming the motor, in every mode. The
bus methods of LeRobot raise the same (``write`` and ``sync_write`` call ``int()`` on every value before
unnormalising); its ``_unnormalize`` alone would clamp a NaN to ``range_min`` in the RANGE modes, sending
the joint to the end of its range.

The functions loop over plain lists: for the handful of motors of an arm this is several times faster
than numpy, whose per-call overhead dominates below a few dozen elements.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from enum import Enum
from math import isfinite
from typing import Any

from dexloop.errors import CalibrationError


class MotorNormMode(str, Enum):
    """How a motor's position is normalised (LeRobot's values)."""

    RANGE_0_100 = "range_0_100"
    RANGE_M100_100 = "range_m100_100"
    DEGREES = "degrees"


_M100 = MotorNormMode.RANGE_M100_100
_R100 = MotorNormMode.RANGE_0_100
_DEG = MotorNormMode.DEGREES


def _missing(owner: str, name: str, calibration: Mapping[str, Any]) -> CalibrationError:
    if not calibration:
        return CalibrationError(
            f"{owner} has no calibration registered, so positions cannot be normalised. Calibrate the "
            "robot (or pass calibration= / call write_calibration()), or read raw values with normalize=False."
        )
    return CalibrationError(
        f"{owner}: the calibration has no entry for motor '{name}' (it has: {', '.join(calibration)}). "
        "Recalibrate, or read raw values with normalize=False."
    )


def _equal_range(owner: str, name: str, value: int) -> CalibrationError:
    return CalibrationError(
        f"{owner}: invalid calibration for motor '{name}': range_min and range_max are both {value}. "
        "Recalibrate and move the joint through its range while recording."
    )


def _clamp(val: Any, low: Any, high: Any) -> Any:
    """``min(high, max(low, val))``, the same object for every input (NaN included: ``low``), without
    the two builtin calls, which cost half the time of a 6-motor normalisation."""
    val = val if val > low else low
    return val if val < high else high


def normalize_values(
    names: Sequence[str],
    values: Sequence[Any],
    modes: Sequence[MotorNormMode],
    max_res: Sequence[int],
    calibration: Mapping[str, Any],
    apply_drive_mode: bool,
    owner: str = "motors bus",
) -> list[Any]:
    """Raw positions -> normalised values, one per motor.

    ``names[i]`` keys ``calibration``; ``max_res[i]`` is the resolution of motor i's model minus one
    (4095 for 12-bit encoders). ``owner`` names the bus in error messages.
    """
    out: list[Any] = []
    append = out.append
    for name, val, mode, mr in zip(names, values, modes, max_res, strict=True):
        cal = calibration.get(name)
        if cal is None:
            raise _missing(owner, name, calibration)
        min_ = cal.range_min
        max_ = cal.range_max
        if max_ == min_:
            raise _equal_range(owner, name, min_)
        if mode is _M100:
            bounded_val = _clamp(val, min_, max_)
            norm = (((bounded_val - min_) / (max_ - min_)) * 200) - 100
            append(-norm if apply_drive_mode and cal.drive_mode else norm)
        elif mode is _DEG:
            mid = (min_ + max_) / 2
            append((val - mid) * 360 / mr)
        elif mode is _R100:
            bounded_val = _clamp(val, min_, max_)
            norm = ((bounded_val - min_) / (max_ - min_)) * 100
            append(100 - norm if apply_drive_mode and cal.drive_mode else norm)
        else:
            raise NotImplementedError(f"{owner}: motor '{name}' has an unknown norm mode {mode!r}")
    return out


def unnormalize_values(
    names: Sequence[str],
    values: Sequence[Any],
    modes: Sequence[MotorNormMode],
    max_res: Sequence[int],
    calibration: Mapping[str, Any],
    apply_drive_mode: bool,
    owner: str = "motors bus",
) -> list[int]:
    """Normalised values -> raw positions (Python ints), one per motor. See :func:`normalize_values`."""
    out: list[int] = []
    append = out.append
    for name, val, mode, mr in zip(names, values, modes, max_res, strict=True):
        cal = calibration.get(name)
        if cal is None:
            raise _missing(owner, name, calibration)
        min_ = cal.range_min
        max_ = cal.range_max
        if max_ == min_:
            raise _equal_range(owner, name, min_)
        try:
            if mode is _DEG:
                mid = (min_ + max_) / 2
                append(int((val * mr / 360) + mid))
            elif mode is _M100:
                if not isfinite(val):
                    int(val)  # ValueError for NaN, OverflowError for infinities, as LeRobot's int(value)
                val = -val if apply_drive_mode and cal.drive_mode else val
                bounded_val = _clamp(val, -100.0, 100.0)
                append(int(((bounded_val + 100) / 200) * (max_ - min_) + min_))
            elif mode is _R100:
                if not isfinite(val):
                    int(val)
                val = 100 - val if apply_drive_mode and cal.drive_mode else val
                bounded_val = _clamp(val, 0.0, 100.0)
                append(int((bounded_val / 100) * (max_ - min_) + min_))
            else:
                raise NotImplementedError(f"{owner}: motor '{name}' has an unknown norm mode {mode!r}")
        except (ValueError, OverflowError) as error:
            raise type(error)(
                f"{owner}: cannot convert {val!r} ({mode.value}) to a position of motor '{name}': {error}"
            ) from None
    return out


__all__ = ["MotorNormMode", "normalize_values", "unnormalize_values"]
