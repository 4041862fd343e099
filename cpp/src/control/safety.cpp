#include "dexloop/control/safety.hpp"

#include <cmath>
#include <limits>
#include <stdexcept>
#include <string>

namespace dexloop::control {

SafetyLimits::SafetyLimits() {
  constexpr double kOff = std::numeric_limits<double>::infinity();
  for (int i = 0; i < kMaxJoints; ++i) {
    lower[i] = -kOff;
    upper[i] = kOff;
    max_relative_target[i] = kOff;
    max_step[i] = kOff;
  }
}

SafetyFilter::SafetyFilter(const SafetyLimits& limits) : limits_(limits) {
  if (limits_.joints < 1 || limits_.joints > kMaxJoints) {
    throw std::invalid_argument("a safety filter takes 1.." + std::to_string(kMaxJoints) +
                                " joints, got " + std::to_string(limits_.joints));
  }
  for (int i = 0; i < limits_.joints; ++i) {
    const std::string joint = "joint " + std::to_string(i);
    if (std::isnan(limits_.lower[i]) || std::isnan(limits_.upper[i]) ||
        limits_.lower[i] > limits_.upper[i]) {
      throw std::invalid_argument(joint + ": joint limits must be ordered numbers, got [" +
                                  std::to_string(limits_.lower[i]) + ", " +
                                  std::to_string(limits_.upper[i]) + "]");
    }
    if (!(limits_.max_relative_target[i] >= 0) || !(limits_.max_step[i] >= 0)) {
      throw std::invalid_argument(joint +
                                  ": max_relative_target and max_step must be >= 0 (inf: off)");
    }
  }
}

uint32_t SafetyFilter::apply(double* goal, const double* present, const double* previous) {
  uint32_t raised = kNoViolation;
  for (int i = 0; i < limits_.joints; ++i) {
    double value = goal[i];
    if (!std::isfinite(value)) {
      raised |= kNotFinite;
      ++counters_.not_finite;
      // Nothing better to go to than where the joint was told to be, or where it is.
      value = previous != nullptr ? previous[i] : present != nullptr ? present[i] : NAN;
      if (!std::isfinite(value)) {
        goal[i] = value;
        continue;
      }
    }
    if (value < limits_.lower[i] || value > limits_.upper[i]) {
      raised |= kJointLimit;
      ++counters_.joint_limit;
      value = value < limits_.lower[i] ? limits_.lower[i] : limits_.upper[i];
    }
    if (previous != nullptr && std::isfinite(previous[i])) {
      const double cap = limits_.max_step[i];
      const double step = value - previous[i];
      if (step > cap || step < -cap) {
        raised |= kRateLimit;
        ++counters_.rate_limit;
        value = previous[i] + (step > 0 ? cap : -cap);
      }
    }
    if (present != nullptr && std::isfinite(present[i])) {
      const double cap = limits_.max_relative_target[i];
      const double step = value - present[i];
      if (step > cap || step < -cap) {
        raised |= kRelativeTarget;
        ++counters_.relative_target;
        value = present[i] + (step > 0 ? cap : -cap);
      }
    }
    goal[i] = value;
  }
  return raised;
}

}  // namespace dexloop::control
