// What a Feetech STS / SCS servo does with each instruction it hears.
#include "simulator_impl.hpp"

namespace dexloop::servo_sim {

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

}  // namespace dexloop::servo_sim
