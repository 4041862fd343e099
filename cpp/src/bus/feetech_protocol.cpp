#include "dexloop/bus/feetech_protocol.hpp"

#include <cstring>

namespace dexloop::bus::feetech {

uint8_t checksum(std::span<const uint8_t> id_through_last_param) {
  unsigned sum = 0;
  for (uint8_t byte : id_through_last_param) sum += byte;
  return static_cast<uint8_t>(~sum & 0xFF);
}

size_t encode(uint8_t id, uint8_t code, std::span<const uint8_t> params, std::span<uint8_t> out) {
  const size_t size = params.size() + kStatusOverhead;
  if (size > kMaxPacketSize || size > out.size()) return 0;
  out[0] = 0xFF;
  out[1] = 0xFF;
  out[2] = id;
  out[3] = static_cast<uint8_t>(params.size() + 2);
  out[4] = code;
  if (!params.empty()) std::memcpy(&out[5], params.data(), params.size());
  out[size - 1] = checksum(out.subspan(2, size - 3));
  return size;
}

size_t encode_sync_read(std::span<const uint8_t> ids, uint8_t address, uint8_t length,
                        std::span<uint8_t> out) {
  uint8_t params[kMaxPacketSize];
  if (ids.size() + 2 > kMaxPacketSize - kStatusOverhead) return 0;
  params[0] = address;
  params[1] = length;
  std::memcpy(params + 2, ids.data(), ids.size());
  return encode(kBroadcastId, kSyncRead, std::span<const uint8_t>(params, ids.size() + 2), out);
}

size_t encode_sync_write(std::span<const uint8_t> ids, uint8_t address, uint8_t length,
                         std::span<const uint8_t> data, std::span<uint8_t> out) {
  uint8_t params[kMaxPacketSize];
  const size_t count = 2 + ids.size() * (1 + size_t{length});
  if (data.size() != ids.size() * length || count > kMaxPacketSize - kStatusOverhead) return 0;
  params[0] = address;
  params[1] = length;
  size_t at = 2;
  for (size_t i = 0; i < ids.size(); ++i) {
    params[at++] = ids[i];
    std::memcpy(params + at, data.data() + i * length, length);
    at += length;
  }
  return encode(kBroadcastId, kSyncWrite, std::span<const uint8_t>(params, count), out);
}

Scan scan(std::span<const uint8_t> buffer, FrameKind kind) {
  Scan result;
  size_t start = 0;
  while (true) {
    // Find the next FF FF from `start`.
    while (start + 1 < buffer.size() && !(buffer[start] == 0xFF && buffer[start + 1] == 0xFF))
      ++start;
    if (start + kStatusOverhead > buffer.size()) {
      // Bytes before `start` cannot begin a packet; from `start` on they may.
      result.skip = start;
      return result;
    }
    const uint8_t id = buffer[start + 2];
    const uint8_t length = buffer[start + 3];
    const uint8_t code = buffer[start + 4];
    const bool id_valid = kind == FrameKind::kStatus ? id <= 0xFD : id <= kBroadcastId;
    const bool code_valid = kind == FrameKind::kStatus ? code <= 0x7F : true;
    if (!id_valid || length < 2 || length > kMaxPacketSize || !code_valid) {
      ++start;  // not a packet start: drop one byte, as the SDK does
      continue;
    }
    const size_t size = size_t{length} + 4;
    if (start + size > buffer.size()) {
      result.skip = start;
      return result;
    }
    result.skip = start;
    result.size = size;
    const uint8_t expected = checksum(buffer.subspan(start + 2, size - 3));
    if (buffer[start + size - 1] != expected) {
      result.outcome = Scan::kCorrupt;
      return result;
    }
    result.outcome = Scan::kFrame;
    result.frame = Frame{id, code, buffer.subspan(start + 5, size - kStatusOverhead)};
    return result;
  }
}

}  // namespace dexloop::bus::feetech
