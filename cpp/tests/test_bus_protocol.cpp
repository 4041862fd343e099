#include <gtest/gtest.h>

#include <cstdint>
#include <string>
#include <vector>

#include "dexloop/bus/control_table.hpp"
#include "dexloop/bus/dynamixel_protocol.hpp"
#include "dexloop/bus/encoding.hpp"
#include "dexloop/bus/feetech_protocol.hpp"

namespace dexloop::bus {
namespace {

std::vector<uint8_t> bytes(const std::string& hex) {
  std::vector<uint8_t> out;
  for (size_t i = 0; i + 1 < hex.size(); i += 2)
    out.push_back(static_cast<uint8_t>(std::stoi(hex.substr(i, 2), nullptr, 16)));
  return out;
}

std::vector<uint8_t> le(std::initializer_list<uint32_t> values, size_t size) {
  std::vector<uint8_t> out(values.size() * size);
  size_t i = 0;
  for (uint32_t value : values) store_unsigned(value, &out[size * i++], size, ByteOrder::kLittle);
  return out;
}

// Vectors: the bytes feetech-servo-sdk 1.0.0 (PacketHandler(0)) sends for the same operations.
TEST(FeetechProtocol, InstructionsMatchTheSdk) {
  uint8_t out[feetech::kMaxPacketSize];
  size_t n = feetech::encode(1, feetech::kPing, {}, out);
  EXPECT_EQ(std::vector<uint8_t>(out, out + n), bytes("ffff010201fb"));
  const uint8_t read[] = {56, 2};
  n = feetech::encode(3, feetech::kRead, read, out);
  EXPECT_EQ(std::vector<uint8_t>(out, out + n), bytes("ffff0304023802bc"));
  const uint8_t write[] = {42, 0xFF, 0x07};
  n = feetech::encode(2, feetech::kWrite, write, out);
  EXPECT_EQ(std::vector<uint8_t>(out, out + n), bytes("ffff0205032aff07c5"));
  const uint8_t ids[] = {1, 2, 3, 4, 5, 6};
  n = feetech::encode_sync_read(ids, 56, 2, out);
  EXPECT_EQ(std::vector<uint8_t>(out, out + n), bytes("fffffe0a82380201020304050626"));
  std::vector<uint8_t> data = le({100, 2047, 4095, 0, 1234, 3000}, 2);
  n = feetech::encode_sync_write(ids, 42, 2, data, out);
  EXPECT_EQ(std::vector<uint8_t>(out, out + n),
            bytes("fffffe16832a0201640002ff0703ff0f04000005d20406b80b16"));
}

TEST(FeetechProtocol, ScanFindsStatusPacketsAfterGarbageAndRejectsBadChecksums) {
  uint8_t status[16];
  const uint8_t data[] = {0x00, 0x08};
  size_t n = feetech::encode(5, 0, data, status);
  std::vector<uint8_t> stream = {0x12, 0xFF, 0x00, 0xFF};
  stream.insert(stream.end(), status, status + n);
  feetech::Scan scan = feetech::scan(stream, feetech::FrameKind::kStatus);
  ASSERT_EQ(scan.outcome, feetech::Scan::kFrame);
  EXPECT_EQ(scan.skip, 4u);
  EXPECT_EQ(scan.frame.id, 5);
  EXPECT_EQ(scan.frame.params.size(), 2u);
  EXPECT_EQ(scan.frame.params[1], 0x08);
  // Partial packet: need more, nothing before it discarded beyond garbage.
  feetech::Scan partial = feetech::scan(std::span<const uint8_t>(stream).first(stream.size() - 1),
                                        feetech::FrameKind::kStatus);
  EXPECT_EQ(partial.outcome, feetech::Scan::kNeedMore);
  EXPECT_EQ(partial.skip, 4u);
  stream.back() ^= 0x01;
  EXPECT_EQ(feetech::scan(stream, feetech::FrameKind::kStatus).outcome, feetech::Scan::kCorrupt);
}

// Vectors: the bytes dynamixel-sdk 3.8 (PacketHandler(2.0)) sends.
TEST(DynamixelProtocol, InstructionsMatchTheSdk) {
  uint8_t out[dynamixel::kMaxPacketSize];
  size_t n = dynamixel::encode(1, dynamixel::kPing, {}, out);
  EXPECT_EQ(std::vector<uint8_t>(out, out + n), bytes("fffffd0001030001194e"));
  const uint8_t read[] = {132, 0, 4, 0};
  n = dynamixel::encode(3, dynamixel::kRead, read, out);
  EXPECT_EQ(std::vector<uint8_t>(out, out + n), bytes("fffffd0003070002840004001135"));
  const uint8_t write[] = {116, 0, 0xFF, 0x07, 0, 0};
  n = dynamixel::encode(2, dynamixel::kWrite, write, out);
  EXPECT_EQ(std::vector<uint8_t>(out, out + n), bytes("fffffd00020900037400ff0700009a25"));
  const uint8_t ids[] = {1, 2, 3, 4, 5, 6};
  n = dynamixel::encode_sync_read(ids, 132, 4, false, out);
  EXPECT_EQ(std::vector<uint8_t>(out, out + n), bytes("fffffd00fe0d008284000400010203040506b29b"));
  n = dynamixel::encode_sync_read(ids, 132, 4, true, out);
  EXPECT_EQ(std::vector<uint8_t>(out, out + n), bytes("fffffd00fe0d008a84000400010203040506b1b1"));
  std::vector<uint8_t> data = le({100, 2047, 4095, 0xFFFFFFFB, 1234, 3000}, 4);
  n = dynamixel::encode_sync_write(ids, 116, 4, data, out);
  EXPECT_EQ(std::vector<uint8_t>(out, out + n),
            bytes("fffffd00fe25008374000400016400000002ff07000003ff0f000004fbffffff05d204000006b80b"
                  "00001231"));
}

TEST(DynamixelProtocol, StuffsAndUnstuffsHeaderPatterns) {
  // FF FF FD inside the params gains an FD on the wire (the Python SDK drops its own stuffing, a
  // known bug; the protocol and the servos require it) and loses it again when parsed.
  const uint8_t write[] = {116, 0, 0xFF, 0xFF, 0xFD, 0x00};
  uint8_t out[64];
  size_t n = dynamixel::encode(1, dynamixel::kWrite, write, out);
  std::vector<uint8_t> wire(out, out + n);
  ASSERT_EQ(n, 17u);
  EXPECT_EQ(wire[5], 10);  // LEN counts the stuffed byte
  EXPECT_EQ(wire[12], 0xFD);
  EXPECT_EQ(wire[13], 0xFD);
  uint8_t scratch[dynamixel::kMaxPacketSize];
  dynamixel::Scan scan = dynamixel::scan(wire, dynamixel::FrameKind::kInstruction, scratch);
  ASSERT_EQ(scan.outcome, dynamixel::Scan::kFrame);
  EXPECT_EQ(std::vector<uint8_t>(scan.frame.params.begin(), scan.frame.params.end()),
            std::vector<uint8_t>(write, write + sizeof(write)));
}

TEST(DynamixelProtocol, StatusRoundTripAndCorruption) {
  const uint8_t data[] = {0x10, 0x20, 0x30, 0x40};
  uint8_t out[64];
  size_t n = dynamixel::encode_status(7, 0, data, out);
  uint8_t scratch[dynamixel::kMaxPacketSize];
  std::vector<uint8_t> stream = {0xFF, 0xFF, 0xFD, 0xFD, 0x00};  // a stuffed pattern is no header
  stream.insert(stream.end(), out, out + n);
  dynamixel::Scan scan = dynamixel::scan(stream, dynamixel::FrameKind::kStatus, scratch);
  ASSERT_EQ(scan.outcome, dynamixel::Scan::kFrame);
  EXPECT_EQ(scan.skip, 5u);
  EXPECT_EQ(scan.frame.id, 7);
  ASSERT_EQ(scan.frame.params.size(), 5u);
  EXPECT_EQ(scan.frame.params[0], 0);  // error byte
  EXPECT_EQ(scan.frame.params[4], 0x40);
  stream[stream.size() - 3] ^= 0x80;
  EXPECT_EQ(dynamixel::scan(stream, dynamixel::FrameKind::kStatus, scratch).outcome,
            dynamixel::Scan::kCorrupt);
}

TEST(Encoding, SignMagnitudeAndTwosComplementLikeLeRobot) {
  const SignEncoding bit15{SignEncoding::kSignMagnitude, 15};
  const SignEncoding bit11{SignEncoding::kSignMagnitude, 11};
  EXPECT_EQ(encode_signed(-2047, 2, bit11), 0x0FFFu);
  EXPECT_EQ(encode_signed(2047, 2, bit11), 0x07FFu);
  EXPECT_FALSE(encode_signed(2048, 2, bit11).has_value());
  EXPECT_EQ(decode_signed(0x8005, 2, bit15), -5);
  EXPECT_EQ(decode_signed(0xF805, 2, bit11), -5);  // bits above the sign bit are ignored
  const SignEncoding twos{SignEncoding::kTwosComplement, 0};
  EXPECT_EQ(encode_signed(-5, 4, twos), 0xFFFFFFFBu);
  EXPECT_EQ(decode_signed(0xFFFFFFFB, 4, twos), -5);
  EXPECT_EQ(decode_signed(0xFFFB, 2, twos), -5);
  EXPECT_FALSE(encode_signed(40000, 2, twos).has_value());
  EXPECT_FALSE(encode_signed(-1, 1, SignEncoding{}).has_value());
  uint8_t big[2];
  store_unsigned(0x1234, big, 2, ByteOrder::kBig);
  EXPECT_EQ(big[0], 0x12);
  EXPECT_EQ(load_unsigned(big, 2, ByteOrder::kBig), 0x1234u);
}

TEST(ControlTable, HoldsLeRobotsModels) {
  const ModelInfo* sts = find_model("sts3215");
  ASSERT_NE(sts, nullptr);
  EXPECT_EQ(sts->model_number, 777);
  const Register* position = sts->find("Present_Position");
  ASSERT_NE(position, nullptr);
  EXPECT_EQ(position->address, 56);
  EXPECT_EQ(position->size, 2);
  EXPECT_EQ(position->encoding.sign_bit, 15);
  EXPECT_EQ(sts->baudrate_code(1'000'000), 0);
  const ModelInfo* xl = find_model_number(Vendor::kDynamixel, 1200);
  ASSERT_NE(xl, nullptr);
  EXPECT_EQ(xl->name, "xl330-m288");
  EXPECT_EQ(xl->find("Goal_Position")->address, 116);
  EXPECT_EQ(xl->baudrate_code(1'000'000), 3);
  EXPECT_EQ(find_model("scs0009")->byte_order(), ByteOrder::kBig);
  EXPECT_EQ(find_model("nonexistent"), nullptr);
}

}  // namespace
}  // namespace dexloop::bus
