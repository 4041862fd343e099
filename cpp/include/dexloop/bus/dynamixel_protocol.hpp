// Dynamixel Protocol 2.0 packets: FF FF FD 00 | ID | LEN_L LEN_H | INST | params | CRC_L CRC_H,
// with LEN = stuffed(INST + params) + 2, byte stuffing (FF FF FD -> FF FF FD FD from INST on) and
// CRC-16 (polynomial 0x8005, MSB first, initial 0) over everything before the CRC. Status packets
// carry INST 0x55 and an error byte first. Parsing follows the ROBOTIS SDK's receiver.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>

namespace dexloop::bus::dynamixel {

constexpr uint8_t kBroadcastId = 0xFE;
constexpr uint8_t kMaxId = 0xFC;
constexpr size_t kMaxPacketSize = 1024;
constexpr size_t kHeaderSize = 7;       // FF FF FD 00 ID LEN_L LEN_H
constexpr size_t kStatusOverhead = 11;  // header, 0x55, ERR, CRC(2)

enum Instruction : uint8_t {
  kPing = 0x01,
  kRead = 0x02,
  kWrite = 0x03,
  kRegWrite = 0x04,
  kAction = 0x05,
  kFactoryReset = 0x06,
  kReboot = 0x08,
  kClear = 0x10,
  kStatus = 0x55,
  kSyncRead = 0x82,
  kSyncWrite = 0x83,
  kFastSyncRead = 0x8A,
  kBulkRead = 0x92,
  kBulkWrite = 0x93,
  kFastBulkRead = 0x9A,
};

// Status error byte: bit 7 is the hardware alert, the low 7 bits an error number.
constexpr uint8_t kErrorAlert = 0x80;
enum ErrorNumber : uint8_t {
  kErrorResultFail = 1,
  kErrorInstruction = 2,
  kErrorCrc = 3,
  kErrorDataRange = 4,
  kErrorDataLength = 5,
  kErrorDataLimit = 6,
  kErrorAccess = 7,
};

uint16_t crc16(std::span<const uint8_t> data, uint16_t crc = 0);

// Writes a stuffed packet with its CRC into `out`; returns its size, 0 when it does not fit.
size_t encode(uint8_t id, uint8_t instruction, std::span<const uint8_t> params,
              std::span<uint8_t> out);
// A status packet: instruction 0x55, then `error`, then `data`.
size_t encode_status(uint8_t id, uint8_t error, std::span<const uint8_t> data,
                     std::span<uint8_t> out);

// SYNC_READ (or FAST_SYNC_READ with `fast`) of `length` bytes at `address` from `ids`.
size_t encode_sync_read(std::span<const uint8_t> ids, uint16_t address, uint16_t length, bool fast,
                        std::span<uint8_t> out);
// SYNC_WRITE: `data` holds ids.size() blocks of `length` bytes in the order of `ids`.
size_t encode_sync_write(std::span<const uint8_t> ids, uint16_t address, uint16_t length,
                         std::span<const uint8_t> data, std::span<uint8_t> out);
// BULK_READ: for each i, `lengths[i]` bytes at `addresses[i]` of `ids[i]`.
size_t encode_bulk_read(std::span<const uint8_t> ids, std::span<const uint16_t> addresses,
                        std::span<const uint16_t> lengths, std::span<uint8_t> out);

enum class FrameKind : uint8_t {
  kStatus,       // INST 0x55 from one servo (id <= 0xFC)
  kFastStatus,   // the combined FAST_SYNC_READ / FAST_BULK_READ reply (id 0xFE, not stuffed)
  kInstruction,  // anything a host sends (for simulators)
};

struct Frame {
  uint8_t id = 0;
  uint8_t instruction = 0;
  // Unstuffed bytes after INST and before the CRC (for a status: the error byte, then the data).
  std::span<const uint8_t> params;
};

struct Scan {
  enum Outcome : uint8_t { kNeedMore, kFrame, kCorrupt } outcome = kNeedMore;
  size_t skip = 0;  // leading bytes that cannot start a packet
  size_t size = 0;  // packet size on the wire, for kFrame and kCorrupt
  Frame frame;
};

// Finds the first packet of `kind` in `buffer`; a frame's params are unstuffed into `scratch`
// (at least kMaxPacketSize bytes), which they then view.
Scan scan(std::span<const uint8_t> buffer, FrameKind kind, std::span<uint8_t> scratch);

}  // namespace dexloop::bus::dynamixel
