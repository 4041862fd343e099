#include "dexloop/bus/dynamixel_protocol.hpp"

#include <array>
#include <cstring>

namespace dexloop::bus::dynamixel {
namespace {

constexpr std::array<uint16_t, 256> make_crc_table() {
  std::array<uint16_t, 256> table{};
  for (unsigned i = 0; i < 256; ++i) {
    uint16_t crc = static_cast<uint16_t>(i << 8);
    for (int bit = 0; bit < 8; ++bit)
      crc = (crc & 0x8000) ? static_cast<uint16_t>((crc << 1) ^ 0x8005)
                           : static_cast<uint16_t>(crc << 1);
    table[i] = crc;
  }
  return table;
}

constexpr std::array<uint16_t, 256> kCrcTable = make_crc_table();

// Appends `body` (INST and params) to `out` from `at`, inserting FD after every FF FF FD whose
// first two bytes may lie in the length field before it (the SDK looks back across that boundary).
// Returns the new position, or 0 when `out` is too small.
size_t stuff(std::span<const uint8_t> body, uint8_t before_1, uint8_t before_2,
             std::span<uint8_t> out, size_t at) {
  uint8_t previous_2 = before_2;
  uint8_t previous_1 = before_1;
  for (uint8_t byte : body) {
    if (at >= out.size()) return 0;
    out[at++] = byte;
    if (byte == 0xFD && previous_1 == 0xFF && previous_2 == 0xFF) {
      if (at >= out.size()) return 0;
      out[at++] = 0xFD;
    }
    previous_2 = previous_1;
    previous_1 = byte;
  }
  return at;
}

}  // namespace

uint16_t crc16(std::span<const uint8_t> data, uint16_t crc) {
  for (uint8_t byte : data) {
    const uint8_t index = static_cast<uint8_t>((crc >> 8) ^ byte);
    crc = static_cast<uint16_t>((crc << 8) ^ kCrcTable[index]);
  }
  return crc;
}

size_t encode(uint8_t id, uint8_t instruction, std::span<const uint8_t> params,
              std::span<uint8_t> out) {
  if (out.size() < kHeaderSize + 3 || params.size() + 1 > kMaxPacketSize) return 0;
  uint8_t body[kMaxPacketSize];
  body[0] = instruction;
  if (!params.empty()) std::memcpy(body + 1, params.data(), params.size());
  const size_t body_size = params.size() + 1;
  // The length field is needed before stuffing can look back into it: stuff once with the
  // unstuffed length (what the SDK does), then write the final length.
  const uint16_t unstuffed_length = static_cast<uint16_t>(body_size + 2);
  out[0] = 0xFF;
  out[1] = 0xFF;
  out[2] = 0xFD;
  out[3] = 0x00;
  out[4] = id;
  out[5] = static_cast<uint8_t>(unstuffed_length & 0xFF);
  out[6] = static_cast<uint8_t>(unstuffed_length >> 8);
  const std::span<uint8_t> limited = out.first(std::min(out.size(), kMaxPacketSize));
  size_t end =
      stuff(std::span<const uint8_t>(body, body_size), out[6], out[5], limited, kHeaderSize);
  if (end == 0 || end + 2 > limited.size()) return 0;
  const uint16_t length = static_cast<uint16_t>(end - kHeaderSize + 2);
  out[5] = static_cast<uint8_t>(length & 0xFF);
  out[6] = static_cast<uint8_t>(length >> 8);
  const uint16_t crc = crc16(out.first(end));
  out[end] = static_cast<uint8_t>(crc & 0xFF);
  out[end + 1] = static_cast<uint8_t>(crc >> 8);
  return end + 2;
}

size_t encode_status(uint8_t id, uint8_t error, std::span<const uint8_t> data,
                     std::span<uint8_t> out) {
  uint8_t params[kMaxPacketSize];
  if (data.size() + 1 > kMaxPacketSize) return 0;
  params[0] = error;
  if (!data.empty()) std::memcpy(params + 1, data.data(), data.size());
  return encode(id, kStatus, std::span<const uint8_t>(params, data.size() + 1), out);
}

size_t encode_sync_read(std::span<const uint8_t> ids, uint16_t address, uint16_t length, bool fast,
                        std::span<uint8_t> out) {
  uint8_t params[kMaxPacketSize];
  if (ids.size() + 4 > kMaxPacketSize) return 0;
  params[0] = static_cast<uint8_t>(address & 0xFF);
  params[1] = static_cast<uint8_t>(address >> 8);
  params[2] = static_cast<uint8_t>(length & 0xFF);
  params[3] = static_cast<uint8_t>(length >> 8);
  std::memcpy(params + 4, ids.data(), ids.size());
  return encode(kBroadcastId, fast ? kFastSyncRead : kSyncRead,
                std::span<const uint8_t>(params, ids.size() + 4), out);
}

size_t encode_sync_write(std::span<const uint8_t> ids, uint16_t address, uint16_t length,
                         std::span<const uint8_t> data, std::span<uint8_t> out) {
  uint8_t params[kMaxPacketSize];
  const size_t count = 4 + ids.size() * (1 + size_t{length});
  if (data.size() != ids.size() * length || count > kMaxPacketSize) return 0;
  params[0] = static_cast<uint8_t>(address & 0xFF);
  params[1] = static_cast<uint8_t>(address >> 8);
  params[2] = static_cast<uint8_t>(length & 0xFF);
  params[3] = static_cast<uint8_t>(length >> 8);
  size_t at = 4;
  for (size_t i = 0; i < ids.size(); ++i) {
    params[at++] = ids[i];
    std::memcpy(params + at, data.data() + i * length, length);
    at += length;
  }
  return encode(kBroadcastId, kSyncWrite, std::span<const uint8_t>(params, count), out);
}

size_t encode_bulk_read(std::span<const uint8_t> ids, std::span<const uint16_t> addresses,
                        std::span<const uint16_t> lengths, std::span<uint8_t> out) {
  uint8_t params[kMaxPacketSize];
  if (addresses.size() != ids.size() || lengths.size() != ids.size() ||
      5 * ids.size() > kMaxPacketSize) {
    return 0;
  }
  for (size_t i = 0; i < ids.size(); ++i) {
    params[5 * i] = ids[i];
    params[5 * i + 1] = static_cast<uint8_t>(addresses[i] & 0xFF);
    params[5 * i + 2] = static_cast<uint8_t>(addresses[i] >> 8);
    params[5 * i + 3] = static_cast<uint8_t>(lengths[i] & 0xFF);
    params[5 * i + 4] = static_cast<uint8_t>(lengths[i] >> 8);
  }
  return encode(kBroadcastId, kBulkRead, std::span<const uint8_t>(params, 5 * ids.size()), out);
}

Scan scan(std::span<const uint8_t> buffer, FrameKind kind, std::span<uint8_t> scratch) {
  Scan result;
  size_t start = 0;
  while (true) {
    // A header is FF FF FD not followed by FD (that would be stuffing inside a body).
    while (start + 3 < buffer.size() && !(buffer[start] == 0xFF && buffer[start + 1] == 0xFF &&
                                          buffer[start + 2] == 0xFD && buffer[start + 3] != 0xFD)) {
      ++start;
    }
    // The shortest instruction (PING, ACTION) has no params; a status has at least its error byte.
    const size_t minimum = kind == FrameKind::kInstruction ? kHeaderSize + 3 : kStatusOverhead;
    if (start + minimum > buffer.size()) {
      result.skip = start;
      return result;
    }
    const uint8_t id = buffer[start + 4];
    const size_t length = buffer[start + 5] | (size_t{buffer[start + 6]} << 8);
    const uint8_t instruction = buffer[start + 7];
    bool valid = buffer[start + 3] == 0x00 && length >= 3 && length <= kMaxPacketSize;
    switch (kind) {
      case FrameKind::kStatus:
        valid = valid && id <= kMaxId && instruction == kStatus && length >= 4;
        break;
      case FrameKind::kFastStatus:
        valid = valid && id == kBroadcastId && instruction == kStatus && length >= 4;
        break;
      case FrameKind::kInstruction:
        valid = valid && id <= kBroadcastId && instruction != kStatus;
        break;
    }
    if (!valid) {
      ++start;
      continue;
    }
    const size_t size = length + kHeaderSize;
    if (start + size > buffer.size()) {
      result.skip = start;
      return result;
    }
    result.skip = start;
    result.size = size;
    const std::span<const uint8_t> packet = buffer.subspan(start, size);
    const uint16_t wire_crc = packet[size - 2] | static_cast<uint16_t>(packet[size - 1] << 8);
    if (crc16(packet.first(size - 2)) != wire_crc) {
      result.outcome = Scan::kCorrupt;
      return result;
    }
    // Unstuff the params (after INST, before the CRC); fast replies are sent unstuffed.
    const std::span<const uint8_t> stuffed = packet.subspan(8, size - 10);
    size_t count = 0;
    if (kind == FrameKind::kFastStatus) {
      if (stuffed.size() > scratch.size()) {
        result.outcome = Scan::kCorrupt;
        return result;
      }
      std::memcpy(scratch.data(), stuffed.data(), stuffed.size());
      count = stuffed.size();
    } else {
      // Byte i of the body (INST at i = 0) is dropped when it is the second FD of FF FF FD FD.
      for (size_t i = 0; i < stuffed.size(); ++i) {
        const size_t at = 8 + i;  // position in the packet
        if (packet[at] == 0xFD && packet[at - 1] == 0xFD && packet[at - 2] == 0xFF &&
            packet[at - 3] == 0xFF) {
          continue;
        }
        if (count >= scratch.size()) {
          result.outcome = Scan::kCorrupt;
          return result;
        }
        scratch[count++] = packet[at];
      }
    }
    result.outcome = Scan::kFrame;
    result.frame = Frame{id, instruction, std::span<const uint8_t>(scratch.data(), count)};
    return result;
  }
}

}  // namespace dexloop::bus::dynamixel
