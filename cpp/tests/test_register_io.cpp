// Register values over ServoBus (register_io.hpp): sign encodings and their ranges for every
// register of every model, batch layouts in both byte orders, and transactions against a scripted
// peer on a pty — a value that does not fit is refused before anything is sent.
#include <gtest/gtest.h>

#include <chrono>
#include <thread>
#include <vector>

#include "dexloop/bus/dynamixel_protocol.hpp"
#include "dexloop/bus/feetech_protocol.hpp"
#include "dexloop/bus/register_io.hpp"
#include "scripted_peer.hpp"

namespace dexloop::bus {
namespace {

// The smallest and largest value a register holds.
std::pair<int64_t, int64_t> value_range(const Register& reg) {
  const int bits = 8 * reg.size;
  switch (reg.encoding.kind) {
    case SignEncoding::kSignMagnitude: {
      const int64_t limit = (int64_t{1} << reg.encoding.sign_bit) - 1;
      return {-limit, limit};
    }
    case SignEncoding::kTwosComplement:
      return {-(int64_t{1} << (bits - 1)), (int64_t{1} << (bits - 1)) - 1};
    default:
      return {0, (int64_t{1} << bits) - 1};
  }
}

TEST(RegisterIo, EveryRegisterOfEveryModelRoundTripsItsRangeAndRefusesBeyondIt) {
  int registers = 0;
  for (const ModelInfo& model : all_models()) {
    for (const Register& reg : model.registers) {
      const auto [low, high] = value_range(reg);
      const std::vector<int64_t> values = {low, low + 1, 0, high / 2, high - 1, high};
      uint8_t raw[6 * 4];
      ASSERT_EQ(encode_values(reg, model.byte_order(), values, raw), kAllFit) << reg.name;
      std::vector<int64_t> back(values.size());
      decode_values(reg, model.byte_order(), raw, back);
      EXPECT_EQ(back, values) << model.name << " " << reg.name;
      // The first value beyond the range, on either side, is the one named.
      const std::vector<int64_t> over = {low, high + 1, low - 1};
      EXPECT_EQ(encode_values(reg, model.byte_order(), over, raw), 1u) << reg.name;
      const std::vector<int64_t> under = {high, low - 1};
      EXPECT_EQ(encode_values(reg, model.byte_order(), under, raw), 1u) << reg.name;
      ++registers;
    }
  }
  EXPECT_GT(registers, 100);
}

TEST(RegisterIo, BatchesAreLaidOutPerMotorInTheBusByteOrder) {
  const Register position{"Goal_Position", 42, 2, false, {SignEncoding::kSignMagnitude, 15}};
  const std::vector<int64_t> values = {0x0123, -0x0456};
  uint8_t little[4], big[4];
  ASSERT_EQ(encode_values(position, ByteOrder::kLittle, values, little), kAllFit);
  ASSERT_EQ(encode_values(position, ByteOrder::kBig, values, big), kAllFit);
  EXPECT_EQ(Bytes(little, little + 4), (Bytes{0x23, 0x01, 0x56, 0x84}));
  EXPECT_EQ(Bytes(big, big + 4), (Bytes{0x01, 0x23, 0x84, 0x56}));

  // A bulk image: each register its own size and sign.
  const Register velocity{"Present_Velocity", 128, 4, true, {SignEncoding::kTwosComplement, 0}};
  const Register moving{"Moving", 122, 1, true, {}};
  const Register* registers[] = {&velocity, &moving, &position};
  const uint8_t raw[] = {0xFE, 0xFF, 0xFF, 0xFF, 0x01, 0x10, 0x80};
  int64_t decoded[3];
  decode_values(registers, ByteOrder::kLittle, raw, decoded);
  EXPECT_EQ(decoded[0], -2);
  EXPECT_EQ(decoded[1], 1);
  EXPECT_EQ(decoded[2], -0x10);
}

TEST(RegisterIo, ValueRangeTextNamesTheValueRegisterAndEncoding) {
  const Register offset{"Homing_Offset", 31, 2, false, {SignEncoding::kSignMagnitude, 11}};
  EXPECT_EQ(value_range_text(offset, 2048),
            "value 2048 does not fit register Homing_Offset (2 bytes, sign bit 11)");
  const Register mode{"Operating_Mode", 11, 1, false, {}};
  EXPECT_EQ(value_range_text(mode, -1),
            "value -1 does not fit register Operating_Mode (1 byte, unsigned)");
}

Bytes feetech_status(uint8_t id, Bytes data) {
  uint8_t out[64];
  return Bytes(out, out + feetech::encode(id, 0, data, out));
}

BusOptions options_of(Protocol protocol) {
  BusOptions options;
  options.protocol = protocol;
  options.latency_margin_ms = 50.0;
  return options;
}

const Register& register_of(std::string_view model, std::string_view name) {
  return *find_model(model)->find(name);
}

TEST(RegisterIo, FeetechValuesAreSignDecodedFromTheirReplies) {
  // Present_Position of STS3215: sign-magnitude, bit 15. Motor k reports -k * 100.
  ScriptedPeer peer([](int, const Bytes& request) {
    Bytes replies;
    if (request[4] == feetech::kSyncRead) {
      for (uint8_t id = 1; id <= 3; ++id) {
        const int magnitude = id * 100;
        Bytes reply = feetech_status(id, {static_cast<uint8_t>(magnitude & 0xFF),
                                          static_cast<uint8_t>(0x80 | (magnitude >> 8))});
        replies.insert(replies.end(), reply.begin(), reply.end());
      }
      return replies;
    }
    return feetech_status(request[2], {0x34, 0x82});  // READ: -0x234
  });
  ServoBus servo_bus(peer.path(), options_of(Protocol::kFeetech));
  servo_bus.open();
  const Register& present = register_of("sts3215", "Present_Position");
  const uint8_t ids[] = {1, 2, 3};
  int64_t values[3];
  Result result = sync_read_values(servo_bus, ids, present, values, 0);
  ASSERT_TRUE(result.ok()) << status_name(result.status);
  EXPECT_EQ(std::vector<int64_t>(values, values + 3), (std::vector<int64_t>{-100, -200, -300}));
  int64_t one = 0;
  ASSERT_TRUE(read_value(servo_bus, 2, present, &one, 0).ok());
  EXPECT_EQ(one, -0x234);
}

TEST(RegisterIo, AValueThatDoesNotFitIsRefusedBeforeAnythingIsSent) {
  ScriptedPeer peer([](int, const Bytes& request) { return feetech_status(request[2], {}); });
  ServoBus servo_bus(peer.path(), options_of(Protocol::kFeetech));
  servo_bus.open();
  const Register& goal = register_of("sts3215", "Goal_Position");
  const uint8_t ids[] = {1, 2, 3};
  const int64_t values[] = {100, 40000, -5};
  size_t refused = 99;
  Result result = sync_write_values(servo_bus, ids, goal, values, &refused);
  EXPECT_EQ(result.status, Status::kValueOutOfRange);
  EXPECT_EQ(result.id, 2);
  EXPECT_EQ(refused, 1u);
  result = write_value(servo_bus, 3, goal, -40000, 0);
  EXPECT_EQ(result.status, Status::kValueOutOfRange);
  EXPECT_EQ(result.id, 3);
  EXPECT_EQ(reg_write_value(servo_bus, 3, goal, 1 << 15, 0).status, Status::kValueOutOfRange);
  EXPECT_EQ(servo_bus.traffic().bytes_sent, 0u);

  // Values that fit go out as one SYNC_WRITE, sign bit set for the negative one.
  const int64_t good[] = {100, -5, 0};
  ASSERT_TRUE(sync_write_values(servo_bus, ids, goal, good).ok());
  for (int i = 0; i < 500 && peer.requests() < 1; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  EXPECT_EQ(peer.last_request(), (Bytes{0xFF, 0xFF, 0xFE, 0x0D, 0x83, 0x2A, 0x02, 1, 100, 0x00, 2,
                                        0x05, 0x80, 3, 0x00, 0x00, 0x56}));
}

TEST(RegisterIo, DynamixelBulkReadDecodesEachRegisterItsOwnWay) {
  ScriptedPeer peer([](int, const Bytes& request) {
    if (request[7] != dynamixel::kBulkRead) return Bytes{};
    uint8_t out[64];
    Bytes replies;
    const Bytes velocity = {0xFB, 0xFF, 0xFF, 0xFF};  // -5, two's complement
    const Bytes moving = {0x01};
    size_t n = dynamixel::encode_status(1, 0, velocity, out);
    replies.insert(replies.end(), out, out + n);
    n = dynamixel::encode_status(2, 0, moving, out);
    replies.insert(replies.end(), out, out + n);
    return replies;
  });
  ServoBus servo_bus(peer.path(), options_of(Protocol::kDynamixel));
  servo_bus.open();
  const Register* registers[] = {&register_of("xl430-w250", "Present_Velocity"),
                                 &register_of("xl430-w250", "Moving")};
  const uint8_t ids[] = {1, 2};
  int64_t values[2] = {};
  Result result = bulk_read_values(servo_bus, ids, registers, values, 0);
  ASSERT_TRUE(result.ok()) << status_name(result.status);
  EXPECT_EQ(values[0], -5);
  EXPECT_EQ(values[1], 1);
}

TEST(RegisterIo, BatchesOfNoMotorTooManyOrMismatchedValuesAreInvalid) {
  ServoBus servo_bus("/dev/null-not-opened", options_of(Protocol::kFeetech));
  const Register& goal = register_of("sts3215", "Goal_Position");
  const uint8_t ids[2] = {1, 2};
  int64_t values[2] = {};
  const std::vector<uint8_t> too_many(ServoBus::kMaxMotors + 1, 1);
  std::vector<int64_t> many_values(too_many.size());
  EXPECT_EQ(sync_read_values(servo_bus, {}, goal, {}, 0).status, Status::kTxError);
  EXPECT_EQ(sync_read_values(servo_bus, ids, goal, std::span<int64_t>(values, 1), 0).status,
            Status::kTxError);
  EXPECT_EQ(sync_write_values(servo_bus, too_many, goal, many_values).status, Status::kTxError);
  const Register* registers[] = {&goal};
  EXPECT_EQ(bulk_read_values(servo_bus, ids, registers, values, 0).status, Status::kTxError);
}

}  // namespace
}  // namespace dexloop::bus
