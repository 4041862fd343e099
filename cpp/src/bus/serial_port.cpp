// termios2 (from <asm/termbits.h>) sets any baud rate with BOTHER; it cannot be mixed with glibc's
// <termios.h>, so this file configures the port with the kernel's ioctls only.
#include "dexloop/bus/serial_port.hpp"

#include <asm/ioctls.h>
#include <asm/termbits.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/serial.h>
#include <poll.h>
#include <sched.h>
#include <string.h>
#include <unistd.h>

#include <algorithm>

#include "dexloop/error.hpp"

extern "C" int ioctl(int fd, unsigned long request, ...);

namespace dexloop::bus {
namespace {

// Time left until `deadline` for ppoll: microsecond-exact, so a read never outlasts its deadline
// by the millisecond rounding plain poll() would add.
struct timespec time_until(Clock::time_point deadline) {
  auto remaining =
      std::chrono::duration_cast<std::chrono::nanoseconds>(deadline - Clock::now()).count();
  remaining = std::clamp<long long>(remaining, 0, 60'000'000'000LL);
  return timespec{static_cast<time_t>(remaining / 1'000'000'000),
                  static_cast<long>(remaining % 1'000'000'000)};
}

std::string system_error(const std::string& what, const std::string& path) {
  return path + ": " + what + " (" + strerror(errno) + ")";
}

}  // namespace

SerialPort::~SerialPort() { close(); }

SerialPort::SerialPort(SerialPort&& other) noexcept
    : fd_(other.fd_),
      path_(std::move(other.path_)),
      baudrate_(other.baudrate_),
      low_latency_(other.low_latency_) {
  other.fd_ = -1;
}

SerialPort& SerialPort::operator=(SerialPort&& other) noexcept {
  if (this != &other) {
    close();
    fd_ = other.fd_;
    path_ = std::move(other.path_);
    baudrate_ = other.baudrate_;
    low_latency_ = other.low_latency_;
    other.fd_ = -1;
  }
  return *this;
}

void SerialPort::open(const std::string& path, int baudrate) {
  close();
  int fd = ::open(path.c_str(), O_RDWR | O_NOCTTY | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) throw BusError(system_error("cannot open the serial port", path));
  fd_ = fd;
  path_ = path;
  try {
    configure(baudrate);
  } catch (...) {
    close();
    throw;
  }
  // Ask USB-serial drivers to hand over bytes at once instead of after their latency timer
  // (16 ms on FTDI adapters by default). Drivers without the flag (ptys, CDC-ACM) refuse: fine.
  struct serial_struct serial {};
  if (ioctl(fd_, TIOCGSERIAL, &serial) == 0) {
    serial.flags |= ASYNC_LOW_LATENCY;
    low_latency_ = ioctl(fd_, TIOCSSERIAL, &serial) == 0;
  }
  flush_input();
}

void SerialPort::close() {
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
  low_latency_ = false;
}

void SerialPort::configure(int baudrate) {
  if (baudrate <= 0)
    throw BusError(path_ + ": baud rate must be positive, got " + std::to_string(baudrate));
  struct termios2 options {};
  if (ioctl(fd_, TCGETS2, &options) != 0) throw BusError(system_error("not a serial port", path_));
  // Raw bytes: no line editing, echo, signals, flow control or character translation.
  options.c_iflag &= ~static_cast<tcflag_t>(IGNBRK | BRKINT | PARMRK | ISTRIP | INLCR | IGNCR |
                                            ICRNL | IXON | IXOFF | IXANY);
  options.c_oflag &= ~static_cast<tcflag_t>(OPOST);
  options.c_lflag &= ~static_cast<tcflag_t>(ECHO | ECHONL | ICANON | ISIG | IEXTEN);
  options.c_cflag &=
      ~static_cast<tcflag_t>(CSIZE | PARENB | CSTOPB | CRTSCTS | CBAUD | (CBAUD << IBSHIFT));
  options.c_cflag |= CS8 | CREAD | CLOCAL | BOTHER | (BOTHER << IBSHIFT);
  options.c_ispeed = static_cast<speed_t>(baudrate);
  options.c_ospeed = static_cast<speed_t>(baudrate);
  options.c_cc[VMIN] = 0;
  options.c_cc[VTIME] = 0;
  if (ioctl(fd_, TCSETS2, &options) != 0) {
    throw BusError(system_error("cannot set " + std::to_string(baudrate) + " baud", path_));
  }
  baudrate_ = baudrate;
}

void SerialPort::set_baudrate(int baudrate) {
  if (!is_open()) throw BusError("set_baudrate: the serial port is not open");
  configure(baudrate);
}

void SerialPort::flush_input() {
  if (fd_ >= 0) ioctl(fd_, TCFLSH, TCIFLUSH);
}

bool SerialPort::write_all(std::span<const uint8_t> bytes, Clock::time_point deadline) {
  size_t written = 0;
  while (written < bytes.size()) {
    ssize_t n = ::write(fd_, bytes.data() + written, bytes.size() - written);
    if (n > 0) {
      written += static_cast<size_t>(n);
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno != EAGAIN) return false;
    struct pollfd waiting {
      fd_, POLLOUT, 0
    };
    struct timespec timeout = time_until(deadline);
    int ready = ::ppoll(&waiting, 1, &timeout, nullptr);
    if (ready == 0 || (ready < 0 && errno != EINTR)) return false;
  }
  return true;
}

long SerialPort::read_some(std::span<uint8_t> out, Clock::time_point deadline,
                           Clock::time_point spin_until) {
  if (spin_until > Clock::now()) {
    const Clock::time_point spin_end = std::min(deadline, spin_until);
    do {
      // Polls the line discipline's byte count rather than calling read(): a tty read (or poll)
      // that finds nothing waits for the kernel worker still moving bytes in, so the thread sleeps
      // and its CPU halts, and waking a halted CPU costs tens of microseconds on a virtual machine.
      // Yielding hands the CPU to that worker if it was queued here.
      int queued = 0;
      if (ioctl(fd_, FIONREAD, &queued) != 0 || queued > 0) {
        ssize_t n = ::read(fd_, out.data(), out.size());
        if (n > 0) return n;
        if (n < 0 && errno != EAGAIN && errno != EINTR) return -1;
      }
      sched_yield();
    } while (Clock::now() < spin_end);
  }
  // Wait first, then read: a reply is rarely there already when a read starts, so trying to read
  // before waiting would usually cost a system call for nothing.
  while (true) {
    struct pollfd waiting {
      fd_, POLLIN, 0
    };
    struct timespec timeout = time_until(deadline);
    int ready = ::ppoll(&waiting, 1, &timeout, nullptr);
    if (ready < 0 && errno != EINTR) return -1;
    if (ready > 0) {
      if (waiting.revents & (POLLERR | POLLNVAL)) return -1;
      ssize_t n = ::read(fd_, out.data(), out.size());
      if (n > 0) return n;
      if (n < 0 && errno != EAGAIN && errno != EINTR) return -1;
      if (n == 0 && (waiting.revents & POLLHUP)) return -1;
    }
    if (Clock::now() >= deadline) return 0;
  }
}

}  // namespace dexloop::bus
