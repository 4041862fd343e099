// ServoBus against a scripted peer on a pty: exact request bytes, reply handling, deadlines,
// retries and every failure status.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <stdlib.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

#include "dexloop/bus/dynamixel_protocol.hpp"
#include "dexloop/bus/feetech_protocol.hpp"
#include "dexloop/bus/servo_bus.hpp"
#include "dexloop/error.hpp"
#include "scripted_peer.hpp"

namespace dexloop::bus {
namespace {

Bytes feetech_status(uint8_t id, uint8_t error, Bytes data) {
  uint8_t out[64];
  return Bytes(out, out + feetech::encode(id, error, data, out));
}

Bytes dynamixel_status(uint8_t id, uint8_t error, Bytes data) {
  uint8_t out[256];
  return Bytes(out, out + dynamixel::encode_status(id, error, data, out));
}

BusOptions feetech_options(double margin_ms = 5.0) {
  BusOptions options;
  options.protocol = bus::Protocol::kFeetech;
  options.latency_margin_ms = margin_ms;
  return options;
}

BusOptions dynamixel_options(double margin_ms = 5.0) {
  BusOptions options;
  options.protocol = bus::Protocol::kDynamixel;
  options.latency_margin_ms = margin_ms;
  return options;
}

double elapsed_ms(std::chrono::steady_clock::time_point since) {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - since)
      .count();
}

TEST(ServoBus, FeetechReadSendsTheSdkBytesAndDecodesTheReply) {
  ScriptedPeer peer([](int, const Bytes&) { return feetech_status(3, 0, {0x38, 0x08}); });
  ServoBus servo_bus(peer.path(), feetech_options());
  servo_bus.open();
  uint8_t value[2];
  Result result = servo_bus.read(3, 56, 2, value, 0);
  ASSERT_TRUE(result.ok()) << status_name(result.status);
  EXPECT_EQ(load_unsigned(value, 2, ByteOrder::kLittle), 0x0838u);
  EXPECT_EQ(peer.last_request(), (Bytes{0xFF, 0xFF, 0x03, 0x04, 0x02, 0x38, 0x02, 0xBC}));
  EXPECT_EQ(servo_bus.traffic().bytes_sent, 8u);
  EXPECT_EQ(servo_bus.traffic().bytes_received, 8u);
}

TEST(ServoBus, TimeoutArrivesAtTheComputedDeadlineNotLater) {
  ScriptedPeer peer([](int, const Bytes&) { return Bytes{}; });
  // A margin long enough that one deadline more than due stands out from scheduling delays.
  ServoBus servo_bus(peer.path(), feetech_options(30.0));
  servo_bus.open();
  uint8_t value[2];
  const double deadline = servo_bus.timeout_ms(8, 8, 1);
  // The fastest of three: scheduling delays on a loaded machine inflate some runs, a wait hidden
  // in the code inflates every one.
  double fastest = 1e9;
  for (int run = 0; run < 3; ++run) {
    auto start = std::chrono::steady_clock::now();
    Result result = servo_bus.read(1, 56, 2, value, 2);
    fastest = std::min(fastest, elapsed_ms(start));
    // Once the motor has gone silent, later calls cannot even get the line resynchronised.
    EXPECT_EQ(result.status, run == 0 ? Status::kTimeout : Status::kResyncFailed);
    EXPECT_EQ(result.id, 1);
    EXPECT_EQ(result.attempts, 3);
  }
  // The first try of the first run is the read itself; every later try is a fence first (the
  // silent motor may still answer), which gets no answer either, so the read is not sent again.
  EXPECT_EQ(peer.requests(), 9);
  EXPECT_EQ(servo_bus.traffic().fences, 8u);
  // Fences wait as long as a read of their size; nothing else is waited for.
  const double fence_deadline = servo_bus.timeout_ms(8, 7, 1);
  EXPECT_GE(fastest, 3 * fence_deadline);
  EXPECT_LT(fastest, 3.8 * deadline);
}

TEST(ServoBus, RetriesCommunicationFailuresUntilAReplyIsGood) {
  int reads = 0;
  ScriptedPeer peer([&reads](int, const Bytes& request) {
    if (is_fence(request)) return answer_read(request);
    Bytes good = feetech_status(2, 0, {0x00, 0x08});
    const int n = reads++;
    if (n == 0) return Bytes{};  // dropped
    if (n == 1) {
      good.back() ^= 0xFF;  // corrupt checksum
      return good;
    }
    Bytes garbage = {0x00, 0x13, 0xFF, 0x37};
    garbage.insert(garbage.end(), good.begin(), good.end());
    return garbage;  // garbage, then the reply
  });
  ServoBus servo_bus(peer.path(), feetech_options());
  servo_bus.open();
  uint8_t value[2];
  Result result = servo_bus.read(2, 56, 2, value, 3);
  ASSERT_TRUE(result.ok()) << status_name(result.status);
  EXPECT_EQ(result.attempts, 3);
  EXPECT_EQ(load_unsigned(value, 2, ByteOrder::kLittle), 0x0800u);
  EXPECT_EQ(servo_bus.traffic().retries, 2u);
  EXPECT_EQ(servo_bus.traffic().timeouts, 1u);
  EXPECT_EQ(servo_bus.traffic().corrupt_replies, 1u);
  EXPECT_EQ(servo_bus.traffic().fences, 2u);  // one before each retry
}

TEST(ServoBus, ServoErrorBitsAreReportedWithoutRetrying) {
  ScriptedPeer peer(
      [](int, const Bytes&) { return feetech_status(4, feetech::kErrorOverload, {}); });
  ServoBus servo_bus(peer.path(), feetech_options());
  servo_bus.open();
  const uint8_t data[] = {0xFF, 0x07};
  Result result = servo_bus.write(4, 42, data, 5);
  EXPECT_EQ(result.status, Status::kServoError);
  EXPECT_EQ(result.servo_error, feetech::kErrorOverload);
  EXPECT_EQ(peer.requests(), 1);
}

TEST(ServoBus, RepliesFromAnotherIdAreAWrongIdFailure) {
  ScriptedPeer peer([](int, const Bytes&) { return feetech_status(9, 0, {0x00, 0x08}); });
  ServoBus servo_bus(peer.path(), feetech_options());
  servo_bus.open();
  uint8_t value[2];
  Result result = servo_bus.read(5, 56, 2, value, 1);
  EXPECT_EQ(result.status, Status::kWrongId);
  EXPECT_EQ(result.id, 5);
  EXPECT_EQ(result.attempts, 2);
}

TEST(ServoBus, FeetechSyncReadCollectsEveryMotorAndNamesAMissingOne) {
  ScriptedPeer peer([](int n, const Bytes&) {
    Bytes replies;
    for (uint8_t id = 1; id <= 6; ++id) {
      if (n == 1 && id == 4) continue;  // the second sync read loses motor 4
      Bytes reply = feetech_status(id, 0, {static_cast<uint8_t>(id * 10), 0x08});
      replies.insert(replies.end(), reply.begin(), reply.end());
    }
    return replies;
  });
  ServoBus servo_bus(peer.path(), feetech_options());
  servo_bus.open();
  const uint8_t ids[] = {1, 2, 3, 4, 5, 6};
  uint8_t values[12];
  uint8_t errors[6];
  Result result = servo_bus.sync_read(ids, 56, 2, values, errors, 0);
  ASSERT_TRUE(result.ok()) << status_name(result.status);
  for (int i = 0; i < 6; ++i) EXPECT_EQ(values[2 * i], (i + 1) * 10);
  EXPECT_EQ(peer.last_request(),
            (Bytes{0xFF, 0xFF, 0xFE, 0x0A, 0x82, 0x38, 0x02, 1, 2, 3, 4, 5, 6, 0x26}));
  result = servo_bus.sync_read(ids, 56, 2, values, errors, 0);
  EXPECT_EQ(result.status, Status::kTimeout);
  EXPECT_EQ(result.id, 4);
}

TEST(ServoBus, SyncWriteSendsOneBroadcastAndWaitsForNothing) {
  ScriptedPeer peer([](int, const Bytes&) { return Bytes{}; });
  ServoBus servo_bus(peer.path(), feetech_options(50.0));
  servo_bus.open();
  const uint8_t ids[] = {1, 2};
  const uint8_t data[] = {0x00, 0x08, 0xFF, 0x07};
  // Far below the 50 ms margin a read would wait; the fastest of three, so that a loaded machine
  // cannot fail it but a hidden wait would.
  double fastest = 1e9;
  for (int run = 0; run < 3; ++run) {
    auto start = std::chrono::steady_clock::now();
    ASSERT_TRUE(servo_bus.sync_write(ids, 42, 2, data).ok());
    fastest = std::min(fastest, elapsed_ms(start));
  }
  EXPECT_LT(fastest, 20.0);
  for (int i = 0; i < 200 && peer.requests() < 3; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  EXPECT_EQ(peer.last_request(),
            (Bytes{0xFF, 0xFF, 0xFE, 0x0A, 0x83, 0x2A, 0x02, 1, 0x00, 0x08, 2, 0xFF, 0x07, 0x37}));
}

TEST(ServoBus, FeetechPingAlsoReadsTheModelNumber) {
  ScriptedPeer peer([](int n, const Bytes&) {
    return n == 0 ? feetech_status(1, 0, {}) : feetech_status(1, 0, {0x09, 0x03});  // 777 = sts3215
  });
  ServoBus servo_bus(peer.path(), feetech_options());
  servo_bus.open();
  uint16_t model = 0;
  ASSERT_TRUE(servo_bus.ping(1, 0, &model, nullptr).ok());
  EXPECT_EQ(model, 777);
  EXPECT_EQ(peer.requests(), 2);
}

TEST(ServoBus, DynamixelSyncReadAndFastSyncRead) {
  ScriptedPeer peer([](int, const Bytes& request) {
    const uint8_t instruction = request[7];
    if (instruction == dynamixel::kSyncRead) {
      Bytes replies;
      for (uint8_t id = 1; id <= 3; ++id) {
        Bytes reply = dynamixel_status(id, 0, {static_cast<uint8_t>(id), 0xFF, 0xFF, 0xFF});
        replies.insert(replies.end(), reply.begin(), reply.end());
      }
      return replies;
    }
    std::vector<std::pair<uint8_t, Bytes>> blocks;
    for (uint8_t id = 1; id <= 3; ++id)
      blocks.emplace_back(id, Bytes{static_cast<uint8_t>(10 * id), 0, 0, 0});
    return fast_sync_read_reply(blocks);
  });
  ServoBus servo_bus(peer.path(), dynamixel_options());
  servo_bus.open();
  const uint8_t ids[] = {1, 2, 3};
  uint8_t values[12];
  Result result = servo_bus.sync_read(ids, 132, 4, values, nullptr, 0);
  ASSERT_TRUE(result.ok()) << status_name(result.status);
  // Bytes id, FF, FF, FF little-endian: 0xFFFFFFxx, two's complement -256 + id.
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(decode_signed(load_unsigned(values + 4 * i, 4, ByteOrder::kLittle), 4,
                            {SignEncoding::kTwosComplement, 0}),
              -256 + (i + 1));
  }
  result = servo_bus.sync_read(ids, 132, 4, values, nullptr, 0, /*fast=*/true);
  ASSERT_TRUE(result.ok()) << status_name(result.status);
  for (int i = 0; i < 3; ++i) EXPECT_EQ(values[4 * i], 10 * (i + 1));
}

// The read the scripted peers below answer late: (id 3, address 56, 2 bytes).
bool is_slow_read(const Bytes& request) {
  const auto read = feetech_read(request);
  return read && read->address == 56;
}

TEST(ServoBus, ALateReplyIsNeverTakenForTheNextTransaction) {
  // The peer answers the first read 15 ms late, past its 5 ms margin. It serves one request at a
  // time, as a serial line does, so everything after waits for that reply to go out first.
  ScriptedPeer peer([](int n, const Bytes& request) {
    if (n == 0 && is_slow_read(request)) {
      std::this_thread::sleep_for(std::chrono::milliseconds(15));
      return feetech_status(3, 0, {0x11, 0x01});
    }
    if (is_fence(request)) return answer_read(request);
    return feetech_status(3, 0, {0x22, 0x02});  // the second read's own reply
  });
  ServoBus servo_bus(peer.path(), feetech_options(5.0));
  servo_bus.open();
  uint8_t value[2];
  EXPECT_EQ(servo_bus.read(3, 56, 2, value, 0).status, Status::kTimeout);
  // Same id, same length, another register: only the order of the line tells the replies apart.
  // Fences that time out while the late reply is still held back are retried.
  Result result = servo_bus.read(3, 42, 2, value, 5);
  ASSERT_TRUE(result.ok()) << status_name(result.status);
  EXPECT_EQ(load_unsigned(value, 2, ByteOrder::kLittle), 0x0222u);
  const uint64_t fences = servo_bus.traffic().fences;
  EXPECT_GE(fences, 1u);
  const std::vector<Bytes> requests = peer.all_requests();
  ASSERT_EQ(requests.size(), 2 + fences);
  for (size_t k = 1; k <= fences; ++k) EXPECT_TRUE(is_fence(requests[k]));
  // And the line is trusted again: the next read sends no fence.
  ASSERT_TRUE(servo_bus.read(3, 42, 2, value, 0).ok());
  EXPECT_EQ(servo_bus.traffic().fences, fences);
}

TEST(ServoBus, FencesTakeAShapeNoLateReplyCanHave) {
  std::atomic<bool> answer_fences{false};
  ScriptedPeer peer([&](int, const Bytes& request) {
    if (is_fence(request)) return answer_fences ? answer_read(request) : Bytes{};
    return Bytes{};
  });
  // The answered fence must beat its deadline on a loaded machine: 50 ms, as the unanswered
  // reads and fences only cost their wait.
  ServoBus servo_bus(peer.path(), feetech_options(50.0));
  servo_bus.open();
  uint8_t value[2];
  // A 1-byte read that goes unanswered: its reply may still come. The next attempt's fence must
  // not be 1 byte long; it goes unanswered too, and so the one after takes yet another length.
  EXPECT_EQ(servo_bus.read(3, 56, 1, value, 0).status, Status::kTimeout);
  EXPECT_EQ(servo_bus.read(3, 56, 2, value, 0).status, Status::kResyncFailed);
  answer_fences = true;
  EXPECT_EQ(servo_bus.read(3, 56, 2, value, 0).status, Status::kTimeout);
  const std::vector<Bytes> requests = peer.all_requests();
  ASSERT_EQ(requests.size(), 4u);  // read, fence, fence, read
  ASSERT_TRUE(is_fence(requests[1]) && is_fence(requests[2]));
  EXPECT_EQ(feetech_read(requests[1])->length, 2);
  EXPECT_EQ(feetech_read(requests[2])->length, 3);
}

TEST(ServoBus, SyncReadRepliesOutOfOrderOrFromElsewhereFailAtOnce) {
  // Per sync read, the order in which motors answer; 0 stands for a foreign id (9).
  const std::vector<std::vector<uint8_t>> orders = {{1, 3, 2}, {1, 2, 0}, {1, 1, 2}};
  ScriptedPeer peer([&](int n, const Bytes& request) {
    if (is_fence(request)) return answer_read(request);
    Bytes replies;
    for (uint8_t id : orders[static_cast<size_t>(n / 2)]) {
      Bytes reply = feetech_status(id == 0 ? 9 : id, 0, {id, 0x08});
      replies.insert(replies.end(), reply.begin(), reply.end());
    }
    return replies;
  });
  ServoBus servo_bus(peer.path(), feetech_options(500.0));
  servo_bus.open();
  const uint8_t ids[] = {1, 2, 3};
  uint8_t values[6];
  const struct {
    Status status;
    uint8_t id;
  } expected[] = {{Status::kTimeout, 2}, {Status::kWrongId, 3}, {Status::kWrongId, 2}};
  for (const auto& want : expected) {
    auto start = std::chrono::steady_clock::now();
    Result result = servo_bus.sync_read(ids, 56, 2, values, nullptr, 0);
    EXPECT_EQ(result.status, want.status);
    EXPECT_EQ(result.id, want.id);
    EXPECT_LT(elapsed_ms(start), 250.0);  // without waiting out the 500 ms margin
  }
}

TEST(ServoBus, OpeningAMissingPortIsABusError) {
  ServoBus servo_bus("/dev/does-not-exist", feetech_options());
  EXPECT_THROW(servo_bus.open(), BusError);
  uint8_t value[1];
  EXPECT_EQ(servo_bus.read(1, 5, 1, value, 0).status, Status::kPortError);
}

TEST(ServoBus, AnyBaudRateIsAcceptedThroughTermios2) {
  ScriptedPeer peer([](int, const Bytes&) { return Bytes{}; });
  ServoBus servo_bus(peer.path(), feetech_options());
  servo_bus.open();
  servo_bus.set_baudrate(57'600);
  servo_bus.set_baudrate(1'234'567);
  EXPECT_EQ(servo_bus.baudrate(), 1'234'567);
  // Wire time grows as the rate falls: 16 bytes at 57.6 kbaud take 2.8 ms.
  ServoBus slow(peer.path(), feetech_options(0.0));
  slow.set_baudrate(57'600);
  EXPECT_NEAR(slow.timeout_ms(8, 8, 0), 16 * 10'000.0 / 57'600, 1e-9);
}

}  // namespace
}  // namespace dexloop::bus
