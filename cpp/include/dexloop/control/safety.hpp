// The checks every goal passes before it reaches the servos, in the user units of the joints.
//
//  1. a NaN or infinite value: the joint keeps its previous goal (or its present position);
//  2. joint limits (from the calibration's range): clamped into [lower, upper];
//  3. a rate limit: at most `max_step` from the previous goal, per tick;
//  4. LeRobot's max_relative_target: at most `max_relative_target` from the present position
//     (ensure_safe_goal_position: present + clamp(goal - present, -cap, +cap)). Last, so that it
//     holds whatever the others did (a goal between two points within the limits stays within).
// A limit that is +infinity is off. Each violation is counted per kind; apply() reports which
// kinds it clamped (counters count joints clamped), so a strict caller can refuse the goal instead
// of sending the clamped one.
#pragma once

#include <cstdint>
#include <span>

namespace dexloop::control {

inline constexpr int kMaxJoints = 32;

enum SafetyViolation : uint32_t {
  kNoViolation = 0,
  kNotFinite = 1u << 0,
  kJointLimit = 1u << 1,
  kRelativeTarget = 1u << 2,
  kRateLimit = 1u << 3,
};

struct SafetyLimits {
  int joints = 0;
  double lower[kMaxJoints];
  double upper[kMaxJoints];
  double max_relative_target[kMaxJoints];
  double max_step[kMaxJoints];

  SafetyLimits();  // every limit off
};

struct SafetyCounters {
  uint64_t not_finite = 0;
  uint64_t joint_limit = 0;
  uint64_t relative_target = 0;
  uint64_t rate_limit = 0;
};

class SafetyFilter {
 public:
  // Throws std::invalid_argument for joints outside 1..kMaxJoints, lower > upper, a NaN limit or
  // a negative cap.
  explicit SafetyFilter(const SafetyLimits& limits);

  // Clamps goal[] in place. `present` (null when unknown this tick) and `previous` (the goal sent
  // last, null before the first) have `joints` values. Returns the SafetyViolation bits raised.
  uint32_t apply(double* goal, const double* present, const double* previous);

  const SafetyLimits& limits() const { return limits_; }
  const SafetyCounters& counters() const { return counters_; }

 private:
  SafetyLimits limits_;
  SafetyCounters counters_;
};

}  // namespace dexloop::control
