#include "dexloop/bus/register_io.hpp"

#include <optional>

namespace dexloop::bus {
namespace {

// A register image per motor, the largest a transaction carries.
constexpr size_t kMaxBatchBytes = ServoBus::kMaxMotors * 4;

bool batch_size_ok(size_t count) { return count > 0 && count <= ServoBus::kMaxMotors; }

using ByteWrite = Result (ServoBus::*)(uint8_t, uint16_t, std::span<const uint8_t>, int);

template <ByteWrite kSend>
Result send_value(ServoBus& bus, uint8_t id, const Register& reg, int64_t value, int retries) {
  uint8_t bytes[4] = {};
  if (encode_values(reg, bus.byte_order(), std::span<const int64_t>(&value, 1), bytes) != kAllFit)
    return {Status::kValueOutOfRange, id};
  return (bus.*kSend)(id, reg.address, std::span<const uint8_t>(bytes, reg.size), retries);
}

}  // namespace

size_t encode_values(const Register& reg, ByteOrder order, std::span<const int64_t> values,
                     uint8_t* out) {
  for (size_t i = 0; i < values.size(); ++i) {
    const std::optional<uint32_t> bits = encode_signed(values[i], reg.size, reg.encoding);
    if (!bits) return i;
    store_unsigned(*bits, out + i * reg.size, reg.size, order);
  }
  return kAllFit;
}

void decode_values(const Register& reg, ByteOrder order, const uint8_t* raw,
                   std::span<int64_t> values) {
  for (size_t i = 0; i < values.size(); ++i) {
    values[i] =
        decode_signed(load_unsigned(raw + i * reg.size, reg.size, order), reg.size, reg.encoding);
  }
}

void decode_values(std::span<const Register* const> registers, ByteOrder order, const uint8_t* raw,
                   std::span<int64_t> values) {
  size_t at = 0;
  for (size_t i = 0; i < values.size() && i < registers.size(); ++i) {
    const Register& reg = *registers[i];
    values[i] = decode_signed(load_unsigned(raw + at, reg.size, order), reg.size, reg.encoding);
    at += reg.size;
  }
}

std::string value_range_text(const Register& reg, int64_t value) {
  std::string text = "value " + std::to_string(value) + " does not fit register " +
                     std::string(reg.name) + " (" + std::to_string(reg.size) +
                     (reg.size == 1 ? " byte" : " bytes");
  switch (reg.encoding.kind) {
    case SignEncoding::kSignMagnitude:
      text += ", sign bit " + std::to_string(reg.encoding.sign_bit);
      break;
    case SignEncoding::kTwosComplement:
      text += ", two's complement";
      break;
    default:
      text += ", unsigned";
      break;
  }
  return text + ")";
}

Result read_value(ServoBus& bus, uint8_t id, const Register& reg, int64_t* value, int retries) {
  uint8_t bytes[4] = {};
  const Result result = bus.read(id, reg.address, reg.size, bytes, retries);
  if (result.ok()) decode_values(reg, bus.byte_order(), bytes, std::span<int64_t>(value, 1));
  return result;
}

Result write_value(ServoBus& bus, uint8_t id, const Register& reg, int64_t value, int retries) {
  return send_value<&ServoBus::write>(bus, id, reg, value, retries);
}

Result reg_write_value(ServoBus& bus, uint8_t id, const Register& reg, int64_t value, int retries) {
  return send_value<&ServoBus::reg_write>(bus, id, reg, value, retries);
}

Result sync_read_values(ServoBus& bus, std::span<const uint8_t> ids, const Register& reg,
                        std::span<int64_t> values, int retries, bool fast) {
  if (!batch_size_ok(ids.size()) || values.size() != ids.size()) return {Status::kTxError};
  uint8_t raw[kMaxBatchBytes];
  const Result result = bus.sync_read(ids, reg.address, reg.size, raw, nullptr, retries, fast);
  if (result.ok()) decode_values(reg, bus.byte_order(), raw, values);
  return result;
}

Result sync_write_values(ServoBus& bus, std::span<const uint8_t> ids, const Register& reg,
                         std::span<const int64_t> values, size_t* refused) {
  if (!batch_size_ok(ids.size()) || values.size() != ids.size()) return {Status::kTxError};
  uint8_t raw[kMaxBatchBytes];
  const size_t misfit = encode_values(reg, bus.byte_order(), values, raw);
  if (misfit != kAllFit) {
    if (refused != nullptr) *refused = misfit;
    return {Status::kValueOutOfRange, ids[misfit]};
  }
  return bus.sync_write(ids, reg.address, reg.size,
                        std::span<const uint8_t>(raw, ids.size() * reg.size));
}

Result bulk_read_values(ServoBus& bus, std::span<const uint8_t> ids,
                        std::span<const Register* const> registers, std::span<int64_t> values,
                        int retries) {
  const size_t count = ids.size();
  if (!batch_size_ok(count) || registers.size() != count || values.size() != count)
    return {Status::kTxError};
  uint16_t addresses[ServoBus::kMaxMotors];
  uint16_t sizes[ServoBus::kMaxMotors];
  for (size_t i = 0; i < count; ++i) {
    addresses[i] = registers[i]->address;
    sizes[i] = registers[i]->size;
  }
  uint8_t raw[kMaxBatchBytes];
  const Result result =
      bus.bulk_read(ids, std::span<const uint16_t>(addresses, count),
                    std::span<const uint16_t>(sizes, count), raw, nullptr, retries);
  if (result.ok()) decode_values(registers, bus.byte_order(), raw, values);
  return result;
}

}  // namespace dexloop::bus
