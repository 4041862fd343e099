// The real-time control loop: its own thread, which never takes the GIL, paced on absolute
// deadlines. Each tick:
//   1. one SYNC_READ of Present_Position on the follower bus, normalised to user units;
//   2. this tick's action from the ActionQueue (none: the joints keep their goal; a starved tick);
//   3. the SafetyFilter (limits, rate limit, max_relative_target);
//   4. one SYNC_WRITE of Goal_Position;
//   5. an observation snapshot (positions, goal, timestamps) published for any reader;
//   6. timings (lateness, read, write, work, action age) recorded into histograms.
// The tick does not allocate, lock or throw: bus failures are statuses, counted and reported.
//
// A watchdog turns trouble into a safe state instead of a crash:
//  - kBusFault: `bus_fault_ticks` consecutive failed reads (timeouts, corrupt replies, a vanished
//    motor); cleared by the next good read;
//  - kActionTimeout: no fresh action for `action_timeout_ticks` ticks once actions have started
//    (a policy server gone); cleared by the next action;
//  - kOverrun: `overrun_ticks` consecutive ticks that ran past the next deadline; cleared after as
//    many on time;
//  - kSafetyLimit (strict safety only): a goal that needed clamping; latched until clear_faults();
//  - kEstop: estop() was called; latched while the loop runs, torque stays off.
// While a fault is active the loop takes no actions and holds the last goal it sent (kHold), or
// turns torque off once (kDisableTorque; torque stays off until enable_torque()).
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <string>
#include <thread>
#include <vector>

#include "dexloop/bus/normalization.hpp"
#include "dexloop/bus/servo_bus.hpp"
#include "dexloop/control/action_queue.hpp"
#include "dexloop/control/latency_histogram.hpp"
#include "dexloop/control/realtime.hpp"
#include "dexloop/control/safety.hpp"
#include "dexloop/control/seqlock.hpp"

namespace dexloop::control {

struct LoopJoint {
  uint8_t id = 0;
  std::string model;  // LeRobot's model key ("sts3215", "xl330-m288", ...)
  bus::JointCalibration calibration;
};

enum class FaultResponse : uint8_t { kHold, kDisableTorque };

enum Fault : uint32_t {
  kNoFault = 0,
  kBusFault = 1u << 0,
  kActionTimeout = 1u << 1,
  kOverrun = 1u << 2,
  kSafetyLimit = 1u << 3,
  kEstop = 1u << 4,
};
inline constexpr int kFaultKinds = 5;
const char* fault_name(uint32_t single_fault);

struct ControlLoopOptions {
  double rate_hz = 30.0;
  int64_t spin_ns = 100'000;  // poll the clock for the last 100 us before each deadline
  RealtimeRequest realtime;
  int read_retries = 0;
  // The bus's latency margin while the loop runs (< 0: the bus's own). A read deadline beyond the
  // period makes every failed read an overrun.
  double latency_margin_ms = -1.0;
  bool fast_sync_read = false;  // Dynamixel FAST_SYNC_READ
  bool write_goals = true;      // false: read and publish only
  int bus_fault_ticks = 3;
  int action_timeout_ticks = 0;  // 0: off
  int overrun_ticks = 5;
  FaultResponse on_fault = FaultResponse::kHold;
  bool strict_safety = false;
  ActionQueueOptions queue;  // action_dim is set to the number of joints
};

// Monotonic counters; readable at any time.
struct LoopCounters {
  uint64_t ticks = 0;
  uint64_t overruns = 0;          // ticks that ended after the next deadline
  uint64_t missed_deadlines = 0;  // deadlines skipped because a tick ran past them
  uint64_t reads_ok = 0;
  uint64_t read_failures = 0;
  uint64_t writes = 0;
  uint64_t write_failures = 0;
  uint64_t actions_taken = 0;
  uint64_t starved_ticks = 0;  // no action to take, once the first action had come
  uint64_t ticks_before_first_action = 0;
  uint64_t held_ticks = 0;  // ticks spent with a fault active
  uint64_t torque_off_writes = 0;
  uint64_t safety_not_finite = 0;
  uint64_t safety_joint_limit = 0;
  uint64_t safety_relative_target = 0;
  uint64_t safety_rate_limit = 0;
  uint64_t fault_onsets[kFaultKinds] = {};
};

// The last failed read: what the Python edge turns into a message naming the motor.
struct LastBusFailure {
  uint64_t tick = 0;
  bus::Result result;
};

struct LoopSnapshot {
  uint64_t tick = 0;
  int64_t deadline_ns = 0;
  int64_t read_started_ns = 0;
  int64_t read_finished_ns = 0;
  bool present_valid = false;    // false when this tick's read failed (positions are the last good)
  bool goal_valid = false;       // a goal has been sent
  int64_t action_timestep = -1;  // the timestep of the last action taken
  uint32_t faults = 0;
  bool torque_enabled = true;
  int joints = 0;
  double present[kMaxJoints] = {};
  double goal[kMaxJoints] = {};
};

class ControlLoop {
 public:
  // Validates the joints (1..kMaxJoints, distinct ids, known models of the bus's vendor that put
  // Present_Position and Goal_Position at the same place, valid calibrations) and the options;
  // std::invalid_argument otherwise. The bus must stay alive while the loop exists, and is used by
  // no one else while it runs.
  ControlLoop(bus::ServoBus& servo_bus, std::vector<LoopJoint> joints, SafetyLimits limits,
              ControlLoopOptions options);
  ~ControlLoop();  // stops the thread
  ControlLoop(const ControlLoop&) = delete;
  ControlLoop& operator=(const ControlLoop&) = delete;

  // Starts the thread (its real-time setup done) and returns what it was granted. Throws
  // dexloop::Error when already running.
  RealtimeReport start();
  void stop();
  bool running() const { return running_.load(std::memory_order_acquire); }

  ActionQueue& queue() { return queue_; }
  const ActionQueue& queue() const { return queue_; }
  const std::vector<LoopJoint>& joints() const { return joints_; }
  const bus::ServoBus& servo_bus() const { return bus_; }
  const ControlLoopOptions& options() const { return options_; }
  const SafetyLimits& limits() const { return safety_.limits(); }
  int64_t period_ns() const { return period_ns_; }

  // Latches kEstop: torque off at the next tick.
  void estop() { estop_.store(true, std::memory_order_release); }
  // Clears kSafetyLimit (and, once stopped, kEstop).
  void clear_faults() { clear_requested_.store(true, std::memory_order_release); }
  // Turns torque back on at the next tick (after kDisableTorque), the goal reset to where the
  // joints are so they do not jump.
  void enable_torque() { torque_on_requested_.store(true, std::memory_order_release); }

  // --- Telemetry, from any thread while the loop runs.
  LoopCounters counters() const;
  uint32_t faults() const { return faults_.load(std::memory_order_acquire); }
  LastBusFailure last_bus_failure() const;
  // A consistent copy of the newest snapshot (retries while the tick is writing it).
  LoopSnapshot snapshot() const;
  const LatencyHistogram& lateness() const { return lateness_; }
  const LatencyHistogram& read_time() const { return read_time_; }
  const LatencyHistogram& write_time() const { return write_time_; }
  const LatencyHistogram& work_time() const { return work_time_; }
  const LatencyHistogram& action_age() const { return action_age_; }
  void reset_histograms();

 private:
  void run(std::atomic<int>* setup_state, RealtimeReport* report);
  void tick(int64_t deadline_ns, int64_t woke_ns);
  bool read_present();
  bool write_positions(const double* goal);
  bool write_torque(bool enable);
  void raise(uint32_t fault);
  void clear(uint32_t fault);
  void publish();

  bus::ServoBus& bus_;
  std::vector<LoopJoint> joints_;
  ControlLoopOptions options_;
  SafetyFilter safety_;
  ActionQueue queue_;
  int64_t period_ns_ = 0;
  bus::Register present_{};
  bus::Register goal_{};
  bus::Register torque_{};
  bus::ByteOrder byte_order_ = bus::ByteOrder::kLittle;

  std::thread thread_;
  std::atomic<bool> running_{false};
  std::atomic<bool> stop_requested_{false};
  std::atomic<bool> estop_{false};
  std::atomic<bool> clear_requested_{false};
  std::atomic<bool> torque_on_requested_{false};
  std::atomic<uint32_t> faults_{0};
  double saved_latency_margin_ms_ = 0.0;

  // Tick-thread state (preallocated).
  uint8_t ids_[kMaxJoints] = {};
  int64_t register_values_[kMaxJoints] = {};  // Present_Position read, or the values to write
  float action_[ActionQueue::kMaxActionDim] = {};
  double present_values_[kMaxJoints] = {};
  double goal_values_[kMaxJoints] = {};
  double candidate_[kMaxJoints] = {};
  bool have_present_ = false;
  bool have_goal_ = false;
  bool actions_started_ = false;
  bool torque_enabled_ = true;
  int read_fail_streak_ = 0;
  int overrun_streak_ = 0;
  int on_time_streak_ = 0;
  int64_t ticks_since_action_ = 0;
  LoopSnapshot working_;  // this tick's snapshot, published at its end

  // Published state: counters and snapshot are the tick's own copies, published once per tick.
  LoopCounters counters_{};
  SeqLock<LoopCounters> published_counters_;
  SeqLock<LastBusFailure> published_failure_;
  SeqLock<LoopSnapshot> published_snapshot_;

  LatencyHistogram lateness_;
  LatencyHistogram read_time_;
  LatencyHistogram write_time_;
  LatencyHistogram work_time_;
  LatencyHistogram action_age_;
};

}  // namespace dexloop::control
