// Random and mutated bytes into everything that parses bus traffic: the Feetech and Dynamixel
// packet scanners (status, fast-status and instruction frames), ServoBus transactions answered with
// garbage by a peer, and the servo simulator fed garbage instructions. Every outcome must be a
// frame, a "need more", a corrupt verdict or a failure status, within the views' bounds and the
// transaction's deadline; a crash, an out-of-bounds view or a hang fails the run.
//
//   dexloop_fuzz_bus --seconds 20 [--seed N]
#include <fcntl.h>
#include <signal.h>
#include <termios.h>
#include <unistd.h>

#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "dexloop/bus/dynamixel_protocol.hpp"
#include "dexloop/bus/feetech_protocol.hpp"
#include "dexloop/bus/servo_bus.hpp"
#include "dexloop/servo_sim/servo_simulator.hpp"
#include "scripted_peer.hpp"

namespace {

using namespace dexloop::bus;
using Clock = std::chrono::steady_clock;

[[noreturn]] void fail(const char* what, uint64_t seed) {
  std::fprintf(stderr, "fuzz: %s (seed %llu)\n", what, static_cast<unsigned long long>(seed));
  std::exit(1);
}

void on_watchdog(int) {
  const char message[] = "fuzz: an iteration exceeded the watchdog (hang)\n";
  (void)!write(2, message, sizeof(message) - 1);
  _exit(3);
}

// Valid packets of both vendors, to mutate: garbage that is almost a packet reaches deeper code.
std::vector<Bytes> seed_packets() {
  std::vector<Bytes> seeds;
  uint8_t out[1024];
  const uint8_t ids[] = {1, 2, 3, 4, 5, 6};
  const uint8_t data[] = {0x00, 0x08, 0xFF, 0xFF, 0xFD, 0x00, 0x12, 0x34};
  seeds.emplace_back(out, out + feetech::encode(1, 0, std::span<const uint8_t>(data, 2), out));
  seeds.emplace_back(out, out + feetech::encode_sync_read(ids, 56, 2, out));
  seeds.emplace_back(out, out + dynamixel::encode_status(3, 0, data, out));
  seeds.emplace_back(out, out + dynamixel::encode_sync_read(ids, 132, 4, true, out));
  seeds.emplace_back(out, out + dynamixel::encode(1, dynamixel::kWrite, data, out));
  return seeds;
}

Bytes mutate(const Bytes& original, std::mt19937_64& random) {
  Bytes bytes = original;
  auto pick = [&](size_t bound) {
    return std::uniform_int_distribution<size_t>(0, bound > 0 ? bound - 1 : 0)(random);
  };
  switch (pick(4)) {
    case 0:  // pure noise, biased towards header bytes
      bytes.resize(pick(300));
      for (uint8_t& byte : bytes) {
        const uint8_t special[] = {0xFF, 0xFD, 0x00, 0x55, 0xFE};
        byte = pick(3) == 0 ? special[pick(5)] : static_cast<uint8_t>(pick(256));
      }
      break;
    case 1:  // flips
      for (size_t i = 0, n = 1 + pick(8); i < n && !bytes.empty(); ++i)
        bytes[pick(bytes.size())] ^= 1u << pick(8);
      break;
    case 2:  // concatenation with garbage between
      for (size_t i = 0, n = pick(4); i < n; ++i) {
        bytes.push_back(static_cast<uint8_t>(pick(256)));
        bytes.insert(bytes.end(), original.begin(), original.end());
      }
      break;
    default:  // truncation or a wild length field
      if (!bytes.empty()) bytes.resize(pick(bytes.size()));
      if (bytes.size() > 6) bytes[pick(2) ? 3 : 5] = static_cast<uint8_t>(pick(256));
      break;
  }
  return bytes;
}

void check_scanners(const Bytes& bytes, uint64_t seed) {
  const std::span<const uint8_t> view(bytes);
  for (auto kind : {feetech::FrameKind::kStatus, feetech::FrameKind::kInstruction}) {
    feetech::Scan scan = feetech::scan(view, kind);
    if (scan.skip > bytes.size()) fail("feetech skip beyond the buffer", seed);
    if (scan.outcome != feetech::Scan::kNeedMore) {
      if (scan.skip + scan.size > bytes.size()) fail("feetech frame beyond the buffer", seed);
      if (scan.outcome == feetech::Scan::kFrame &&
          (scan.frame.params.data() < bytes.data() ||
           scan.frame.params.data() + scan.frame.params.size() > bytes.data() + bytes.size())) {
        fail("feetech params outside the buffer", seed);
      }
    }
  }
  uint8_t scratch[dynamixel::kMaxPacketSize];
  for (auto kind : {dynamixel::FrameKind::kStatus, dynamixel::FrameKind::kFastStatus,
                    dynamixel::FrameKind::kInstruction}) {
    dynamixel::Scan scan = dynamixel::scan(view, kind, scratch);
    if (scan.skip > bytes.size()) fail("dynamixel skip beyond the buffer", seed);
    if (scan.outcome != dynamixel::Scan::kNeedMore && scan.skip + scan.size > bytes.size()) {
      fail("dynamixel frame beyond the buffer", seed);
    }
    if (scan.outcome == dynamixel::Scan::kFrame && scan.frame.params.size() > sizeof(scratch)) {
      fail("dynamixel params beyond the scratch buffer", seed);
    }
  }
}

}  // namespace

int main(int argc, char** argv) {
  double seconds = 20;
  uint64_t seed = std::random_device{}();
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string flag = argv[i];
    if (flag == "--seconds") seconds = std::atof(argv[i + 1]);
    if (flag == "--seed") seed = std::strtoull(argv[i + 1], nullptr, 10);
  }
  std::mt19937_64 random(seed);
  const std::vector<Bytes> seeds = seed_packets();
  std::signal(SIGALRM, on_watchdog);
  std::printf("fuzz: seed %llu, %.0f s budget\n", static_cast<unsigned long long>(seed), seconds);
  const auto deadline = Clock::now() + std::chrono::duration<double>(seconds);
  const auto scanner_phase_end = Clock::now() + std::chrono::duration<double>(seconds * 0.4);

  // 1. The scanners alone: fast, so millions of inputs.
  long scanned = 0;
  while (Clock::now() < scanner_phase_end) {
    for (int i = 0; i < 1000; ++i, ++scanned)
      check_scanners(mutate(seeds[scanned % seeds.size()], random), seed);
  }

  // 2. ServoBus transactions answered with garbage: a status, within the deadline, every time.
  Bytes reply;
  std::mutex reply_mutex;
  ScriptedPeer peer([&](int, const Bytes&) {
    std::lock_guard lock(reply_mutex);
    return reply;
  });
  long transactions = 0;
  for (int vendor = 0; vendor < 2; ++vendor) {
    BusOptions options;
    options.protocol = vendor == 0 ? Protocol::kFeetech : Protocol::kDynamixel;
    options.latency_margin_ms = 2.0;
    ServoBus servo_bus(peer.path(), options);
    servo_bus.open();
    const uint8_t ids[] = {1, 2, 3, 4, 5, 6};
    uint8_t out[64];
    const auto phase_end =
        Clock::now() + std::chrono::duration<double>(seconds * (vendor == 0 ? 0.15 : 0.3));
    while (Clock::now() < phase_end) {
      {
        std::lock_guard lock(reply_mutex);
        reply = mutate(seeds[transactions % seeds.size()], random);
      }
      alarm(5);
      const double limit_ms =
          servo_bus.timeout_ms(14, 6 * (11 + 4), 6) + 20.0;  // + scheduling slack
      auto start = Clock::now();
      Result result =
          transactions % 2
              ? servo_bus.sync_read(ids, vendor == 0 ? 56 : 132, vendor == 0 ? 2 : 4, out, nullptr,
                                    1, vendor == 1 && transactions % 4 == 1)
              : servo_bus.read(1, vendor == 0 ? 56 : 132, vendor == 0 ? 2 : 4, out, 1);
      const double took = std::chrono::duration<double, std::milli>(Clock::now() - start).count();
      alarm(0);
      if (took > 2 * limit_ms) fail("a transaction outlasted its deadline", seed);
      (void)result;
      ++transactions;
    }
  }

  // 3. The simulator fed garbage instructions keeps serving valid ones.
  long garbage = 0;
  for (auto protocol :
       {dexloop::servo_sim::Protocol::kFeetech, dexloop::servo_sim::Protocol::kDynamixel}) {
    const bool feetech_bus = protocol == dexloop::servo_sim::Protocol::kFeetech;
    dexloop::servo_sim::ServoSimulator sim(
        protocol,
        {{1, feetech_bus ? "sts3215" : "xl330-m288"}, {2, feetech_bus ? "sts3215" : "xl330-m288"}},
        {});
    sim.start();
    BusOptions options;
    options.protocol = feetech_bus ? Protocol::kFeetech : Protocol::kDynamixel;
    ServoBus servo_bus(sim.port_path(), options);
    servo_bus.open();
    int raw = open(sim.port_path().c_str(), O_RDWR | O_NOCTTY);
    termios mode{};
    tcgetattr(raw, &mode);
    cfmakeraw(&mode);
    tcsetattr(raw, TCSANOW, &mode);
    const auto phase_end =
        Clock::now() +
        std::chrono::duration<double>(
            std::chrono::duration<double>(deadline - Clock::now()).count() / (feetech_bus ? 2 : 1));
    while (Clock::now() < phase_end) {
      Bytes bytes = mutate(seeds[garbage % seeds.size()], random);
      (void)!write(raw, bytes.data(), bytes.size());
      ++garbage;
      if (garbage % 50 == 0) {
        usleep(60'000);  // the simulator drops a partial packet after 50 ms of silence
        uint16_t model = 0;
        alarm(5);
        Result result = servo_bus.ping(1, 3, &model, nullptr);
        alarm(0);
        if (!result.ok()) {
          std::fprintf(stderr, "fuzz: ping after garbage: %s (motor %d, %d tries)\n",
                       status_name(result.status), result.id, result.attempts);
          fail("the simulator stopped answering after garbage", seed);
        }
      }
    }
    close(raw);
  }
  std::printf(
      "fuzz: %ld scanner inputs, %ld garbage-answered transactions, %ld garbage instructions, no "
      "crash\n",
      scanned, transactions, garbage);
  return 0;
}
