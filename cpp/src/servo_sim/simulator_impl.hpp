// ServoSimulator's state and the methods of its serving thread, shared by the pty server and the
// two firmwares (feetech_firmware.cpp, dynamixel_firmware.cpp). Internal (not installed).
#pragma once

#include "dexloop/servo_sim/servo_simulator.hpp"
#include "motor_model.hpp"

namespace dexloop::servo_sim {

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

}  // namespace dexloop::servo_sim
