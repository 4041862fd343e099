// dexloop._core.control: the C++ control loop, its action queue and histograms, and the joint
// normalisation of the core. The loop's thread never takes the GIL; calls that wait for it (start,
// stop) or contend with it (pushing a chunk into the queue) release the GIL. dexloop.control wraps
// this module with motor names, calibrations and error texts.
#include <nanobind/ndarray.h>
#include <nanobind/stl/optional.h>
#include <nanobind/stl/string.h>
#include <nanobind/stl/vector.h>

#include <algorithm>
#include <cmath>
#include <optional>
#include <string>
#include <vector>

#include "bindings.hpp"
#include "dexloop/bus/failure_text.hpp"
#include "dexloop/bus/normalization.hpp"
#include "dexloop/bus/servo_bus.hpp"
#include "dexloop/control/action_queue.hpp"
#include "dexloop/control/control_loop.hpp"
#include "dexloop/control/latency_histogram.hpp"
#include "dexloop/control/realtime.hpp"
#include "dexloop/control/safety.hpp"

namespace nb = nanobind;
using namespace nb::literals;

namespace dexloop::bindings {
namespace {

using bus::JointCalibration;
using bus::NormMode;
using control::ControlLoop;
using control::LatencyHistogram;

using Limits = nb::ndarray<const double, nb::ndim<1>, nb::c_contig, nb::device::cpu>;
using Chunk = nb::ndarray<const float, nb::ndim<2>, nb::c_contig, nb::device::cpu>;

NormMode norm_mode_of(const std::string& name) {
  if (name == "range_m100_100") return NormMode::kRangeM100To100;
  if (name == "range_0_100") return NormMode::kRange0To100;
  if (name == "degrees") return NormMode::kDegrees;
  throw nb::value_error(
      ("norm mode must be 'range_m100_100', 'range_0_100' or 'degrees', got '" + name + "'")
          .c_str());
}

const char* norm_mode_name(NormMode mode) {
  switch (mode) {
    case NormMode::kRange0To100:
      return "range_0_100";
    case NormMode::kDegrees:
      return "degrees";
    default:
      return "range_m100_100";
  }
}

// Copies a per-joint array given from Python over the defaults already in `out`.
void override_limit(const std::optional<Limits>& values, size_t joints, const char* name,
                    double* out) {
  if (!values) return;
  if (values->shape(0) != joints) {
    throw nb::value_error((std::string(name) + " needs one value per joint (" +
                           std::to_string(joints) + "), got " + std::to_string(values->shape(0)))
                              .c_str());
  }
  for (size_t i = 0; i < joints; ++i) out[i] = values->data()[i];
}

void make_loop(ControlLoop* self, bus::ServoBus& servo_bus, const std::vector<int>& ids,
               const std::vector<std::string>& models,
               const std::vector<JointCalibration>& calibrations,
               const std::optional<Limits>& lower, const std::optional<Limits>& upper,
               const std::optional<Limits>& max_relative_target,
               const std::optional<Limits>& max_step, double rate_hz, double spin_us, bool fifo,
               int priority, int cpu, bool lock_memory, int read_retries, double latency_margin_ms,
               bool fast_sync_read, bool write_goals, int bus_fault_ticks, int action_timeout_ticks,
               int overrun_ticks, const std::string& on_fault, bool strict_safety,
               const std::string& aggregate, double ensemble_coeff, int queue_capacity) {
  const size_t joints = ids.size();
  if (models.size() != joints || calibrations.size() != joints) {
    throw nb::value_error("ids, models and calibrations need one entry per joint");
  }
  if (joints == 0 || joints > static_cast<size_t>(control::kMaxJoints)) {
    throw nb::value_error(("a control loop drives 1.." + std::to_string(control::kMaxJoints) +
                           " joints, got " + std::to_string(joints))
                              .c_str());
  }
  std::vector<control::LoopJoint> loop_joints(joints);
  for (size_t i = 0; i < joints; ++i) {
    if (ids[i] < 0 || ids[i] > 252) {
      throw nb::value_error(("motor id " + std::to_string(ids[i]) + " is outside 0..252").c_str());
    }
    loop_joints[i] = {static_cast<uint8_t>(ids[i]), models[i], calibrations[i]};
  }
  // Joint limits default to each calibration's range (where a goal is sent unchanged); the others
  // start off (SafetyLimits()).
  control::SafetyLimits limits;
  for (size_t i = 0; i < joints; ++i) {
    if (!calibrations[i].valid()) {
      throw nb::value_error(("joint " + std::to_string(i) + " (id " + std::to_string(ids[i]) +
                             "): invalid calibration (range_min == range_max)")
                                .c_str());
    }
    bus::position_limits(calibrations[i], &limits.lower[i], &limits.upper[i]);
  }
  override_limit(lower, joints, "lower", limits.lower);
  override_limit(upper, joints, "upper", limits.upper);
  override_limit(max_relative_target, joints, "max_relative_target", limits.max_relative_target);
  override_limit(max_step, joints, "max_step", limits.max_step);

  control::ControlLoopOptions options;
  options.rate_hz = rate_hz;
  if (!(spin_us >= 0.0 && spin_us <= 1e6)) throw nb::value_error("spin_us must be in [0, 1e6]");
  options.spin_ns = static_cast<int64_t>(spin_us * 1000.0);
  options.realtime.fifo = fifo;
  options.realtime.priority = priority;
  options.realtime.cpu = cpu;
  options.realtime.lock_memory = lock_memory;
  options.read_retries = read_retries;
  options.latency_margin_ms = latency_margin_ms;
  options.fast_sync_read = fast_sync_read;
  options.write_goals = write_goals;
  options.bus_fault_ticks = bus_fault_ticks;
  options.action_timeout_ticks = action_timeout_ticks;
  options.overrun_ticks = overrun_ticks;
  if (on_fault == "hold") {
    options.on_fault = control::FaultResponse::kHold;
  } else if (on_fault == "disable_torque") {
    options.on_fault = control::FaultResponse::kDisableTorque;
  } else {
    throw nb::value_error(
        ("on_fault must be 'hold' or 'disable_torque', got '" + on_fault + "'").c_str());
  }
  options.strict_safety = strict_safety;
  if (!control::parse_aggregate(aggregate, &options.queue.aggregate)) {
    throw nb::value_error(("unknown aggregate '" + aggregate +
                           "' (weighted_average, latest_only, average, conservative or "
                           "temporal_ensemble)")
                              .c_str());
  }
  options.queue.ensemble_coeff = ensemble_coeff;
  options.queue.capacity = queue_capacity;
  new (self) ControlLoop(servo_bus, std::move(loop_joints), limits, options);
}

nb::dict counters_dict(const ControlLoop& loop) {
  const control::LoopCounters c = loop.counters();
  nb::dict d;
  d["ticks"] = c.ticks;
  d["overruns"] = c.overruns;
  d["missed_deadlines"] = c.missed_deadlines;
  d["reads_ok"] = c.reads_ok;
  d["read_failures"] = c.read_failures;
  d["writes"] = c.writes;
  d["write_failures"] = c.write_failures;
  d["actions_taken"] = c.actions_taken;
  d["starved_ticks"] = c.starved_ticks;
  d["ticks_before_first_action"] = c.ticks_before_first_action;
  d["held_ticks"] = c.held_ticks;
  d["torque_off_writes"] = c.torque_off_writes;
  d["safety_not_finite"] = c.safety_not_finite;
  d["safety_joint_limit"] = c.safety_joint_limit;
  d["safety_relative_target"] = c.safety_relative_target;
  d["safety_rate_limit"] = c.safety_rate_limit;
  nb::dict onsets;
  for (int k = 0; k < control::kFaultKinds; ++k)
    onsets[control::fault_name(1u << k)] = c.fault_onsets[k];
  d["fault_onsets"] = onsets;
  d["queue_depth"] = loop.queue().depth();
  d["chunks_received"] = loop.queue().chunks_received();
  d["actions_dropped_stale"] = loop.queue().actions_dropped_stale();
  return d;
}

std::vector<std::string> fault_names(uint32_t faults) {
  std::vector<std::string> names;
  for (int k = 0; k < control::kFaultKinds; ++k)
    if (faults & (1u << k)) names.emplace_back(control::fault_name(1u << k));
  return names;
}

template <typename T>
nb::ndarray<nb::numpy, T> copy_array(const T* values, size_t count) {
  auto array = new_array<T>({count});
  std::copy_n(values, count, array.data());
  return array;
}

nb::dict snapshot_dict(const ControlLoop& loop) {
  const control::LoopSnapshot s = loop.snapshot();
  nb::dict d;
  d["tick"] = s.tick;
  d["deadline_ns"] = s.deadline_ns;
  d["read_started_ns"] = s.read_started_ns;
  d["read_finished_ns"] = s.read_finished_ns;
  d["present_valid"] = s.present_valid;
  d["goal_valid"] = s.goal_valid;
  d["action_timestep"] = s.action_timestep;
  d["faults"] = fault_names(s.faults);
  d["torque_enabled"] = s.torque_enabled;
  d["present"] = copy_array(s.present, static_cast<size_t>(s.joints));
  d["goal"] = copy_array(s.goal, static_cast<size_t>(s.joints));
  return d;
}

// dexloop.errors' class for each kind (what the bus's own calls would raise).
const char* failure_kind_name(bus::FailureKind kind) {
  switch (kind) {
    case bus::FailureKind::kTimeout:
      return "BusTimeoutError";
    case bus::FailureKind::kProtocol:
      return "BusProtocolError";
    case bus::FailureKind::kServo:
      return "ServoError";
    default:
      return "BusError";
  }
}

}  // namespace

void register_control(nb::module_& module) {
  module.def("monotonic_ns", &control::monotonic_ns,
             "CLOCK_MONOTONIC in nanoseconds: the clock of the loop's timestamps (as "
             "time.monotonic_ns()).");

  nb::class_<JointCalibration>(module, "JointCalibration",
                               "A joint's calibration as the C++ core normalises with it.")
      .def(
          "__init__",
          [](JointCalibration* self, int32_t range_min, int32_t range_max, bool inverted,
             int32_t max_resolution, const std::string& mode) {
            new (self) JointCalibration{range_min, range_max, inverted, max_resolution,
                                        norm_mode_of(mode)};
          },
          "range_min"_a, "range_max"_a, "inverted"_a = false, "max_resolution"_a = 4095,
          "mode"_a = "range_m100_100")
      .def_rw("range_min", &JointCalibration::range_min)
      .def_rw("range_max", &JointCalibration::range_max)
      .def_rw("inverted", &JointCalibration::inverted,
              "The drive mode applied in software (Feetech); Dynamixel servos apply their own.")
      .def_rw("max_resolution", &JointCalibration::max_resolution)
      .def_prop_ro("mode", [](const JointCalibration& c) { return norm_mode_name(c.mode); })
      .def("__repr__", [](const JointCalibration& c) {
        return "JointCalibration(range_min=" + std::to_string(c.range_min) +
               ", range_max=" + std::to_string(c.range_max) +
               ", inverted=" + (c.inverted ? "True" : "False") +
               ", max_resolution=" + std::to_string(c.max_resolution) + ", mode='" +
               norm_mode_name(c.mode) + "')";
      });

  module.def(
      "normalize_position",
      [](int64_t raw, const JointCalibration& calibration) {
        if (!calibration.valid()) throw nb::value_error("invalid calibration");
        return bus::normalize_position(raw, calibration);
      },
      "raw"_a, "calibration"_a, "A raw position in user units, as the loop normalises it.");
  module.def(
      "unnormalize_position",
      [](double value, const JointCalibration& calibration) -> std::optional<int64_t> {
        if (!calibration.valid()) throw nb::value_error("invalid calibration");
        int64_t raw = 0;
        if (!bus::unnormalize_position(value, calibration, &raw)) return std::nullopt;
        return raw;
      },
      "value"_a, "calibration"_a, "User units to a raw position; None for a non-finite value.");
  module.def(
      "position_limits",
      [](const JointCalibration& calibration) {
        if (!calibration.valid()) throw nb::value_error("invalid calibration");
        double lower = 0.0, upper = 0.0;
        bus::position_limits(calibration, &lower, &upper);
        return nb::make_tuple(lower, upper);
      },
      "calibration"_a, "(lower, upper): the calibrated range in user units.");

  module.def(
      "limit_relative_target",
      [](Limits goal, Limits present, Limits max_relative_target) {
        const size_t joints = goal.shape(0);
        if (present.shape(0) != joints || max_relative_target.shape(0) != joints)
          throw nb::value_error("goal, present and max_relative_target need one value per joint");
        if (joints == 0 || joints > static_cast<size_t>(control::kMaxJoints))
          throw nb::value_error("limit_relative_target takes 1 to 32 joints");
        control::SafetyLimits limits;
        limits.joints = static_cast<int>(joints);
        for (size_t i = 0; i < joints; ++i)
          limits.max_relative_target[i] = max_relative_target.data()[i];
        control::SafetyFilter filter(limits);
        double safe[control::kMaxJoints];
        for (size_t i = 0; i < joints; ++i) safe[i] = goal.data()[i];
        filter.apply(safe, present.data(), nullptr);
        return copy_array(safe, joints);
      },
      "goal"_a, "present"_a, "max_relative_target"_a,
      "Each goal moved to within max_relative_target of the present position: the loop's own\n"
      "SafetyFilter with only that limit (a non-finite goal stays where the joint is).");

  nb::class_<LatencyHistogram>(module, "LatencyHistogram",
                               "Durations in nanoseconds, recorded by the loop's thread.")
      .def_prop_ro("count", &LatencyHistogram::count)
      .def_prop_ro("max", &LatencyHistogram::max)
      .def_prop_ro("min", &LatencyHistogram::min)
      .def_prop_ro("mean", &LatencyHistogram::mean)
      .def("percentile", &LatencyHistogram::percentile, "fraction"_a,
           "The bucket upper edge below which `fraction` (0..1) of the values lie (<= 3.2% high).")
      .def(
          "buckets",
          [](const LatencyHistogram& histogram) {
            // (upper edge in ns, count) of every non-empty bucket.
            std::vector<uint64_t> counts = histogram.buckets();
            nb::list result;
            for (size_t b = 0; b < counts.size(); ++b) {
              if (counts[b] == 0) continue;
              result.append(
                  nb::make_tuple(LatencyHistogram::bucket_upper(static_cast<int>(b)), counts[b]));
            }
            return result;
          },
          "[(bucket upper edge ns, count)] of the non-empty buckets.");

  nb::class_<ControlLoop>(module, "ControlLoop",
                          "The real-time loop: sync read, action queue, safety, sync write.")
      .def("__init__", &make_loop, "servo_bus"_a, "ids"_a, "models"_a, "calibrations"_a,
           nb::kw_only(), "lower"_a.none() = nb::none(), "upper"_a.none() = nb::none(),
           "max_relative_target"_a.none() = nb::none(), "max_step"_a.none() = nb::none(),
           "rate_hz"_a = 30.0, "spin_us"_a = 100.0, "fifo"_a = false, "priority"_a = 50,
           "cpu"_a = -1, "lock_memory"_a = false, "read_retries"_a = 0,
           "latency_margin_ms"_a = -1.0, "fast_sync_read"_a = false, "write_goals"_a = true,
           "bus_fault_ticks"_a = 3, "action_timeout_ticks"_a = 0, "overrun_ticks"_a = 5,
           "on_fault"_a = "hold", "strict_safety"_a = false, "aggregate"_a = "weighted_average",
           "ensemble_coeff"_a = 0.01, "queue_capacity"_a = 1024,
           // The loop uses the bus for its whole life.
           nb::keep_alive<1, 2>())
      .def(
          "start",
          [](ControlLoop& loop) {
            control::RealtimeReport report;
            {
              nb::gil_scoped_release release;
              report = loop.start();
            }
            nb::dict d;
            d["fifo"] = report.fifo;
            d["pinned"] = report.pinned;
            d["memory_locked"] = report.memory_locked;
            d["refused"] = report.refused;
            return d;
          },
          "Starts the loop's thread; {fifo, pinned, memory_locked, refused}: what it was granted.")
      .def("stop", &ControlLoop::stop, nb::call_guard<nb::gil_scoped_release>())
      .def_prop_ro("running", &ControlLoop::running)
      .def_prop_ro("period_ns", &ControlLoop::period_ns)
      .def_prop_ro("rate_hz", [](const ControlLoop& loop) { return loop.options().rate_hz; })
      .def_prop_ro("joints", [](const ControlLoop& loop) { return loop.joints().size(); })
      .def_prop_ro("lower",
                   [](const ControlLoop& loop) {
                     return copy_array(loop.limits().lower, loop.joints().size());
                   })
      .def_prop_ro("upper",
                   [](const ControlLoop& loop) {
                     return copy_array(loop.limits().upper, loop.joints().size());
                   })
      .def("estop", &ControlLoop::estop, "Torque off at the next tick; latched.")
      .def("clear_faults", &ControlLoop::clear_faults,
           "Clears the latched safety_limit fault (and estop once stopped).")
      .def("enable_torque", &ControlLoop::enable_torque,
           "Torque back on at the next tick, the goal first re-aimed at the present position.")
      .def(
          "push",
          [](ControlLoop& loop, int64_t start_timestep, Chunk actions, int64_t observed_at_ns,
             int64_t received_at_ns) {
            const int dim = loop.queue().options().action_dim;
            if (actions.shape(1) != static_cast<size_t>(dim)) {
              throw nb::value_error(("a chunk needs " + std::to_string(dim) +
                                     " values per action, got " + std::to_string(actions.shape(1)))
                                        .c_str());
            }
            nb::gil_scoped_release release;
            return loop.queue().push(start_timestep, actions.data(),
                                     static_cast<int>(actions.shape(0)), observed_at_ns,
                                     received_at_ns);
          },
          "start_timestep"_a, "actions"_a, "observed_at_ns"_a, "received_at_ns"_a,
          "Queues a chunk (float32, (n, joints)) for timesteps start_timestep...; returns how "
          "many were queued (the rest were for timesteps already executed).")
      .def(
          "clear_queue", [](ControlLoop& loop) { loop.queue().clear(); },
          "Drops every queued action.")
      .def_prop_ro("queue_depth", [](const ControlLoop& loop) { return loop.queue().depth(); })
      .def_prop_ro(
          "last_taken", [](const ControlLoop& loop) { return loop.queue().last_taken(); },
          "Timestep of the last action executed (-1 before the first).")
      .def_prop_ro("aggregate",
                   [](const ControlLoop& loop) {
                     return std::string(control::aggregate_name(loop.queue().options().aggregate));
                   })
      .def_prop_ro("counters", &counters_dict)
      .def_prop_ro("faults", [](const ControlLoop& loop) { return fault_names(loop.faults()); })
      .def_prop_ro(
          "last_bus_failure",
          [](const ControlLoop& loop) -> nb::object {
            const control::LastBusFailure failure = loop.last_bus_failure();
            if (failure.result.ok() && failure.tick == 0) return nb::none();
            nb::dict d;
            d["tick"] = failure.tick;
            d["status"] = bus::status_name(failure.result.status);
            d["kind"] = failure_kind_name(bus::failure_kind(failure.result.status));
            d["message"] =
                bus::failure_text(loop.servo_bus(), failure.result, "sync_read Present_Position");
            d["motor_id"] = failure.result.id;
            d["servo_error"] = failure.result.servo_error;
            d["attempts"] = failure.result.attempts;
            return d;
          },
          "{tick, status, kind, message, motor_id, servo_error, attempts} of the last failed read, "
          "or None.")
      .def("snapshot", &snapshot_dict,
           "The newest tick's {tick, deadline_ns, read_started_ns, read_finished_ns, "
           "present_valid, goal_valid, action_timestep, faults, torque_enabled, present, goal}.")
      .def(
          "histogram",
          [](const ControlLoop& loop, const std::string& name) -> const LatencyHistogram& {
            if (name == "lateness") return loop.lateness();
            if (name == "read") return loop.read_time();
            if (name == "write") return loop.write_time();
            if (name == "work") return loop.work_time();
            if (name == "action_age") return loop.action_age();
            throw nb::value_error(
                ("no histogram '" + name + "' (lateness, read, write, work, action_age)").c_str());
          },
          "name"_a, nb::rv_policy::reference_internal,
          "A live histogram: lateness, read, write, work or action_age.")
      .def("reset_histograms", &ControlLoop::reset_histograms);
}

}  // namespace dexloop::bindings
