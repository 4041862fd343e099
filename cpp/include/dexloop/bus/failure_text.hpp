// What a failed transaction means, in words: one place for the texts every edge shows (the Python
// bus's exceptions, the control loop's fault reports), built outside the real-time path from the
// Result a transaction returned.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "dexloop/bus/control_table.hpp"
#include "dexloop/bus/status.hpp"

namespace dexloop::bus {

class ServoBus;

// Which exception class a failure stands for (dexloop.errors: BusTimeoutError, BusProtocolError,
// ServoError, BusError; kInvalidArgument: a ValueError, the caller's mistake).
enum class FailureKind : uint8_t { kNone, kTimeout, kProtocol, kServo, kPort, kInvalidArgument };

FailureKind failure_kind(Status status);

// The error bits of a status packet, named ("overheating, overload"; "unknown error" when none is
// known).
std::string servo_error_text(Vendor vendor, uint8_t error);

// "<vendor> bus <port>: <operation>: <what happened> ... after N tries": the whole message of a
// failed `result`. `operation` names what was attempted ("sync_read Present_Position").
std::string failure_text(const ServoBus& servo_bus, const Result& result,
                         std::string_view operation);

}  // namespace dexloop::bus
