// A simulated servo bus: a pty whose other end speaks the Feetech SCS/STS or Dynamixel Protocol 2.0
// wire protocol the way a chain of real servos does, so that the bus driver under test is the code
// that ships. Each motor holds a full control table (LeRobot's register map, plausible factory
// values), moves its position toward the goal while torque is on, and applies each vendor's homing,
// limit and access rules. Faults (dropped, corrupted, delayed or misaddressed replies, garbage on
// the line, a motor that disappears, servo error bits) can be injected per motor.
//
//   ServoSimulator sim(Protocol::kFeetech, {{1, "sts3215"}, {2, "sts3215"}});
//   sim.start();
//   SerialPort port(sim.port_path(), 1'000'000);   // the driver opens /dev/pts/N like a tty
//
// Thread-safety: every public member may be called from any thread while the serving thread runs.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "dexloop/bus/control_table.hpp"
#include "dexloop/bus/protocol.hpp"

namespace dexloop::servo_sim {

// The bus's protocol vocabulary (dexloop/bus/protocol.hpp): the simulator speaks what the driver
// does.
using bus::parse_protocol;
using bus::Protocol;
using bus::protocol_name;

struct MotorSpec {
  int id = 1;
  std::string model;  // LeRobot's model key, e.g. "sts3215", "xl330-m288"
};

struct SimulatorOptions {
  // The baud rate the motors are set to (their Baud_Rate register). A pty carries bytes at any
  // speed, so this only matters with `emulate_wire_time` or `match_baudrate`.
  int baudrate = 1'000'000;
  // First-order time constant of the position response to a new goal, in seconds (0: instant;
  // +infinity: the motors never move by themselves, as when a physics engine owns the joints and
  // sets their positions with set_actual_position()).
  double time_constant_s = 0.040;
  // Delay each reply by its time on the wire (bytes x 10 bits / baud) on top of the return delay.
  bool emulate_wire_time = false;
  // Motors only hear instructions while the port's termios speed (what the driver set on the
  // slave) equals their own baud rate, as on a real bus; lets baud-rate scans be tested.
  bool match_baudrate = false;
  // Seeds the initial positions (uniform within +-300 steps of mid-range).
  uint64_t seed = 0;
};

// Fault setters and clear_faults take a motor id or kAllMotors (every motor, each on its own).
constexpr int kAllMotors = -1;
// A fault count that lasts until cleared.
constexpr int kUntilCleared = -1;

class ServoSimulator {
 public:
  // Throws std::invalid_argument for an unknown model, a model of another protocol, an id outside
  // 0..252 or used twice, or a baud rate the models do not support; dexloop::Error when the pty
  // cannot be created.
  ServoSimulator(Protocol protocol, std::vector<MotorSpec> motors, SimulatorOptions options = {});
  ~ServoSimulator();  // stops the serving thread
  ServoSimulator(const ServoSimulator&) = delete;
  ServoSimulator& operator=(const ServoSimulator&) = delete;

  // The pty's slave device (e.g. /dev/pts/7), which a driver opens as its serial port. Valid from
  // construction; instructions are answered once start() has been called.
  const std::string& port_path() const;
  Protocol protocol() const;

  // Starts / stops the serving thread (idempotent; a stopped simulator can be started again, its
  // motors' state kept). Replies still scheduled at stop() are discarded.
  void start();
  void stop();
  bool running() const;
  // stop() on every simulator of the process: run at interpreter exit, so that no serving thread
  // of a simulator still referenced then runs on into process teardown.
  static void stop_all();

  // --- Fault injection. `count` is how many of the motor's next replies are affected
  // (kUntilCleared: every reply until cleared; 0 clears that fault). A reply is one status packet,
  // or the motor's block of a FAST_SYNC_READ / FAST_BULK_READ reply. A dropped reply consumes only
  // its drop count; the other faults apply to the replies that are sent.
  void drop_replies(int id, int count);
  // The checksum / CRC of the reply is wrong (in a fast reply: a data bit of the motor's block
  // flips on the wire, so its CRC and every later one fail).
  void corrupt_replies(int id, int count);
  // Each affected reply is sent `microseconds` later; the bus is serial, so later replies wait too.
  void delay_replies(int id, uint32_t microseconds, int count);
  // The reply carries `other_id` instead of the motor's id.
  void reply_as(int id, int other_id, int count);
  // `bytes` are sent on the line just before each affected reply.
  void garbage_before_replies(int id, std::vector<uint8_t> bytes, int count);
  // The motor stops answering anything (and ignores instructions) until reappear().
  void vanish(int id);
  void reappear(int id);
  // ORed into the error byte of every status the motor sends until set to 0 (Feetech: also shown
  // in the Status register). For Dynamixel a processing error replaces the low 7 bits.
  void set_error_bits(int id, uint8_t bits);
  // Clears every fault above (vanish and error bits included), and with kAllMotors also the line
  // faults below.
  void clear_faults(int id = kAllMotors);

  // --- Faults on the line from the driver to the motors. Each applies to the driver's next
  // `count` writes as they reach the simulator (drivers send an instruction in one write;
  // kUntilCleared: every write until cleared; 0 clears it).
  // One bit of each write flips (at a position drawn from the simulator's seed), so motors see a
  // damaged instruction: Feetech ignores it, Dynamixel answers a unicast one with a CRC error.
  void damage_instructions(int count);
  // The writes are lost before any motor hears them.
  void drop_instructions(int count);
  // `bytes` reach the motors just before each write (noise on the line while it was idle).
  void noise_before_instructions(std::vector<uint8_t> bytes, int count);

  // --- Introspection for tests, bypassing the bus. `id` is the motor's current id (it follows ID
  // writes). Throws std::invalid_argument for an unknown id or register name.
  std::vector<int> ids() const;  // current ids, in the order the motors were given
  const bus::ModelInfo& model(int id) const;
  // The register's value, sign-decoded; present values are brought up to date first.
  int64_t read_register(int id, std::string_view name) const;
  // Sets a register as the firmware would (read-only ones too, no access checks), with the same
  // side effects as a bus write (ID, torque on, ...). Writing Present_Position moves the actual
  // position so that it reads `value`. Throws std::invalid_argument when the value does not fit.
  void write_register(int id, std::string_view name, int64_t value);
  // Raw control-table bytes (zeros past the table's end).
  std::vector<uint8_t> read_memory(int id, uint16_t address, uint16_t length) const;
  // The raw encoder position in steps, before homing offset and drive direction: what a person
  // moving the arm changes. With torque on the motor then pulls back toward its goal.
  void set_actual_position(int id, double steps);
  double actual_position(int id) const;

  // --- Traffic counters (since construction or reset_counters()).
  uint64_t instruction_count(uint8_t instruction) const;   // valid packets received with this code
  std::map<uint8_t, uint64_t> instruction_counts() const;  // every code received at least once
  uint64_t corrupt_instructions() const;                   // packets with a bad checksum / CRC
  uint64_t bytes_received() const;
  uint64_t bytes_sent() const;    // garbage included
  uint64_t replies_sent() const;  // status packets (or fast-reply blocks) put on the line
  void reset_counters();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace dexloop::servo_sim
