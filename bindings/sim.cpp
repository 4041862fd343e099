// dexloop._core.sim: the servo simulator (a pty speaking Feetech or Dynamixel), its fault injection
// and introspection. The serving thread never takes the GIL; stop() releases it while joining.
#include <nanobind/stl/map.h>
#include <nanobind/stl/optional.h>
#include <nanobind/stl/pair.h>
#include <nanobind/stl/string.h>
#include <nanobind/stl/string_view.h>
#include <nanobind/stl/variant.h>
#include <nanobind/stl/vector.h>

#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "bindings.hpp"
#include "dexloop/servo_sim/servo_simulator.hpp"

namespace nb = nanobind;
using namespace nb::literals;

namespace dexloop::bindings {
namespace {

using servo_sim::ServoSimulator;

// None means every motor.
int target(std::optional<int> id) { return id ? *id : servo_sim::kAllMotors; }

void make_simulator(ServoSimulator* self, const ProtocolArg& protocol,
                    const std::vector<std::pair<int, std::string>>& motors, int baudrate,
                    double time_constant_s, bool emulate_wire_time, bool match_baudrate,
                    uint64_t seed) {
  std::vector<servo_sim::MotorSpec> specs;
  for (const auto& [id, model] : motors) specs.push_back({id, model});
  servo_sim::SimulatorOptions options;
  options.baudrate = baudrate;
  options.time_constant_s = time_constant_s;
  options.emulate_wire_time = emulate_wire_time;
  options.match_baudrate = match_baudrate;
  options.seed = seed;
  new (self) ServoSimulator(protocol_from(protocol), std::move(specs), options);
}

void stop(ServoSimulator& self) {
  nb::gil_scoped_release release;
  self.stop();
}

}  // namespace

void register_sim(nb::module_& module) {
  module.attr("ALL_MOTORS") = servo_sim::kAllMotors;
  module.attr("UNTIL_CLEARED") = servo_sim::kUntilCleared;

  nb::class_<ServoSimulator>(
      module, "ServoSimulator",
      "A chain of simulated servos behind a pty: open `port` like a serial port and talk to it "
      "with "
      "the Feetech or Dynamixel protocol. Faults and introspection take a motor id (None: every "
      "motor); fault counts are how many of the motor's next replies are affected (-1: until "
      "cleared, 0: clear).")
      .def("__init__", &make_simulator, "protocol"_a, "motors"_a, nb::kw_only(),
           "baudrate"_a = 1'000'000, "time_constant_s"_a = 0.040, "emulate_wire_time"_a = false,
           "match_baudrate"_a = false, "seed"_a = 0,
           "protocol: a bus.Protocol or its name, 'feetech' (STS/SMS), 'feetech_scs' or "
           "'dynamixel'; "
           "motors: (id, model) pairs "
           "with LeRobot's model names.")
      .def_prop_ro("port", &ServoSimulator::port_path, "The pty slave path a driver opens.")
      .def_prop_ro("protocol", &ServoSimulator::protocol, "The bus.Protocol it speaks.")
      .def_prop_ro("running", &ServoSimulator::running)
      .def_prop_ro("ids", &ServoSimulator::ids, "Current motor ids (they follow ID writes).")
      .def("start", &ServoSimulator::start, "Starts answering on the port (idempotent).")
      .def("stop", &stop, "Stops answering and joins the serving thread (idempotent).")
      .def(
          "__enter__",
          [](ServoSimulator& self) -> ServoSimulator& {
            self.start();
            return self;
          },
          nb::rv_policy::reference)
      .def(
          "__exit__", [](ServoSimulator& self, nb::handle, nb::handle, nb::handle) { stop(self); },
          "exc_type"_a.none(), "exc_value"_a.none(), "traceback"_a.none())
      // Faults
      .def(
          "drop_replies",
          [](ServoSimulator& self, std::optional<int> id, int count) {
            self.drop_replies(target(id), count);
          },
          "id"_a.none(), "count"_a = 1, "The motor's next `count` replies are not sent.")
      .def(
          "corrupt_replies",
          [](ServoSimulator& self, std::optional<int> id, int count) {
            self.corrupt_replies(target(id), count);
          },
          "id"_a.none(), "count"_a = 1, "The next replies carry a wrong checksum / CRC.")
      .def(
          "delay_replies",
          [](ServoSimulator& self, std::optional<int> id, uint32_t microseconds, int count) {
            self.delay_replies(target(id), microseconds, count);
          },
          "id"_a.none(), "microseconds"_a, "count"_a = 1,
          "The next replies leave `microseconds` late (the bus is serial: later ones wait too).")
      .def(
          "reply_as",
          [](ServoSimulator& self, std::optional<int> id, int other_id, int count) {
            self.reply_as(target(id), other_id, count);
          },
          "id"_a.none(), "other_id"_a, "count"_a = 1, "The next replies carry `other_id`.")
      .def(
          "garbage_before_replies",
          [](ServoSimulator& self, std::optional<int> id, nb::bytes data, int count) {
            const auto* begin = static_cast<const uint8_t*>(data.data());
            self.garbage_before_replies(target(id),
                                        std::vector<uint8_t>(begin, begin + data.size()), count);
          },
          "id"_a.none(), "data"_a, "count"_a = 1,
          "`data` goes on the line before the next replies.")
      .def(
          "vanish", [](ServoSimulator& self, std::optional<int> id) { self.vanish(target(id)); },
          "id"_a.none(), "The motor stops hearing and answering until reappear().")
      .def(
          "reappear",
          [](ServoSimulator& self, std::optional<int> id) { self.reappear(target(id)); },
          "id"_a.none())
      .def(
          "set_error_bits",
          [](ServoSimulator& self, std::optional<int> id, uint8_t bits) {
            self.set_error_bits(target(id), bits);
          },
          "id"_a.none(), "bits"_a, "ORed into every status error byte until set to 0.")
      .def(
          "damage_instructions",
          [](ServoSimulator& self, int count) { self.damage_instructions(count); }, "count"_a = 1,
          "One bit flips in each of the driver's next `count` writes (instructions).")
      .def(
          "drop_instructions",
          [](ServoSimulator& self, int count) { self.drop_instructions(count); }, "count"_a = 1,
          "The driver's next `count` writes are lost before any motor hears them.")
      .def(
          "noise_before_instructions",
          [](ServoSimulator& self, nb::bytes data, int count) {
            const auto* begin = static_cast<const uint8_t*>(data.data());
            self.noise_before_instructions(std::vector<uint8_t>(begin, begin + data.size()), count);
          },
          "data"_a, "count"_a = 1, "`data` reaches the motors before each of the next writes.")
      .def(
          "clear_faults",
          [](ServoSimulator& self, std::optional<int> id) { self.clear_faults(target(id)); },
          "id"_a.none() = nb::none(), "Clears every fault (vanish and error bits included).")
      // Introspection
      .def(
          "model",
          [](const ServoSimulator& self, int id) { return std::string(self.model(id).name); },
          "id"_a)
      .def("read_register", &ServoSimulator::read_register, "id"_a, "name"_a,
           "A register's sign-decoded value, bypassing the bus.")
      .def("write_register", &ServoSimulator::write_register, "id"_a, "name"_a, "value"_a,
           "Sets a register as the firmware would (read-only ones too); Present_Position moves the "
           "actual position so that it reads `value`.")
      .def(
          "read_memory",
          [](const ServoSimulator& self, int id, uint16_t address, uint16_t length) {
            const std::vector<uint8_t> data = self.read_memory(id, address, length);
            return nb::bytes(reinterpret_cast<const char*>(data.data()), data.size());
          },
          "id"_a, "address"_a, "length"_a, "Raw control-table bytes.")
      .def("set_actual_position", &ServoSimulator::set_actual_position, "id"_a, "steps"_a,
           "Moves the raw encoder position (before homing offset), as a hand moving the joint.")
      .def("actual_position", &ServoSimulator::actual_position, "id"_a)
      // Counters
      .def("instruction_count", &ServoSimulator::instruction_count, "instruction"_a)
      .def("instruction_counts", &ServoSimulator::instruction_counts)
      .def_prop_ro("corrupt_instructions", &ServoSimulator::corrupt_instructions)
      .def_prop_ro("bytes_received", &ServoSimulator::bytes_received)
      .def_prop_ro("bytes_sent", &ServoSimulator::bytes_sent)
      .def_prop_ro("replies_sent", &ServoSimulator::replies_sent)
      .def("reset_counters", &ServoSimulator::reset_counters)
      .def("__repr__", [](const ServoSimulator& self) {
        return "ServoSimulator(" + std::string(servo_sim::protocol_name(self.protocol())) + ", " +
               std::to_string(self.ids().size()) + " motors, port='" + self.port_path() + "')";
      });

  module.def("stop_all_simulators", &ServoSimulator::stop_all,
             nb::call_guard<nb::gil_scoped_release>(),
             "stop() on every ServoSimulator of the process (run at interpreter exit).");
  // A simulator still referenced when the interpreter finalizes (a module global, a reference
  // cycle) must not keep its serving thread running into process teardown.
  nb::module_::import_("atexit").attr("register")(module.attr("stop_all_simulators"));
}

}  // namespace dexloop::bindings
