// The servo simulator seen from the driver's side: the slave end of its pty opened with plain POSIX
// calls, instruction packets built with the protocol codecs, replies parsed with their scanners.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <termios.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "dexloop/bus/control_table.hpp"
#include "dexloop/bus/dynamixel_protocol.hpp"
#include "dexloop/bus/encoding.hpp"
#include "dexloop/bus/feetech_protocol.hpp"
#include "dexloop/servo_sim/servo_simulator.hpp"

namespace dexloop::servo_sim {
namespace {

namespace feetech = bus::feetech;
namespace dynamixel = bus::dynamixel;
using Bytes = std::vector<uint8_t>;
using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

constexpr auto kReplyWait = milliseconds(500);  // generous: only reached when a test fails
constexpr auto kSilence = milliseconds(40);     // how long "no reply" is listened for

// A status packet as the driver sees it.
struct Status {
  uint8_t id = 0;
  uint8_t error = 0;
  Bytes data;
};

// The driver's end of the simulated bus: the pty slave, raw, opened like a serial port.
class Driver {
 public:
  explicit Driver(const std::string& path, speed_t speed = B1000000) {
    fd_ = ::open(path.c_str(), O_RDWR | O_NOCTTY | O_NONBLOCK | O_CLOEXEC);
    if (fd_ < 0) throw std::runtime_error("cannot open " + path);
    termios tio{};
    ::tcgetattr(fd_, &tio);
    ::cfmakeraw(&tio);
    ::cfsetispeed(&tio, speed);
    ::cfsetospeed(&tio, speed);
    ::tcsetattr(fd_, TCSANOW, &tio);
  }
  ~Driver() { ::close(fd_); }
  Driver(const Driver&) = delete;
  Driver& operator=(const Driver&) = delete;

  void send(const Bytes& bytes) {
    ::tcflush(fd_, TCIFLUSH);
    buffer_.clear();
    ASSERT_EQ(::write(fd_, bytes.data(), bytes.size()), static_cast<ssize_t>(bytes.size()));
  }

  // Reads whatever arrives until `deadline`, or until `enough` says the buffer is complete.
  template <typename Enough>
  const Bytes& read_until(Clock::time_point deadline, Enough enough) {
    while (!enough(buffer_)) {
      const auto left = std::chrono::duration_cast<milliseconds>(deadline - Clock::now()).count();
      if (left <= 0) break;
      pollfd fd{fd_, POLLIN, 0};
      if (::poll(&fd, 1, static_cast<int>(left) + 1) <= 0) continue;
      uint8_t chunk[512];
      const ssize_t n = ::read(fd_, chunk, sizeof chunk);
      if (n > 0) buffer_.insert(buffer_.end(), chunk, chunk + n);
    }
    return buffer_;
  }
  const Bytes& read_bytes(size_t count, Clock::duration wait = kReplyWait) {
    return read_until(Clock::now() + wait, [&](const Bytes& b) { return b.size() >= count; });
  }
  const Bytes& listen(Clock::duration wait = kSilence) {
    return read_until(Clock::now() + wait, [](const Bytes&) { return false; });
  }

  // Feetech / Dynamixel status packets, up to `count` of them.
  std::vector<Status> feetech_statuses(size_t count, Clock::duration wait = kReplyWait) {
    std::vector<Status> found;
    read_until(Clock::now() + wait, [&](const Bytes& b) {
      found = parse_feetech(b);
      return found.size() >= count;
    });
    return parse_feetech(buffer_);
  }
  std::vector<Status> dynamixel_statuses(size_t count, Clock::duration wait = kReplyWait) {
    std::vector<Status> found;
    read_until(Clock::now() + wait, [&](const Bytes& b) {
      found = parse_dynamixel(b);
      return found.size() >= count;
    });
    return parse_dynamixel(buffer_);
  }

  static std::vector<Status> parse_feetech(std::span<const uint8_t> bytes) {
    std::vector<Status> out;
    while (!bytes.empty()) {
      const feetech::Scan scan = feetech::scan(bytes, feetech::FrameKind::kStatus);
      if (scan.outcome == feetech::Scan::kNeedMore) break;
      if (scan.outcome == feetech::Scan::kFrame)
        out.push_back({scan.frame.id, scan.frame.code,
                       Bytes(scan.frame.params.begin(), scan.frame.params.end())});
      bytes = bytes.subspan(scan.outcome == feetech::Scan::kFrame ? scan.skip + scan.size
                                                                  : scan.skip + 1);
    }
    return out;
  }
  static std::vector<Status> parse_dynamixel(std::span<const uint8_t> bytes) {
    std::vector<Status> out;
    uint8_t scratch[dynamixel::kMaxPacketSize];
    while (!bytes.empty()) {
      const dynamixel::Scan scan = dynamixel::scan(bytes, dynamixel::FrameKind::kStatus, scratch);
      if (scan.outcome == dynamixel::Scan::kNeedMore) break;
      if (scan.outcome == dynamixel::Scan::kFrame) {
        const auto params = scan.frame.params;
        out.push_back({scan.frame.id, params[0], Bytes(params.begin() + 1, params.end())});
      }
      bytes = bytes.subspan(scan.outcome == dynamixel::Scan::kFrame ? scan.skip + scan.size
                                                                    : scan.skip + 1);
    }
    return out;
  }

 private:
  int fd_ = -1;
  Bytes buffer_;
};

Bytes ft(uint8_t id, uint8_t instruction, const Bytes& params = {}) {
  Bytes out(feetech::kMaxPacketSize);
  out.resize(feetech::encode(id, instruction, params, out));
  return out;
}

Bytes dx(uint8_t id, uint8_t instruction, const Bytes& params = {}) {
  Bytes out(dynamixel::kMaxPacketSize);
  out.resize(dynamixel::encode(id, instruction, params, out));
  return out;
}

Bytes le(int64_t value, size_t size) {
  Bytes out(size);
  bus::store_unsigned(static_cast<uint32_t>(value), out.data(), size, bus::ByteOrder::kLittle);
  return out;
}

Bytes cat(Bytes a, const Bytes& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

uint32_t le_value(const Bytes& data) {
  return bus::load_unsigned(data.data(), data.size(), bus::ByteOrder::kLittle);
}

std::vector<MotorSpec> six(const std::string& model) {
  std::vector<MotorSpec> motors;
  for (int id = 1; id <= 6; ++id) motors.push_back({id, model});
  return motors;
}

// Feetech sign-magnitude encodings of the STS registers used below.
Bytes sm(int64_t value, int bit) {
  return le(*bus::encode_signed(value, 2, {bus::SignEncoding::kSignMagnitude, uint8_t(bit)}), 2);
}

int64_t sm_value(const Bytes& data, int bit) {
  return bus::decode_signed(le_value(data), 2, {bus::SignEncoding::kSignMagnitude, uint8_t(bit)});
}

// Polls `condition` until it holds or `wait` passes.
template <typename Condition>
bool eventually(Condition condition, Clock::duration wait = milliseconds(2000)) {
  const auto deadline = Clock::now() + wait;
  while (Clock::now() < deadline) {
    if (condition()) return true;
    std::this_thread::sleep_for(milliseconds(2));
  }
  return condition();
}

class FeetechSim : public ::testing::Test {
 protected:
  FeetechSim() : sim(Protocol::kFeetech, six("sts3215"), {}) { sim.start(); }
  Status transact(const Bytes& request) {
    driver.send(request);
    auto statuses = driver.feetech_statuses(1);
    EXPECT_EQ(statuses.size(), 1u);
    return statuses.empty() ? Status{} : statuses[0];
  }
  Bytes read(uint8_t id, uint8_t address, uint8_t length) {
    Status status = transact(ft(id, feetech::kRead, {address, length}));
    EXPECT_EQ(status.id, id);
    return status.data;
  }
  void write(uint8_t id, uint8_t address, const Bytes& data) {
    Status status = transact(ft(id, feetech::kWrite, cat({address}, data)));
    EXPECT_EQ(status.id, id);
    EXPECT_EQ(status.error, 0);
  }

  ServoSimulator sim;
  Driver driver{sim.port_path()};
};

TEST_F(FeetechSim, PingReadAndWriteAnswerLikeTheServo) {
  Status ping = transact(ft(3, feetech::kPing));
  EXPECT_EQ(ping.id, 3);
  EXPECT_EQ(ping.error, 0);
  EXPECT_TRUE(ping.data.empty());
  // LeRobot's handshake: Model_Number at 3, then the firmware versions at 0 and 1.
  EXPECT_EQ(le_value(read(3, 3, 2)), 777u);
  EXPECT_EQ(read(3, 0, 2), (Bytes{3, 10}));
  EXPECT_EQ(read(3, 5, 1), (Bytes{3}));      // ID
  EXPECT_EQ(read(3, 6, 1), (Bytes{0}));      // Baud_Rate code of 1 Mbps
  EXPECT_EQ(read(3, 18, 1), (Bytes{0x10}));  // Phase bit 4, for configure_motors to clear
  write(3, 41, {254});                       // Acceleration
  EXPECT_EQ(sim.read_register(3, "Acceleration"), 254);
  EXPECT_EQ(sim.instruction_count(feetech::kRead), 5u);
  EXPECT_EQ(sim.instruction_count(feetech::kPing), 1u);
  EXPECT_GT(sim.bytes_received(), 0u);
  EXPECT_GT(sim.bytes_sent(), 0u);
  // A broadcast write has no reply but applies to every motor.
  driver.send(ft(feetech::kBroadcastId, feetech::kWrite, {41, 100}));
  EXPECT_TRUE(driver.listen().empty());
  for (int id : sim.ids()) EXPECT_EQ(sim.read_register(id, "Acceleration"), 100);
  // Unknown instruction: Feetech servos stay silent.
  driver.send(ft(3, 0x0A));
  EXPECT_TRUE(driver.listen().empty());
}

TEST_F(FeetechSim, BroadcastPingIsAnsweredByEveryMotorInIdOrder) {
  driver.send(ft(feetech::kBroadcastId, feetech::kPing));
  const auto statuses = driver.feetech_statuses(6);
  ASSERT_EQ(statuses.size(), 6u);
  for (size_t i = 0; i < 6; ++i) EXPECT_EQ(statuses[i].id, i + 1);
}

TEST_F(FeetechSim, SyncReadOfSixMotorsAnswersInListOrder) {
  const uint8_t ids[] = {6, 1, 2, 3, 4, 5};
  Bytes request(feetech::kMaxPacketSize);
  request.resize(feetech::encode_sync_read(ids, 56, 2, request));
  driver.send(request);
  const auto statuses = driver.feetech_statuses(6);
  ASSERT_EQ(statuses.size(), 6u);
  for (size_t i = 0; i < 6; ++i) {
    EXPECT_EQ(statuses[i].id, ids[i]);
    ASSERT_EQ(statuses[i].data.size(), 2u);
    // Random initial positions near mid-range, reported as the control table holds them.
    const int64_t position = sm_value(statuses[i].data, 15);
    EXPECT_EQ(position, sim.read_register(ids[i], "Present_Position"));
    EXPECT_NEAR(position, 2047, 301);
  }
  EXPECT_EQ(sim.instruction_count(feetech::kSyncRead), 1u);
}

TEST_F(FeetechSim, SyncWriteGoalsAndTheMotorsMoveTowardThemOverTime) {
  const uint8_t ids[] = {1, 2, 3, 4, 5, 6};
  Bytes goals;
  std::vector<int64_t> goal_values;
  for (uint8_t id : ids) {
    goal_values.push_back(sim.read_register(id, "Present_Position") + 400);
    goals = cat(goals, sm(goal_values.back(), 15));
  }
  Bytes packet(feetech::kMaxPacketSize);
  // Goals without torque: nothing moves.
  packet.resize(feetech::encode_sync_write(ids, 42, 2, goals, packet));
  driver.send(packet);
  EXPECT_TRUE(driver.listen(milliseconds(30)).empty());
  EXPECT_EQ(sim.read_register(1, "Present_Position"), goal_values[0] - 400);
  // Torque on everywhere (the goal snaps to the present position, so the motors hold), then goals.
  Bytes on(feetech::kMaxPacketSize);
  on.resize(feetech::encode_sync_write(ids, 40, 1, Bytes(6, 1), on));
  driver.send(on);
  EXPECT_TRUE(eventually([&] { return sim.read_register(6, "Torque_Enable") == 1; }));
  EXPECT_EQ(sim.read_register(2, "Goal_Position"), goal_values[1] - 400);
  driver.send(packet);
  const auto started = Clock::now();
  // Part of the way after a fraction of the time constant; Moving is set.
  ASSERT_TRUE(
      eventually([&] { return sim.read_register(1, "Present_Position") > goal_values[0] - 400; }));
  const int64_t early = sim.read_register(1, "Present_Position");
  if (Clock::now() - started < milliseconds(20)) {
    EXPECT_LT(early, goal_values[0]);
    EXPECT_EQ(sim.read_register(1, "Moving"), 1);
    EXPECT_GT(sim.read_register(1, "Present_Velocity"), 0);
    EXPECT_GT(sim.read_register(1, "Present_Load"), 0);
  }
  // Then every motor arrives and stops.
  for (size_t i = 0; i < 6; ++i) {
    EXPECT_TRUE(eventually(
        [&] { return sim.read_register(ids[i], "Present_Position") == goal_values[i]; }));
  }
  EXPECT_TRUE(eventually([&] { return sim.read_register(1, "Moving") == 0; }));
  // What the bus reads back agrees.
  EXPECT_EQ(sm_value(read(4, 56, 2), 15), goal_values[3]);
}

TEST_F(FeetechSim, HomingOffsetPhaseBitAndLimitsFollowTheFeetechConventions) {
  sim.set_actual_position(1, 3000);
  EXPECT_EQ(sm_value(read(1, 56, 2), 15), 3000);
  // Present_Position = actual - Homing_Offset (sign-magnitude, bit 11).
  write(1, 31, sm(500, 11));
  EXPECT_EQ(sm_value(read(1, 56, 2), 15), 2500);
  write(1, 31, sm(-300, 11));
  EXPECT_EQ(sim.read_register(1, "Homing_Offset"), -300);
  EXPECT_EQ(sm_value(read(1, 56, 2), 15), 3300);
  // Phase bit 4 set (factory): not wrapped; a position below zero reads negative.
  sim.set_actual_position(1, 100);
  write(1, 31, sm(600, 11));
  EXPECT_EQ(sm_value(read(1, 56, 2), 15), -500);
  // Bit 4 cleared (LeRobot's configure_motors): wrapped into [0, 4095].
  write(1, 18, {0x00});
  EXPECT_EQ(sm_value(read(1, 56, 2), 15), 4096 - 500);
  // Goals are clamped into [Min_Position_Limit, Max_Position_Limit] (same frame as the position).
  write(2, 9, le(1000, 2));
  write(2, 11, le(2000, 2));
  write(2, 40, {1});
  write(2, 42, sm(3500, 15));
  EXPECT_EQ(sim.read_register(2, "Goal_Position"), 3500);
  EXPECT_TRUE(eventually([&] { return sim.read_register(2, "Present_Position") == 2000; }));
  write(2, 42, sm(200, 15));
  EXPECT_TRUE(eventually([&] { return sim.read_register(2, "Present_Position") == 1000; }));
  // Torque value 128 calibrates the current position to read 2048.
  sim.set_actual_position(3, 1234);
  write(3, 40, {128});
  EXPECT_EQ(sim.read_register(3, "Homing_Offset"), 1234 - 2048);
  EXPECT_EQ(sm_value(read(3, 56, 2), 15), 2048);
  EXPECT_EQ(sim.read_register(3, "Torque_Enable"), 0);
}

TEST_F(FeetechSim, ReadOnlyRegistersKeepTheirValuesAndEepromWritesAreAccepted) {
  const int64_t position = sim.read_register(4, "Present_Position");
  write(4, 56, sm(10, 15));  // the firmware ignores it, without an error bit
  EXPECT_EQ(sim.read_register(4, "Present_Position"), position);
  write(4, 3, le(1, 2));
  EXPECT_EQ(sim.read_register(4, "Model_Number"), 777);
  write(4, 40, {1});  // torque on: EPROM writes still go through on Feetech
  write(4, 7, {0});
  write(4, 9, le(100, 2));
  EXPECT_EQ(sim.read_register(4, "Min_Position_Limit"), 100);
  // A write spanning read-only and writable bytes stores only the writable ones.
  write(4, 54, {0x00, 0x01, 0x02, 0x03});  // 54: no register, 55: Lock, 56-57: Present_Position
  EXPECT_EQ(sim.read_register(4, "Lock"), 1);
  EXPECT_EQ(sim.read_register(4, "Present_Position"), position);
}

TEST_F(FeetechSim, IdChangeTakesEffectAfterTheReply) {
  Status status = transact(ft(1, feetech::kWrite, {5, 9}));
  EXPECT_EQ(status.id, 1);
  driver.send(ft(1, feetech::kPing));
  EXPECT_TRUE(driver.listen().empty());
  EXPECT_EQ(transact(ft(9, feetech::kPing)).id, 9);
  EXPECT_EQ(sim.read_register(9, "ID"), 9);
  EXPECT_EQ(sim.ids(), (std::vector<int>{9, 2, 3, 4, 5, 6}));
  EXPECT_THROW(sim.read_register(1, "ID"), std::invalid_argument);
}

TEST_F(FeetechSim, RegWriteWaitsForAction) {
  EXPECT_EQ(transact(ft(2, feetech::kRegWrite, {41, 77})).error, 0);
  EXPECT_EQ(sim.read_register(2, "Acceleration"), 0);
  driver.send(ft(feetech::kBroadcastId, feetech::kAction));
  EXPECT_TRUE(driver.listen().empty());
  EXPECT_EQ(sim.read_register(2, "Acceleration"), 77);
}

TEST_F(FeetechSim, ResponseStatusLevelZeroAnswersOnlyReadAndPing) {
  write(5, 8, {0});
  driver.send(ft(5, feetech::kWrite, {41, 5}));
  EXPECT_TRUE(driver.listen().empty());
  EXPECT_EQ(sim.read_register(5, "Acceleration"), 5);
  EXPECT_EQ(read(5, 41, 1), (Bytes{5}));
  EXPECT_EQ(transact(ft(5, feetech::kPing)).id, 5);
}

TEST_F(FeetechSim, FaultsAffectTheNextRepliesOfTheirMotor) {
  // Dropped.
  sim.drop_replies(2, 1);
  driver.send(ft(2, feetech::kPing));
  EXPECT_TRUE(driver.listen().empty());
  EXPECT_EQ(transact(ft(2, feetech::kPing)).id, 2);
  // Corrupted: the checksum is wrong.
  sim.corrupt_replies(2, 1);
  driver.send(ft(2, feetech::kPing));
  const Bytes& corrupt = driver.read_bytes(6);
  ASSERT_EQ(corrupt.size(), 6u);
  EXPECT_EQ(feetech::scan(corrupt, feetech::FrameKind::kStatus).outcome, feetech::Scan::kCorrupt);
  EXPECT_EQ(transact(ft(2, feetech::kPing)).error, 0);
  // Delayed: nothing within the delay, then the reply.
  sim.delay_replies(2, 60'000, 1);
  const auto sent = Clock::now();
  driver.send(ft(2, feetech::kPing));
  const auto delayed = driver.feetech_statuses(1);
  ASSERT_EQ(delayed.size(), 1u);
  EXPECT_GE(Clock::now() - sent, milliseconds(60));
  // Another id in the reply.
  sim.reply_as(2, 4, 1);
  EXPECT_EQ(transact(ft(2, feetech::kPing)).id, 4);
  EXPECT_EQ(transact(ft(2, feetech::kPing)).id, 2);
  // Garbage before the reply, including a false header.
  sim.garbage_before_replies(2, {0x00, 0xFF, 0xFF, 0x13}, 1);
  driver.send(ft(2, feetech::kPing));
  const auto after_garbage = driver.feetech_statuses(1);
  ASSERT_EQ(after_garbage.size(), 1u);
  EXPECT_EQ(after_garbage[0].id, 2);
  const Bytes& line = driver.listen(milliseconds(0));
  EXPECT_EQ(Bytes(line.begin(), line.begin() + 4), (Bytes{0x00, 0xFF, 0xFF, 0x13}));
  // Error bits in every status until cleared; the Status register shows them.
  sim.set_error_bits(2, feetech::kErrorOverload);
  EXPECT_EQ(transact(ft(2, feetech::kPing)).error, feetech::kErrorOverload);
  EXPECT_EQ(transact(ft(2, feetech::kPing)).error, feetech::kErrorOverload);
  EXPECT_EQ(sim.read_register(2, "Status"), feetech::kErrorOverload);
  sim.set_error_bits(2, 0);
  EXPECT_EQ(transact(ft(2, feetech::kPing)).error, 0);
  // Vanished: silent and deaf, also in a broadcast ping and a sync read; back after reappear().
  sim.vanish(2);
  driver.send(ft(2, feetech::kPing));
  EXPECT_TRUE(driver.listen().empty());
  driver.send(ft(2, feetech::kWrite, {41, 9}));
  EXPECT_TRUE(driver.listen().empty());
  EXPECT_EQ(sim.read_register(2, "Acceleration"), 0);
  driver.send(ft(feetech::kBroadcastId, feetech::kPing));
  EXPECT_EQ(driver.feetech_statuses(6, milliseconds(50)).size(), 5u);
  sim.reappear(2);
  EXPECT_EQ(transact(ft(2, feetech::kPing)).id, 2);
  // Until cleared, and for every motor at once.
  sim.drop_replies(kAllMotors, kUntilCleared);
  for (int i = 0; i < 3; ++i) {
    driver.send(ft(feetech::kBroadcastId, feetech::kPing));
    EXPECT_TRUE(driver.listen(milliseconds(20)).empty());
  }
  sim.clear_faults();
  driver.send(ft(feetech::kBroadcastId, feetech::kPing));
  EXPECT_EQ(driver.feetech_statuses(6).size(), 6u);
}

TEST_F(FeetechSim, ServesDriversThatOpenAndCloseThePortRepeatedly) {
  for (int round = 0; round < 20; ++round) {
    Driver other(sim.port_path());
    other.send(ft(1, feetech::kPing));
    const auto statuses = other.feetech_statuses(1);
    ASSERT_EQ(statuses.size(), 1u) << "round " << round;
  }
  // A partial packet left by a driver that went away does not spoil the next one's first packet.
  {
    Driver other(sim.port_path());
    other.send({0xFF, 0xFF, 0x01, 0x04});
  }
  Driver next(sim.port_path());
  next.send(ft(1, feetech::kPing));
  EXPECT_EQ(next.feetech_statuses(1).size(), 1u);
}

TEST(ServoSimulator, StopsPromptlyAndCanStartAgain) {
  ServoSimulator sim(Protocol::kFeetech, six("sts3215"));
  for (int i = 0; i < 3; ++i) {
    sim.start();
    EXPECT_TRUE(sim.running());
    {
      Driver driver(sim.port_path());
      driver.send(ft(1, feetech::kPing));
      EXPECT_EQ(driver.feetech_statuses(1).size(), 1u);
    }
    const auto before = Clock::now();
    sim.stop();
    EXPECT_LT(Clock::now() - before, milliseconds(500));
    EXPECT_FALSE(sim.running());
  }
  // Not started: nothing answers, but the port exists.
  Driver driver(sim.port_path());
  driver.send(ft(1, feetech::kPing));
  EXPECT_TRUE(driver.listen().empty());
}

TEST(ServoSimulator, RejectsBadMotorLists) {
  EXPECT_THROW(ServoSimulator(Protocol::kFeetech, {{1, "nope"}}), std::invalid_argument);
  EXPECT_THROW(ServoSimulator(Protocol::kFeetech, {{1, "xl330-m288"}}), std::invalid_argument);
  EXPECT_THROW(ServoSimulator(Protocol::kFeetech, {{1, "sts3215"}, {1, "sts3215"}}),
               std::invalid_argument);
  EXPECT_THROW(ServoSimulator(Protocol::kDynamixel, {{253, "xl330-m288"}}), std::invalid_argument);
  EXPECT_THROW(ServoSimulator(Protocol::kFeetech, {{1, "sts3215"}}, {.baudrate = 12345}),
               std::invalid_argument);
  EXPECT_THROW(parse_protocol("can"), std::invalid_argument);
  EXPECT_EQ(parse_protocol("feetech_scs"), Protocol::kFeetechScs);
}

TEST(ServoSimulator, ScsSeriesIsBigEndianWithoutSyncRead) {
  ServoSimulator sim(Protocol::kFeetechScs, {{1, "scs0009"}, {2, "scs0009"}});
  sim.start();
  Driver driver(sim.port_path());
  driver.send(ft(1, feetech::kRead, {3, 2}));
  const auto statuses = driver.feetech_statuses(1);
  ASSERT_EQ(statuses.size(), 1u);
  EXPECT_EQ(statuses[0].data, (Bytes{1284 >> 8, 1284 & 0xFF}));
  driver.send(ft(feetech::kBroadcastId, feetech::kSyncRead, {56, 2, 1, 2}));
  EXPECT_TRUE(driver.listen().empty());
  EXPECT_LT(sim.read_register(1, "Present_Position"), 1024);
}

TEST(ServoSimulator, MatchBaudrateOnlyAnswersAtTheMotorsSpeed) {
  ServoSimulator sim(Protocol::kFeetech, six("sts3215"), {.match_baudrate = true});
  sim.start();
  {
    Driver slow(sim.port_path(), B57600);
    slow.send(ft(1, feetech::kPing));
    EXPECT_TRUE(slow.listen().empty());
  }
  Driver fast(sim.port_path(), B1000000);
  fast.send(ft(1, feetech::kPing));
  EXPECT_EQ(fast.feetech_statuses(1).size(), 1u);
  // Baud_Rate 57600 (code 5): the motor answers at the old rate, then only at the new one.
  fast.send(ft(1, feetech::kWrite, {6, 5}));
  EXPECT_EQ(fast.feetech_statuses(1).size(), 1u);
  fast.send(ft(1, feetech::kPing));
  EXPECT_TRUE(fast.listen().empty());
}

TEST(ServoSimulator, WireTimeAndReturnDelayHoldRepliesBack) {
  ServoSimulator sim(Protocol::kFeetech, {{1, "sts3215"}},
                     {.baudrate = 19'200, .emulate_wire_time = true});
  sim.write_register(1, "Return_Delay_Time", 250);  // 500 us
  sim.start();
  Driver driver(sim.port_path(), B19200);
  const auto sent = Clock::now();
  driver.send(ft(1, feetech::kRead, {56, 2}));
  ASSERT_EQ(driver.feetech_statuses(1).size(), 1u);
  // 8 reply bytes x 10 bits at 19200 baud = 4.17 ms, plus 0.5 ms.
  EXPECT_GE(Clock::now() - sent, std::chrono::microseconds(4'600));
}

// --- Dynamixel

class DynamixelSim : public ::testing::Test {
 protected:
  DynamixelSim()
      : sim(Protocol::kDynamixel,
            {{1, "xl430-w250"},
             {2, "xl430-w250"},
             {3, "xl330-m288"},
             {4, "xl330-m288"},
             {5, "xl330-m288"},
             {6, "xl330-m288"}},
            {.seed = 7}) {
    sim.start();
  }
  Status transact(const Bytes& request) {
    driver.send(request);
    auto statuses = driver.dynamixel_statuses(1);
    EXPECT_EQ(statuses.size(), 1u);
    return statuses.empty() ? Status{} : statuses[0];
  }
  Status write(uint8_t id, uint16_t address, const Bytes& data) {
    return transact(dx(id, dynamixel::kWrite, cat(le(address, 2), data)));
  }
  Status read(uint8_t id, uint16_t address, uint16_t length) {
    return transact(dx(id, dynamixel::kRead, cat(le(address, 2), le(length, 2))));
  }
  int32_t position(uint8_t id) {
    const Status status = read(id, 132, 4);
    return static_cast<int32_t>(le_value(status.data));
  }

  ServoSimulator sim;
  Driver driver{sim.port_path()};
};

TEST_F(DynamixelSim, PingCarriesModelAndFirmwareAndBroadcastPingFindsEveryMotor) {
  Status ping = transact(dx(3, dynamixel::kPing));
  EXPECT_EQ(ping.id, 3);
  EXPECT_EQ(ping.error, 0);
  EXPECT_EQ(ping.data, (Bytes{1200 & 0xFF, 1200 >> 8, 48}));
  driver.send(dx(dynamixel::kBroadcastId, dynamixel::kPing));
  const auto statuses = driver.dynamixel_statuses(6);
  ASSERT_EQ(statuses.size(), 6u);
  for (size_t i = 0; i < 6; ++i) {
    EXPECT_EQ(statuses[i].id, i + 1);
    EXPECT_EQ(le_value(Bytes(statuses[i].data.begin(), statuses[i].data.begin() + 2)),
              i < 2 ? 1060u : 1200u);
  }
  // The factory return delay (250 x 2 us) is there before configure writes 0.
  EXPECT_EQ(read(1, 9, 1).data, (Bytes{250}));
  EXPECT_EQ(read(1, 8, 1).data, (Bytes{3}));  // Baud_Rate code of 1 Mbps
}

TEST_F(DynamixelSim, AccessRangeLengthAndLimitErrors) {
  // Read-only register.
  EXPECT_EQ(write(1, 132, le(5, 4)).error, dynamixel::kErrorAccess);
  // EEPROM with torque on.
  EXPECT_EQ(write(1, 64, {1}).error, 0);
  EXPECT_EQ(write(1, 20, le(100, 4)).error, dynamixel::kErrorAccess);
  EXPECT_EQ(sim.read_register(1, "Homing_Offset"), 0);
  EXPECT_EQ(write(1, 64, {0}).error, 0);
  EXPECT_EQ(write(1, 20, le(100, 4)).error, 0);
  EXPECT_EQ(sim.read_register(1, "Homing_Offset"), 100);
  // Half of a 4-byte register.
  EXPECT_EQ(write(1, 116, le(5, 2)).error, dynamixel::kErrorDataLength);
  // An operating mode the XL430 does not have, an id past 252.
  EXPECT_EQ(write(1, 11, {0}).error, dynamixel::kErrorDataRange);
  EXPECT_EQ(write(1, 7, {253}).error, dynamixel::kErrorDataRange);
  // Reserved address, and past the table.
  EXPECT_EQ(write(1, 14, {1}).error, dynamixel::kErrorAccess);
  EXPECT_EQ(read(1, 140, 20).error, dynamixel::kErrorAccess);
  // Unknown instruction.
  EXPECT_EQ(transact(dx(1, 0x77)).error, dynamixel::kErrorInstruction);
  driver.send(dx(dynamixel::kBroadcastId, 0x77));
  EXPECT_TRUE(driver.listen().empty());
  // A packet whose CRC fails is answered with the CRC error.
  Bytes bad = dx(2, dynamixel::kPing);
  bad.back() ^= 0x01;
  EXPECT_EQ(transact(bad).error, dynamixel::kErrorCrc);
  EXPECT_EQ(sim.corrupt_instructions(), 1u);
}

TEST_F(DynamixelSim, PositionModeRejectsGoalsOutsideTheLimitsExtendedModeIgnoresThem) {
  EXPECT_EQ(write(3, 48, le(3000, 4)).error, 0);  // Max_Position_Limit
  EXPECT_EQ(write(3, 52, le(1000, 4)).error, 0);  // Min_Position_Limit
  EXPECT_EQ(write(3, 64, {1}).error, 0);
  EXPECT_EQ(write(3, 116, le(3500, 4)).error, dynamixel::kErrorDataLimit);
  EXPECT_EQ(write(3, 116, le(2900, 4)).error, 0);
  EXPECT_TRUE(eventually([&] { return sim.read_register(3, "Present_Position") == 2900; }));
  EXPECT_EQ(write(3, 64, {0}).error, 0);
  EXPECT_EQ(write(3, 11, {4}).error, 0);  // extended position
  EXPECT_EQ(write(3, 64, {1}).error, 0);
  EXPECT_EQ(write(3, 116, le(6000, 4)).error, 0);
  EXPECT_TRUE(eventually([&] { return position(3) == 6000; }));
  EXPECT_EQ(write(3, 116, le(-300, 4)).error, 0);
  EXPECT_TRUE(eventually([&] { return position(3) == -300; }));
}

TEST_F(DynamixelSim, HomingOffsetAddsAndDriveModeReverses) {
  sim.set_actual_position(4, 1000);
  EXPECT_EQ(position(4), 1000);
  // Present_Position = actual + Homing_Offset (two's complement, 4 bytes).
  EXPECT_EQ(write(4, 20, le(500, 4)).error, 0);
  EXPECT_EQ(position(4), 1500);
  EXPECT_EQ(write(4, 20, le(-1200, 4)).error, 0);
  EXPECT_EQ(position(4), -200);
  EXPECT_EQ(sim.read_register(4, "Homing_Offset"), -1200);
  // LeRobot's half-turn homing: offset = 2047 - position read with a zero offset.
  EXPECT_EQ(write(4, 20, le(0, 4)).error, 0);
  EXPECT_EQ(write(4, 20, le(2047 - position(4), 4)).error, 0);
  EXPECT_EQ(position(4), 2047);
  // Drive_Mode bit 0 reverses the direction in hardware.
  EXPECT_EQ(write(4, 20, le(0, 4)).error, 0);
  EXPECT_EQ(write(4, 10, {1}).error, 0);
  EXPECT_EQ(position(4), -1000);
  sim.set_actual_position(4, 900);
  EXPECT_EQ(position(4), -900);
}

TEST_F(DynamixelSim, SyncReadAndSyncWriteMoveSixMotors) {
  const uint8_t ids[] = {1, 2, 3, 4, 5, 6};
  driver.send(dx(dynamixel::kBroadcastId, dynamixel::kWrite, cat(le(64, 2), {1})));
  EXPECT_TRUE(driver.listen().empty());
  Bytes goals;
  std::vector<int32_t> targets;
  for (uint8_t id : ids) {
    targets.push_back(static_cast<int32_t>(sim.read_register(id, "Present_Position")) - 250);
    goals = cat(goals, le(targets.back(), 4));
  }
  Bytes packet(dynamixel::kMaxPacketSize);
  packet.resize(dynamixel::encode_sync_write(ids, 116, 4, goals, packet));
  driver.send(packet);
  EXPECT_TRUE(driver.listen(milliseconds(10)).empty());
  for (size_t i = 0; i < 6; ++i)
    EXPECT_TRUE(
        eventually([&] { return sim.read_register(ids[i], "Present_Position") == targets[i]; }));
  packet.resize(dynamixel::kMaxPacketSize);
  packet.resize(dynamixel::encode_sync_read(ids, 132, 4, false, packet));
  driver.send(packet);
  const auto statuses = driver.dynamixel_statuses(6);
  ASSERT_EQ(statuses.size(), 6u);
  for (size_t i = 0; i < 6; ++i) {
    EXPECT_EQ(statuses[i].id, ids[i]);
    EXPECT_EQ(static_cast<int32_t>(le_value(statuses[i].data)), targets[i]);
  }
  EXPECT_EQ(sim.instruction_count(dynamixel::kSyncRead), 1u);
  EXPECT_EQ(sim.instruction_count(dynamixel::kSyncWrite), 1u);
}

// The combined FAST_SYNC_READ reply, parsed as the ROBOTIS SDK does (GroupSyncRead.fastSyncRead):
// the packet CRC over everything, then per block ERR, ID, DATA, CRC of the packet so far.
TEST_F(DynamixelSim, FastSyncReadIsOneCombinedReplyWithCumulativeBlockCrcs) {
  const uint8_t ids[] = {1, 2, 3, 4, 5, 6};
  const size_t length = 4;
  const size_t total = 8 + 6 * (length + 4);
  Bytes packet(dynamixel::kMaxPacketSize);
  packet.resize(dynamixel::encode_sync_read(ids, 132, length, true, packet));
  driver.send(packet);
  const Bytes reply = driver.read_bytes(total);
  ASSERT_EQ(reply.size(), total);
  EXPECT_EQ(Bytes(reply.begin(), reply.begin() + 8),
            (Bytes{0xFF, 0xFF, 0xFD, 0x00, 0xFE, uint8_t(total - 7), 0x00, 0x55}));
  uint8_t scratch[dynamixel::kMaxPacketSize];
  const dynamixel::Scan scan = dynamixel::scan(reply, dynamixel::FrameKind::kFastStatus, scratch);
  ASSERT_EQ(scan.outcome, dynamixel::Scan::kFrame);
  EXPECT_EQ(scan.size, total);
  for (size_t i = 0; i < 6; ++i) {
    const size_t at = 8 + i * (length + 4);
    EXPECT_EQ(reply[at], 0);  // ERR
    EXPECT_EQ(reply[at + 1], ids[i]);
    const Bytes data(reply.begin() + at + 2, reply.begin() + at + 2 + length);
    EXPECT_EQ(static_cast<int64_t>(le_value(data)), sim.read_register(ids[i], "Present_Position"));
    const uint16_t crc = reply[at + 2 + length] | (reply[at + 3 + length] << 8);
    EXPECT_EQ(crc, dynamixel::crc16(std::span(reply).first(at + 2 + length))) << "block " << i;
  }
  // A corrupted block fails its own CRC and every later one, the packet CRC included.
  sim.corrupt_replies(4, 1);
  driver.send(packet);
  const Bytes noisy = driver.read_bytes(total);
  ASSERT_EQ(noisy.size(), total);
  for (size_t i = 0; i < 6; ++i) {
    const size_t at = 8 + i * (length + 4);
    const uint16_t crc = noisy[at + 2 + length] | (noisy[at + 3 + length] << 8);
    EXPECT_EQ(crc == dynamixel::crc16(std::span(noisy).first(at + 2 + length)), i < 3) << i;
  }
  EXPECT_EQ(dynamixel::scan(noisy, dynamixel::FrameKind::kFastStatus, scratch).outcome,
            dynamixel::Scan::kCorrupt);
  // A vanished motor leaves its block out: the packet is shorter than its length says.
  sim.vanish(6);
  driver.send(packet);
  EXPECT_EQ(driver.listen().size(), total - (length + 4));
}

TEST_F(DynamixelSim, BulkReadAndBulkWriteAddressEachMotorOnItsOwn) {
  const uint8_t ids[] = {2, 5};
  const uint16_t addresses[] = {132, 7};
  const uint16_t lengths[] = {4, 1};
  Bytes packet(dynamixel::kMaxPacketSize);
  packet.resize(dynamixel::encode_bulk_read(ids, addresses, lengths, packet));
  driver.send(packet);
  const auto statuses = driver.dynamixel_statuses(2);
  ASSERT_EQ(statuses.size(), 2u);
  EXPECT_EQ(statuses[0].id, 2);
  EXPECT_EQ(static_cast<int64_t>(le_value(statuses[0].data)),
            sim.read_register(2, "Present_Position"));
  EXPECT_EQ(statuses[1].id, 5);
  EXPECT_EQ(statuses[1].data, (Bytes{5}));
  // BULK_WRITE: [id, addr(2), len(2), data] blocks, no reply.
  driver.send(dx(dynamixel::kBroadcastId, dynamixel::kBulkWrite,
                 {2, 65, 0, 1, 0, /*LED*/ 1, 6, 9, 0, 1, 0, /*Return_Delay_Time*/ 0}));
  EXPECT_TRUE(driver.listen().empty());
  EXPECT_EQ(sim.read_register(2, "LED"), 1);
  EXPECT_EQ(sim.read_register(6, "Return_Delay_Time"), 0);
}

TEST_F(DynamixelSim, IdChangeRegWriteActionAndReboot) {
  EXPECT_EQ(write(1, 7, {11}).id, 1);
  EXPECT_EQ(transact(dx(11, dynamixel::kPing)).id, 11);
  // REG_WRITE sets Registered_Instruction until ACTION applies it.
  EXPECT_EQ(transact(dx(2, dynamixel::kRegWrite, cat(le(65, 2), {1}))).error, 0);
  EXPECT_EQ(sim.read_register(2, "Registered_Instruction"), 1);
  EXPECT_EQ(sim.read_register(2, "LED"), 0);
  EXPECT_EQ(transact(dx(2, dynamixel::kAction)).error, 0);
  EXPECT_EQ(sim.read_register(2, "LED"), 1);
  EXPECT_EQ(sim.read_register(2, "Registered_Instruction"), 0);
  // REBOOT: answered, then RAM is back to power-up values and EEPROM kept.
  EXPECT_EQ(write(2, 20, le(-50, 4)).error, 0);
  EXPECT_EQ(write(2, 64, {1}).error, 0);
  EXPECT_EQ(transact(dx(2, dynamixel::kReboot)).error, 0);
  EXPECT_EQ(sim.read_register(2, "Torque_Enable"), 0);
  EXPECT_EQ(sim.read_register(2, "LED"), 0);
  EXPECT_EQ(sim.read_register(2, "Homing_Offset"), -50);
}

TEST_F(DynamixelSim, SecondaryIdExecutesWithoutAnswering) {
  EXPECT_EQ(write(3, 12, {2}).error, 0);  // motor 3 shadows motor 2
  driver.send(dx(2, dynamixel::kWrite, cat(le(65, 2), {1})));
  EXPECT_EQ(driver.dynamixel_statuses(2, milliseconds(50)).size(), 1u);
  EXPECT_EQ(sim.read_register(2, "LED"), 1);
  EXPECT_EQ(sim.read_register(3, "LED"), 1);
}

TEST_F(DynamixelSim, ReturnDelayAndFaultsApplyToDynamixelReplies) {
  // 250 x 2 us per reply at the factory setting: six sync-read replies take at least 3 ms.
  const uint8_t ids[] = {1, 2, 3, 4, 5, 6};
  Bytes packet(dynamixel::kMaxPacketSize);
  packet.resize(dynamixel::encode_sync_read(ids, 132, 4, false, packet));
  const auto sent = Clock::now();
  driver.send(packet);
  ASSERT_EQ(driver.dynamixel_statuses(6).size(), 6u);
  EXPECT_GE(Clock::now() - sent, std::chrono::microseconds(3000));
  // Error bits: the alert flag stays, a processing error takes the low bits.
  sim.set_error_bits(1, dynamixel::kErrorAlert);
  EXPECT_EQ(transact(dx(1, dynamixel::kPing)).error, dynamixel::kErrorAlert);
  EXPECT_EQ(write(1, 132, le(0, 4)).error, dynamixel::kErrorAlert | dynamixel::kErrorAccess);
  sim.clear_faults(1);
  // Wrong id and dropped replies inside a sync read.
  sim.reply_as(2, 9, 1);
  sim.drop_replies(4, 1);
  driver.send(packet);
  const auto statuses = driver.dynamixel_statuses(5);
  ASSERT_EQ(statuses.size(), 5u);
  EXPECT_EQ(statuses[1].id, 9);
  EXPECT_EQ(statuses[3].id, 5);
  // Corrupt: the CRC fails.
  sim.corrupt_replies(1, 1);
  driver.send(dx(1, dynamixel::kPing));
  const Bytes& corrupt = driver.read_bytes(14);
  uint8_t scratch[dynamixel::kMaxPacketSize];
  EXPECT_EQ(dynamixel::scan(corrupt, dynamixel::FrameKind::kStatus, scratch).outcome,
            dynamixel::Scan::kCorrupt);
}

TEST(ServoSimulator, IntrospectionBypassesTheBus) {
  ServoSimulator sim(Protocol::kDynamixel, {{1, "xm430-w350"}});
  EXPECT_EQ(sim.model(1).name, "xm430-w350");
  sim.write_register(1, "Present_Position", 1234);
  EXPECT_EQ(sim.read_register(1, "Present_Position"), 1234);
  EXPECT_DOUBLE_EQ(sim.actual_position(1), 1234);
  sim.write_register(1, "Homing_Offset", -34);
  EXPECT_EQ(sim.read_register(1, "Present_Position"), 1200);
  sim.write_register(1, "Present_Temperature", 71);
  EXPECT_EQ(sim.read_memory(1, 146, 1), (Bytes{71}));
  EXPECT_THROW(sim.read_register(1, "Nope"), std::invalid_argument);
  EXPECT_THROW(sim.write_register(1, "LED", 300), std::invalid_argument);
  EXPECT_THROW(sim.read_register(2, "ID"), std::invalid_argument);
  // Torque on holds the pose, and a person pushing the arm is pulled back.
  sim.write_register(1, "Return_Delay_Time", 0);
  sim.write_register(1, "Torque_Enable", 1);
  EXPECT_EQ(sim.read_register(1, "Goal_Position"), 1200);
  sim.set_actual_position(1, 2000);
  EXPECT_TRUE(eventually([&] { return sim.read_register(1, "Present_Position") == 1200; }));
}

}  // namespace
}  // namespace dexloop::servo_sim
