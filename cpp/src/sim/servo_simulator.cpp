// The pty is configured with termios2 (<asm/termbits.h>, which cannot be mixed with glibc's
// <termios.h>): its c_ospeed is the rate a driver set, standard or not (BOTHER), which
// match_baudrate compares with the motors' own.
#include "dexloop/sim/servo_simulator.hpp"

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

#include "dexloop/bus/dynamixel_protocol.hpp"
#include "dexloop/bus/encoding.hpp"
#include "dexloop/bus/feetech_protocol.hpp"
#include "dexloop/error.hpp"

namespace dexloop::sim {
namespace {

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

[[noreturn]] void throw_errno(const std::string& what) {
  throw Error("servo simulator: " + what + ": " + std::strerror(errno));
}

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

int64_t max_value(const Register& reg) {
  switch (reg.encoding.kind) {
    case bus::SignEncoding::kSignMagnitude:
      return (int64_t{1} << reg.encoding.sign_bit) - 1;
    case bus::SignEncoding::kTwosComplement:
      return (int64_t{1} << (8 * reg.size - 1)) - 1;
    case bus::SignEncoding::kNone:
      break;
  }
  return (int64_t{1} << (8 * reg.size)) - 1;
}

int64_t min_value(const Register& reg) {
  switch (reg.encoding.kind) {
    case bus::SignEncoding::kSignMagnitude:
      return -max_value(reg);
    case bus::SignEncoding::kTwosComplement:
      return -(int64_t{1} << (8 * reg.size - 1));
    case bus::SignEncoding::kNone:
      break;
  }
  return 0;
}

bool consume(int& count) {
  if (count == 0) return false;
  if (count > 0) --count;
  return true;
}

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

Registers find_registers(const bus::ModelInfo& model) {
  auto find = [&](std::string_view name) { return model.find(name); };
  Registers r;
  r.id = find("ID");
  r.baud_rate = find("Baud_Rate");
  r.return_delay = find("Return_Delay_Time");
  r.status_level = model.vendor == Vendor::kFeetech ? find("Response_Status_Level")
                                                    : find("Status_Return_Level");
  r.min_limit = find("Min_Position_Limit");
  r.max_limit = find("Max_Position_Limit");
  r.phase = find("Phase");
  r.homing_offset = find("Homing_Offset");
  r.operating_mode = find("Operating_Mode");
  r.drive_mode = find("Drive_Mode");
  r.secondary_id = find("Secondary_ID");
  r.torque_enable = find("Torque_Enable");
  r.goal_position = find("Goal_Position");
  r.goal_velocity = find("Goal_Velocity");
  r.present_position = find("Present_Position");
  r.present_velocity = find("Present_Velocity");
  r.present_load = find("Present_Load");
  r.present_current = find("Present_Current");
  r.present_pwm = find("Present_PWM");
  r.moving = find("Moving");
  r.moving_status = find("Moving_Status");
  r.status = find("Status");
  r.realtime_tick = find("Realtime_Tick");
  r.registered_instruction = find("Registered_Instruction");
  r.moving_threshold = find("Moving_Threshold");
  r.current_limit = find("Current_Limit");
  r.pwm_limit = find("PWM_Limit");
  return r;
}

// Factory values. Addresses and sizes are LeRobot's; the values follow the vendors' memory tables
// where they give one (Feetech STS/SMS, ROBOTIS X series e-manuals) and are plausible otherwise
// (gains, thresholds, factory-only bytes), since no driver dexloop ships depends on them.
void set_factory_values(Motor& m, uint8_t id, int baudrate, double position) {
  const bus::ModelInfo& model = *m.model;
  std::fill(m.memory.begin(), m.memory.end(), uint8_t{0});
  auto set = [&](std::string_view name, int64_t value) { m.set(model.find(name), value); };
  const int resolution = model.resolution;
  set("Model_Number", model.model_number);
  set("ID", id);
  set("Baud_Rate", model.baudrate_code(baudrate));
  set("Min_Position_Limit", 0);
  set("Max_Position_Limit", resolution - 1);
  set("Torque_Enable", 0);
  set("Present_Temperature", 30);
  if (model.vendor == Vendor::kFeetech) {
    // One firmware for the whole bus: LeRobot's handshake refuses motors whose versions differ.
    set("Firmware_Major_Version", 3);
    set("Firmware_Minor_Version", 10);
    // Feetech's STS memory table gives 0 (LeRobot's comment says 250); LeRobot writes 0 anyway.
    set("Return_Delay_Time", 0);
    set("Response_Status_Level", 1);
    set("Max_Temperature_Limit", 70);
    set("Max_Voltage_Limit", 140);
    set("Min_Voltage_Limit", 40);
    set("Max_Torque_Limit", 1000);
    // Bit 4 (angle feedback mode) set on the STS3215, as LeRobot's fix #3373 finds it.
    set("Phase", model.name == "sts3215" ? 0x10 : 0x00);
    set("Unloading_Condition", 0x2C);
    set("LED_Alarm_Condition", 0x2F);
    set("P_Coefficient", 32);
    set("D_Coefficient", 32);
    set("I_Coefficient", 0);
    set("Minimum_Startup_Force", 16);
    set("CW_Dead_Zone", 1);
    set("CCW_Dead_Zone", 1);
    set("Protection_Current", 511);
    set("Angular_Resolution", 1);
    set("Homing_Offset", 0);
    set("Operating_Mode", 0);
    set("Protective_Torque", 20);
    set("Protection_Time", 200);
    set("Overload_Torque", 80);
    set("Velocity_closed_loop_P_proportional_coefficient", 10);
    set("Over_Current_Protection_Time", 200);
    set("Velocity_closed_loop_I_integral_coefficient", 200);
    set("Torque_Limit", 1000);
    set("Lock", 0);
    set("Present_Voltage", 120);
    set("Moving_Velocity_Threshold", 2);
    set("DTs", 32);
    set("Velocity_Unit_factor", 1);
    set("Maximum_Velocity_Limit", 80);
    set("Maximum_Acceleration", 50);
  } else {
    const bool small = model.name.starts_with("xl330") || model.name.starts_with("xc330");
    const bool no_current = model.name == "xl430-w250" || model.name == "xc430-w150";
    const bool big = model.name.starts_with("xm540") || model.name.starts_with("xh540");
    set("Model_Information", 0);
    set("Firmware_Version", 48);
    set("Return_Delay_Time", 250);  // 500 us: the X series' factory value
    set("Drive_Mode", 0);
    set("Operating_Mode", 3);
    set("Secondary_ID", 255);
    set("Protocol_Type", 2);
    set("Homing_Offset", 0);
    set("Moving_Threshold", 10);
    set("Temperature_Limit", small ? 70 : 80);
    set("Max_Voltage_Limit", small ? 70 : 160);
    set("Min_Voltage_Limit", small ? 35 : 95);
    set("PWM_Limit", 885);
    set("Current_Limit", no_current ? 0 : (small ? 1750 : (big ? 2047 : 1193)));
    set("Acceleration_Limit", 32767);
    set("Velocity_Limit", small ? 445 : (no_current ? 265 : 200));
    set("Shutdown", 52);
    set("LED", 0);
    set("Status_Return_Level", 2);
    set("Velocity_I_Gain", small ? 1600 : 1920);
    set("Velocity_P_Gain", small ? 180 : 100);
    set("Position_P_Gain", small ? 400 : 800);
    set("Goal_PWM", 885);
    set("Goal_Current", no_current ? 0 : (small ? 1750 : (big ? 2047 : 1193)));
    set("Present_Input_Voltage", small ? 50 : 120);
  }
  m.actual = position;
  m.velocity = 0;
  m.error = 0;
  m.registered.reset();
}

double positive_fmod(double value, double modulus) {
  double r = std::fmod(value, modulus);
  return r < 0 ? r + modulus : r;
}

// Dynamixel Drive_Mode bit 0 reverses the direction in hardware.
double direction(const Motor& m) {
  return m.vendor() == Vendor::kDynamixel && (m.value(m.regs.drive_mode) & 1) ? -1.0 : 1.0;
}

// Feetech reports positions wrapped into [0, resolution) unless Phase bit 4 (multi-turn angle
// feedback) is set; the SCS series always wraps.
bool wraps(const Motor& m) {
  if (m.vendor() != Vendor::kFeetech) return false;
  if (m.model->protocol == 1) return true;
  return (m.value(m.regs.phase) & 0x10) == 0;
}

// Present_Position as a continuous value, from the actual (raw encoder) position:
// Feetech actual - Homing_Offset, Dynamixel direction * actual + Homing_Offset.
double present_continuous(const Motor& m, double actual) {
  const double offset = static_cast<double>(m.value(m.regs.homing_offset));
  if (m.vendor() == Vendor::kFeetech) {
    const double present = actual - offset;
    return wraps(m) ? positive_fmod(present, m.model->resolution) : present;
  }
  return direction(m) * actual + offset;
}

int64_t present_reported(const Motor& m) {
  const double offset = static_cast<double>(m.value(m.regs.homing_offset));
  if (m.vendor() == Vendor::kFeetech) {
    const int64_t present = std::llround(m.actual - offset);
    if (!wraps(m)) return present;
    const int64_t resolution = m.model->resolution;
    return ((present % resolution) + resolution) % resolution;
  }
  return std::llround(direction(m) * m.actual + offset);
}

// The goal the position loop tracks, in the reported frame: Feetech clamps it into the position
// limits (both 0 means multi-turn, unlimited); Dynamixel rejected out-of-limit goals when written.
double effective_goal(const Motor& m) {
  double goal = static_cast<double>(m.value(m.regs.goal_position));
  if (m.vendor() == Vendor::kFeetech) {
    const int64_t low = m.value(m.regs.min_limit);
    const int64_t high = m.value(m.regs.max_limit);
    if ((low != 0 || high != 0) && low <= high)
      goal = std::clamp(goal, static_cast<double>(low), static_cast<double>(high));
  }
  return goal;
}

enum class Control : uint8_t { kHold, kPosition, kVelocity };

Control control_of(const Motor& m) {
  if (!m.torque_on()) return Control::kHold;
  const int64_t mode = m.value(m.regs.operating_mode);
  if (m.vendor() == Vendor::kFeetech) {
    if (mode == 0) return Control::kPosition;
    if (mode == 1) return Control::kVelocity;
    return Control::kHold;
  }
  if (mode == 3 || mode == 4 || mode == 5) return Control::kPosition;
  if (mode == 1) return Control::kVelocity;
  return Control::kHold;
}

// Writes the feedback registers from the motion state.
void write_feedback(Motor& m, Clock::time_point now, Clock::time_point epoch) {
  m.set(m.regs.present_position, present_reported(m));
  const bool torque = m.torque_on();
  const double error = torque ? m.error : 0.0;
  const bool moving = std::abs(m.velocity) > 1.0 || (torque && std::abs(error) >= 1.0);
  m.set(m.regs.moving, moving ? 1 : 0);
  if (m.vendor() == Vendor::kFeetech) {
    // Present_Velocity in steps/s; Present_Load in 0.1 % of full PWM, rising with the tracking
    // error and saturating at 100 %.
    const bool scs = m.model->protocol == 1;
    const int64_t velocity = std::llround(m.velocity);
    m.set(m.regs.present_velocity, scs ? std::abs(velocity) : velocity);
    const int64_t load = std::clamp<int64_t>(std::llround(2.0 * error), -1000, 1000);
    m.set(m.regs.present_load, scs ? std::abs(load) : load);
    m.set(m.regs.present_current, std::abs(load) / 2 + (torque ? 2 : 0));
    m.set(m.regs.status, m.faults.error_bits);
  } else {
    m.set(m.regs.present_velocity, std::llround(m.velocity / kDynamixelVelocityUnit));
    const int64_t current_limit = std::max<int64_t>(m.value(m.regs.current_limit), 1);
    m.set(m.regs.present_current,
          std::clamp<int64_t>(std::llround(2.0 * error), -current_limit, current_limit));
    const int64_t pwm_limit = m.value(m.regs.pwm_limit);
    m.set(m.regs.present_pwm,
          std::clamp<int64_t>(std::llround(3.0 * error), -pwm_limit, pwm_limit));
    const bool in_position = torque && std::abs(error) <= m.value(m.regs.moving_threshold);
    m.set(m.regs.moving_status, in_position ? 1 : 0);
    const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(now - epoch).count();
    m.set(m.regs.realtime_tick, ms % 32768);
  }
}

// Advances the motion to `now` (exact for a first-order response to a constant goal, whatever the
// step) and refreshes the feedback registers.
void advance(Motor& m, Clock::time_point now, double time_constant, Clock::time_point epoch) {
  const double dt = std::max(0.0, std::chrono::duration<double>(now - m.last_update).count());
  m.last_update = now;
  const Control control = control_of(m);
  const double dir = direction(m);
  if (control == Control::kPosition) {
    const double goal = effective_goal(m);
    const double error = goal - present_continuous(m, m.actual);
    const double decay = time_constant > 0 ? std::exp(-dt / time_constant) : 0.0;
    // In the reported frame d(present) = direction * d(actual) (a wrap only changes the
    // reported value, never the direction of travel).
    m.actual += dir * error * (1.0 - decay);
    m.error = error * decay;
    m.velocity = time_constant > 0 ? m.error / time_constant : 0.0;
  } else if (control == Control::kVelocity) {
    const double velocity = m.vendor() == Vendor::kFeetech
                                ? static_cast<double>(m.value(m.regs.goal_velocity))
                                : m.value(m.regs.goal_velocity) * kDynamixelVelocityUnit;
    m.actual += dir * velocity * dt;
    m.velocity = velocity;
    m.error = 0;
  } else {
    m.velocity = 0;
    m.error = 0;
  }
  write_feedback(m, now, epoch);
}

// dynamixel::scan(kInstruction) waits for 11 bytes (a status packet's minimum) before it examines
// a header, but an instruction without parameters (PING, ACTION, REBOOT) is 10 bytes: with
// nothing after it, it would wait forever. Such a packet is recognised here.
dynamixel::Scan scan_instruction(std::span<const uint8_t> buffer, std::span<uint8_t> scratch) {
  dynamixel::Scan scan = dynamixel::scan(buffer, dynamixel::FrameKind::kInstruction, scratch);
  constexpr size_t kBare = dynamixel::kHeaderSize + 3;  // INST and CRC
  if (scan.outcome != dynamixel::Scan::kNeedMore || buffer.size() - scan.skip < kBare) return scan;
  const std::span<const uint8_t> packet = buffer.subspan(scan.skip, kBare);
  if (packet[0] != 0xFF || packet[1] != 0xFF || packet[2] != 0xFD || packet[3] != 0x00 ||
      packet[5] != 3 || packet[6] != 0 || packet[7] == dynamixel::kStatus)
    return scan;
  scan.size = kBare;
  const uint16_t crc = packet[8] | static_cast<uint16_t>(packet[9] << 8);
  if (dynamixel::crc16(packet.first(8)) != crc) {
    scan.outcome = dynamixel::Scan::kCorrupt;
    return scan;
  }
  scan.outcome = dynamixel::Scan::kFrame;
  scan.frame = dynamixel::Frame{packet[4], packet[7], scratch.first(0)};
  return scan;
}

struct Outgoing {
  Clock::time_point due;
  std::vector<uint8_t> bytes;
};

}  // namespace

Protocol parse_protocol(std::string_view name) {
  if (name == "feetech") return Protocol::kFeetech;
  if (name == "feetech_scs") return Protocol::kFeetechScs;
  if (name == "dynamixel") return Protocol::kDynamixel;
  throw std::invalid_argument("unknown servo protocol '" + std::string(name) +
                              "': expected 'feetech', 'feetech_scs' or 'dynamixel'");
}

std::string_view protocol_name(Protocol protocol) {
  switch (protocol) {
    case Protocol::kFeetech:
      return "feetech";
    case Protocol::kFeetechScs:
      return "feetech_scs";
    case Protocol::kDynamixel:
      break;
  }
  return "dynamixel";
}

struct ServoSimulator::Impl {
  Protocol protocol;
  Vendor vendor;
  SimulatorOptions options;
  std::string port_path;
  UniqueFd master;
  UniqueFd wake_read;
  UniqueFd wake_write;
  UniqueFd inotify;
  Clock::time_point epoch = Clock::now();

  mutable std::mutex mutex;  // guards motors (the serving thread and callers' introspection)
  mutable std::vector<Motor> motors;

  std::mutex lifecycle;  // serialises start() / stop()
  std::thread thread;
  std::atomic<bool> stop_requested{false};
  std::atomic<bool> is_running{false};

  // Faults on the driver-to-motors line (mutex held).
  int corrupt_writes = 0;
  int drop_writes = 0;
  int noise_writes = 0;
  std::vector<uint8_t> noise;
  std::mt19937_64 line_rng;

  // Serving thread only.
  std::vector<uint8_t> rx;
  Clock::time_point last_rx;
  std::deque<Outgoing> pending;  // by due time
  std::vector<uint8_t> unwritten;
  std::array<uint8_t, dynamixel::kMaxPacketSize> scratch{};

  std::array<std::atomic<uint64_t>, 256> instructions{};
  std::atomic<uint64_t> corrupt{0};
  std::atomic<uint64_t> bytes_in{0};
  std::atomic<uint64_t> bytes_out{0};
  std::atomic<uint64_t> replies{0};

  Impl(Protocol protocol_, std::vector<MotorSpec> specs, SimulatorOptions options_);
  void open_pty();

  // --- lookup (mutex held)
  Motor* find(int id) {
    for (Motor& m : motors) {
      if (m.id() == id) return &m;
    }
    return nullptr;
  }
  Motor& require(int id) const {
    for (Motor& m : motors) {
      if (m.id() == id) return m;
    }
    throw std::invalid_argument("servo simulator: no motor with id " + std::to_string(id));
  }
  template <typename F>
  void for_targets(int id, F&& apply) {
    if (id == kAllMotors) {
      for (Motor& m : motors) apply(m);
    } else {
      apply(require(id));
    }
  }
  std::vector<Motor*> in_id_order() {
    std::vector<Motor*> sorted;
    for (Motor& m : motors) sorted.push_back(&m);
    std::stable_sort(sorted.begin(), sorted.end(),
                     [](const Motor* a, const Motor* b) { return a->id() < b->id(); });
    return sorted;
  }
  void refresh_all(Clock::time_point now) {
    for (Motor& m : motors) advance(m, now, options.time_constant_s, epoch);
  }

  // --- serving thread
  void run();
  bool driver_present();
  void receive(Clock::time_point now);
  void process(Clock::time_point now);
  void flush(Clock::time_point now, bool connected);

  // Whether a motor takes part in traffic at all (vanished motors and, with match_baudrate, motors
  // at another speed than the port hear nothing).
  bool hears(const Motor& m, int port_baud) const {
    if (m.faults.vanished) return false;
    return !options.match_baudrate || m.baudrate() == port_baud;
  }
  int port_baud() const;

  // --- replies
  Clock::time_point bus_free(Clock::time_point now) const {
    return pending.empty() ? now : std::max(now, pending.back().due);
  }
  ReplyFaults take_faults(Motor& m);
  Clock::duration wire_time(const Motor& m, size_t bytes) const;
  Clock::duration return_delay(const Motor& m) const {
    return std::chrono::microseconds(2 * m.value(m.regs.return_delay));
  }
  void queue(Clock::time_point& cursor, std::vector<uint8_t> bytes) {
    pending.push_back(Outgoing{cursor, std::move(bytes)});
  }
  // One status packet from `m`, after the return delay and the motor's faults.
  void reply(Motor& m, uint8_t error, std::span<const uint8_t> data, Clock::time_point& cursor);

  // --- Feetech
  void handle_feetech(const feetech::Frame& frame, Clock::time_point now, int port_baud);
  void feetech_write(Motor& m, uint16_t address, std::span<const uint8_t> data);

  // --- Dynamixel
  void handle_dynamixel(const dynamixel::Frame& frame, Clock::time_point now, int port_baud);
  uint8_t dynamixel_check_read(const Motor& m, size_t address, size_t length) const;
  uint8_t dynamixel_check_write(const Motor& m, size_t address,
                                std::span<const uint8_t> data) const;
  void fast_read(std::span<const std::array<uint16_t, 3>> requests, Clock::time_point& cursor,
                 int port_baud);

  // Stores `data` and applies the firmware's reactions (torque on holds the pose, Feetech's 128
  // calibrates the middle); access rules are the caller's.
  void store(Motor& m, uint16_t address, std::span<const uint8_t> data, bool skip_read_only);
  uint8_t combine_error(const Motor& m, uint8_t error) const;
};

ServoSimulator::Impl::Impl(Protocol protocol_, std::vector<MotorSpec> specs,
                           SimulatorOptions options_)
    : protocol(protocol_),
      vendor(protocol_ == Protocol::kDynamixel ? Vendor::kDynamixel : Vendor::kFeetech),
      options(options_),
      line_rng(options_.seed ^ 0x9E3779B97F4A7C15ull) {
  const int wanted_protocol =
      protocol == Protocol::kDynamixel ? 2 : (protocol == Protocol::kFeetechScs ? 1 : 0);
  // +infinity is allowed: the motors then hold still until set_actual_position() moves them.
  if (!(options.time_constant_s >= 0))
    throw std::invalid_argument("servo simulator: time_constant_s must be >= 0 (or infinity)");
  std::mt19937_64 rng(options.seed);
  for (const MotorSpec& spec : specs) {
    const bus::ModelInfo* model = bus::find_model(spec.model);
    if (model == nullptr || model->model_number == 0)
      throw std::invalid_argument("servo simulator: unknown servo model '" + spec.model + "'");
    if (model->protocol != wanted_protocol) {
      throw std::invalid_argument("servo simulator: model '" + spec.model +
                                  "' does not speak the " + std::string(protocol_name(protocol)) +
                                  " protocol");
    }
    if (spec.id < 0 || spec.id > 252)
      throw std::invalid_argument("servo simulator: motor id " + std::to_string(spec.id) +
                                  " is outside 0..252");
    for (const Motor& other : motors) {
      if (other.id() == spec.id)
        throw std::invalid_argument("servo simulator: motor id " + std::to_string(spec.id) +
                                    " is given twice");
    }
    if (model->baudrate_code(options.baudrate) < 0)
      throw std::invalid_argument("servo simulator: model '" + spec.model + "' cannot be set to " +
                                  std::to_string(options.baudrate) + " baud");
    Motor m;
    m.model = model;
    m.regs = find_registers(*model);
    m.memory.assign(model->memory_size, 0);
    m.owner.assign(model->memory_size, -1);
    for (size_t r = 0; r < model->registers.size(); ++r) {
      const Register& reg = model->registers[r];
      for (size_t b = reg.address; b < size_t{reg.address} + reg.size && b < m.owner.size(); ++b)
        if (m.owner[b] < 0) m.owner[b] = static_cast<int16_t>(r);
    }
    const double mid = (model->resolution - 1) / 2.0;
    const double spread = model->resolution * 300.0 / 4096.0;
    std::uniform_real_distribution<double> around(mid - spread, mid + spread);
    set_factory_values(m, static_cast<uint8_t>(spec.id), options.baudrate, std::round(around(rng)));
    m.last_update = epoch;
    write_feedback(m, epoch, epoch);
    // At power-up the goal is where the motor is, so enabling torque does not move it.
    m.set(m.regs.goal_position, m.value(m.regs.present_position));
    motors.push_back(std::move(m));
  }
  open_pty();
}

void ServoSimulator::Impl::open_pty() {
  master.reset(::posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC));
  if (!master.valid()) throw_errno("posix_openpt");
  if (::grantpt(master.get()) != 0) throw_errno("grantpt");
  if (::unlockpt(master.get()) != 0) throw_errno("unlockpt");
  char name[128];
  if (::ptsname_r(master.get(), name, sizeof name) != 0) throw_errno("ptsname_r");
  port_path = name;
  // Raw mode on the pty (the master's termios calls act on the slave's line discipline): no echo
  // of the driver's bytes back to it, no line editing, 8N1, even for a driver that sets nothing.
  struct termios2 tio {};
  if (::ioctl(master.get(), TCGETS2, &tio) != 0) throw_errno("TCGETS2");
  tio.c_iflag &= ~static_cast<tcflag_t>(IGNBRK | BRKINT | PARMRK | ISTRIP | INLCR | IGNCR | ICRNL |
                                        IXON | IXOFF);
  tio.c_oflag &= ~static_cast<tcflag_t>(OPOST);
  tio.c_lflag &= ~static_cast<tcflag_t>(ECHO | ECHONL | ICANON | ISIG | IEXTEN);
  tio.c_cflag &= ~static_cast<tcflag_t>(CSIZE | PARENB | CSTOPB);
  tio.c_cflag |= CS8 | CLOCAL | CREAD;
  tio.c_cc[VMIN] = 1;
  tio.c_cc[VTIME] = 0;
  if (::ioctl(master.get(), TCSETS2, &tio) != 0) throw_errno("TCSETS2");
  const int flags = ::fcntl(master.get(), F_GETFL);
  if (flags < 0 || ::fcntl(master.get(), F_SETFL, flags | O_NONBLOCK) != 0)
    throw_errno("fcntl O_NONBLOCK");
  int pipe_fds[2];
  if (::pipe2(pipe_fds, O_NONBLOCK | O_CLOEXEC) != 0) throw_errno("pipe2");
  wake_read.reset(pipe_fds[0]);
  wake_write.reset(pipe_fds[1]);
  // Optional: without inotify the thread re-checks for a driver at a short period instead.
  UniqueFd watcher(::inotify_init1(IN_NONBLOCK | IN_CLOEXEC));
  if (watcher.valid() && ::inotify_add_watch(watcher.get(), port_path.c_str(), IN_OPEN) >= 0)
    inotify = std::move(watcher);
}

int ServoSimulator::Impl::port_baud() const {
  if (!options.match_baudrate) return 0;
  struct termios2 tio {};
  if (::ioctl(master.get(), TCGETS2, &tio) != 0) return 0;
  return static_cast<int>(tio.c_ospeed);
}

bool ServoSimulator::Impl::driver_present() {
  pollfd fd{master.get(), POLLIN, 0};
  if (::poll(&fd, 1, 0) < 0) return false;
  return (fd.revents & POLLHUP) == 0;
}

void ServoSimulator::Impl::run() {
  bool connected = false;
  auto last_tick = Clock::now();
  while (!stop_requested.load(std::memory_order_acquire)) {
    Clock::time_point now = Clock::now();
    if (!connected && driver_present()) {
      connected = true;
      rx.clear();
    }
    Clock::duration wait = kTick;
    if (!connected) wait = inotify.valid() ? kNoDriverRecheck : kNoDriverRecheckWithoutInotify;
    if (!pending.empty()) wait = std::min<Clock::duration>(wait, pending.front().due - now);
    wait = std::max<Clock::duration>(wait, Clock::duration::zero());

    pollfd fds[3];
    nfds_t count = 0;
    fds[count++] = pollfd{wake_read.get(), POLLIN, 0};
    const nfds_t master_index = count;
    if (connected) {
      fds[count++] =
          pollfd{master.get(), static_cast<short>(POLLIN | (unwritten.empty() ? 0 : POLLOUT)), 0};
    } else if (inotify.valid()) {
      fds[count++] = pollfd{inotify.get(), POLLIN, 0};
    }
    const auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(wait).count();
    timespec timeout{static_cast<time_t>(ns / 1'000'000'000),
                     static_cast<long>(ns % 1'000'000'000)};
    const int ready = ::ppoll(fds, count, &timeout, nullptr);
    if (ready < 0 && errno != EINTR) break;  // cannot happen with valid descriptors
    now = Clock::now();
    if (ready > 0) {
      uint8_t drain[256];
      if (fds[0].revents & POLLIN) {
        while (::read(wake_read.get(), drain, sizeof drain) > 0) {
        }
      }
      if (connected) {
        const short revents = fds[master_index].revents;
        if (revents & POLLIN) receive(now);
        if (revents & (POLLHUP | POLLERR)) {
          // The driver closed the port: a real adapter's bytes would go nowhere, and a partial
          // instruction must not join the next driver's first one.
          connected = false;
          rx.clear();
          pending.clear();
          unwritten.clear();
        }
      } else if (count > 1 && (fds[1].revents & POLLIN)) {
        while (::read(inotify.get(), drain, sizeof drain) > 0) {
        }
      }
    }
    flush(now, connected);
    if (now - last_tick >= kTick) {
      last_tick = now;
      std::lock_guard lock(mutex);
      refresh_all(now);
    }
  }
  pending.clear();
  unwritten.clear();
  rx.clear();
}

void ServoSimulator::Impl::receive(Clock::time_point now) {
  uint8_t buffer[4096];
  while (true) {
    const ssize_t n = ::read(master.get(), buffer, sizeof buffer);
    if (n <= 0) break;  // EAGAIN: drained; EIO: the driver went away (handled by the caller)
    if (!rx.empty() && now - last_rx > kIdleResync) rx.clear();
    last_rx = now;
    bytes_in.fetch_add(static_cast<uint64_t>(n), std::memory_order_relaxed);
    {
      std::lock_guard lock(mutex);
      if (consume(drop_writes)) continue;
      if (consume(noise_writes)) rx.insert(rx.end(), noise.begin(), noise.end());
      if (consume(corrupt_writes)) {
        const uint64_t bit = line_rng() % (static_cast<uint64_t>(n) * 8);
        buffer[bit / 8] ^= static_cast<uint8_t>(1u << (bit % 8));
      }
    }
    rx.insert(rx.end(), buffer, buffer + n);
  }
  process(now);
}

void ServoSimulator::Impl::process(Clock::time_point now) {
  std::lock_guard lock(mutex);
  const int baud = port_baud();
  refresh_all(now);
  while (!rx.empty()) {
    size_t consumed = 0;
    if (vendor == Vendor::kFeetech) {
      const feetech::Scan scan = feetech::scan(rx, feetech::FrameKind::kInstruction);
      if (scan.outcome == feetech::Scan::kNeedMore) {
        rx.erase(rx.begin(), rx.begin() + static_cast<ptrdiff_t>(scan.skip));
        return;
      }
      if (scan.outcome == feetech::Scan::kCorrupt) {
        // Feetech servos ignore a packet with a bad checksum. Drop only its first byte: a real
        // instruction may start inside what looked like a header.
        corrupt.fetch_add(1, std::memory_order_relaxed);
        consumed = scan.skip + 1;
      } else {
        instructions[scan.frame.code].fetch_add(1, std::memory_order_relaxed);
        handle_feetech(scan.frame, now, baud);
        consumed = scan.skip + scan.size;
      }
    } else {
      const dynamixel::Scan scan = scan_instruction(rx, scratch);
      if (scan.outcome == dynamixel::Scan::kNeedMore) {
        rx.erase(rx.begin(), rx.begin() + static_cast<ptrdiff_t>(scan.skip));
        return;
      }
      if (scan.outcome == dynamixel::Scan::kCorrupt) {
        corrupt.fetch_add(1, std::memory_order_relaxed);
        // Protocol 2.0 answers a unicast packet whose CRC fails with the CRC error.
        const uint8_t id = rx[scan.skip + 4];
        Motor* m = find(id);
        if (m != nullptr && hears(*m, baud)) {
          Clock::time_point cursor = bus_free(now);
          reply(*m, dynamixel::kErrorCrc, {}, cursor);
        }
        consumed = scan.skip + 1;
      } else {
        instructions[scan.frame.instruction].fetch_add(1, std::memory_order_relaxed);
        handle_dynamixel(scan.frame, now, baud);
        consumed = scan.skip + scan.size;
      }
    }
    rx.erase(rx.begin(), rx.begin() + static_cast<ptrdiff_t>(std::min(consumed, rx.size())));
  }
}

void ServoSimulator::Impl::flush(Clock::time_point now, bool connected) {
  while (!pending.empty() && pending.front().due <= now) {
    Outgoing& out = pending.front();
    if (connected && unwritten.size() + out.bytes.size() <= kMaxUnwritten)
      unwritten.insert(unwritten.end(), out.bytes.begin(), out.bytes.end());
    pending.pop_front();
  }
  if (!connected) {
    unwritten.clear();
    return;
  }
  while (!unwritten.empty()) {
    const ssize_t n = ::write(master.get(), unwritten.data(), unwritten.size());
    if (n <= 0) break;  // the pty is full (the driver is not reading) or gone: retry on POLLOUT
    bytes_out.fetch_add(static_cast<uint64_t>(n), std::memory_order_relaxed);
    unwritten.erase(unwritten.begin(), unwritten.begin() + n);
  }
}

ReplyFaults ServoSimulator::Impl::take_faults(Motor& m) {
  ReplyFaults result;
  result.id = m.id();
  Faults& f = m.faults;
  if (consume(f.drop)) {
    result.send = false;
    return result;
  }
  if (consume(f.reply_as)) result.id = f.reply_as_id;
  result.corrupt = consume(f.corrupt);
  if (consume(f.garbage)) result.garbage = f.garbage_bytes;
  if (consume(f.delay)) result.delay_us = f.delay_us;
  return result;
}

Clock::duration ServoSimulator::Impl::wire_time(const Motor& m, size_t bytes) const {
  if (!options.emulate_wire_time) return Clock::duration::zero();
  const int baud = std::max(m.baudrate(), 1);
  return std::chrono::nanoseconds(static_cast<int64_t>(bytes) * 10 * 1'000'000'000 / baud);
}

uint8_t ServoSimulator::Impl::combine_error(const Motor& m, uint8_t error) const {
  const uint8_t injected = m.faults.error_bits;
  if (vendor == Vendor::kFeetech) return static_cast<uint8_t>(error | injected);
  // Dynamixel: bit 7 is the alert flag, the low 7 bits one error number.
  const uint8_t number = (error & 0x7F) != 0 ? (error & 0x7F) : (injected & 0x7F);
  return static_cast<uint8_t>(((error | injected) & dynamixel::kErrorAlert) | number);
}

void ServoSimulator::Impl::reply(Motor& m, uint8_t error, std::span<const uint8_t> data,
                                 Clock::time_point& cursor) {
  const ReplyFaults faults = take_faults(m);
  if (!faults.send) return;
  std::vector<uint8_t> bytes(faults.garbage.begin(), faults.garbage.end());
  const size_t prefix = bytes.size();
  bytes.resize(prefix + dynamixel::kMaxPacketSize + 16);
  const std::span<uint8_t> out = std::span<uint8_t>(bytes).subspan(prefix);
  const uint8_t status = combine_error(m, error);
  const size_t size = vendor == Vendor::kFeetech
                          ? feetech::encode(faults.id, status, data, out)
                          : dynamixel::encode_status(faults.id, status, data, out);
  if (size == 0) return;  // longer than a packet can be: a servo could not send it either
  bytes.resize(prefix + size);
  if (faults.corrupt) bytes.back() ^= 0xA5;
  cursor = std::max(cursor, Clock::now()) + return_delay(m) +
           std::chrono::microseconds(faults.delay_us) + wire_time(m, bytes.size());
  queue(cursor, std::move(bytes));
  replies.fetch_add(1, std::memory_order_relaxed);
}

void ServoSimulator::Impl::store(Motor& m, uint16_t address, std::span<const uint8_t> data,
                                 bool skip_read_only) {
  const bool torque_before = m.torque_on();
  for (size_t i = 0; i < data.size(); ++i) {
    const size_t at = size_t{address} + i;
    if (at >= m.memory.size()) break;
    if (skip_read_only) {
      const int16_t owner = m.owner[at];
      if (owner < 0 || m.model->registers[static_cast<size_t>(owner)].read_only) continue;
    }
    m.memory[at] = data[i];
  }
  const Register* torque = m.regs.torque_enable;
  const auto touches = [&](const Register* reg) {
    return reg != nullptr && reg->address < size_t{address} + data.size() &&
           address < reg->address + reg->size;
  };
  if (touches(torque)) {
    const int64_t value = m.value(torque);
    if (m.vendor() == Vendor::kFeetech && value == 128 && m.regs.homing_offset != nullptr) {
      // Feetech: 128 makes the current position read 2048 (a firmware-side homing).
      const double raw = positive_fmod(std::round(m.actual), m.model->resolution);
      m.set(m.regs.homing_offset, std::llround(raw) - 2048);
      m.set(torque, torque_before ? 1 : 0);
    } else if (value == 1 && !torque_before) {
      // Enabling torque holds the current pose: the goal becomes the present position.
      m.set(m.regs.goal_position, present_reported(m));
      m.error = 0;
    }
  }
  // Present values follow calibration registers at once (Homing_Offset, Phase, Drive_Mode).
  if (touches(m.regs.homing_offset) || touches(m.regs.phase) || touches(m.regs.drive_mode))
    m.set(m.regs.present_position, present_reported(m));
}

// ------------------------------------------------------------------------------------------------
// Feetech

void ServoSimulator::Impl::feetech_write(Motor& m, uint16_t address,
                                         std::span<const uint8_t> data) {
  // The firmware ignores writes to read-only registers and stores everything else, EPROM included
  // (it only persists EPROM with Lock = 0, which a simulator need not model).
  store(m, address, data, /*skip_read_only=*/true);
}

void ServoSimulator::Impl::handle_feetech(const feetech::Frame& frame, Clock::time_point now,
                                          int port_baud) {
  const std::span<const uint8_t> p = frame.params;
  const bool broadcast = frame.id == feetech::kBroadcastId;
  Clock::time_point cursor = bus_free(now);
  // Response_Status_Level 0: only PING and READ are answered.
  const auto answers_all = [](const Motor& m) { return m.value(m.regs.status_level) >= 1; };
  const auto read_bytes = [](const Motor& m, size_t address, size_t length) {
    std::vector<uint8_t> data(length, 0);
    for (size_t i = 0; i < length && address + i < m.memory.size(); ++i)
      data[i] = m.memory[address + i];
    return data;
  };
  std::vector<Motor*> targets;
  if (broadcast) {
    for (Motor* m : in_id_order())
      if (hears(*m, port_baud)) targets.push_back(m);
  } else if (Motor* m = find(frame.id); m != nullptr && hears(*m, port_baud)) {
    targets.push_back(m);
  }

  switch (frame.code) {
    case feetech::kPing:
      // A broadcast PING is answered by every motor, one after the other in id order.
      for (Motor* m : targets) reply(*m, 0, {}, cursor);
      break;
    case feetech::kRead:
      if (broadcast || targets.empty() || p.size() != 2) break;
      {
        const std::vector<uint8_t> data = read_bytes(*targets[0], p[0], p[1]);
        reply(*targets[0], 0, data, cursor);
      }
      break;
    case feetech::kWrite:
    case feetech::kRegWrite:
      if (p.empty()) break;
      for (Motor* m : targets) {
        // The status is on its way before the write applies: it leaves with the old ID and baud
        // rate, and the motor answers to the new ones afterwards.
        if (!broadcast && answers_all(*m)) reply(*m, 0, {}, cursor);
        if (frame.code == feetech::kWrite) {
          feetech_write(*m, p[0], p.subspan(1));
        } else {
          m->registered = Registered{p[0], std::vector<uint8_t>(p.begin() + 1, p.end())};
        }
      }
      break;
    case feetech::kAction:
      for (Motor* m : targets) {
        if (!broadcast && answers_all(*m)) reply(*m, 0, {}, cursor);
        if (m->registered) {
          const Registered registered = std::move(*m->registered);
          m->registered.reset();
          feetech_write(*m, registered.address, registered.data);
        }
      }
      break;
    case feetech::kSyncRead: {
      // STS/SMS only; the SCS firmware has no SYNC_READ.
      if (protocol != Protocol::kFeetech || !broadcast || p.size() < 2) break;
      for (size_t i = 2; i < p.size(); ++i) {
        Motor* m = find(p[i]);
        if (m == nullptr || !hears(*m, port_baud)) continue;
        const std::vector<uint8_t> data = read_bytes(*m, p[0], p[1]);
        reply(*m, 0, data, cursor);
      }
      break;
    }
    case feetech::kSyncWrite: {
      if (!broadcast || p.size() < 2) break;
      const size_t length = p[1];
      for (size_t at = 2; at + 1 + length <= p.size(); at += 1 + length) {
        Motor* m = find(p[at]);
        if (m == nullptr || !hears(*m, port_baud)) continue;
        feetech_write(*m, p[0], p.subspan(at + 1, length));
      }
      break;
    }
    default:
      break;  // unknown instruction: Feetech servos stay silent
  }
}

// ------------------------------------------------------------------------------------------------
// Dynamixel

uint8_t ServoSimulator::Impl::dynamixel_check_read(const Motor& m, size_t address,
                                                   size_t length) const {
  if (address + length > m.memory.size()) return dynamixel::kErrorAccess;
  return 0;
}

uint8_t ServoSimulator::Impl::dynamixel_check_write(const Motor& m, size_t address,
                                                    std::span<const uint8_t> data) const {
  if (data.empty()) return dynamixel::kErrorDataLength;
  if (address + data.size() > m.memory.size()) return dynamixel::kErrorAccess;
  const bool torque = m.torque_on();
  // Access: every byte must belong to a writable register, EEPROM only with torque off.
  for (size_t at = address; at < address + data.size(); ++at) {
    const int16_t owner = m.owner[at];
    if (owner < 0) return dynamixel::kErrorAccess;
    const Register& reg = m.model->registers[static_cast<size_t>(owner)];
    if (reg.read_only) return dynamixel::kErrorAccess;
    if (reg.address < m.model->persistent_end && torque) return dynamixel::kErrorAccess;
  }
  // Length: a multi-byte register is written whole or not at all.
  for (size_t at = address; at < address + data.size(); ++at) {
    const Register& reg = m.model->registers[static_cast<size_t>(m.owner[at])];
    if (reg.address < address || reg.address + reg.size > address + data.size())
      return dynamixel::kErrorDataLength;
  }
  // Range and limit: the values the firmware validates.
  const auto new_value = [&](const Register* reg) -> std::optional<int64_t> {
    if (reg == nullptr || reg->address < address ||
        reg->address + reg->size > address + data.size())
      return std::nullopt;
    const uint32_t raw =
        bus::load_unsigned(&data[reg->address - address], reg->size, m.model->byte_order());
    return bus::decode_signed(raw, reg->size, reg->encoding);
  };
  if (auto id = new_value(m.regs.id); id && *id > dynamixel::kMaxId)
    return dynamixel::kErrorDataRange;
  if (auto code = new_value(m.regs.baud_rate);
      code && m.model->baudrate_of_code(static_cast<uint8_t>(*code)) < 0)
    return dynamixel::kErrorDataRange;
  if (auto mode = new_value(m.regs.operating_mode); mode) {
    const auto& modes = m.model->operating_modes;
    if (std::find(modes.begin(), modes.end(), static_cast<uint8_t>(*mode)) == modes.end())
      return dynamixel::kErrorDataRange;
  }
  if (auto torque_value = new_value(m.regs.torque_enable); torque_value && *torque_value > 1)
    return dynamixel::kErrorDataRange;
  if (auto goal = new_value(m.regs.goal_position); goal && m.value(m.regs.operating_mode) == 3) {
    // Position mode keeps goals inside the limits; extended position mode (4) ignores them.
    if (*goal < m.value(m.regs.min_limit) || *goal > m.value(m.regs.max_limit))
      return dynamixel::kErrorDataLimit;
  }
  return 0;
}

void ServoSimulator::Impl::fast_read(std::span<const std::array<uint16_t, 3>> requests,
                                     Clock::time_point& cursor, int port_baud) {
  // One combined status from id 0xFE, not stuffed: FF FF FD 00 FE LEN_L LEN_H 55, then per motor
  // ERR ID DATA CRC, where each CRC is that of the packet from its start through the block (the
  // last one is the packet's own CRC). LEN counts every requested block; the first motor that
  // answers sends the header after its return delay, the others follow without a gap.
  size_t body = 1;
  for (const auto& request : requests) body += size_t{request[2]} + 4;
  if (body + dynamixel::kHeaderSize > dynamixel::kMaxPacketSize) return;
  std::vector<uint8_t> header = {0xFF,
                                 0xFF,
                                 0xFD,
                                 0x00,
                                 dynamixel::kBroadcastId,
                                 static_cast<uint8_t>(body & 0xFF),
                                 static_cast<uint8_t>(body >> 8),
                                 dynamixel::kStatus};
  uint16_t crc = dynamixel::crc16(header);
  bool first = true;
  for (const auto& request : requests) {
    Motor* m = find(request[0]);
    if (m == nullptr || !hears(*m, port_baud)) continue;
    if (m->value(m->regs.status_level) < 1) continue;
    const ReplyFaults faults = take_faults(*m);
    if (!faults.send) continue;
    const uint16_t address = request[1];
    const uint16_t length = request[2];
    std::vector<uint8_t> block;
    uint8_t error = dynamixel_check_read(*m, address, length);
    block.push_back(combine_error(*m, error));
    block.push_back(faults.id);
    for (size_t i = 0; i < length; ++i) {
      const size_t at = size_t{address} + i;
      block.push_back(error == 0 && at < m->memory.size() ? m->memory[at] : 0);
    }
    crc = dynamixel::crc16(block, crc);
    const uint8_t crc_bytes[2] = {static_cast<uint8_t>(crc & 0xFF), static_cast<uint8_t>(crc >> 8)};
    block.insert(block.end(), crc_bytes, crc_bytes + 2);
    // The next block's CRC runs on from here, over these two bytes too.
    crc = dynamixel::crc16(crc_bytes, crc);
    // Noise on the wire after the servo computed its CRC: this CRC and every later one fail.
    if (faults.corrupt) block[block.size() > 4 ? 2 : 0] ^= 0x01;
    std::vector<uint8_t> bytes(faults.garbage.begin(), faults.garbage.end());
    if (first) bytes.insert(bytes.end(), header.begin(), header.end());
    bytes.insert(bytes.end(), block.begin(), block.end());
    cursor = std::max(cursor, Clock::now()) + (first ? return_delay(*m) : Clock::duration::zero()) +
             std::chrono::microseconds(faults.delay_us) + wire_time(*m, bytes.size());
    first = false;
    queue(cursor, std::move(bytes));
    replies.fetch_add(1, std::memory_order_relaxed);
  }
}

void ServoSimulator::Impl::handle_dynamixel(const dynamixel::Frame& frame, Clock::time_point now,
                                            int port_baud) {
  const std::span<const uint8_t> p = frame.params;
  const bool broadcast = frame.id == dynamixel::kBroadcastId;
  Clock::time_point cursor = bus_free(now);
  const auto u16 = [&](size_t at) { return static_cast<uint16_t>(p[at] | (p[at + 1] << 8)); };
  // Status_Return_Level: 0 answers PING only, 1 also reads, 2 everything.
  const auto answers = [](const Motor& m, int level) {
    return m.value(m.regs.status_level) >= level;
  };
  const auto read_data = [](const Motor& m, size_t address, size_t length) {
    return std::vector<uint8_t>(m.memory.begin() + static_cast<ptrdiff_t>(address),
                                m.memory.begin() + static_cast<ptrdiff_t>(address + length));
  };
  // The addressee, and (for instructions without a reply) motors whose Secondary_ID it is: they
  // execute but never answer. Broadcast: every motor, in id order.
  Motor* primary = nullptr;
  std::vector<Motor*> executors;
  if (broadcast) {
    for (Motor* m : in_id_order())
      if (hears(*m, port_baud)) executors.push_back(m);
  } else {
    primary = find(frame.id);
    if (primary != nullptr && !hears(*primary, port_baud)) primary = nullptr;
    if (primary != nullptr) executors.push_back(primary);
    for (Motor& m : motors) {
      if (&m != primary && hears(m, port_baud) && m.value(m.regs.secondary_id) == frame.id)
        executors.push_back(&m);
    }
  }
  // Only the addressee answers. Callers answer before applying a write, so the status leaves with
  // the old ID and baud rate and the motor answers to the new ones afterwards.
  const auto finish = [&](Motor& m, uint8_t error, std::span<const uint8_t> data, int level) {
    if (&m == primary && answers(m, level)) reply(m, error, data, cursor);
  };

  switch (frame.instruction) {
    case dynamixel::kPing: {
      // Broadcast PING: every motor answers, in id order. The status carries model and firmware.
      std::vector<Motor*> pinged = broadcast ? executors : std::vector<Motor*>{};
      if (!broadcast && primary != nullptr) pinged.push_back(primary);
      for (Motor* m : pinged) {
        const uint16_t model = static_cast<uint16_t>(m->value(m->model->find("Model_Number")));
        const uint8_t data[3] = {
            static_cast<uint8_t>(model & 0xFF), static_cast<uint8_t>(model >> 8),
            static_cast<uint8_t>(m->value(m->model->find("Firmware_Version")))};
        reply(*m, 0, data, cursor);
      }
      break;
    }
    case dynamixel::kRead: {
      if (broadcast || primary == nullptr) break;
      if (p.size() != 4) {
        finish(*primary, dynamixel::kErrorDataLength, {}, 1);
        break;
      }
      const uint8_t error = dynamixel_check_read(*primary, u16(0), u16(2));
      const std::vector<uint8_t> data =
          error == 0 ? read_data(*primary, u16(0), u16(2)) : std::vector<uint8_t>{};
      finish(*primary, error, data, 1);
      break;
    }
    case dynamixel::kWrite:
    case dynamixel::kRegWrite: {
      for (Motor* m : executors) {
        uint8_t error = p.size() < 3 ? dynamixel::kErrorDataLength : 0;
        if (error == 0) error = dynamixel_check_write(*m, u16(0), p.subspan(2));
        if (!broadcast) finish(*m, error, {}, 2);
        if (error == 0) {
          if (frame.instruction == dynamixel::kWrite) {
            store(*m, u16(0), p.subspan(2), /*skip_read_only=*/false);
          } else {
            m->registered = Registered{u16(0), std::vector<uint8_t>(p.begin() + 2, p.end())};
            m->set(m->regs.registered_instruction, 1);
          }
        }
      }
      break;
    }
    case dynamixel::kAction:
      for (Motor* m : executors) {
        std::optional<Registered> registered = std::move(m->registered);
        m->registered.reset();
        m->set(m->regs.registered_instruction, 0);
        // Checked again: torque or mode may have changed since REG_WRITE.
        const uint8_t error =
            registered ? dynamixel_check_write(*m, registered->address, registered->data) : 0;
        if (!broadcast) finish(*m, error, {}, 2);
        if (registered && error == 0) store(*m, registered->address, registered->data, false);
      }
      break;
    case dynamixel::kReboot:
    case dynamixel::kFactoryReset: {
      if (!broadcast && primary == nullptr) break;
      std::vector<Motor*> targets = broadcast ? executors : std::vector<Motor*>{primary};
      for (Motor* m : targets) {
        // The status goes out first, then the motor restarts.
        if (!broadcast) finish(*m, 0, {}, 2);
        const uint8_t id = m->id();
        const int baud = m->baudrate();
        if (frame.instruction == dynamixel::kReboot) {
          // RAM back to its power-up values, EEPROM kept, the goal where the motor is.
          std::vector<uint8_t> eeprom(m->memory.begin(),
                                      m->memory.begin() + m->model->persistent_end);
          set_factory_values(*m, id, baud, m->actual);
          std::copy(eeprom.begin(), eeprom.end(), m->memory.begin());
        } else {
          // Parameter 0xFF resets everything, 0x01 keeps the ID, 0x02 keeps ID and baud rate; the
          // reset ID is 1 and the factory baud rate 57600.
          const uint8_t option = p.empty() ? 0xFF : p[0];
          const uint8_t code = static_cast<uint8_t>(m->value(m->regs.baud_rate));
          set_factory_values(*m, option == 0xFF ? 1 : id, 57'600, m->actual);
          if (option == 0x02) m->set(m->regs.baud_rate, code);
        }
        advance(*m, now, options.time_constant_s, epoch);
        m->set(m->regs.goal_position, m->value(m->regs.present_position));
      }
      break;
    }
    case dynamixel::kSyncRead:
    case dynamixel::kFastSyncRead:
    case dynamixel::kBulkRead:
    case dynamixel::kFastBulkRead: {
      if (!broadcast) break;
      std::vector<std::array<uint16_t, 3>> requests;  // id, address, length
      const bool sync = frame.instruction == dynamixel::kSyncRead ||
                        frame.instruction == dynamixel::kFastSyncRead;
      if (sync) {
        if (p.size() < 4) break;
        for (size_t i = 4; i < p.size(); ++i) requests.push_back({p[i], u16(0), u16(2)});
      } else {
        for (size_t at = 0; at + 5 <= p.size(); at += 5)
          requests.push_back({p[at], u16(at + 1), u16(at + 3)});
      }
      if (frame.instruction == dynamixel::kFastSyncRead ||
          frame.instruction == dynamixel::kFastBulkRead) {
        fast_read(requests, cursor, port_baud);
        break;
      }
      // One status per listed motor, in list order, each after the one before it.
      for (const auto& request : requests) {
        Motor* m = find(request[0]);
        if (m == nullptr || !hears(*m, port_baud) || !answers(*m, 1)) continue;
        const uint8_t error = dynamixel_check_read(*m, request[1], request[2]);
        const std::vector<uint8_t> data =
            error == 0 ? read_data(*m, request[1], request[2]) : std::vector<uint8_t>{};
        reply(*m, error, data, cursor);
      }
      break;
    }
    case dynamixel::kSyncWrite:
    case dynamixel::kBulkWrite: {
      if (!broadcast) break;
      // Blocks: SYNC [id, data(len)] after addr(2) len(2); BULK [id, addr(2), len(2), data].
      const auto write_to = [&](uint8_t id, uint16_t address, std::span<const uint8_t> data) {
        for (Motor& m : motors) {
          if (!hears(m, port_baud)) continue;
          if (m.id() != id && m.value(m.regs.secondary_id) != id) continue;
          if (dynamixel_check_write(m, address, data) == 0) store(m, address, data, false);
        }
      };
      if (frame.instruction == dynamixel::kSyncWrite) {
        if (p.size() < 4) break;
        const uint16_t address = u16(0);
        const size_t length = u16(2);
        for (size_t at = 4; at + 1 + length <= p.size(); at += 1 + length)
          write_to(p[at], address, p.subspan(at + 1, length));
      } else {
        size_t at = 0;
        while (at + 5 <= p.size()) {
          const size_t length = u16(at + 3);
          if (at + 5 + length > p.size()) break;
          write_to(p[at], u16(at + 1), p.subspan(at + 5, length));
          at += 5 + length;
        }
      }
      break;
    }
    case dynamixel::kClear: {
      // Clear multi-turn (option 0x01): the position drops its whole turns; only while stopped.
      if (broadcast || primary == nullptr) break;
      uint8_t error = 0;
      if (p.empty() || p[0] != 0x01) {
        error = dynamixel::kErrorDataRange;
      } else if (primary->torque_on()) {
        error = dynamixel::kErrorResultFail;
      } else {
        primary->actual = positive_fmod(primary->actual, primary->model->resolution);
        advance(*primary, now, options.time_constant_s, epoch);
      }
      finish(*primary, error, {}, 2);
      break;
    }
    default:
      // Unknown instruction: a unicast one is answered with the instruction error.
      if (primary != nullptr) finish(*primary, dynamixel::kErrorInstruction, {}, 0);
      break;
  }
}

// ------------------------------------------------------------------------------------------------
// Public interface

namespace {

// Every live simulator of the process, for ServoSimulator::stop_all(). Allocated once and never
// freed, so simulators destroyed during static destruction still find it.
struct SimulatorRegistry {
  std::mutex mutex;
  std::unordered_set<ServoSimulator*> simulators;
};

SimulatorRegistry& simulator_registry() {
  static SimulatorRegistry* registry = new SimulatorRegistry;
  return *registry;
}

}  // namespace

ServoSimulator::ServoSimulator(Protocol protocol, std::vector<MotorSpec> motors,
                               SimulatorOptions options)
    : impl_(std::make_unique<Impl>(protocol, std::move(motors), options)) {
  std::lock_guard lock(simulator_registry().mutex);
  simulator_registry().simulators.insert(this);
}

ServoSimulator::~ServoSimulator() {
  {
    std::lock_guard lock(simulator_registry().mutex);
    simulator_registry().simulators.erase(this);
  }
  stop();
}

void ServoSimulator::stop_all() {
  std::lock_guard lock(simulator_registry().mutex);
  for (ServoSimulator* simulator : simulator_registry().simulators) simulator->stop();
}

const std::string& ServoSimulator::port_path() const { return impl_->port_path; }
Protocol ServoSimulator::protocol() const { return impl_->protocol; }

void ServoSimulator::start() {
  std::lock_guard lock(impl_->lifecycle);
  if (impl_->thread.joinable()) return;
  impl_->stop_requested.store(false, std::memory_order_release);
  impl_->thread = std::thread([impl = impl_.get()] { impl->run(); });
  // Real servos answer within their return delay whatever the host runs; a simulator thread that
  // waits for the CPU behind busy processes would not. Real-time priority (where the process may
  // have it) keeps its replies prompt; the thread sleeps between packets, so it starves nobody.
  sched_param priority{};
  priority.sched_priority = 1;
  (void)pthread_setschedparam(impl_->thread.native_handle(), SCHED_FIFO, &priority);
  impl_->is_running.store(true, std::memory_order_release);
}

void ServoSimulator::stop() {
  std::lock_guard lock(impl_->lifecycle);
  if (!impl_->thread.joinable()) return;
  impl_->stop_requested.store(true, std::memory_order_release);
  const uint8_t byte = 1;
  [[maybe_unused]] const ssize_t n = ::write(impl_->wake_write.get(), &byte, 1);
  impl_->thread.join();
  impl_->is_running.store(false, std::memory_order_release);
}

bool ServoSimulator::running() const { return impl_->is_running.load(std::memory_order_acquire); }

void ServoSimulator::drop_replies(int id, int count) {
  std::lock_guard lock(impl_->mutex);
  impl_->for_targets(id, [&](Motor& m) { m.faults.drop = count; });
}

void ServoSimulator::corrupt_replies(int id, int count) {
  std::lock_guard lock(impl_->mutex);
  impl_->for_targets(id, [&](Motor& m) { m.faults.corrupt = count; });
}

void ServoSimulator::delay_replies(int id, uint32_t microseconds, int count) {
  std::lock_guard lock(impl_->mutex);
  impl_->for_targets(id, [&](Motor& m) {
    m.faults.delay = count;
    m.faults.delay_us = microseconds;
  });
}

void ServoSimulator::reply_as(int id, int other_id, int count) {
  if (other_id < 0 || other_id > 0xFD)
    throw std::invalid_argument("servo simulator: reply id " + std::to_string(other_id) +
                                " is outside 0..253");
  std::lock_guard lock(impl_->mutex);
  impl_->for_targets(id, [&](Motor& m) {
    m.faults.reply_as = count;
    m.faults.reply_as_id = static_cast<uint8_t>(other_id);
  });
}

void ServoSimulator::garbage_before_replies(int id, std::vector<uint8_t> bytes, int count) {
  std::lock_guard lock(impl_->mutex);
  impl_->for_targets(id, [&](Motor& m) {
    m.faults.garbage = count;
    m.faults.garbage_bytes = bytes;
  });
}

void ServoSimulator::vanish(int id) {
  std::lock_guard lock(impl_->mutex);
  impl_->for_targets(id, [&](Motor& m) { m.faults.vanished = true; });
}

void ServoSimulator::reappear(int id) {
  std::lock_guard lock(impl_->mutex);
  impl_->for_targets(id, [&](Motor& m) { m.faults.vanished = false; });
}

void ServoSimulator::set_error_bits(int id, uint8_t bits) {
  std::lock_guard lock(impl_->mutex);
  impl_->for_targets(id, [&](Motor& m) { m.faults.error_bits = bits; });
}

void ServoSimulator::damage_instructions(int count) {
  std::lock_guard lock(impl_->mutex);
  impl_->corrupt_writes = count;
}

void ServoSimulator::drop_instructions(int count) {
  std::lock_guard lock(impl_->mutex);
  impl_->drop_writes = count;
}

void ServoSimulator::noise_before_instructions(std::vector<uint8_t> bytes, int count) {
  std::lock_guard lock(impl_->mutex);
  impl_->noise_writes = count;
  impl_->noise = std::move(bytes);
}

void ServoSimulator::clear_faults(int id) {
  std::lock_guard lock(impl_->mutex);
  impl_->for_targets(id, [&](Motor& m) { m.faults = Faults{}; });
  if (id == kAllMotors) {
    impl_->corrupt_writes = 0;
    impl_->drop_writes = 0;
    impl_->noise_writes = 0;
  }
}

std::vector<int> ServoSimulator::ids() const {
  std::lock_guard lock(impl_->mutex);
  std::vector<int> result;
  for (const Motor& m : impl_->motors) result.push_back(m.id());
  return result;
}

const bus::ModelInfo& ServoSimulator::model(int id) const {
  std::lock_guard lock(impl_->mutex);
  return *impl_->require(id).model;
}

namespace {

const Register& require_register(const Motor& m, std::string_view name) {
  const Register* reg = m.model->find(name);
  if (reg == nullptr)
    throw std::invalid_argument("servo simulator: model '" + std::string(m.model->name) +
                                "' has no register '" + std::string(name) + "'");
  return *reg;
}

}  // namespace

int64_t ServoSimulator::read_register(int id, std::string_view name) const {
  std::lock_guard lock(impl_->mutex);
  Motor& m = impl_->require(id);
  const Register& reg = require_register(m, name);
  advance(m, Clock::now(), impl_->options.time_constant_s, impl_->epoch);
  return m.value(&reg);
}

void ServoSimulator::write_register(int id, std::string_view name, int64_t value) {
  std::lock_guard lock(impl_->mutex);
  Motor& m = impl_->require(id);
  const Register& reg = require_register(m, name);
  const auto raw = bus::encode_signed(value, reg.size, reg.encoding);
  if (!raw)
    throw std::invalid_argument("servo simulator: " + std::to_string(value) +
                                " does not fit register '" + std::string(name) + "'");
  const auto now = Clock::now();
  advance(m, now, impl_->options.time_constant_s, impl_->epoch);
  if (&reg == m.regs.present_position) {
    // Move the actual position so that the motor reads `value`.
    m.actual += direction(m) * static_cast<double>(value - present_reported(m));
  } else {
    uint8_t bytes[4];
    bus::store_unsigned(*raw, bytes, reg.size, m.model->byte_order());
    impl_->store(m, reg.address, std::span<const uint8_t>(bytes, reg.size), false);
  }
  advance(m, now, impl_->options.time_constant_s, impl_->epoch);
}

std::vector<uint8_t> ServoSimulator::read_memory(int id, uint16_t address, uint16_t length) const {
  std::lock_guard lock(impl_->mutex);
  Motor& m = impl_->require(id);
  advance(m, Clock::now(), impl_->options.time_constant_s, impl_->epoch);
  std::vector<uint8_t> data(length, 0);
  for (size_t i = 0; i < length && size_t{address} + i < m.memory.size(); ++i)
    data[i] = m.memory[address + i];
  return data;
}

void ServoSimulator::set_actual_position(int id, double steps) {
  if (!std::isfinite(steps))
    throw std::invalid_argument("servo simulator: position must be finite");
  std::lock_guard lock(impl_->mutex);
  Motor& m = impl_->require(id);
  const auto now = Clock::now();
  advance(m, now, impl_->options.time_constant_s, impl_->epoch);
  m.actual = steps;
  advance(m, now, impl_->options.time_constant_s, impl_->epoch);
}

double ServoSimulator::actual_position(int id) const {
  std::lock_guard lock(impl_->mutex);
  Motor& m = impl_->require(id);
  advance(m, Clock::now(), impl_->options.time_constant_s, impl_->epoch);
  return m.actual;
}

uint64_t ServoSimulator::instruction_count(uint8_t instruction) const {
  return impl_->instructions[instruction].load(std::memory_order_relaxed);
}

std::map<uint8_t, uint64_t> ServoSimulator::instruction_counts() const {
  std::map<uint8_t, uint64_t> counts;
  for (size_t code = 0; code < impl_->instructions.size(); ++code) {
    const uint64_t count = impl_->instructions[code].load(std::memory_order_relaxed);
    if (count != 0) counts[static_cast<uint8_t>(code)] = count;
  }
  return counts;
}

uint64_t ServoSimulator::corrupt_instructions() const {
  return impl_->corrupt.load(std::memory_order_relaxed);
}
uint64_t ServoSimulator::bytes_received() const {
  return impl_->bytes_in.load(std::memory_order_relaxed);
}
uint64_t ServoSimulator::bytes_sent() const {
  return impl_->bytes_out.load(std::memory_order_relaxed);
}
uint64_t ServoSimulator::replies_sent() const {
  return impl_->replies.load(std::memory_order_relaxed);
}

void ServoSimulator::reset_counters() {
  for (auto& count : impl_->instructions) count.store(0, std::memory_order_relaxed);
  impl_->corrupt.store(0, std::memory_order_relaxed);
  impl_->bytes_in.store(0, std::memory_order_relaxed);
  impl_->bytes_out.store(0, std::memory_order_relaxed);
  impl_->replies.store(0, std::memory_order_relaxed);
}

}  // namespace dexloop::sim
