// Feetech SCS/STS packets: FF FF | ID | LEN | INST/ERR | params | CHK, with LEN = params + 2 and
// CHK = ~(ID + LEN + INST + params) & 0xFF. Encoders write into caller buffers and parsers read
// views, so a transaction allocates nothing. Parsing follows the Feetech SDK's receiver: a
// candidate header whose id, length or error byte is out of range is skipped one byte at a time.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>

namespace dexloop::bus::feetech {

constexpr uint8_t kBroadcastId = 0xFE;
constexpr uint8_t kMaxId = 0xFC;
constexpr size_t kMaxPacketSize = 250;
constexpr size_t kStatusOverhead = 6;  // FF FF ID LEN ERR CHK

enum Instruction : uint8_t {
  kPing = 0x01,
  kRead = 0x02,
  kWrite = 0x03,
  kRegWrite = 0x04,
  kAction = 0x05,
  kSyncRead = 0x82,
  kSyncWrite = 0x83,
};

// Bits of a status packet's error byte.
enum ErrorBit : uint8_t {
  kErrorVoltage = 1,
  kErrorAngleSensor = 2,
  kErrorOverheat = 4,
  kErrorOverCurrent = 8,
  kErrorOverload = 32,
};

uint8_t checksum(std::span<const uint8_t> id_through_last_param);

// Writes a packet (an instruction, or with `code` = error byte, a status) into `out`; returns its
// size, or 0 when it exceeds kMaxPacketSize or `out`.
size_t encode(uint8_t id, uint8_t code, std::span<const uint8_t> params, std::span<uint8_t> out);

// SYNC_READ of `length` bytes at `address` from `ids`, addressed to the broadcast id.
size_t encode_sync_read(std::span<const uint8_t> ids, uint8_t address, uint8_t length,
                        std::span<uint8_t> out);
// SYNC_WRITE: `data` holds ids.size() blocks of `length` bytes, in the order of `ids`.
size_t encode_sync_write(std::span<const uint8_t> ids, uint8_t address, uint8_t length,
                         std::span<const uint8_t> data, std::span<uint8_t> out);

enum class FrameKind : uint8_t { kStatus, kInstruction };

struct Frame {
  uint8_t id = 0;
  uint8_t code = 0;  // error byte of a status, instruction of an instruction packet
  std::span<const uint8_t> params;
};

struct Scan {
  enum Outcome : uint8_t {
    kNeedMore,  // no complete packet yet; `skip` leading bytes can be dropped
    kFrame,     // a valid packet at [skip, skip + size)
    kCorrupt,   // a complete packet at [skip, skip + size) whose checksum is wrong
  } outcome = kNeedMore;
  size_t skip = 0;
  size_t size = 0;
  Frame frame;
};

// Finds the first packet of `kind` in `buffer`.
Scan scan(std::span<const uint8_t> buffer, FrameKind kind);

}  // namespace dexloop::bus::feetech
