#include "dexloop/bus/normalization.hpp"

#include <cmath>

namespace dexloop::bus {
namespace {

// Python's min(high, max(low, v)) for the values that reach it (finite ones).
template <typename T>
T clamp_like_python(T value, T low, T high) {
  value = value > low ? value : low;
  return value < high ? value : high;
}

}  // namespace

double normalize_position(int64_t raw, const JointCalibration& calibration) {
  const int64_t min = calibration.range_min;
  const int64_t max = calibration.range_max;
  switch (calibration.mode) {
    case NormMode::kRangeM100To100: {
      const int64_t bounded = clamp_like_python(raw, min, max);
      const double norm =
          ((static_cast<double>(bounded - min) / static_cast<double>(max - min)) * 200) - 100;
      return calibration.inverted ? -norm : norm;
    }
    case NormMode::kRange0To100: {
      const int64_t bounded = clamp_like_python(raw, min, max);
      const double norm =
          (static_cast<double>(bounded - min) / static_cast<double>(max - min)) * 100;
      return calibration.inverted ? 100 - norm : norm;
    }
    case NormMode::kDegrees: {
      const double mid = static_cast<double>(min + max) / 2;
      return (static_cast<double>(raw) - mid) * 360 / calibration.max_resolution;
    }
  }
  return 0.0;
}

bool unnormalize_position(double value, const JointCalibration& calibration, int64_t* raw) {
  if (!std::isfinite(value)) return false;
  const double min = calibration.range_min;
  const double max = calibration.range_max;
  double position = 0.0;
  switch (calibration.mode) {
    case NormMode::kDegrees: {
      const double mid = (min + max) / 2;
      position = (value * calibration.max_resolution / 360) + mid;
      break;
    }
    case NormMode::kRangeM100To100: {
      const double v = calibration.inverted ? -value : value;
      const double bounded = clamp_like_python(v, -100.0, 100.0);
      position = ((bounded + 100) / 200) * (max - min) + min;
      break;
    }
    case NormMode::kRange0To100: {
      const double v = calibration.inverted ? 100 - value : value;
      const double bounded = clamp_like_python(v, 0.0, 100.0);
      position = (bounded / 100) * (max - min) + min;
      break;
    }
  }
  position = std::trunc(position);  // Python's int(): toward zero
  if (!(position >= -2147483648.0 && position <= 2147483647.0)) return false;
  *raw = static_cast<int64_t>(position);
  return true;
}

void position_limits(const JointCalibration& calibration, double* lower, double* upper) {
  const double a = normalize_position(calibration.range_min, calibration);
  const double b = normalize_position(calibration.range_max, calibration);
  *lower = a < b ? a : b;
  *upper = a < b ? b : a;
}

}  // namespace dexloop::bus
