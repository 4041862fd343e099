// The servo simulator's motor model: one motor's control table, its faults and its motion, and
// the helpers the firmwares and the pty server share. Internal to the simulator (not installed).
#pragma once

#include <asm/ioctls.h>
#include <asm/termbits.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <stdlib.h>
#include <sys/inotify.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <mutex>
#include <optional>
#include <random>
#include <span>
#include <stdexcept>
#include <thread>
#include <unordered_set>
#include <utility>

#include "dexloop/bus/control_table.hpp"
#include "dexloop/bus/dynamixel_protocol.hpp"
#include "dexloop/bus/encoding.hpp"
#include "dexloop/bus/feetech_protocol.hpp"
#include "dexloop/error.hpp"

namespace dexloop::servo_sim {

using Clock = std::chrono::steady_clock;

using bus::Register;

using bus::Vendor;

namespace feetech = bus::feetech;

namespace dynamixel = bus::dynamixel;

// Owns one file descriptor.
class UniqueFd {
 public:
  UniqueFd() = default;
  explicit UniqueFd(int fd) : fd_(fd) {}
  UniqueFd(UniqueFd&& other) noexcept : fd_(std::exchange(other.fd_, -1)) {}
  UniqueFd& operator=(UniqueFd&& other) noexcept {
    if (this != &other) reset(std::exchange(other.fd_, -1));
    return *this;
  }
  UniqueFd(const UniqueFd&) = delete;
  UniqueFd& operator=(const UniqueFd&) = delete;
  ~UniqueFd() { reset(); }

  int get() const { return fd_; }
  bool valid() const { return fd_ >= 0; }
  void reset(int fd = -1) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = fd;
  }

 private:
  int fd_ = -1;
};

[[noreturn]] void throw_errno(const std::string& what);

// How long the serving thread sleeps at most: the motion tick.
constexpr auto kTick = std::chrono::milliseconds(20);

// With no driver on the slave side the master reports POLLHUP at once, so poll() cannot wait for
// the driver to open the port: the thread waits on inotify's open event of the slave device and
// looks again at this period (or, without inotify, at the short one).
constexpr auto kNoDriverRecheck = std::chrono::milliseconds(50);

constexpr auto kNoDriverRecheckWithoutInotify = std::chrono::milliseconds(2);

// Servo firmware restarts packet reception after an idle line: bytes of an incomplete packet older
// than this are dropped when new bytes arrive, so garbage cannot swallow the next instruction.
constexpr auto kIdleResync = std::chrono::milliseconds(50);

// Bytes due while the driver does not read pile up in the pty; beyond this they are lost, as a
// UART's would be.
constexpr size_t kMaxUnwritten = 1 << 16;

// Dynamixel velocity unit 0.229 rev/min, in steps (of 4096 per turn) per second.
constexpr double kDynamixelVelocityUnit = 0.229 * 4096.0 / 60.0;

int64_t max_value(const Register& reg);

int64_t min_value(const Register& reg);

bool consume(int& count);

struct Faults {
  int drop = 0;
  int corrupt = 0;
  int delay = 0;
  uint32_t delay_us = 0;
  int reply_as = 0;
  uint8_t reply_as_id = 0;
  int garbage = 0;
  std::vector<uint8_t> garbage_bytes;
  bool vanished = false;
  uint8_t error_bits = 0;
};

// What one reply looks like after the motor's faults were applied.
struct ReplyFaults {
  bool send = true;
  uint8_t id = 0;
  bool corrupt = false;
  std::span<const uint8_t> garbage;
  uint32_t delay_us = 0;
};

// The registers the simulator acts on; null where the model has none (SCS: no Homing_Offset).
struct Registers {
  const Register* id = nullptr;
  const Register* baud_rate = nullptr;
  const Register* return_delay = nullptr;
  const Register* status_level = nullptr;
  const Register* min_limit = nullptr;
  const Register* max_limit = nullptr;
  const Register* phase = nullptr;
  const Register* homing_offset = nullptr;
  const Register* operating_mode = nullptr;
  const Register* drive_mode = nullptr;
  const Register* secondary_id = nullptr;
  const Register* torque_enable = nullptr;
  const Register* goal_position = nullptr;
  const Register* goal_velocity = nullptr;
  const Register* present_position = nullptr;
  const Register* present_velocity = nullptr;
  const Register* present_load = nullptr;
  const Register* present_current = nullptr;
  const Register* present_pwm = nullptr;
  const Register* moving = nullptr;
  const Register* moving_status = nullptr;
  const Register* status = nullptr;
  const Register* realtime_tick = nullptr;
  const Register* registered_instruction = nullptr;
  const Register* moving_threshold = nullptr;
  const Register* current_limit = nullptr;
  const Register* pwm_limit = nullptr;
};

struct Registered {
  uint16_t address = 0;
  std::vector<uint8_t> data;
};

struct Motor {
  const bus::ModelInfo* model = nullptr;
  Registers regs;
  std::vector<uint8_t> memory;
  std::vector<int16_t> owner;  // index into model->registers of the register holding each byte
  double actual = 0;           // raw encoder position in steps, continuous (multi-turn)
  double velocity = 0;         // steps/s, in the reported frame
  double error = 0;            // goal - present, steps (drives load and current)
  Clock::time_point last_update;
  std::optional<Registered> registered;
  Faults faults;

  Vendor vendor() const { return model->vendor; }
  uint32_t raw(const Register& reg) const {
    return bus::load_unsigned(&memory[reg.address], reg.size, model->byte_order());
  }
  int64_t value(const Register* reg) const {
    return reg == nullptr ? 0 : bus::decode_signed(raw(*reg), reg->size, reg->encoding);
  }
  // Stores `v`, clamped to what the register can hold.
  void set(const Register* reg, int64_t v) {
    if (reg == nullptr) return;
    v = std::clamp(v, min_value(*reg), max_value(*reg));
    bus::store_unsigned(*bus::encode_signed(v, reg->size, reg->encoding), &memory[reg->address],
                        reg->size, model->byte_order());
  }
  uint8_t id() const { return memory[regs.id->address]; }
  bool torque_on() const { return value(regs.torque_enable) == 1; }
  int baudrate() const {
    return model->baudrate_of_code(static_cast<uint8_t>(value(regs.baud_rate)));
  }
};

Registers find_registers(const bus::ModelInfo& model);

// Factory values. Addresses and sizes are LeRobot's; the values follow the vendors' memory tables
// where they give one (Feetech STS/SMS, ROBOTIS X series e-manuals) and are plausible otherwise
// (gains, thresholds, factory-only bytes), since no driver dexloop ships depends on them.
void set_factory_values(Motor& m, uint8_t id, int baudrate, double position);

double positive_fmod(double value, double modulus);

// Dynamixel Drive_Mode bit 0 reverses the direction in hardware.
double direction(const Motor& m);

// Feetech reports positions wrapped into [0, resolution) unless Phase bit 4 (multi-turn angle
// feedback) is set; the SCS series always wraps.
bool wraps(const Motor& m);

// Present_Position as a continuous value, from the actual (raw encoder) position:
// Feetech actual - Homing_Offset, Dynamixel direction * actual + Homing_Offset.
double present_continuous(const Motor& m, double actual);

int64_t present_reported(const Motor& m);

// The goal the position loop tracks, in the reported frame: Feetech clamps it into the position
// limits (both 0 means multi-turn, unlimited); Dynamixel rejected out-of-limit goals when written.
double effective_goal(const Motor& m);

enum class Control : uint8_t { kHold, kPosition, kVelocity };

Control control_of(const Motor& m);

// Writes the feedback registers from the motion state.
void write_feedback(Motor& m, Clock::time_point now, Clock::time_point epoch);

// Advances the motion to `now` (exact for a first-order response to a constant goal, whatever the
// step) and refreshes the feedback registers.
void advance(Motor& m, Clock::time_point now, double time_constant, Clock::time_point epoch);

// dynamixel::scan(kInstruction) waits for 11 bytes (a status packet's minimum) before it examines
// a header, but an instruction without parameters (PING, ACTION, REBOOT) is 10 bytes: with
// nothing after it, it would wait forever. Such a packet is recognised here.
dynamixel::Scan scan_instruction(std::span<const uint8_t> buffer, std::span<uint8_t> scratch);

struct Outgoing {
  Clock::time_point due;
  std::vector<uint8_t> bytes;
};

}  // namespace dexloop::servo_sim
