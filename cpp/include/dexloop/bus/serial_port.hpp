// A serial port for half-duplex servo buses: raw 8N1 at any baud rate (standard or not, through
// termios2), the driver's low-latency flag where it has one, writes and deadline-bounded reads with
// poll(). Works the same on a USB-UART adapter and on a pty (the simulator's).
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>

namespace dexloop::bus {

using Clock = std::chrono::steady_clock;

class SerialPort {
 public:
  SerialPort() = default;
  ~SerialPort();
  SerialPort(SerialPort&& other) noexcept;
  SerialPort& operator=(SerialPort&& other) noexcept;
  SerialPort(const SerialPort&) = delete;
  SerialPort& operator=(const SerialPort&) = delete;

  // Opens `path` and configures it. Throws BusError naming the path and the system error.
  void open(const std::string& path, int baudrate);
  void close();
  bool is_open() const { return fd_ >= 0; }
  const std::string& path() const { return path_; }
  int baudrate() const { return baudrate_; }
  // Whether the driver accepted the low-latency flag (USB-serial adapters; not a pty).
  bool low_latency() const { return low_latency_; }

  // Throws BusError when the driver refuses the rate.
  void set_baudrate(int baudrate);

  // Drops bytes received but not read (stale replies from an earlier transaction).
  void flush_input();

  // Writes all of `bytes`; false on an error or when the port does not accept them by `deadline`.
  bool write_all(std::span<const uint8_t> bytes, Clock::time_point deadline);

  // Reads what is available into `out`, waiting until `deadline` for the first byte. Returns the
  // number of bytes read (0 at the deadline) or -1 on an error. Until `spin_until` it polls the
  // port without sleeping: bytes arriving in that window are taken at once instead of after a
  // thread wake-up (tens of microseconds), at the price of that much CPU time.
  long read_some(std::span<uint8_t> out, Clock::time_point deadline,
                 Clock::time_point spin_until = Clock::time_point::min());

 private:
  void configure(int baudrate);

  int fd_ = -1;
  std::string path_;
  int baudrate_ = 0;
  bool low_latency_ = false;
};

}  // namespace dexloop::bus
