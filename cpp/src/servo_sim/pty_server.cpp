// The serving thread: the pty, reading instructions, applying the faults of the line, writing the
// replies when they are due. The pty is configured with termios2 (<asm/termbits.h>, which cannot be
// mixed with glibc's <termios.h>): its c_ospeed is the rate a driver set, standard or not (BOTHER),
// which match_baudrate compares with the motors' own.
#include "simulator_impl.hpp"

namespace dexloop::servo_sim {

ServoSimulator::Impl::Impl(Protocol protocol_, std::vector<MotorSpec> specs,
                           SimulatorOptions options_)
    : protocol(protocol_),
      vendor(bus::vendor_of(protocol_)),
      options(options_),
      line_rng(options_.seed ^ 0x9E3779B97F4A7C15ull) {
  const int wanted_protocol = bus::protocol_version(protocol);
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

}  // namespace dexloop::servo_sim
