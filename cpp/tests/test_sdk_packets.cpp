// dexloop's ServoBus puts on the wire exactly the instruction packets the vendors' SDKs send for
// the same operations (vectors recorded from feetech-servo-sdk and dynamixel-sdk by
// tools/sdk_reference/record_sdk_packets.py into tests/data/bus/sdk_packets.txt).
#include <gtest/gtest.h>

#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "dexloop/bus/dynamixel_protocol.hpp"
#include "dexloop/bus/feetech_protocol.hpp"
#include "dexloop/bus/servo_bus.hpp"
#include "scripted_peer.hpp"

namespace dexloop::bus {
namespace {

struct Vector {
  std::string line;
  std::string bus;  // feetech0, feetech1, dynamixel2
  std::string operation;
  std::vector<std::string> arguments;
  Bytes packet;
};

std::vector<int> numbers(const std::string& list) {
  std::vector<int> out;
  std::stringstream stream(list);
  std::string item;
  while (std::getline(stream, item, ',')) out.push_back(std::stoi(item));
  return out;
}

std::vector<Vector> load_vectors() {
  std::ifstream file(DEXLOOP_TEST_DATA "/bus/sdk_packets.txt");
  std::vector<Vector> vectors;
  std::string line;
  while (std::getline(file, line)) {
    if (line.empty() || line[0] == '#') continue;
    Vector vector;
    vector.line = line;
    const size_t bar = line.find(" | ");
    std::stringstream words(line.substr(0, bar));
    words >> vector.bus >> vector.operation;
    std::string word;
    while (words >> word) vector.arguments.push_back(word);
    const std::string hex = line.substr(bar + 3);
    for (size_t i = 0; i + 1 < hex.size(); i += 2) {
      vector.packet.push_back(static_cast<uint8_t>(std::stoi(hex.substr(i, 2), nullptr, 16)));
    }
    vectors.push_back(vector);
  }
  return vectors;
}

// Answers every request as a healthy bus would, so that each operation completes.
Bytes healthy_reply(bool feetech_bus, const Bytes& request) {
  uint8_t out[512];
  Bytes replies;
  auto status = [&](uint8_t id, Bytes data) {
    size_t n = feetech_bus ? feetech::encode(id, 0, data, out)
                           : dynamixel::encode_status(id, 0, data, out);
    replies.insert(replies.end(), out, out + n);
  };
  if (feetech_bus) {
    const uint8_t id = request[2];
    const uint8_t instruction = request[4];
    if (instruction == feetech::kSyncRead) {
      for (size_t i = 7; i + 1 < request.size(); ++i) status(request[i], Bytes(request[6], 0));
    } else if (id != feetech::kBroadcastId) {
      status(id, instruction == feetech::kRead ? Bytes(request[6], 0) : Bytes{});
    }
    return replies;
  }
  const uint8_t id = request[4];
  const uint8_t instruction = request[7];
  if (instruction == dynamixel::kSyncRead) {
    for (size_t i = 12; i + 2 < request.size(); ++i) status(request[i], Bytes(request[10], 0));
  } else if (instruction == dynamixel::kFastSyncRead) {
    std::vector<std::pair<uint8_t, Bytes>> blocks;
    for (size_t i = 12; i + 2 < request.size(); ++i)
      blocks.emplace_back(request[i], Bytes(request[10], 0));
    return fast_sync_read_reply(blocks);
  } else if (id != dynamixel::kBroadcastId) {
    if (instruction == dynamixel::kPing)
      status(id, {0x0C, 0x04, 46});
    else if (instruction == dynamixel::kRead)
      status(id, Bytes(request[10], 0));
    else
      status(id, {});
  }
  return replies;
}

TEST(SdkPackets, EveryOperationSendsTheSdksBytes) {
  const std::vector<Vector> vectors = load_vectors();
  ASSERT_GT(vectors.size(), 40u);
  for (const Vector& vector : vectors) {
    const bool feetech_bus = vector.bus.rfind("feetech", 0) == 0;
    BusOptions options;
    options.protocol = bus::protocol_of(feetech_bus ? Vendor::kFeetech : Vendor::kDynamixel,
                                        vector.bus.back() - '0');
    ScriptedPeer peer(
        [&](int, const Bytes& request) { return healthy_reply(feetech_bus, request); });
    ServoBus servo_bus(peer.path(), options);
    servo_bus.open();
    const auto& args = vector.arguments;
    Result result;
    uint8_t buffer[512] = {};
    if (vector.operation == "ping") {
      result = servo_bus.ping(static_cast<uint8_t>(std::stoi(args[0])), 0, nullptr, nullptr);
    } else if (vector.operation == "read") {
      result = servo_bus.read(static_cast<uint8_t>(std::stoi(args[0])),
                              static_cast<uint16_t>(std::stoi(args[1])),
                              static_cast<uint16_t>(std::stoi(args[2])), buffer, 0);
    } else if (vector.operation == "write") {
      const size_t size = std::stoul(args[2]);
      store_unsigned(static_cast<uint32_t>(std::stoul(args[3])), buffer, size,
                     servo_bus.byte_order());
      result = servo_bus.write(static_cast<uint8_t>(std::stoi(args[0])),
                               static_cast<uint16_t>(std::stoi(args[1])),
                               std::span<const uint8_t>(buffer, size), 0);
    } else if (vector.operation == "sync_read" || vector.operation == "fast_sync_read") {
      std::vector<uint8_t> ids;
      for (int id : numbers(args[2])) ids.push_back(static_cast<uint8_t>(id));
      result = servo_bus.sync_read(ids, static_cast<uint16_t>(std::stoi(args[0])),
                                   static_cast<uint16_t>(std::stoi(args[1])), buffer, nullptr, 0,
                                   vector.operation == "fast_sync_read");
    } else if (vector.operation == "sync_write") {
      const size_t size = std::stoul(args[1]);
      std::vector<uint8_t> ids;
      for (int id : numbers(args[2])) ids.push_back(static_cast<uint8_t>(id));
      std::stringstream values(args[3]);
      std::string value;
      size_t i = 0;
      while (std::getline(values, value, ',')) {
        store_unsigned(static_cast<uint32_t>(std::stoul(value)), buffer + size * i++, size,
                       servo_bus.byte_order());
      }
      result = servo_bus.sync_write(ids, static_cast<uint16_t>(std::stoi(args[0])),
                                    static_cast<uint16_t>(size),
                                    std::span<const uint8_t>(buffer, ids.size() * size));
      for (int wait = 0; wait < 200 && peer.requests() == 0; ++wait) usleep(1000);
    } else {
      ADD_FAILURE() << "unknown operation in " << vector.line;
      continue;
    }
    EXPECT_TRUE(result.ok()) << vector.line << ": " << status_name(result.status);
    const std::vector<Bytes> sent = peer.all_requests();
    ASSERT_FALSE(sent.empty()) << vector.line;
    EXPECT_EQ(sent.front(), vector.packet) << vector.line;
  }
}

}  // namespace
}  // namespace dexloop::bus
