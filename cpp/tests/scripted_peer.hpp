// The far end of a pty for bus tests: answers each request a driver sends according to a script.
#pragma once

#include <fcntl.h>
#include <poll.h>
#include <stdlib.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <functional>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "dexloop/bus/dynamixel_protocol.hpp"
#include "dexloop/bus/feetech_protocol.hpp"

namespace dexloop::bus {

using Bytes = std::vector<uint8_t>;
// Given the n-th request (0-based) and its bytes, the bytes to answer with (empty: stay silent).
using Script = std::function<Bytes(int, const Bytes&)>;

class ScriptedPeer {
 public:
  explicit ScriptedPeer(Script script) : script_(std::move(script)) {
    master_ = posix_openpt(O_RDWR | O_NOCTTY);
    if (master_ < 0 || grantpt(master_) != 0 || unlockpt(master_) != 0)
      throw std::runtime_error("no pty");
    path_ = ptsname(master_);
    thread_ = std::thread([this] { serve(); });
  }
  ~ScriptedPeer() {
    stop_ = true;
    thread_.join();
    close(master_);
  }
  const std::string& path() const { return path_; }
  int requests() const { return requests_.load(); }
  Bytes last_request() {
    std::lock_guard lock(mutex_);
    return log_.empty() ? Bytes{} : log_.back();
  }
  std::vector<Bytes> all_requests() {
    std::lock_guard lock(mutex_);
    return log_;
  }

 private:
  void serve() {
    uint8_t buffer[2048];
    while (!stop_) {
      struct pollfd waiting {
        master_, POLLIN, 0
      };
      if (poll(&waiting, 1, 5) <= 0 || !(waiting.revents & POLLIN)) continue;
      ssize_t n = read(master_, buffer, sizeof(buffer));
      if (n <= 0) continue;
      // A request arrives in one write; give it a moment to be complete.
      Bytes received(buffer, buffer + n);
      while (poll(&waiting, 1, 1) > 0 && (waiting.revents & POLLIN)) {
        n = read(master_, buffer, sizeof(buffer));
        if (n <= 0) break;
        received.insert(received.end(), buffer, buffer + n);
      }
      // Requests the driver sent while the script was busy arrive together: answer each.
      for (const Bytes& request : split_packets(received)) {
        {
          std::lock_guard lock(mutex_);
          log_.push_back(request);
        }
        Bytes reply = script_(requests_++, request);
        if (!reply.empty()) (void)!write(master_, reply.data(), reply.size());
      }
    }
  }

  // Cuts bytes into instruction packets by their length fields (Dynamixel 2.0: FF FF FD 00 ID
  // LEN_L LEN_H ...; Feetech: FF FF ID LEN ...); anything else stays one piece.
  static std::vector<Bytes> split_packets(const Bytes& bytes) {
    std::vector<Bytes> packets;
    size_t at = 0;
    while (at < bytes.size()) {
      const size_t left = bytes.size() - at;
      size_t size = left;
      if (left >= 7 && bytes[at] == 0xFF && bytes[at + 1] == 0xFF && bytes[at + 2] == 0xFD &&
          bytes[at + 3] == 0x00) {
        size = 7 + (bytes[at + 5] | (bytes[at + 6] << 8));
      } else if (left >= 4 && bytes[at] == 0xFF && bytes[at + 1] == 0xFF) {
        size = 4 + bytes[at + 3];
      }
      size = std::min(size, left);
      packets.emplace_back(bytes.begin() + static_cast<long>(at),
                           bytes.begin() + static_cast<long>(at + size));
      at += size;
    }
    return packets;
  }

  Script script_;
  int master_ = -1;
  std::string path_;
  std::thread thread_;
  std::atomic<bool> stop_{false};
  std::atomic<int> requests_{0};
  std::mutex mutex_;
  std::vector<Bytes> log_;
};

// A Feetech READ instruction's id, address and length, when `request` is one.
struct FeetechRead {
  uint8_t id = 0;
  uint8_t address = 0;
  uint8_t length = 0;
};
inline std::optional<FeetechRead> feetech_read(const Bytes& request) {
  if (request.size() != 8 || request[0] != 0xFF || request[1] != 0xFF || request[4] != 0x02)
    return std::nullopt;
  return FeetechRead{request[2], request[5], request[6]};
}

// The driver's resynchronising READ (from address 0) after a failed transaction.
inline bool is_fence(const Bytes& request) {
  const auto read = feetech_read(request);
  return read && read->address == 0;
}

// A Feetech status answering a READ with `length` bytes of `fill`.
inline Bytes answer_read(const Bytes& request, uint8_t fill = 0) {
  const auto read = feetech_read(request);
  if (!read) return {};
  Bytes params(read->length, fill);
  uint8_t out[300];
  return Bytes(out, out + feetech::encode(read->id, 0, params, out));
}

// A Dynamixel FAST_SYNC_READ status packet, built by hand from the protocol's description rather
// than by the encoder under test: id 0xFE, then per motor its error byte, id and data, each block
// but the last followed by the CRC of everything before it; no byte stuffing.
inline Bytes fast_sync_read_reply(const std::vector<std::pair<uint8_t, Bytes>>& blocks) {
  Bytes packet = {0xFF, 0xFF, 0xFD, 0x00, 0xFE, 0x00, 0x00, 0x55};
  auto append_crc = [&packet] {
    const uint16_t crc = dynamixel::crc16(packet);
    packet.push_back(static_cast<uint8_t>(crc & 0xFF));
    packet.push_back(static_cast<uint8_t>(crc >> 8));
  };
  for (size_t k = 0; k < blocks.size(); ++k) {
    packet.push_back(0);
    packet.push_back(blocks[k].first);
    packet.insert(packet.end(), blocks[k].second.begin(), blocks[k].second.end());
    if (k + 1 < blocks.size()) append_crc();
  }
  const size_t length = packet.size() - 5;  // from the instruction byte, CRC included
  packet[5] = static_cast<uint8_t>(length & 0xFF);
  packet[6] = static_cast<uint8_t>(length >> 8);
  append_crc();
  return packet;
}

}  // namespace dexloop::bus
