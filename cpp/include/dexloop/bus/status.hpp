// Outcome of one bus transaction. Real-time paths return these values (no exceptions, no
// allocation); the Python edge turns them into typed exceptions (BusTimeoutError, BusProtocolError,
// ServoError).
#pragma once

#include <cstdint>

namespace dexloop::bus {

enum class Status : uint8_t {
  kOk = 0,
  kTimeout,       // no complete reply before the deadline (or a later motor's reply came first)
  kCorrupt,       // a reply whose checksum / CRC does not match, or a truncated one
  kWrongId,       // a reply from an id the request did not address, or a second one
  kBadLength,     // a reply whose length does not fit the request
  kServoError,    // the reply carried servo error bits
  kPortError,     // reading or writing the serial port failed
  kTxError,       // the instruction cannot be built (too long, invalid id or length)
  kResyncFailed,  // after an earlier failure, the fence that proves no late reply is still on its
                  // way got no answer in time, so no new transaction was started
  kValueOutOfRange,  // a value does not fit its register (register_io.hpp); nothing was sent
};

const char* status_name(Status status);

// A transaction's result: the status, and for failures the motor concerned and its error byte.
struct Result {
  Status status = Status::kOk;
  uint8_t id = 0;           // the motor the status is about (0 when not specific)
  uint8_t servo_error = 0;  // the status packet's error byte (kServoError; kBadLength: any)
  uint8_t attempts = 0;     // tries made, retries included

  bool ok() const { return status == Status::kOk; }
};

}  // namespace dexloop::bus
