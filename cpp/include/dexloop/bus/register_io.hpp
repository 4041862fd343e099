// Register values on a servo bus: the signed values a control table's registers stand for, read and
// written through ServoBus's byte-level transactions. The one place where values become register
// bytes (sign encoding with its range check, the bus's byte order) and back, for one motor or a
// whole sync/bulk batch; the Python bus, the control loop and the simulator's tests all go through
// it. Like ServoBus, nothing here allocates or throws: a value that does not fit its register is a
// status (kValueOutOfRange naming the motor), and nothing is sent.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>

#include "dexloop/bus/control_table.hpp"
#include "dexloop/bus/encoding.hpp"
#include "dexloop/bus/servo_bus.hpp"
#include "dexloop/bus/status.hpp"

namespace dexloop::bus {

// Index returned by encode_values when every value fits.
inline constexpr size_t kAllFit = static_cast<size_t>(-1);

// values[i] as `reg`'s bytes at out + i * reg.size, in `order`. Returns the index of the first
// value that does not fit the register (out is then partly written), or kAllFit.
size_t encode_values(const Register& reg, ByteOrder order, std::span<const int64_t> values,
                     uint8_t* out);

// The signed values of values.size() consecutive `reg` register images at `raw`.
void decode_values(const Register& reg, ByteOrder order, const uint8_t* raw,
                   std::span<int64_t> values);

// The signed values of consecutive images of registers[i] (each its own size) at `raw`: a
// BULK_READ's reply data.
void decode_values(std::span<const Register* const> registers, ByteOrder order, const uint8_t* raw,
                   std::span<int64_t> values);

// "value 5000 does not fit register Goal_Position (2 bytes, sign bit 15)": why encode_values
// refused.
std::string value_range_text(const Register& reg, int64_t value);

// Transactions in register values. Batches take 1 to ServoBus::kMaxMotors ids (kTxError otherwise,
// as for a values span of another length).
Result read_value(ServoBus& bus, uint8_t id, const Register& reg, int64_t* value, int retries);
Result write_value(ServoBus& bus, uint8_t id, const Register& reg, int64_t value, int retries);
// REG_WRITE of a value: the servo applies it at the next ACTION.
Result reg_write_value(ServoBus& bus, uint8_t id, const Register& reg, int64_t value, int retries);
// `reg` of every id, in the order of `ids`.
Result sync_read_values(ServoBus& bus, std::span<const uint8_t> ids, const Register& reg,
                        std::span<int64_t> values, int retries, bool fast = false);
// One SYNC_WRITE of values[i] to ids[i]: nothing is sent unless every value fits. When one does
// not (kValueOutOfRange, naming its motor), its index is stored at `refused` if given.
Result sync_write_values(ServoBus& bus, std::span<const uint8_t> ids, const Register& reg,
                         std::span<const int64_t> values, size_t* refused = nullptr);
// Dynamixel BULK_READ of registers[i] of ids[i].
Result bulk_read_values(ServoBus& bus, std::span<const uint8_t> ids,
                        std::span<const Register* const> registers, std::span<int64_t> values,
                        int retries);

}  // namespace dexloop::bus
