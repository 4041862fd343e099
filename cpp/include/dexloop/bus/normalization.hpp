// Joint normalisation in the C++ core, for code that runs without Python (the control loop's tick).
//
// The same formulas, in the same order of operations, as LeRobot's MotorsBus._normalize /
// _unnormalize and dexloop.motors.normalization (which evaluates them on Python objects), so a
// position normalised here equals the one the Python bus returns, bit for bit:
//
//   kRangeM100To100  raw -> n: c = clamp(raw, min, max); n = (c - min) / (max - min) * 200 - 100;
//   -n if inverted
//                    n -> raw: n = -n if inverted; n = clamp(n, -100, 100); trunc((n + 100) / 200 *
//                    (max - min) + min)
//   kRange0To100     raw -> n: c = clamp(raw, min, max); n = (c - min) / (max - min) * 100; 100 - n
//   if inverted
//                    n -> raw: n = 100 - n if inverted; n = clamp(n, 0, 100); trunc(n / 100 * (max
//                    - min) + min)
//   kDegrees         raw -> d: (raw - (min + max) / 2) * 360 / max_resolution  (no clamp, no drive
//   mode)
//                    d -> raw: trunc(d * max_resolution / 360 + (min + max) / 2)
#pragma once

#include <cstdint>

namespace dexloop::bus {

enum class NormMode : uint8_t { kRangeM100To100, kRange0To100, kDegrees };

struct JointCalibration {
  int32_t range_min = 0;
  int32_t range_max = 4095;
  // The drive mode applied in software (Feetech buses); Dynamixel servos apply it themselves.
  bool inverted = false;
  int32_t max_resolution = 4095;  // the model's resolution - 1
  NormMode mode = NormMode::kRangeM100To100;

  bool valid() const { return range_max != range_min && max_resolution > 0; }
};

// A raw (sign-decoded) position in user units. The calibration must be valid().
double normalize_position(int64_t raw, const JointCalibration& calibration);

// User units to a raw position; false (and `raw` untouched) for a NaN or infinite value or one
// whose raw position does not fit 32 bits.
bool unnormalize_position(double value, const JointCalibration& calibration, int64_t* raw);

// The joint's calibrated range in user units, lower first: where a goal can be sent without the
// servo's own limits (or the clamp of the RANGE modes) silently changing it.
void position_limits(const JointCalibration& calibration, double* lower, double* upper);

}  // namespace dexloop::bus
