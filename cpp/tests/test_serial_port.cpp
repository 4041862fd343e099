// SerialPort on a pty: reads that poll without sleeping (spin_until) and reads that wait in the
// kernel must both return what arrives, stop at their deadline, and report a vanished peer.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <stdlib.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <thread>

#include "dexloop/bus/serial_port.hpp"

namespace dexloop::bus {
namespace {

using std::chrono::microseconds;
using std::chrono::milliseconds;

// The master side of a pty, whose slave a SerialPort opens.
class PtyPeer {
 public:
  PtyPeer() {
    master_ = posix_openpt(O_RDWR | O_NOCTTY);
    if (master_ < 0 || grantpt(master_) != 0 || unlockpt(master_) != 0)
      throw std::runtime_error("no pty");
    path_ = ptsname(master_);
  }
  ~PtyPeer() { hang_up(); }
  const std::string& path() const { return path_; }
  void send(const std::string& bytes) const {
    ASSERT_EQ(::write(master_, bytes.data(), bytes.size()), static_cast<ssize_t>(bytes.size()));
  }
  void hang_up() {
    if (master_ >= 0) ::close(master_);
    master_ = -1;
  }

 private:
  int master_ = -1;
  std::string path_;
};

double elapsed_ms(Clock::time_point since) {
  return std::chrono::duration<double, std::milli>(Clock::now() - since).count();
}

class SerialPortReads : public ::testing::TestWithParam<bool> {
 protected:
  // Polling reads spin for the whole read window; sleeping reads not at all.
  Clock::time_point spin_until(Clock::time_point deadline) const {
    return GetParam() ? deadline : Clock::time_point::min();
  }
};

TEST_P(SerialPortReads, ReturnBytesThatArriveLaterInTheWindow) {
  PtyPeer peer;
  SerialPort port;
  port.open(peer.path(), 1'000'000);
  std::thread sender([&] {
    std::this_thread::sleep_for(microseconds(300));
    peer.send("hello");
  });
  uint8_t buffer[64];
  const Clock::time_point deadline = Clock::now() + milliseconds(500);
  long total = 0;
  while (total < 5) {
    const long n = port.read_some(std::span<uint8_t>(buffer + total, sizeof buffer - total),
                                  deadline, spin_until(deadline));
    ASSERT_GT(n, 0);
    total += n;
  }
  sender.join();
  EXPECT_EQ(std::string(reinterpret_cast<char*>(buffer), 5), "hello");
}

TEST_P(SerialPortReads, StopAtTheDeadlineWhenNothingComes) {
  PtyPeer peer;
  SerialPort port;
  port.open(peer.path(), 1'000'000);
  uint8_t buffer[16];
  // Every read waits its whole deadline; the fastest of three waits no longer than that plus
  // scheduling slack (a loaded machine delays some runs, a hidden wait would delay all).
  double fastest = 1e9;
  for (int run = 0; run < 3; ++run) {
    const Clock::time_point start = Clock::now();
    const Clock::time_point deadline = start + milliseconds(50);
    EXPECT_EQ(port.read_some(buffer, deadline, spin_until(deadline)), 0);
    const double took = elapsed_ms(start);
    EXPECT_GE(took, 50.0);
    fastest = std::min(fastest, took);
  }
  EXPECT_LT(fastest, 50.0 + 30.0);
}

TEST_P(SerialPortReads, ReportAPeerThatHungUpBeforeTheDeadline) {
  PtyPeer peer;
  SerialPort port;
  port.open(peer.path(), 1'000'000);
  peer.hang_up();
  uint8_t buffer[16];
  const Clock::time_point start = Clock::now();
  const Clock::time_point deadline = start + milliseconds(2000);
  // Polling gives up on its window (here 5 ms), then the kernel reports the hang-up.
  const Clock::time_point spin = GetParam() ? start + milliseconds(5) : Clock::time_point::min();
  EXPECT_EQ(port.read_some(buffer, deadline, spin), -1);
  EXPECT_LT(elapsed_ms(start), 500.0);
}

INSTANTIATE_TEST_SUITE_P(PollingAndSleeping, SerialPortReads, ::testing::Bool(),
                         [](const ::testing::TestParamInfo<bool>& info) {
                           return info.param ? "Polling" : "Sleeping";
                         });

}  // namespace
}  // namespace dexloop::bus
