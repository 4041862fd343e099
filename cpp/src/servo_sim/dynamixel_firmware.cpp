// What a Dynamixel (Protocol 2.0) servo does with each instruction it hears.
#include "simulator_impl.hpp"

namespace dexloop::servo_sim {

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

}  // namespace dexloop::servo_sim
