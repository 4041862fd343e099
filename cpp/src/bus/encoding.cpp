#include "dexloop/bus/encoding.hpp"

namespace dexloop::bus {

uint32_t load_unsigned(const uint8_t* bytes, size_t size, ByteOrder order) {
  uint32_t value = 0;
  for (size_t i = 0; i < size; ++i) {
    size_t index = order == ByteOrder::kLittle ? i : size - 1 - i;
    value |= static_cast<uint32_t>(bytes[index]) << (8 * i);
  }
  return value;
}

void store_unsigned(uint32_t value, uint8_t* bytes, size_t size, ByteOrder order) {
  for (size_t i = 0; i < size; ++i) {
    size_t index = order == ByteOrder::kLittle ? i : size - 1 - i;
    bytes[index] = static_cast<uint8_t>(value >> (8 * i));
  }
}

int64_t decode_signed(uint32_t raw, size_t size, SignEncoding encoding) {
  switch (encoding.kind) {
    case SignEncoding::kSignMagnitude: {
      const uint32_t sign = uint32_t{1} << encoding.sign_bit;
      const int64_t magnitude = raw & (sign - 1);
      return (raw & sign) ? -magnitude : magnitude;
    }
    case SignEncoding::kTwosComplement: {
      const int bits = static_cast<int>(8 * size);
      if (bits >= 32) return static_cast<int32_t>(raw);
      const uint32_t sign = uint32_t{1} << (bits - 1);
      return (raw & sign) ? static_cast<int64_t>(raw) - (int64_t{1} << bits)
                          : static_cast<int64_t>(raw);
    }
    case SignEncoding::kNone:
    default:
      return raw;
  }
}

std::optional<uint32_t> encode_signed(int64_t value, size_t size, SignEncoding encoding) {
  const int bits = static_cast<int>(8 * size);
  const int64_t unsigned_max = bits >= 32 ? int64_t{0xFFFFFFFF} : (int64_t{1} << bits) - 1;
  switch (encoding.kind) {
    case SignEncoding::kSignMagnitude: {
      const int64_t limit = (int64_t{1} << encoding.sign_bit) - 1;
      const int64_t magnitude = value < 0 ? -value : value;
      if (magnitude > limit) return std::nullopt;
      uint32_t raw = static_cast<uint32_t>(magnitude);
      if (value < 0) raw |= uint32_t{1} << encoding.sign_bit;
      return raw;
    }
    case SignEncoding::kTwosComplement: {
      const int64_t low = -(int64_t{1} << (bits - 1));
      const int64_t high = (int64_t{1} << (bits - 1)) - 1;
      if (value < low || value > high) return std::nullopt;
      return static_cast<uint32_t>(static_cast<uint64_t>(value) &
                                   static_cast<uint64_t>(unsigned_max));
    }
    case SignEncoding::kNone:
    default:
      if (value < 0 || value > unsigned_max) return std::nullopt;
      return static_cast<uint32_t>(value);
  }
}

}  // namespace dexloop::bus
