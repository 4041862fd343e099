#include "dexloop/control/control_loop.hpp"

#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <string>

#include "dexloop/bus/control_table.hpp"
#include "dexloop/bus/register_io.hpp"
#include "dexloop/error.hpp"

namespace dexloop::control {
namespace {

const bus::Register& require_register(const bus::ModelInfo& model, std::string_view name) {
  const bus::Register* reg = model.find(name);
  if (reg == nullptr) {
    throw std::invalid_argument("model " + std::string(model.name) + " has no register " +
                                std::string(name));
  }
  return *reg;
}

bool same_place(const bus::Register& a, const bus::Register& b) {
  return a.address == b.address && a.size == b.size && a.encoding.kind == b.encoding.kind &&
         a.encoding.sign_bit == b.encoding.sign_bit;
}

}  // namespace

const char* fault_name(uint32_t single_fault) {
  switch (single_fault) {
    case kBusFault:
      return "bus_fault";
    case kActionTimeout:
      return "action_timeout";
    case kOverrun:
      return "overrun";
    case kSafetyLimit:
      return "safety_limit";
    case kEstop:
      return "estop";
    default:
      return "none";
  }
}

ControlLoop::ControlLoop(bus::ServoBus& servo_bus, std::vector<LoopJoint> joints,
                         SafetyLimits limits, ControlLoopOptions options)
    : bus_(servo_bus),
      joints_(std::move(joints)),
      options_(options),
      safety_([&] {
        limits.joints = static_cast<int>(joints_.size());
        return limits;
      }()),
      queue_([&] {
        ActionQueueOptions queue = options.queue;
        queue.action_dim = static_cast<int>(joints_.size());
        return queue;
      }()) {
  if (joints_.empty() || joints_.size() > static_cast<size_t>(kMaxJoints)) {
    throw std::invalid_argument("a control loop drives 1.." + std::to_string(kMaxJoints) +
                                " joints, got " + std::to_string(joints_.size()));
  }
  if (!(options_.rate_hz > 0.0 && options_.rate_hz <= 10'000.0)) {
    throw std::invalid_argument("rate_hz must be in (0, 10000], got " +
                                std::to_string(options_.rate_hz));
  }
  if (options_.bus_fault_ticks < 1 || options_.overrun_ticks < 1 ||
      options_.action_timeout_ticks < 0 || options_.read_retries < 0 ||
      !(options_.latency_margin_ms <= 10'000.0)) {
    throw std::invalid_argument(
        "bus_fault_ticks and overrun_ticks must be >= 1, action_timeout_ticks and read_retries >= "
        "0, latency_margin_ms <= 10000");
  }
  period_ns_ = static_cast<int64_t>(std::llround(1e9 / options_.rate_hz));
  bool seen[256] = {};
  for (size_t i = 0; i < joints_.size(); ++i) {
    const LoopJoint& joint = joints_[i];
    const std::string name =
        "joint " + std::to_string(i) + " (id " + std::to_string(joint.id) + ")";
    if (joint.id > 252 || seen[joint.id]) {
      throw std::invalid_argument(name + ": ids must be distinct and 0..252");
    }
    seen[joint.id] = true;
    const bus::ModelInfo* model = bus::find_model(joint.model);
    if (model == nullptr || model->vendor != bus_.options().vendor()) {
      throw std::invalid_argument(name + ": unknown model '" + joint.model +
                                  "' for this bus's vendor");
    }
    if (!joint.calibration.valid()) {
      throw std::invalid_argument(name + ": invalid calibration (range_min == range_max)");
    }
    const bus::Register& present = require_register(*model, "Present_Position");
    const bus::Register& goal = require_register(*model, "Goal_Position");
    const bus::Register& torque = require_register(*model, "Torque_Enable");
    if (i == 0) {
      present_ = present;
      goal_ = goal;
      torque_ = torque;
      byte_order_ = model->byte_order();
    } else if (!same_place(present, present_) || !same_place(goal, goal_) ||
               !same_place(torque, torque_) || model->byte_order() != byte_order_) {
      throw std::invalid_argument(name + ": model " + joint.model +
                                  " keeps its position registers elsewhere than joint 0's; "
                                  "one SYNC_READ cannot serve both");
    }
    ids_[i] = joint.id;
  }
  working_.joints = static_cast<int>(joints_.size());
  published_snapshot_.store(working_);
  published_counters_.store(counters_);
}

ControlLoop::~ControlLoop() { stop(); }

RealtimeReport ControlLoop::start() {
  if (running_.load(std::memory_order_acquire)) throw Error("the control loop is already running");
  if (!bus_.is_open()) throw Error("the bus " + bus_.port_path() + " is not open");
  if (!bus_.try_claim()) {
    throw Error("the bus " + bus_.port_path() + " is already driven by another control loop");
  }
  saved_latency_margin_ms_ = bus_.options().latency_margin_ms;
  if (options_.latency_margin_ms >= 0.0) bus_.set_latency_margin_ms(options_.latency_margin_ms);
  stop_requested_.store(false, std::memory_order_release);
  std::atomic<int> setup_state{0};
  RealtimeReport report;
  running_.store(true, std::memory_order_release);
  thread_ = std::thread([this, &setup_state, &report] { run(&setup_state, &report); });
  // The thread reports its real-time setup before its first tick.
  while (setup_state.load(std::memory_order_acquire) == 0) std::this_thread::yield();
  return report;
}

void ControlLoop::stop() {
  stop_requested_.store(true, std::memory_order_release);
  if (thread_.joinable()) thread_.join();
  if (running_.exchange(false, std::memory_order_acq_rel)) {
    bus_.set_latency_margin_ms(saved_latency_margin_ms_);
    bus_.release_claim();
  }
}

LoopCounters ControlLoop::counters() const { return published_counters_.load(); }
LastBusFailure ControlLoop::last_bus_failure() const { return published_failure_.load(); }
LoopSnapshot ControlLoop::snapshot() const { return published_snapshot_.load(); }

void ControlLoop::reset_histograms() {
  // Racy against the tick only in the counts it records during the reset: monitoring data.
  lateness_.reset();
  read_time_.reset();
  write_time_.reset();
  work_time_.reset();
  action_age_.reset();
}

void ControlLoop::run(std::atomic<int>* setup_state, RealtimeReport* report) {
  *report = apply_realtime(options_.realtime);
  setup_state->store(1, std::memory_order_release);  // `report` and `setup_state` die here
  int64_t deadline = monotonic_ns() + period_ns_;
  while (!stop_requested_.load(std::memory_order_acquire)) {
    const int64_t woke = sleep_until(deadline, options_.spin_ns);
    tick(deadline, woke);
    const int64_t finished = monotonic_ns();
    work_time_.record(finished - woke);
    int64_t next = deadline + period_ns_;
    if (finished > next) {
      ++counters_.overruns;
      ++overrun_streak_;
      on_time_streak_ = 0;
      // Keep the grid: skip the deadlines already past instead of running ticks back to back.
      const int64_t behind = (finished - next) / period_ns_ + 1;
      counters_.missed_deadlines += static_cast<uint64_t>(behind);
      next += behind * period_ns_;
      if (overrun_streak_ >= options_.overrun_ticks) raise(kOverrun);
    } else {
      overrun_streak_ = 0;
      if (++on_time_streak_ >= options_.overrun_ticks) clear(kOverrun);
    }
    published_counters_.store(counters_);
    deadline = next;
  }
}

void ControlLoop::raise(uint32_t fault) {
  const uint32_t before = faults_.fetch_or(fault, std::memory_order_acq_rel);
  if (before & fault) return;
  for (int kind = 0; kind < kFaultKinds; ++kind) {
    if (fault & (1u << kind)) ++counters_.fault_onsets[kind];
  }
}

void ControlLoop::clear(uint32_t fault) { faults_.fetch_and(~fault, std::memory_order_acq_rel); }

bool ControlLoop::read_present() {
  const size_t n = joints_.size();
  working_.read_started_ns = monotonic_ns();
  const bus::Result result = bus::sync_read_values(
      bus_, std::span<const uint8_t>(ids_, n), present_, std::span<int64_t>(register_values_, n),
      options_.read_retries, options_.fast_sync_read);
  working_.read_finished_ns = monotonic_ns();
  read_time_.record(working_.read_finished_ns - working_.read_started_ns);
  if (!result.ok()) {
    ++counters_.read_failures;
    published_failure_.store(LastBusFailure{counters_.ticks, result});
    return false;
  }
  ++counters_.reads_ok;
  for (size_t i = 0; i < n; ++i) {
    present_values_[i] = bus::normalize_position(register_values_[i], joints_[i].calibration);
  }
  return true;
}

bool ControlLoop::write_positions(const double* goal) {
  const size_t n = joints_.size();
  for (size_t i = 0; i < n; ++i) {
    if (!bus::unnormalize_position(goal[i], joints_[i].calibration, &register_values_[i]))
      return false;
  }
  const int64_t started = monotonic_ns();
  const bus::Result result = bus::sync_write_values(bus_, std::span<const uint8_t>(ids_, n), goal_,
                                                    std::span<const int64_t>(register_values_, n));
  if (result.status == bus::Status::kValueOutOfRange) return false;
  write_time_.record(monotonic_ns() - started);
  return result.ok();
}

bool ControlLoop::write_torque(bool enable) {
  const size_t n = joints_.size();
  std::fill_n(register_values_, n, enable ? 1 : 0);
  const bus::Result result =
      bus::sync_write_values(bus_, std::span<const uint8_t>(ids_, n), torque_,
                             std::span<const int64_t>(register_values_, n));
  ++counters_.torque_off_writes;
  return result.ok();
}

void ControlLoop::tick(int64_t deadline_ns, int64_t woke_ns) {
  const int n = static_cast<int>(joints_.size());
  ++counters_.ticks;
  lateness_.record(woke_ns - deadline_ns);
  working_.tick = counters_.ticks;
  working_.deadline_ns = deadline_ns;

  // 1. Where the joints are.
  const bool read_ok = read_present();
  if (read_ok) {
    have_present_ = true;
    read_fail_streak_ = 0;
    clear(kBusFault);
  } else if (++read_fail_streak_ >= options_.bus_fault_ticks) {
    raise(kBusFault);
  }

  // Requests from other threads.
  if (estop_.load(std::memory_order_acquire)) raise(kEstop);
  if (clear_requested_.exchange(false, std::memory_order_acq_rel)) clear(kSafetyLimit);
  if (torque_on_requested_.exchange(false, std::memory_order_acq_rel) &&
      !(faults_.load(std::memory_order_acquire) & kEstop) && have_present_) {
    // Hold where the joints are, then turn torque on: no jump to a stale goal.
    std::copy_n(present_values_, n, goal_values_);
    have_goal_ = write_positions(goal_values_) || have_goal_;
    if (write_torque(true)) torque_enabled_ = true;
  }

  // 2-3. This tick's action, through the safety filter, unless a fault holds the arm.
  bool send = false;
  uint32_t faults = faults_.load(std::memory_order_acquire);
  if (faults == kNoFault || faults == kActionTimeout) {
    TakenAction taken;
    if (queue_.take(action_, &taken)) {
      ++counters_.actions_taken;
      actions_started_ = true;
      ticks_since_action_ = 0;
      clear(kActionTimeout);
      action_age_.record(monotonic_ns() - taken.observed_at_ns);
      working_.action_timestep = taken.timestep;
      for (int i = 0; i < n; ++i) candidate_[i] = action_[i];
      const uint32_t violations =
          safety_.apply(candidate_, have_present_ ? present_values_ : nullptr,
                        have_goal_ ? goal_values_ : nullptr);
      const SafetyCounters& safety = safety_.counters();
      counters_.safety_not_finite = safety.not_finite;
      counters_.safety_joint_limit = safety.joint_limit;
      counters_.safety_relative_target = safety.relative_target;
      counters_.safety_rate_limit = safety.rate_limit;
      bool finite = true;
      for (int i = 0; i < n; ++i) finite = finite && std::isfinite(candidate_[i]);
      if (violations != kNoViolation && options_.strict_safety) {
        raise(kSafetyLimit);
      } else if (finite) {
        std::copy_n(candidate_, n, goal_values_);
        send = true;
      }
    } else if (actions_started_) {
      ++counters_.starved_ticks;
      if (options_.action_timeout_ticks > 0 &&
          ++ticks_since_action_ >= options_.action_timeout_ticks) {
        raise(kActionTimeout);
      }
    } else {
      ++counters_.ticks_before_first_action;
    }
  }
  faults = faults_.load(std::memory_order_acquire);
  if (faults != kNoFault) ++counters_.held_ticks;

  // Torque off: on an e-stop always, on any other fault when so configured.
  const bool cut = (faults & kEstop) ||
                   (faults != kNoFault && options_.on_fault == FaultResponse::kDisableTorque);
  if (cut && torque_enabled_) {
    if (write_torque(false)) torque_enabled_ = false;
  }

  // 4. The goal: a new one, or the held one again (harmless, and a servo that missed a
  // broadcast catches up), never while torque is off.
  if (options_.write_goals && torque_enabled_ && (send || have_goal_)) {
    if (write_positions(goal_values_)) {
      ++counters_.writes;
      have_goal_ = true;
    } else {
      ++counters_.write_failures;
    }
  }

  // 5. What a reader sees.
  working_.present_valid = read_ok;
  working_.goal_valid = have_goal_;
  working_.faults = faults;
  working_.torque_enabled = torque_enabled_;
  std::copy_n(present_values_, n, working_.present);
  std::copy_n(goal_values_, n, working_.goal);
  published_snapshot_.store(working_);
}

}  // namespace dexloop::control
