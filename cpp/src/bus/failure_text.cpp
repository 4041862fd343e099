#include "dexloop/bus/failure_text.hpp"

#include <cstdio>

#include "dexloop/bus/dynamixel_protocol.hpp"
#include "dexloop/bus/feetech_protocol.hpp"
#include "dexloop/bus/servo_bus.hpp"

namespace dexloop::bus {
namespace {

const char* vendor_name(Vendor vendor) {
  return vendor == Vendor::kFeetech ? "feetech" : "dynamixel";
}

}  // namespace

FailureKind failure_kind(Status status) {
  switch (status) {
    case Status::kOk:
      return FailureKind::kNone;
    case Status::kTimeout:
    case Status::kResyncFailed:
      return FailureKind::kTimeout;
    case Status::kCorrupt:
    case Status::kWrongId:
    case Status::kBadLength:
      return FailureKind::kProtocol;
    case Status::kServoError:
      return FailureKind::kServo;
    case Status::kPortError:
      return FailureKind::kPort;
    case Status::kTxError:
    case Status::kValueOutOfRange:
      return FailureKind::kInvalidArgument;
  }
  return FailureKind::kPort;
}

std::string servo_error_text(Vendor vendor, uint8_t error) {
  std::string text;
  auto add = [&](const char* name) { text += text.empty() ? name : std::string(", ") + name; };
  if (vendor == Vendor::kFeetech) {
    if (error & feetech::kErrorVoltage) add("input voltage");
    if (error & feetech::kErrorAngleSensor) add("angle sensor");
    if (error & feetech::kErrorOverheat) add("overheating");
    if (error & feetech::kErrorOverCurrent) add("over-current");
    if (error & feetech::kErrorOverload) add("overload");
  } else {
    static const char* numbers[] = {"",           "result fail", "instruction error",
                                    "CRC error",  "data range",  "data length",
                                    "data limit", "access error"};
    if ((error & 0x7F) != 0 && (error & 0x7F) < 8) add(numbers[error & 0x7F]);
    if (error & dynamixel::kErrorAlert) add("hardware alert (see Hardware_Error_Status)");
  }
  return text.empty() ? "unknown error" : text;
}

std::string failure_text(const ServoBus& servo_bus, const Result& result,
                         std::string_view operation) {
  const Vendor vendor = servo_bus.options().vendor();
  const std::string where = std::string(vendor_name(vendor)) + " bus " + servo_bus.port_path() +
                            ": " + std::string(operation);
  const std::string tries =
      " after " + std::to_string(result.attempts) + (result.attempts == 1 ? " try" : " tries");
  const std::string motor = " motor " + std::to_string(result.id);
  switch (result.status) {
    case Status::kOk:
      return where + ": ok";
    case Status::kTimeout: {
      char margin[32];
      std::snprintf(margin, sizeof(margin), "%g", servo_bus.options().latency_margin_ms);
      return where + ": no status packet from" + motor + tries + " (deadline " + margin +
             " ms beyond the wire time)";
    }
    case Status::kCorrupt:
      return where + ": corrupt status packet (checksum or truncation) while waiting for" + motor +
             tries;
    case Status::kWrongId:
      return where + ": a reply from another id came while waiting for" + motor + tries;
    case Status::kBadLength:
      return where + ": status packet of" + motor + " has the wrong length" +
             (result.servo_error != 0
                  ? " and reports " + servo_error_text(vendor, result.servo_error)
                  : std::string()) +
             tries;
    case Status::kServoError: {
      char hex[3];
      std::snprintf(hex, sizeof(hex), "%02X", result.servo_error);
      return where + ":" + motor + " reports " + servo_error_text(vendor, result.servo_error) +
             " (error byte 0x" + hex + ")";
    }
    case Status::kPortError:
      return where + ": the serial port failed (unplugged, or not open)";
    case Status::kTxError:
      return where + ": invalid arguments for the instruction";
    case Status::kValueOutOfRange:
      return where + ": the value for" + motor + " does not fit the register (nothing was sent)";
    case Status::kResyncFailed:
      return where + ": the line could not be resynchronised after an earlier failure" +
             " (no answer from" + motor + " to the fence read" + tries +
             "; replies to an abandoned transaction may still be arriving)";
  }
  return where + ": unknown failure";
}

}  // namespace dexloop::bus
