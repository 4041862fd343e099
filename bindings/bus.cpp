// dexloop._core.bus: control tables, and ServoBus transactions with register-aware value encoding.
// Transactions run with the GIL released; their statuses become exceptions here, named after
// dexloop.errors (BusTimeoutError, BusProtocolError, ServoError) with the port, operation,
// register, motor and tries in the message.
#include <nanobind/ndarray.h>
#include <nanobind/stl/pair.h>
#include <nanobind/stl/string.h>
#include <nanobind/stl/string_view.h>
#include <nanobind/stl/variant.h>
#include <nanobind/stl/vector.h>

#include <string>
#include <vector>

#include "bindings.hpp"
#include "dexloop/bus/control_table.hpp"
#include "dexloop/bus/failure_text.hpp"
#include "dexloop/bus/register_io.hpp"
#include "dexloop/bus/servo_bus.hpp"
#include "dexloop/error.hpp"

namespace nb = nanobind;
using namespace nb::literals;

namespace dexloop::bindings {
namespace {

using bus::ModelInfo;
using bus::Register;
using bus::Result;
using bus::ServoBus;
using bus::Status;
using bus::Vendor;

using Ids = nb::ndarray<const uint8_t, nb::ndim<1>, nb::c_contig, nb::device::cpu>;
using Values = nb::ndarray<const int64_t, nb::ndim<1>, nb::c_contig, nb::device::cpu>;

Vendor vendor_of(const std::string& name) {
  if (name == "feetech") return Vendor::kFeetech;
  if (name == "dynamixel") return Vendor::kDynamixel;
  throw nb::value_error(("vendor must be 'feetech' or 'dynamixel', got '" + name + "'").c_str());
}

const char* vendor_name(Vendor vendor) {
  return vendor == Vendor::kFeetech ? "feetech" : "dynamixel";
}

// Raises the exception a failed status stands for, with the core's text for it.
void check(const ServoBus& servo_bus, const Result& result, const std::string& operation) {
  if (result.ok()) return;
  const std::string text = bus::failure_text(servo_bus, result, operation);
  switch (bus::failure_kind(result.status)) {
    case bus::FailureKind::kTimeout:
      throw BusTimeoutError(text);
    case bus::FailureKind::kProtocol:
      throw BusProtocolError(text);
    case bus::FailureKind::kServo:
      throw ServoError(text);
    case bus::FailureKind::kInvalidArgument:
      throw nb::value_error(text.c_str());
    case bus::FailureKind::kPort:
    case bus::FailureKind::kNone:
      throw BusError(text);
  }
}

}  // namespace

bus::Protocol protocol_from(const ProtocolArg& protocol) {
  if (const auto* name = std::get_if<std::string>(&protocol)) return bus::parse_protocol(*name);
  return std::get<bus::Protocol>(protocol);
}

namespace {

// A running control loop owns the bus: a transaction from Python now would interleave with its
// ticks on the wire and corrupt both.
void require_unclaimed(const ServoBus& servo_bus, const std::string& operation) {
  if (!servo_bus.claimed()) return;
  throw BusError(std::string(vendor_name(servo_bus.options().vendor())) + " bus " +
                 servo_bus.port_path() + ": " + operation +
                 " refused: a running control loop drives this bus (stop the loop first)");
}

// Raises ValueError for a value its register cannot hold (nothing was sent), else as check().
void check_value(const ServoBus& servo_bus, const Result& result, const Register& reg,
                 int64_t value, const std::string& operation) {
  if (result.status == Status::kValueOutOfRange) {
    throw nb::value_error((bus::value_range_text(reg, value) + " for motor " +
                           std::to_string(result.id) + " on " + servo_bus.port_path())
                              .c_str());
  }
  check(servo_bus, result, operation);
}

std::pair<int, int> ping(ServoBus& servo_bus, int id, int retries) {
  require_unclaimed(servo_bus, "ping");
  uint16_t model = 0;
  uint8_t firmware = 0;
  Result result;
  {
    nb::gil_scoped_release release;
    result = servo_bus.ping(static_cast<uint8_t>(id), retries, &model, &firmware);
  }
  check(servo_bus, result, "ping of motor " + std::to_string(id));
  return {model, firmware};
}

int64_t read(ServoBus& servo_bus, int id, const Register& reg, int retries) {
  require_unclaimed(servo_bus, "read " + std::string(reg.name));
  int64_t value = 0;
  Result result;
  {
    nb::gil_scoped_release release;
    result = bus::read_value(servo_bus, static_cast<uint8_t>(id), reg, &value, retries);
  }
  check(servo_bus, result, "read " + std::string(reg.name) + " of motor " + std::to_string(id));
  return value;
}

// WRITE and REG_WRITE of one register's value: the same bytes under another instruction.
using ValueWrite = Result (*)(ServoBus&, uint8_t, const Register&, int64_t, int);

template <ValueWrite kSend>
void send_value(ServoBus& servo_bus, int id, const Register& reg, int64_t value, int retries,
                const char* what) {
  require_unclaimed(servo_bus, std::string(what) + " " + std::string(reg.name));
  Result result;
  {
    nb::gil_scoped_release release;
    result = kSend(servo_bus, static_cast<uint8_t>(id), reg, value, retries);
  }
  check_value(servo_bus, result, reg, value,
              std::string(what) + " " + std::string(reg.name) + " of motor " + std::to_string(id));
}

void write(ServoBus& servo_bus, int id, const Register& reg, int64_t value, int retries) {
  send_value<&bus::write_value>(servo_bus, id, reg, value, retries, "write");
}

void reg_write(ServoBus& servo_bus, int id, const Register& reg, int64_t value, int retries) {
  send_value<&bus::reg_write_value>(servo_bus, id, reg, value, retries, "reg_write");
}

void action(ServoBus& servo_bus, int id, int retries) {
  require_unclaimed(servo_bus, "action");
  Result result;
  {
    nb::gil_scoped_release release;
    result = servo_bus.action(static_cast<uint8_t>(id), retries);
  }
  check(servo_bus, result, "action of motor " + std::to_string(id));
}

void require_batch(size_t count, const char* operation) {
  if (count == 0 || count > ServoBus::kMaxMotors)
    throw nb::value_error((std::string(operation) + " needs 1 to 64 motor ids").c_str());
}

// Dynamixel BULK_READ: one register per motor, each its own.
nb::ndarray<nb::numpy, int64_t> bulk_read(ServoBus& servo_bus, Ids ids,
                                          std::vector<const Register*> registers, int retries) {
  const size_t count = ids.shape(0);
  require_unclaimed(servo_bus, "bulk_read");
  if (registers.size() != count) throw nb::value_error("bulk_read needs one register per motor id");
  require_batch(count, "bulk_read");
  auto array = new_array<int64_t>({count});
  int64_t* values = array.data();
  Result result;
  {
    nb::gil_scoped_release release;
    result = bus::bulk_read_values(servo_bus, std::span<const uint8_t>(ids.data(), count),
                                   registers, std::span<int64_t>(values, count), retries);
  }
  check(servo_bus, result, "bulk_read");
  return array;
}

nb::ndarray<nb::numpy, int64_t> sync_read(ServoBus& servo_bus, Ids ids, const Register& reg,
                                          int retries, bool fast) {
  require_unclaimed(servo_bus, "sync_read " + std::string(reg.name));
  const size_t count = ids.shape(0);
  require_batch(count, "sync_read");
  auto array = new_array<int64_t>({count});
  int64_t* values = array.data();
  Result result;
  {
    nb::gil_scoped_release release;
    result = bus::sync_read_values(servo_bus, std::span<const uint8_t>(ids.data(), count), reg,
                                   std::span<int64_t>(values, count), retries, fast);
  }
  check(servo_bus, result, std::string(fast ? "fast " : "") + "sync_read " + std::string(reg.name));
  return array;
}

void sync_write(ServoBus& servo_bus, Ids ids, const Register& reg, Values values) {
  require_unclaimed(servo_bus, "sync_write " + std::string(reg.name));
  const size_t count = ids.shape(0);
  if (values.shape(0) != count) throw nb::value_error("sync_write needs one value per motor id");
  require_batch(count, "sync_write");
  Result result;
  size_t refused = 0;  // the index of the value that does not fit, when one does not
  {
    nb::gil_scoped_release release;
    result = bus::sync_write_values(servo_bus, std::span<const uint8_t>(ids.data(), count), reg,
                                    std::span<const int64_t>(values.data(), count), &refused);
  }
  check_value(servo_bus, result, reg, values.data()[refused],
              "sync_write " + std::string(reg.name));
}

nb::dict broadcast_ping(ServoBus& servo_bus, double window_ms) {
  require_unclaimed(servo_bus, "broadcast_ping");
  uint8_t ids[253];
  uint16_t models[253];
  size_t found = 0;
  {
    nb::gil_scoped_release release;
    found = servo_bus.broadcast_ping(window_ms, ids, models);
  }
  nb::dict result;
  for (size_t i = 0; i < found; ++i) result[nb::int_(ids[i])] = nb::int_(models[i]);
  return result;
}

nb::dict traffic(const ServoBus& servo_bus) {
  const bus::Traffic& t = servo_bus.traffic();
  nb::dict result;
  result["transactions"] = t.transactions;
  result["bytes_sent"] = t.bytes_sent;
  result["bytes_received"] = t.bytes_received;
  result["retries"] = t.retries;
  result["timeouts"] = t.timeouts;
  result["corrupt_replies"] = t.corrupt_replies;
  result["fences"] = t.fences;
  return result;
}

const char* sign_kind(const Register& reg) {
  switch (reg.encoding.kind) {
    case bus::SignEncoding::kSignMagnitude:
      return "sign_magnitude";
    case bus::SignEncoding::kTwosComplement:
      return "twos_complement";
    default:
      return "unsigned";
  }
}

}  // namespace

void register_bus(nb::module_& module) {
  nb::enum_<bus::Protocol>(module, "Protocol", "The wire protocol of a bus (and of its simulator).")
      .value("FEETECH", bus::Protocol::kFeetech, "Feetech protocol 0: STS/SMS series")
      .value("FEETECH_SCS", bus::Protocol::kFeetechScs, "Feetech protocol 1: SCS series")
      .value("DYNAMIXEL", bus::Protocol::kDynamixel, "Dynamixel Protocol 2.0");
  module.def(
      "protocol_of",
      [](const std::string& vendor, int version) {
        return bus::protocol_of(vendor_of(vendor), version);
      },
      "vendor"_a, "version"_a,
      "The Protocol of LeRobot's (vendor, protocol number): ('feetech', 0 or 1), ('dynamixel', "
      "2).");
  module.def(
      "parse_protocol", [](const std::string& name) { return bus::parse_protocol(name); }, "name"_a,
      "'feetech', 'feetech_scs' or 'dynamixel' as a Protocol.");

  nb::class_<Register>(module, "Register", "One register of a servo's control table.")
      .def_prop_ro("name", [](const Register& reg) { return std::string(reg.name); })
      .def_ro("address", &Register::address)
      .def_ro("size", &Register::size)
      .def_ro("read_only", &Register::read_only)
      .def_prop_ro("sign", &sign_kind,
                   "'unsigned', 'sign_magnitude' (Feetech) or 'twos_complement' (Dynamixel)")
      .def_prop_ro("sign_bit", [](const Register& reg) { return reg.encoding.sign_bit; })
      .def("__repr__", [](const Register& reg) {
        return "Register('" + std::string(reg.name) + "', address=" + std::to_string(reg.address) +
               ", size=" + std::to_string(reg.size) + ", sign='" + sign_kind(reg) + "')";
      });

  nb::class_<ModelInfo>(module, "ModelInfo",
                        "A servo model: its control table, number, resolution and baud rates.")
      .def_prop_ro("name", [](const ModelInfo& model) { return std::string(model.name); })
      .def_prop_ro("vendor", [](const ModelInfo& model) { return vendor_name(model.vendor); })
      .def_ro("protocol", &ModelInfo::protocol)
      .def_ro("model_number", &ModelInfo::model_number)
      .def_ro("resolution", &ModelInfo::resolution)
      .def_ro("persistent_end", &ModelInfo::persistent_end,
              "Registers below this address are EEPROM.")
      .def_prop_ro(
          "registers",
          [](const ModelInfo& model) {
            nb::dict result;
            for (const Register& reg : model.registers)
              result[nb::str(reg.name.data(), reg.name.size())] =
                  nb::cast(reg, nb::rv_policy::reference);
            return result;
          },
          "{name: Register} in address order")
      .def_prop_ro(
          "baudrates",
          [](const ModelInfo& model) {
            nb::dict result;
            for (const bus::BaudRateCode& entry : model.baudrates)
              result[nb::int_(entry.baudrate)] = entry.code;
            return result;
          },
          "{baud rate: Baud_Rate register value}")
      .def_prop_ro("operating_modes",
                   [](const ModelInfo& model) {
                     return std::vector<int>(model.operating_modes.begin(),
                                             model.operating_modes.end());
                   })
      .def("__repr__", [](const ModelInfo& model) {
        return "ModelInfo('" + std::string(model.name) + "', vendor='" + vendor_name(model.vendor) +
               "', model_number=" + std::to_string(model.model_number) + ")";
      });

  module.def(
      "all_models",
      [] {
        nb::list result;
        for (const ModelInfo& model : bus::all_models())
          result.append(nb::cast(&model, nb::rv_policy::reference));
        return result;
      },
      "Every model in LeRobot's tables, series keys ('sts_series', 'x_series') included.");
  module.def(
      "find_model", [](std::string_view name) { return bus::find_model(name); }, "name"_a,
      nb::rv_policy::reference, "The model named `name`, or None.");
  module.def(
      "find_model_number",
      [](const std::string& vendor, int number) {
        return bus::find_model_number(vendor_of(vendor), static_cast<uint16_t>(number));
      },
      "vendor"_a, "model_number"_a, nb::rv_policy::reference);
  module.def(
      "scan_baudrates",
      [](const std::string& vendor) {
        std::span<const int> rates = bus::scan_baudrates(vendor_of(vendor));
        return std::vector<int>(rates.begin(), rates.end());
      },
      "vendor"_a, "Baud rates LeRobot scans when looking for motors.");

  nb::class_<ServoBus>(
      module, "ServoBus",
      "Transactions on a Feetech or Dynamixel bus over a serial port (or a simulator's pty).")
      .def(
          "__init__",
          [](ServoBus* self, const std::string& port, ProtocolArg protocol, int baudrate,
             double latency_margin_ms, int max_spin_us) {
            bus::BusOptions options;
            options.protocol = protocol_from(protocol);
            options.baudrate = baudrate;
            options.latency_margin_ms = latency_margin_ms;
            options.max_spin_us = max_spin_us;
            new (self) ServoBus(port, options);
          },
          "port"_a, "protocol"_a, "baudrate"_a = 1'000'000, "latency_margin_ms"_a = 10.0,
          "max_spin_us"_a = 100)
      .def("open", &ServoBus::open, nb::call_guard<nb::gil_scoped_release>())
      .def(
          "close",
          [](ServoBus& servo_bus) {
            require_unclaimed(servo_bus, "close");
            servo_bus.close();
          },
          "Closes the port (refused while a control loop drives the bus).")
      .def_prop_ro("claimed", &ServoBus::claimed, "Whether a running control loop drives the bus.")
      .def_prop_ro("is_open", &ServoBus::is_open)
      .def_prop_ro("port", &ServoBus::port_path)
      .def_prop_ro(
          "vendor",
          [](const ServoBus& servo_bus) { return vendor_name(servo_bus.options().vendor()); })
      .def_prop_ro("protocol",
                   [](const ServoBus& servo_bus) { return servo_bus.options().protocol; })
      .def_prop_rw("baudrate", &ServoBus::baudrate,
                   [](ServoBus& servo_bus, int baudrate) {
                     require_unclaimed(servo_bus, "set_baudrate");
                     servo_bus.set_baudrate(baudrate);
                   })
      .def_prop_ro(
          "max_spin_us", [](const ServoBus& servo_bus) { return servo_bus.options().max_spin_us; },
          "Replies that have been arriving within this many microseconds are awaited by polling.")
      .def_prop_ro("low_latency", &ServoBus::low_latency,
                   "Whether the serial driver accepted the low-latency flag (USB adapters).")
      .def_prop_ro("traffic", &traffic,
                   "Counters since open(): transactions, bytes, retries, timeouts.")
      .def("timeout_ms", &ServoBus::timeout_ms, "sent"_a, "received"_a, "replies"_a,
           "The deadline of a transaction of `sent` + `received` bytes from `replies` servos.")
      .def("ping", &ping, "id"_a, "retries"_a = 0, "(model_number, firmware) of motor `id`.")
      .def("read", &read, "id"_a, "register"_a, "retries"_a = 0,
           "A register of one motor, sign-decoded.")
      .def("write", &write, "id"_a, "register"_a, "value"_a, "retries"_a = 0,
           "Writes a (signed) value and waits for the status packet.")
      .def("reg_write", &reg_write, "id"_a, "register"_a, "value"_a, "retries"_a = 0,
           "Registers a value that the next ACTION applies (to start motors together).")
      .def("action", &action, "id"_a = 254, "retries"_a = 0,
           "Applies registered writes; to every motor by default (broadcast, no reply).")
      .def("bulk_read", &bulk_read, "ids"_a, "registers"_a, "retries"_a = 0,
           "Dynamixel BULK_READ: registers[i] of ids[i], one instruction; int64 values in order.")
      .def("sync_read", &sync_read, "ids"_a, "register"_a, "retries"_a = 0, "fast"_a = false,
           "A register of every motor in one instruction: int64 values in the order of `ids`.")
      .def("sync_write", &sync_write, "ids"_a, "register"_a, "values"_a,
           "One broadcast writing a value to every motor; no reply.")
      .def("broadcast_ping", &broadcast_ping, "window_ms"_a,
           "{id: model_number} of every motor answering.");
}

}  // namespace dexloop::bindings
