// The control area: latency histograms, joint normalisation, the action queue's asynchronous
// semantics, the safety filter, and the control loop driving a simulated bus.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cmath>
#include <limits>
#include <thread>
#include <vector>

#include "dexloop/bus/normalization.hpp"
#include "dexloop/bus/servo_bus.hpp"
#include "dexloop/control/action_queue.hpp"
#include "dexloop/control/control_loop.hpp"
#include "dexloop/control/latency_histogram.hpp"
#include "dexloop/control/safety.hpp"
#include "dexloop/control/seqlock.hpp"
#include "dexloop/error.hpp"
#include "dexloop/servo_sim/servo_simulator.hpp"

namespace dexloop::control {
namespace {

using bus::JointCalibration;
using bus::NormMode;

// --- LatencyHistogram

TEST(LatencyHistogram, BucketsTileTheRangeWithBoundedRelativeWidth) {
  for (int b = 0; b + 1 < LatencyHistogram::kBuckets; ++b) {
    ASSERT_EQ(LatencyHistogram::bucket_upper(b), LatencyHistogram::bucket_lower(b + 1)) << b;
    const int64_t lower = LatencyHistogram::bucket_lower(b);
    const int64_t width = LatencyHistogram::bucket_upper(b) - lower;
    if (lower >= 64) ASSERT_LE(width * 32, lower) << b;
  }
  for (int64_t v : {0LL, 1LL, 63LL, 64LL, 65LL, 127LL, 128LL, 1000LL, 123456789LL, 1LL << 40}) {
    const int b = LatencyHistogram::bucket_of(v);
    EXPECT_LE(LatencyHistogram::bucket_lower(b), v);
    EXPECT_GT(LatencyHistogram::bucket_upper(b), v);
  }
}

TEST(LatencyHistogram, PercentilesAreNeverLowAndAtMostOneBucketHigh) {
  LatencyHistogram histogram;
  EXPECT_EQ(histogram.percentile(0.99), 0);
  for (int64_t v = 1; v <= 10000; ++v) histogram.record(v * 1000);  // 1 us .. 10 ms
  EXPECT_EQ(histogram.count(), 10000u);
  EXPECT_EQ(histogram.max(), 10'000'000);
  EXPECT_EQ(histogram.min(), 1000);
  EXPECT_NEAR(histogram.mean(), 5'000'500.0, 1e-6);
  for (double q : {0.5, 0.9, 0.99, 0.999}) {
    const double exact = q * 10'000'000;
    const int64_t reported = histogram.percentile(q);
    EXPECT_GE(reported, exact) << q;
    EXPECT_LE(reported, exact * (1 + 1.0 / 32) + 1000) << q;
  }
  EXPECT_EQ(histogram.percentile(1.0), 10'000'000);
  histogram.record(-5);  // a clock step back counts as 0
  EXPECT_EQ(histogram.min(), 0);
  histogram.reset();
  EXPECT_EQ(histogram.count(), 0u);
  EXPECT_EQ(histogram.max(), 0);
}

// --- SeqLock

TEST(SeqLock, ReadersNeverSeeATornValue) {
  struct Pair {
    uint64_t a, b, c;
  };
  SeqLock<Pair> lock;
  lock.store({0, 0, 0});
  std::atomic<bool> done{false};
  std::thread writer([&] {
    for (uint64_t i = 1; i < 200000; ++i) lock.store({i, i * 3, i * 7});
    done = true;
  });
  uint64_t reads = 0;
  while (!done) {
    const Pair p = lock.load();
    ASSERT_EQ(p.b, p.a * 3);
    ASSERT_EQ(p.c, p.a * 7);
    ++reads;
  }
  writer.join();
  EXPECT_GT(reads, 0u);
}

// --- Normalisation (the formulas of dexloop.motors.normalization, checked there against LeRobot)

TEST(Normalization, RangeModesClampAndInvert) {
  JointCalibration m100{1000, 3000, false, 4095, NormMode::kRangeM100To100};
  EXPECT_DOUBLE_EQ(bus::normalize_position(2000, m100), 0.0);
  EXPECT_DOUBLE_EQ(bus::normalize_position(3000, m100), 100.0);
  EXPECT_DOUBLE_EQ(bus::normalize_position(5000, m100), 100.0);  // clamped into the range
  EXPECT_DOUBLE_EQ(bus::normalize_position(1500, m100), -50.0);
  JointCalibration inverted = m100;
  inverted.inverted = true;
  EXPECT_DOUBLE_EQ(bus::normalize_position(1500, inverted), 50.0);
  int64_t raw = 0;
  ASSERT_TRUE(bus::unnormalize_position(-50.0, m100, &raw));
  EXPECT_EQ(raw, 1500);
  ASSERT_TRUE(bus::unnormalize_position(-50.0, inverted, &raw));
  EXPECT_EQ(raw, 2500);
  ASSERT_TRUE(bus::unnormalize_position(250.0, m100, &raw));
  EXPECT_EQ(raw, 3000);
  ASSERT_TRUE(bus::unnormalize_position(0.07, m100, &raw));  // 2000.7 truncates toward zero
  EXPECT_EQ(raw, 2000);

  JointCalibration r100{1000, 3000, true, 4095, NormMode::kRange0To100};
  EXPECT_DOUBLE_EQ(bus::normalize_position(1000, r100), 100.0);
  ASSERT_TRUE(bus::unnormalize_position(100.0, r100, &raw));
  EXPECT_EQ(raw, 1000);
}

TEST(Normalization, DegreesAndRefusedValues) {
  JointCalibration deg{1000, 3000, true, 4095, NormMode::kDegrees};  // drive mode ignored
  EXPECT_DOUBLE_EQ(bus::normalize_position(2000, deg), 0.0);
  EXPECT_DOUBLE_EQ(bus::normalize_position(3000, deg), 1000.0 * 360 / 4095);
  int64_t raw = 7;
  ASSERT_TRUE(bus::unnormalize_position(-90.0, deg, &raw));
  EXPECT_EQ(raw, static_cast<int64_t>(std::trunc(-90.0 * 4095 / 360 + 2000)));
  for (double bad : {std::nan(""), std::numeric_limits<double>::infinity(), 1e30}) {
    raw = 7;
    EXPECT_FALSE(bus::unnormalize_position(bad, deg, &raw));
    EXPECT_EQ(raw, 7);
  }
  double lower = 0, upper = 0;
  bus::position_limits(deg, &lower, &upper);
  EXPECT_DOUBLE_EQ(lower, -1000.0 * 360 / 4095);
  EXPECT_DOUBLE_EQ(upper, 1000.0 * 360 / 4095);
}

// --- ActionQueue

std::vector<float> chunk(int steps, int dim, float base) {
  std::vector<float> values(static_cast<size_t>(steps) * dim);
  for (int t = 0; t < steps; ++t)
    for (int d = 0; d < dim; ++d) values[t * dim + d] = base + t + 0.01f * d;
  return values;
}

TEST(ActionQueue, TakesInTimestepOrderAndDropsWhatWasExecuted) {
  ActionQueue queue({2, 64, Aggregate::kLatestOnly, 0.0});
  float out[2];
  TakenAction taken;
  EXPECT_FALSE(queue.take(out, &taken));
  EXPECT_EQ(queue.push(0, chunk(5, 2, 0).data(), 5, 11, 12), 5);
  EXPECT_EQ(queue.depth(), 5);
  for (int t = 0; t < 3; ++t) {
    ASSERT_TRUE(queue.take(out, &taken));
    EXPECT_EQ(taken.timestep, t);
    EXPECT_EQ(out[0], static_cast<float>(t));
    EXPECT_EQ(taken.observed_at_ns, 11);
  }
  EXPECT_EQ(queue.depth(), 2);
  // A chunk predicted from the observation at timestep 1 arrives after 0..2 ran: 1 and 2 are stale.
  EXPECT_EQ(queue.push(1, chunk(5, 2, 100).data(), 5, 21, 22), 3);
  EXPECT_EQ(queue.actions_dropped_stale(), 2u);
  ASSERT_TRUE(queue.take(out, &taken));
  EXPECT_EQ(taken.timestep, 3);
  EXPECT_EQ(out[0], 102.0f);  // latest_only: the new chunk's action for timestep 3
  // A shorter chunk replaces the queue: timesteps it does not cover are gone.
  EXPECT_EQ(queue.push(3, chunk(2, 2, 200).data(), 2, 31, 32), 1);
  ASSERT_TRUE(queue.take(out, &taken));
  EXPECT_EQ(taken.timestep, 4);
  EXPECT_EQ(out[0], 201.0f);
  EXPECT_FALSE(queue.take(out, &taken));
  EXPECT_EQ(queue.last_taken(), 4);
  EXPECT_EQ(queue.depth(), 0);
  // A chunk entirely in the past queues nothing.
  EXPECT_EQ(queue.push(0, chunk(3, 2, 0).data(), 3, 0, 0), 0);
  EXPECT_FALSE(queue.take(out, &taken));
  EXPECT_THROW(queue.push(0, chunk(65, 2, 0).data(), 65, 0, 0), std::invalid_argument);
  EXPECT_THROW(queue.push(-1, chunk(1, 2, 0).data(), 1, 0, 0), std::invalid_argument);
}

TEST(ActionQueue, AggregateFunctionsAreLeRobots) {
  struct Case {
    Aggregate aggregate;
    float old_weight;
  };
  for (Case c : {Case{Aggregate::kWeightedAverage, 0.3f}, Case{Aggregate::kLatestOnly, 0.0f},
                 Case{Aggregate::kAverage, 0.5f}, Case{Aggregate::kConservative, 0.7f}}) {
    ActionQueue queue({1, 16, c.aggregate, 0.0});
    const float old_values[] = {10, 20, 30};
    const float new_values[] = {-1, -2, -3, -4};
    queue.push(0, old_values, 3, 0, 0);
    queue.push(0, new_values, 4, 0, 0);
    float out;
    TakenAction taken;
    for (int t = 0; t < 4; ++t) {
      ASSERT_TRUE(queue.take(&out, &taken));
      const float expected =
          t < 3 ? (c.aggregate == Aggregate::kLatestOnly
                       ? new_values[t]
                       : c.old_weight * old_values[t] + (1 - c.old_weight) * new_values[t])
                : new_values[t];
      EXPECT_FLOAT_EQ(out, expected) << aggregate_name(c.aggregate) << " t=" << t;
    }
  }
  Aggregate parsed;
  EXPECT_TRUE(parse_aggregate("conservative", &parsed));
  EXPECT_EQ(parsed, Aggregate::kConservative);
  EXPECT_FALSE(parse_aggregate("median", &parsed));
}

TEST(ActionQueue, TemporalEnsemblingIsACTsRunningMean) {
  // One chunk per tick, each starting at the tick's timestep (ACT with n_action_steps 1): every
  // executed action is the mean of all predictions for its timestep, weights exp(-k * i), oldest
  // first.
  const int chunk_size = 4;
  const double coeff = 0.5;
  ActionQueue queue({1, chunk_size, Aggregate::kTemporalEnsemble, coeff});
  auto prediction = [](int made_at, int timestep) { return 10.0f * made_at + timestep; };
  for (int tick = 0; tick < 8; ++tick) {
    float values[chunk_size];
    for (int i = 0; i < chunk_size; ++i) values[i] = prediction(tick, tick + i);
    queue.push(tick, values, chunk_size, 0, 0);
    float out;
    TakenAction taken;
    ASSERT_TRUE(queue.take(&out, &taken));
    ASSERT_EQ(taken.timestep, tick);
    double sum = 0, weights = 0;
    int i = 0;
    for (int made_at = std::max(0, tick - chunk_size + 1); made_at <= tick; ++made_at, ++i) {
      const double w = std::exp(-coeff * i);
      sum += w * prediction(made_at, tick);
      weights += w;
    }
    EXPECT_NEAR(out, sum / weights, 1e-4) << "tick " << tick;
  }
}

TEST(ActionQueue, ConcurrentProducerNeverHandsTheConsumerATornOrOutOfOrderAction) {
  const int dim = 8;
  ActionQueue queue({dim, 64, Aggregate::kLatestOnly, 0.0});
  std::atomic<bool> done{false};
  std::thread producer([&] {
    std::vector<float> values(64 * dim);
    for (int round = 0; round < 20000; ++round) {
      const int64_t start = std::max<int64_t>(queue.last_taken(), 0);
      for (int t = 0; t < 64; ++t)
        for (int d = 0; d < dim; ++d) values[t * dim + d] = static_cast<float>(start + t);
      queue.push(start, values.data(), 64, 0, 0);
    }
    done = true;
  });
  int64_t previous = -1;
  float out[dim];
  TakenAction taken;
  uint64_t taken_count = 0;
  while (!done || queue.depth() > 0) {
    if (!queue.take(out, &taken)) continue;
    ASSERT_GT(taken.timestep, previous);
    for (int d = 0; d < dim; ++d) ASSERT_EQ(out[d], static_cast<float>(taken.timestep));
    previous = taken.timestep;
    ++taken_count;
  }
  producer.join();
  EXPECT_GT(taken_count, 0u);
}

// --- SafetyFilter

TEST(SafetyFilter, ClampsEachKindAndCountsIt) {
  SafetyLimits limits;
  limits.joints = 2;
  limits.lower[0] = -10;
  limits.upper[0] = 10;
  limits.max_relative_target[1] = 5;
  limits.max_step[0] = 3;
  SafetyFilter filter(limits);
  double present[] = {0, 0};
  double previous[] = {8, 0};
  double goal[] = {20, -12};
  const uint32_t raised = filter.apply(goal, present, previous);
  EXPECT_DOUBLE_EQ(goal[0], 10);  // joint limit; the step from 8 is within 3
  EXPECT_DOUBLE_EQ(goal[1], -5);  // max_relative_target from the present 0
  EXPECT_EQ(raised, kJointLimit | kRelativeTarget);
  double step[] = {-10, 0};
  EXPECT_EQ(filter.apply(step, present, previous), kRateLimit);
  EXPECT_DOUBLE_EQ(step[0], 5);
  double nan_goal[] = {std::nan(""), 1};
  EXPECT_EQ(filter.apply(nan_goal, present, previous), kNotFinite);
  EXPECT_DOUBLE_EQ(nan_goal[0], 8);  // the previous goal
  EXPECT_EQ(filter.counters().joint_limit, 1u);
  EXPECT_EQ(filter.counters().relative_target, 1u);
  EXPECT_EQ(filter.counters().rate_limit, 1u);
  EXPECT_EQ(filter.counters().not_finite, 1u);
  SafetyLimits bad;
  bad.joints = 1;
  bad.lower[0] = 1;
  bad.upper[0] = 0;
  EXPECT_THROW(SafetyFilter{bad}, std::invalid_argument);
}

// --- ControlLoop on the servo simulator

class LoopOnSimulator : public ::testing::Test {
 protected:
  static constexpr int kJoints = 6;
  LoopOnSimulator()
      : sim_(servo_sim::Protocol::kFeetech, motors(), servo_sim::SimulatorOptions{}),
        bus_(sim_.port_path(), bus::BusOptions{}) {
    sim_.start();
    bus_.open();
    for (int id = 1; id <= kJoints; ++id) sim_.write_register(id, "Torque_Enable", 1);
  }
  static std::vector<servo_sim::MotorSpec> motors() {
    std::vector<servo_sim::MotorSpec> specs;
    for (int id = 1; id <= kJoints; ++id) specs.push_back({id, "sts3215"});
    return specs;
  }
  static std::vector<LoopJoint> joints() {
    std::vector<LoopJoint> list;
    for (int id = 1; id <= kJoints; ++id) {
      list.push_back({static_cast<uint8_t>(id), "sts3215",
                      JointCalibration{1000, 3000, false, 4095, NormMode::kRangeM100To100}});
    }
    return list;
  }
  static ControlLoopOptions options(double rate_hz) {
    ControlLoopOptions o;
    o.rate_hz = rate_hz;
    o.bus_fault_ticks = 2;
    o.queue.aggregate = Aggregate::kLatestOnly;
    return o;
  }
  // Waits (bounded) until `done` holds.
  template <typename Predicate>
  static bool eventually(Predicate done,
                         std::chrono::milliseconds limit = std::chrono::seconds(5)) {
    const auto until = std::chrono::steady_clock::now() + limit;
    while (std::chrono::steady_clock::now() < until) {
      if (done()) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    return done();
  }

  servo_sim::ServoSimulator sim_;
  bus::ServoBus bus_;
};

TEST_F(LoopOnSimulator, ExecutesQueuedActionsAsGoalPositions) {
  ControlLoop loop(bus_, joints(), SafetyLimits{}, options(200));
  loop.start();
  EXPECT_TRUE(bus_.claimed());
  // Timestep t moves every joint to t percent of its range (raw 2000 + 10 t).
  std::vector<float> actions(20 * kJoints);
  for (int t = 0; t < 20; ++t)
    for (int j = 0; j < kJoints; ++j) actions[t * kJoints + j] = static_cast<float>(t);
  loop.queue().push(0, actions.data(), 20, monotonic_ns(), monotonic_ns());
  ASSERT_TRUE(eventually([&] { return loop.counters().actions_taken == 20; }));
  ASSERT_TRUE(eventually([&] { return loop.counters().writes >= 21; }));  // the last goal, held
  for (int id = 1; id <= kJoints; ++id) EXPECT_EQ(sim_.read_register(id, "Goal_Position"), 2190);
  // The simulated servos follow (time constant 40 ms), and the loop reads them there.
  EXPECT_TRUE(eventually([&] { return std::abs(loop.snapshot().present[0] - 19.0) < 1.0; }));
  const LoopSnapshot snap = loop.snapshot();
  EXPECT_TRUE(snap.present_valid);
  EXPECT_EQ(snap.action_timestep, 19);
  EXPECT_DOUBLE_EQ(snap.goal[0], 19.0);
  EXPECT_GT(loop.counters().starved_ticks, 0u);
  EXPECT_EQ(loop.faults(), 0u);
  loop.stop();
  EXPECT_FALSE(bus_.claimed());
  EXPECT_EQ(loop.lateness().count(), loop.counters().ticks);
}

TEST_F(LoopOnSimulator, AVanishedMotorRaisesABusFaultTheLoopKeepsItsRateAndRecovers) {
  ControlLoop loop(bus_, joints(), SafetyLimits{}, options(100));
  loop.start();
  ASSERT_TRUE(eventually([&] { return loop.counters().reads_ok > 5; }));
  sim_.vanish(3);
  ASSERT_TRUE(eventually([&] { return (loop.faults() & kBusFault) != 0; }));
  const LastBusFailure failure = loop.last_bus_failure();
  EXPECT_EQ(failure.result.status, bus::Status::kTimeout);
  EXPECT_EQ(failure.result.id, 3);
  // Ticks keep coming while the motor is gone (each failed read waits out its deadline).
  const uint64_t ticks = loop.counters().ticks;
  ASSERT_TRUE(eventually([&] { return loop.counters().ticks >= ticks + 10; }));
  EXPECT_FALSE(loop.snapshot().present_valid);
  sim_.reappear(3);
  ASSERT_TRUE(eventually([&] { return loop.faults() == 0; }));
  EXPECT_EQ(loop.counters().fault_onsets[0], 1u);
  EXPECT_TRUE(loop.snapshot().present_valid);
}

TEST_F(LoopOnSimulator, EstopTurnsTorqueOffAndHoldsEverything) {
  ControlLoop loop(bus_, joints(), SafetyLimits{}, options(100));
  loop.start();
  ASSERT_TRUE(eventually([&] { return loop.counters().reads_ok > 2; }));
  loop.estop();
  ASSERT_TRUE(eventually([&] { return sim_.read_register(1, "Torque_Enable") == 0; }));
  for (int id = 1; id <= kJoints; ++id) EXPECT_EQ(sim_.read_register(id, "Torque_Enable"), 0);
  EXPECT_TRUE(loop.faults() & kEstop);
  std::vector<float> actions(kJoints, 50.0f);
  loop.queue().push(0, actions.data(), 1, 0, 0);
  const uint64_t ticks = loop.counters().ticks;
  ASSERT_TRUE(eventually([&] { return loop.counters().ticks > ticks + 5; }));
  EXPECT_EQ(loop.counters().actions_taken, 0u);
  EXPECT_FALSE(loop.snapshot().torque_enabled);
}

TEST_F(LoopOnSimulator, StrictSafetyRefusesAClampedGoalUntilCleared) {
  ControlLoopOptions o = options(100);
  o.strict_safety = true;
  SafetyLimits limits;
  for (int j = 0; j < kJoints; ++j) limits.max_relative_target[j] = 5.0;
  ControlLoop loop(bus_, joints(), limits, o);
  loop.start();
  ASSERT_TRUE(eventually([&] { return loop.counters().reads_ok > 2; }));
  const double start = loop.snapshot().present[0];
  std::vector<float> far(kJoints, static_cast<float>(start > 0 ? start - 60 : start + 60));
  loop.queue().push(0, far.data(), 1, 0, 0);
  ASSERT_TRUE(eventually([&] { return (loop.faults() & kSafetyLimit) != 0; }));
  EXPECT_EQ(loop.counters().writes, 0u);  // nothing was sent
  EXPECT_EQ(loop.counters().safety_relative_target, static_cast<uint64_t>(kJoints));  // per joint
  loop.clear_faults();
  ASSERT_TRUE(eventually([&] { return loop.faults() == 0; }));
}

TEST_F(LoopOnSimulator, RefusesInvalidJointsAndASecondLoopOnTheSameBus) {
  std::vector<LoopJoint> bad = joints();
  bad[1].id = bad[0].id;
  EXPECT_THROW(ControlLoop(bus_, bad, SafetyLimits{}, options(100)), std::invalid_argument);
  bad = joints();
  bad[2].model = "xl330-m288";  // a Dynamixel model on a Feetech bus
  EXPECT_THROW(ControlLoop(bus_, bad, SafetyLimits{}, options(100)), std::invalid_argument);
  bad = joints();
  bad[0].calibration.range_max = bad[0].calibration.range_min;
  EXPECT_THROW(ControlLoop(bus_, bad, SafetyLimits{}, options(100)), std::invalid_argument);
  EXPECT_THROW(ControlLoop(bus_, joints(), SafetyLimits{}, options(0)), std::invalid_argument);
  ControlLoop first(bus_, joints(), SafetyLimits{}, options(100));
  ControlLoop second(bus_, joints(), SafetyLimits{}, options(100));
  first.start();
  EXPECT_THROW(second.start(), dexloop::Error);
  EXPECT_THROW(first.start(), dexloop::Error);
}

}  // namespace
}  // namespace dexloop::control
