// ServoSimulator's public interface: life cycle, fault injection, introspection. The motor model
// is motor_model.cpp, the serving thread pty_server.cpp, the firmwares feetech_firmware.cpp and
// dynamixel_firmware.cpp.
#include "simulator_impl.hpp"

namespace dexloop::servo_sim {

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

}  // namespace dexloop::servo_sim
