// Byte order and sign encodings of servo registers.
//
// Feetech STS/SMS registers hold signed values as sign-magnitude with a per-register sign bit (bit
// 15 for positions and speeds, 11 for Homing_Offset, 10 for Present_Load); Dynamixel X registers
// use two's complement of the register width. Feetech protocol 0 (STS/SMS) and Dynamixel are
// little-endian, Feetech protocol 1 (SCS) big-endian.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>

namespace dexloop::bus {

enum class ByteOrder : uint8_t { kLittle, kBig };

// Reads / writes an unsigned value of `size` (1, 2 or 4) bytes.
uint32_t load_unsigned(const uint8_t* bytes, size_t size, ByteOrder order);
void store_unsigned(uint32_t value, uint8_t* bytes, size_t size, ByteOrder order);

// How a register's raw unsigned bits map to a signed value.
struct SignEncoding {
  enum Kind : uint8_t { kNone, kSignMagnitude, kTwosComplement } kind = kNone;
  uint8_t sign_bit = 0;  // for kSignMagnitude: index of the sign bit
};

// Raw register bits to the signed value they stand for (unchanged for kNone).
int64_t decode_signed(uint32_t raw, size_t size, SignEncoding encoding);

// A value to raw register bits; nullopt when the value does not fit (|v| > 2^bit - 1 for
// sign-magnitude, outside the width for two's complement, negative or too large for kNone).
std::optional<uint32_t> encode_signed(int64_t value, size_t size, SignEncoding encoding);

}  // namespace dexloop::bus
