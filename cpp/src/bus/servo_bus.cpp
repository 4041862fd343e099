#include "dexloop/bus/servo_bus.hpp"

#include <algorithm>
#include <cstring>

#include "dexloop/bus/dynamixel_protocol.hpp"
#include "dexloop/bus/feetech_protocol.hpp"
#include "dexloop/error.hpp"

namespace dexloop::bus {
namespace {

constexpr Clock::duration to_duration(double milliseconds) {
  return std::chrono::duration_cast<Clock::duration>(
      std::chrono::duration<double, std::milli>(milliseconds));
}

// The bit standing for replies of `size` data bytes in ServoBus::late_lengths_.
constexpr uint64_t length_bit(size_t size) { return uint64_t{1} << std::min<size_t>(size, 63); }

// Fences read 1 to this many bytes from address 0 (model number, firmware, id: EEPROM that every
// model lets any master read).
constexpr uint16_t kMaxFenceLength = 16;

// The longest a last-resort drain waits for a quiet line, however noisy it stays.
constexpr double kMaxDrainMs = 1000.0;

}  // namespace

const char* status_name(Status status) {
  switch (status) {
    case Status::kOk:
      return "ok";
    case Status::kTimeout:
      return "timeout";
    case Status::kCorrupt:
      return "corrupt reply";
    case Status::kWrongId:
      return "reply from a wrong id";
    case Status::kBadLength:
      return "reply of a wrong length";
    case Status::kServoError:
      return "servo error";
    case Status::kPortError:
      return "port error";
    case Status::kTxError:
      return "invalid instruction";
    case Status::kResyncFailed:
      return "resynchronisation failed";
    case Status::kValueOutOfRange:
      return "value out of range";
  }
  return "unknown";
}

ServoBus::ServoBus(std::string port, BusOptions options)
    : path_(std::move(port)), options_(options) {}

void ServoBus::open() {
  port_.open(path_, options_.baudrate);
  synchronized_ = false;
  // Whatever an earlier user of the port left on the line was flushed by open().
  line_unsure_ = false;
  std::fill(std::begin(late_lengths_), std::end(late_lengths_), 0);
  late_lengths_any_ = 0;
  last_responder_ = kNoMotor;
  reply_latency_us_ = 1e6;
  traffic_ = Traffic{};
  rx_size_ = 0;
}

void ServoBus::close() { port_.close(); }

void ServoBus::set_baudrate(int baudrate) {
  if (port_.is_open()) port_.set_baudrate(baudrate);
  options_.baudrate = baudrate;
}

ByteOrder ServoBus::byte_order() const {
  return options_.protocol == Protocol::kFeetechScs ? ByteOrder::kBig : ByteOrder::kLittle;
}

double ServoBus::timeout_ms(size_t sent, size_t received, size_t replies) const {
  // 8N1: 10 bits a byte.
  const double byte_ms = 10'000.0 / options_.baudrate;
  return static_cast<double>(sent + received) * byte_ms + options_.latency_margin_ms +
         static_cast<double>(replies) * options_.per_reply_margin_ms;
}

bool ServoBus::retryable(const Result& result) const {
  switch (result.status) {
    case Status::kTimeout:
    case Status::kCorrupt:
    case Status::kWrongId:
    case Status::kBadLength:
    case Status::kResyncFailed:
      return true;
    case Status::kServoError:
      // A Dynamixel servo that received a damaged instruction says so: a failure of the line, not
      // of the servo.
      return options_.vendor() == Vendor::kDynamixel &&
             (result.servo_error & 0x7F) == dynamixel::kErrorCrc;
    default:
      return false;
  }
}

size_t ServoBus::encode(uint8_t id, uint8_t instruction, std::span<const uint8_t> params,
                        std::span<uint8_t> out) {
  if (options_.vendor() == Vendor::kFeetech) return feetech::encode(id, instruction, params, out);
  return dynamixel::encode(id, instruction, params, out);
}

size_t ServoBus::encode_read(uint8_t id, uint16_t address, uint16_t size, std::span<uint8_t> out) {
  uint8_t params[4];
  size_t count = 0;
  if (options_.vendor() == Vendor::kFeetech) {
    params[0] = static_cast<uint8_t>(address);
    params[1] = static_cast<uint8_t>(size);
    count = 2;
  } else {
    store_unsigned(address, params, 2, ByteOrder::kLittle);
    store_unsigned(size, params + 2, 2, ByteOrder::kLittle);
    count = 4;
  }
  return encode(id, feetech::kRead, std::span<const uint8_t>(params, count), out);
}

void ServoBus::expect_late(uint8_t id, size_t size) {
  late_lengths_[id] |= length_bit(size);
  line_unsure_ = true;
}

void ServoBus::forget_responder_among(std::span<const uint8_t> expected, size_t answered) {
  // The next fence goes to a motor that did answer, not to one that may have gone silent.
  if (answered > 0) {
    last_responder_ = expected[answered - 1];
  } else if (std::find(expected.begin(), expected.end(), last_responder_) != expected.end()) {
    last_responder_ = kNoMotor;
  }
}

void ServoBus::drain_until_quiet(double quiet_ms) {
  port_.flush_input();
  rx_size_ = 0;
  frame_size_ = 0;
  uint8_t sink[256];
  const Clock::time_point give_up = Clock::now() + to_duration(kMaxDrainMs);
  while (Clock::now() < give_up) {
    const Clock::time_point until = std::min(give_up, Clock::now() + to_duration(quiet_ms));
    if (port_.read_some(sink, until, Clock::time_point::min()) <= 0) break;
  }
  synchronized_ = false;
}

Result ServoBus::resynchronize(std::span<const uint8_t> expected, uint64_t reply_lengths) {
  // Replies any motor may still send (after a broadcast PING) only matter to a transaction whose
  // replies have their length; any other failure leaves the line unsure for every transaction.
  if (!line_unsure_ && (late_lengths_any_ & reply_lengths) == 0) return {};
  // Any motor that answers will do, since the line keeps order: the one that answered last, then
  // the transaction's own, starting further along after each fence that went unanswered.
  uint8_t candidates[kMaxMotors + 1];
  size_t count = 0;
  if (last_responder_ != kNoMotor) candidates[count++] = static_cast<uint8_t>(last_responder_);
  for (uint8_t id : expected) {
    if (count == std::size(candidates)) break;
    if (id <= feetech::kMaxId && id != last_responder_) candidates[count++] = id;
  }
  const uint8_t named = expected.empty() ? uint8_t{0} : expected[0];
  uint8_t target = 0;
  uint16_t length = 0;
  for (size_t turn = 0; turn < count && length == 0; ++turn) {
    const uint8_t id = candidates[(fence_turn_ + turn) % count];
    const uint64_t taken = late_lengths_[id] | late_lengths_any_;
    for (uint16_t n = 1; n <= kMaxFenceLength; ++n) {
      if ((taken & length_bit(n)) == 0) {
        target = id;
        length = n;
        break;
      }
    }
  }
  if (length == 0) {
    // Every fence shape may still be on its way from every candidate (fences to motors that went
    // silent): nothing can prove the line clear, so wait for it to fall quiet, forget the shapes,
    // and fail this attempt; the next one fences again.
    drain_until_quiet(2 * options_.latency_margin_ms);
    std::fill(std::begin(late_lengths_), std::end(late_lengths_), 0);
    late_lengths_any_ = 0;
    ++fence_turn_;
    return {Status::kResyncFailed, named};
  }

  // Whatever has arrived is late by now; the fence's reply comes after whatever is still coming.
  port_.flush_input();
  rx_size_ = 0;
  frame_size_ = 0;
  const size_t size = encode_read(target, 0, length, fence_tx_);
  ++traffic_.fences;
  traffic_.bytes_sent += size;
  awaiting_first_byte_ = false;  // a fence's reply waits behind late ones: not a latency sample
  if (!port_.write_all(std::span<const uint8_t>(fence_tx_, size),
                       Clock::now() + to_duration(timeout_ms(size, 0, 0)))) {
    return {Status::kPortError, target};
  }
  const size_t overhead =
      options_.vendor() == Vendor::kFeetech ? feetech::kStatusOverhead : dynamixel::kStatusOverhead;
  const Clock::time_point deadline =
      Clock::now() + to_duration(timeout_ms(size, overhead + length, 1));
  while (true) {
    uint8_t id = 0;
    uint8_t error = 0;
    std::span<const uint8_t> data;
    const Status status = receive_frame(deadline, false, &id, &error, &data);
    if (status == Status::kOk) {
      const bool fence_reply = id == target && data.size() == length;
      consume_frame();
      if (fence_reply) break;
      continue;  // a late reply: exactly what the fence is for
    }
    if (status == Status::kCorrupt && rx_size_ > 0) {
      // A damaged late reply, or noise that looked like a header: the fence's reply may start
      // inside it, so step over one byte only.
      std::memmove(rx_, rx_ + 1, rx_size_ - 1);
      --rx_size_;
      frame_size_ = 0;
      continue;
    }
    expect_late(target, length);  // the fence itself may now arrive late
    last_responder_ = kNoMotor;
    ++fence_turn_;
    return {status == Status::kPortError ? Status::kPortError : Status::kResyncFailed, target};
  }
  // By the line's order, nothing sent before the fence's reply can follow it.
  std::fill(std::begin(late_lengths_), std::end(late_lengths_), 0);
  late_lengths_any_ = 0;
  line_unsure_ = false;
  last_responder_ = target;
  rx_size_ = 0;  // bytes after the fence's reply answer nothing that was asked
  frame_size_ = 0;
  synchronized_ = false;
  return {};
}

bool ServoBus::send(std::span<const uint8_t> request) {
  // Replies to an earlier, abandoned transaction must not be taken for this one's. After a
  // transaction that got exactly its replies there is nothing to drop, and the flush is skipped.
  if (!synchronized_) port_.flush_input();
  synchronized_ = false;
  rx_size_ = 0;
  frame_size_ = 0;
  ++traffic_.transactions;
  traffic_.bytes_sent += request.size();
  sent_at_ = Clock::now();
  awaiting_first_byte_ = true;
  return port_.write_all(request, Clock::now() + to_duration(timeout_ms(request.size(), 0, 0)));
}

void ServoBus::consume_frame() {
  const size_t used = std::min(frame_size_, rx_size_);
  std::memmove(rx_, rx_ + used, rx_size_ - used);
  rx_size_ -= used;
  frame_size_ = 0;
}

Status ServoBus::receive_frame(Clock::time_point deadline, bool fast, uint8_t* id, uint8_t* error,
                               std::span<const uint8_t>* data) {
  bool received_any = rx_size_ > 0;
  while (true) {
    size_t skip = 0;
    if (options_.vendor() == Vendor::kFeetech) {
      feetech::Scan scan =
          feetech::scan(std::span<const uint8_t>(rx_, rx_size_), feetech::FrameKind::kStatus);
      skip = scan.skip;
      if (scan.outcome != feetech::Scan::kNeedMore) {
        std::memmove(rx_, rx_ + skip, rx_size_ - skip);
        rx_size_ -= skip;
        frame_size_ = scan.size;
        if (scan.outcome == feetech::Scan::kCorrupt) return Status::kCorrupt;
        *id = scan.frame.id;
        *error = scan.frame.code;
        *data = std::span<const uint8_t>(rx_ + 5, scan.size - feetech::kStatusOverhead);
        return Status::kOk;
      }
    } else {
      const auto kind = fast ? dynamixel::FrameKind::kFastStatus : dynamixel::FrameKind::kStatus;
      dynamixel::Scan scan =
          dynamixel::scan(std::span<const uint8_t>(rx_, rx_size_), kind, scratch_);
      skip = scan.skip;
      if (scan.outcome != dynamixel::Scan::kNeedMore) {
        std::memmove(rx_, rx_ + skip, rx_size_ - skip);
        rx_size_ -= skip;
        frame_size_ = scan.size;
        if (scan.outcome == dynamixel::Scan::kCorrupt) return Status::kCorrupt;
        *id = scan.frame.id;
        // Status params: the error byte, then the data (for a fast reply, the first block's).
        *error = scan.frame.params.empty() ? 0 : scan.frame.params[0];
        *data = fast ? scan.frame.params
                     : scan.frame.params.subspan(std::min<size_t>(1, scan.frame.params.size()));
        return Status::kOk;
      }
    }
    // No complete packet yet: drop what cannot begin one and read more.
    std::memmove(rx_, rx_ + skip, rx_size_ - skip);
    rx_size_ -= skip;
    if (rx_size_ == sizeof(rx_)) {
      rx_size_ = 0;  // a buffer full of bytes that never form a packet
      return Status::kCorrupt;
    }
    // Poll without sleeping where replies have been coming faster than a thread wakes up.
    Clock::time_point spin_until = Clock::time_point::min();
    if (reply_latency_us_ <= options_.max_spin_us) {
      spin_until = Clock::now() +
                   std::chrono::microseconds(static_cast<int64_t>(2 * reply_latency_us_ + 20));
    }
    long n = port_.read_some(std::span<uint8_t>(rx_ + rx_size_, sizeof(rx_) - rx_size_), deadline,
                             spin_until);
    if (n < 0) return Status::kPortError;
    if (n == 0) return received_any ? Status::kCorrupt : Status::kTimeout;
    if (awaiting_first_byte_) {
      awaiting_first_byte_ = false;
      const double latency =
          std::chrono::duration<double, std::micro>(Clock::now() - sent_at_).count();
      reply_latency_us_ =
          reply_latency_us_ >= 1e6 ? latency : 0.8 * reply_latency_us_ + 0.2 * latency;
    }
    rx_size_ += static_cast<size_t>(n);
    traffic_.bytes_received += static_cast<uint64_t>(n);
    received_any = true;
  }
}

Result ServoBus::transact(std::span<const uint8_t> request, std::span<const uint8_t> expected,
                          size_t reply_size, uint8_t* out, uint8_t* errors) {
  uint16_t sizes[kMaxMotors + 1];
  const size_t count = std::min(expected.size(), std::size(sizes));
  std::fill(sizes, sizes + count, static_cast<uint16_t>(reply_size));
  return transact(request, expected.first(count), std::span<const uint16_t>(sizes, count), out,
                  errors);
}

Result ServoBus::transact(std::span<const uint8_t> request, std::span<const uint8_t> expected,
                          std::span<const uint16_t> sizes, uint8_t* out, uint8_t* errors) {
  if (!expected.empty()) {
    uint64_t reply_lengths = 0;
    for (uint16_t size : sizes) reply_lengths |= length_bit(size);
    const Result fenced = resynchronize(expected, reply_lengths);
    if (!fenced.ok()) return fenced;
  }
  // Replies that did not arrive may still be on their way, each with its own length.
  const auto fail = [&](Status status, size_t k, uint8_t servo_error = 0) {
    for (size_t i = k; i < expected.size(); ++i) expect_late(expected[i], sizes[i]);
    synchronized_ = false;
    forget_responder_among(expected, k);
    return Result{status, expected[k], servo_error};
  };
  if (!send(request)) {
    if (expected.empty()) return {Status::kPortError, 0};
    return fail(Status::kPortError, 0);  // it may have gone out in part
  }
  if (expected.empty()) {
    synchronized_ = true;
    return {};
  }
  const size_t overhead =
      options_.vendor() == Vendor::kFeetech ? feetech::kStatusOverhead : dynamixel::kStatusOverhead;
  size_t reply_bytes = 0;
  for (uint16_t size : sizes) reply_bytes += overhead + size;
  const Clock::time_point deadline =
      Clock::now() + to_duration(timeout_ms(request.size(), reply_bytes, expected.size()));
  size_t at = 0;
  for (size_t k = 0; k < expected.size(); ++k) {
    uint8_t id = 0;
    uint8_t error = 0;
    std::span<const uint8_t> data;
    Status status = receive_frame(deadline, false, &id, &error, &data);
    if (status == Status::kOk && id != expected[k]) {
      // Servos answer in the order of the request. A later motor's reply means this one's was
      // lost; any other id cannot be an answer to this request.
      const bool later = std::find(expected.begin() + static_cast<long>(k) + 1, expected.end(),
                                   id) != expected.end();
      status = later ? Status::kTimeout : Status::kWrongId;
    } else if (status == Status::kOk && data.size() != sizes[k]) {
      // Not this request's answer, or a Dynamixel servo's refusal (its error, no data; a damaged
      // request gets the CRC error): retried behind a fence either way, its error byte kept for
      // the message.
      status = Status::kBadLength;
    }
    if (status != Status::kOk) {
      if (status == Status::kCorrupt) ++traffic_.corrupt_replies;
      if (status == Status::kTimeout) ++traffic_.timeouts;
      if (status != Status::kPortError && frame_size_ > 0) consume_frame();
      return fail(status, k, status == Status::kBadLength ? error : uint8_t{0});
    }
    if (sizes[k] > 0 && out != nullptr) std::memcpy(out + at, data.data(), sizes[k]);
    at += sizes[k];
    if (errors != nullptr) errors[k] = error;
    consume_frame();
  }
  last_responder_ = expected.back();
  synchronized_ = rx_size_ == 0;
  // Bytes nobody asked for: fence before the line is trusted again.
  if (!synchronized_) line_unsure_ = true;
  return {};
}

Result ServoBus::transact_fast(std::span<const uint8_t> request, std::span<const uint8_t> expected,
                               size_t reply_size, uint8_t* out, uint8_t* errors) {
  const size_t block = reply_size + 4;  // ERR, ID, data, CRC
  const size_t reply_bytes = dynamixel::kStatusOverhead - 1 + expected.size() * block;
  const Result fenced =
      resynchronize(expected, length_bit(reply_bytes - dynamixel::kStatusOverhead));
  if (!fenced.ok()) return fenced;
  // One combined reply, from the broadcast id; the fences go to motors, so it needs no shape of
  // its own, only the line marked unsure when it is not taken whole.
  const auto fail = [&](Status status, uint8_t id) {
    expect_late(dynamixel::kBroadcastId, reply_bytes);
    synchronized_ = false;
    last_responder_ = kNoMotor;
    return Result{status, id};
  };
  if (!send(request)) return fail(Status::kPortError, expected[0]);
  const Clock::time_point deadline =
      Clock::now() + to_duration(timeout_ms(request.size(), reply_bytes, expected.size()));
  uint8_t id = 0;
  uint8_t error = 0;
  std::span<const uint8_t> blocks;
  Status status = receive_frame(deadline, true, &id, &error, &blocks);
  if (status != Status::kOk) {
    if (status == Status::kTimeout) ++traffic_.timeouts;
    if (status == Status::kCorrupt) {
      ++traffic_.corrupt_replies;
      // Each block carries the CRC of the packet up to its end: the first block whose CRC fails
      // names the motor whose data was damaged (the packet CRC alone would blame no one).
      const size_t blocks_end = std::min(frame_size_, rx_size_);
      uint16_t crc = 0;
      size_t at = 8;
      crc = dynamixel::crc16(std::span<const uint8_t>(rx_, std::min(at, blocks_end)));
      for (size_t k = 0; k + 1 < expected.size() && at + block <= blocks_end; ++k, at += block) {
        crc = dynamixel::crc16(std::span<const uint8_t>(rx_ + at, block - 2), crc);
        const uint16_t stored =
            rx_[at + block - 2] | static_cast<uint16_t>(rx_[at + block - 1] << 8);
        if (stored != crc) return fail(status, rx_[at + 1]);
        crc = dynamixel::crc16(std::span<const uint8_t>(rx_ + at + block - 2, 2), crc);
      }
      const size_t last = at + 1;
      return fail(status, last < blocks_end ? rx_[last] : expected.back());
    }
    return fail(status, expected[0]);
  }
  consume_frame();
  if (id != dynamixel::kBroadcastId) return fail(Status::kWrongId, expected[0]);
  // The last block's CRC is the packet's own, which the frame's params stop before.
  if (blocks.size() + 2 != expected.size() * block) return fail(Status::kBadLength, expected[0]);
  for (size_t k = 0; k < expected.size(); ++k) {
    // Blocks follow the order of the request, as separate replies do.
    const uint8_t* at = blocks.data() + k * block;
    if (at[1] != expected[k]) return fail(Status::kWrongId, expected[k]);
  }
  for (size_t k = 0; k < expected.size(); ++k) {
    const uint8_t* at = blocks.data() + k * block;
    if (errors != nullptr) errors[k] = at[0];
    if (out != nullptr) std::memcpy(out + k * reply_size, at + 2, reply_size);
  }
  last_responder_ = expected.back();
  synchronized_ = rx_size_ == 0;
  if (!synchronized_) line_unsure_ = true;
  return {};
}

Result ServoBus::ping(uint8_t id, int retries, uint16_t* model_number, uint8_t* firmware) {
  if (!is_open()) return {Status::kPortError, id};
  if (id > feetech::kMaxId) return {Status::kTxError, id};
  const size_t size = encode(id, feetech::kPing, {}, tx_);
  const uint8_t expected[] = {id};
  const bool dynamixel = options_.vendor() == Vendor::kDynamixel;
  uint8_t reply[3] = {};
  // A Dynamixel ping reply carries the model number and firmware version; a Feetech one is empty.
  Result result = with_retries(retries, [&] {
    uint8_t error = 0;
    const Result outcome =
        transact(std::span<const uint8_t>(tx_, size), expected, dynamixel ? 3 : 0, reply, &error);
    return outcome.ok() && error != 0 ? Result{Status::kServoError, id, error} : outcome;
  });
  if (!result.ok()) return result;
  if (dynamixel) {
    if (model_number != nullptr) *model_number = static_cast<uint16_t>(reply[0] | (reply[1] << 8));
    if (firmware != nullptr) *firmware = reply[2];
    return result;
  }
  // Feetech: the model number is read separately, as the SDK's ping does.
  uint8_t model[2] = {};
  Result read_result = read(id, 3, 2, model, retries);
  if (!read_result.ok()) return read_result;
  if (model_number != nullptr)
    *model_number = static_cast<uint16_t>(load_unsigned(model, 2, byte_order()));
  if (firmware != nullptr) *firmware = 0;
  return result;
}

Result ServoBus::read(uint8_t id, uint16_t address, uint16_t size, uint8_t* out, int retries) {
  if (!is_open()) return {Status::kPortError, id};
  const bool feetech_bus = options_.vendor() == Vendor::kFeetech;
  if (id > feetech::kMaxId || size == 0 || (feetech_bus && (address > 0xFF || size > 0xFF))) {
    return {Status::kTxError, id};
  }
  const size_t request = encode_read(id, address, size, tx_);
  if (request == 0) return {Status::kTxError, id};
  const uint8_t expected[] = {id};
  return with_retries(retries, [&] {
    uint8_t error = 0;
    const Result outcome =
        transact(std::span<const uint8_t>(tx_, request), expected, size, out, &error);
    return outcome.ok() && error != 0 ? Result{Status::kServoError, id, error} : outcome;
  });
}

Result ServoBus::write(uint8_t id, uint16_t address, std::span<const uint8_t> data, int retries) {
  return write_instruction(feetech::kWrite, id, address, data, retries);
}

Result ServoBus::reg_write(uint8_t id, uint16_t address, std::span<const uint8_t> data,
                           int retries) {
  return write_instruction(feetech::kRegWrite, id, address, data, retries);
}

Result ServoBus::action(uint8_t id, int retries) {
  if (!is_open()) return {Status::kPortError, id};
  if (id > feetech::kBroadcastId) return {Status::kTxError, id};
  const size_t request = encode(id, feetech::kAction, {}, tx_);
  // Both SDKs: Feetech waits for the status of a unicast ACTION; Dynamixel's never waits for one.
  const uint8_t expected_id[] = {id};
  const bool unicast = id != feetech::kBroadcastId;
  const bool wait = options_.vendor() == Vendor::kFeetech && unicast;
  const std::span<const uint8_t> expected =
      wait ? std::span<const uint8_t>(expected_id) : std::span<const uint8_t>();
  Result result = with_retries(retries, [&] {
    uint8_t error = 0;
    const Result outcome =
        transact(std::span<const uint8_t>(tx_, request), expected, 0, nullptr, &error);
    return outcome.ok() && error != 0 ? Result{Status::kServoError, id, error} : outcome;
  });
  // A Dynamixel servo still answers a unicast ACTION: that status is on its way, unasked for.
  if (result.ok() && unicast && !wait) expect_late(id, 0);
  return result;
}

Result ServoBus::write_instruction(uint8_t instruction, uint8_t id, uint16_t address,
                                   std::span<const uint8_t> data, int retries) {
  if (!is_open()) return {Status::kPortError, id};
  const bool feetech_bus = options_.vendor() == Vendor::kFeetech;
  if (id > feetech::kBroadcastId || data.empty() || data.size() > 512 ||
      (feetech_bus && address > 0xFF)) {
    return {Status::kTxError, id};
  }
  uint8_t params[516];
  size_t count = 0;
  if (feetech_bus) {
    params[0] = static_cast<uint8_t>(address);
    count = 1;
  } else {
    store_unsigned(address, params, 2, ByteOrder::kLittle);
    count = 2;
  }
  std::memcpy(params + count, data.data(), data.size());
  count += data.size();
  const size_t request = encode(id, instruction, std::span<const uint8_t>(params, count), tx_);
  if (request == 0) return {Status::kTxError, id};
  // A broadcast write gets no reply.
  const uint8_t expected_id[] = {id};
  const std::span<const uint8_t> expected = id == feetech::kBroadcastId
                                                ? std::span<const uint8_t>()
                                                : std::span<const uint8_t>(expected_id);
  return with_retries(retries, [&] {
    uint8_t error = 0;
    const Result outcome =
        transact(std::span<const uint8_t>(tx_, request), expected, 0, nullptr, &error);
    return outcome.ok() && error != 0 ? Result{Status::kServoError, id, error} : outcome;
  });
}

Result ServoBus::sync_read(std::span<const uint8_t> ids, uint16_t address, uint16_t size,
                           uint8_t* out, uint8_t* errors, int retries, bool fast) {
  if (!is_open()) return {Status::kPortError};
  const bool feetech_bus = options_.vendor() == Vendor::kFeetech;
  if (ids.empty() || ids.size() > kMaxMotors || size == 0 || (fast && feetech_bus))
    return {Status::kTxError};
  // Feetech protocol 1 (SCS) servos have no SYNC_READ.
  if (feetech_bus && (options_.protocol != Protocol::kFeetech || address > 0xFF || size > 0xFF))
    return {Status::kTxError};
  const size_t request = feetech_bus ? feetech::encode_sync_read(ids, static_cast<uint8_t>(address),
                                                                 static_cast<uint8_t>(size), tx_)
                                     : dynamixel::encode_sync_read(ids, address, size, fast, tx_);
  if (request == 0) return {Status::kTxError};
  Result result = with_retries(retries, [&] {
    return fast ? transact_fast(std::span<const uint8_t>(tx_, request), ids, size, out, errors)
                : transact(std::span<const uint8_t>(tx_, request), ids, size, out, errors);
  });
  return result;
}

Result ServoBus::sync_write(std::span<const uint8_t> ids, uint16_t address, uint16_t size,
                            std::span<const uint8_t> data) {
  if (!is_open()) return {Status::kPortError};
  const bool feetech_bus = options_.vendor() == Vendor::kFeetech;
  if (ids.empty() || size == 0 || data.size() != ids.size() * size) return {Status::kTxError};
  if (feetech_bus && (address > 0xFF || size > 0xFF)) return {Status::kTxError};
  const size_t request = feetech_bus
                             ? feetech::encode_sync_write(ids, static_cast<uint8_t>(address),
                                                          static_cast<uint8_t>(size), data, tx_)
                             : dynamixel::encode_sync_write(ids, address, size, data, tx_);
  if (request == 0) return {Status::kTxError};
  return transact(std::span<const uint8_t>(tx_, request), {}, 0, nullptr, nullptr);
}

Result ServoBus::bulk_read(std::span<const uint8_t> ids, std::span<const uint16_t> addresses,
                           std::span<const uint16_t> sizes, uint8_t* out, uint8_t* errors,
                           int retries) {
  if (!is_open()) return {Status::kPortError};
  if (options_.vendor() != Vendor::kDynamixel || ids.empty() || ids.size() > kMaxMotors)
    return {Status::kTxError};
  const size_t request = dynamixel::encode_bulk_read(ids, addresses, sizes, tx_);
  if (request == 0) return {Status::kTxError};
  Result result = with_retries(retries, [&] {
    return transact(std::span<const uint8_t>(tx_, request), ids, sizes, out, errors);
  });
  return result;
}

size_t ServoBus::broadcast_ping(double window_ms, std::span<uint8_t> ids,
                                std::span<uint16_t> model_numbers) {
  if (!is_open()) return 0;
  const bool dynamixel = options_.vendor() == Vendor::kDynamixel;
  const size_t ping_reply_size = dynamixel ? 3 : 0;
  // Late replies must not be counted as motors: fence when one answered before, else wait for a
  // quiet line; only ping-shaped replies are taken either way.
  if (line_unsure_ || (late_lengths_any_ & length_bit(ping_reply_size)) != 0) {
    if (last_responder_ != kNoMotor) (void)resynchronize({}, length_bit(ping_reply_size));
    if (line_unsure_) drain_until_quiet(2 * options_.latency_margin_ms);
  }
  const size_t request = encode(feetech::kBroadcastId, feetech::kPing, {}, tx_);
  if (!send(std::span<const uint8_t>(tx_, request))) return 0;
  const Clock::time_point deadline = Clock::now() + to_duration(window_ms);
  size_t found = 0;
  while (found < ids.size()) {
    uint8_t id = 0;
    uint8_t error = 0;
    std::span<const uint8_t> data;
    Status status = receive_frame(deadline, false, &id, &error, &data);
    if (status == Status::kTimeout || status == Status::kPortError) break;
    if (status == Status::kCorrupt) {
      if (frame_size_ == 0) break;  // nothing more will arrive in time
      consume_frame();
      continue;
    }
    if (data.size() == ping_reply_size &&
        std::find(ids.begin(), ids.begin() + static_cast<long>(found), id) ==
            ids.begin() + static_cast<long>(found)) {
      ids[found] = id;
      model_numbers[found] =
          dynamixel ? static_cast<uint16_t>(data[0] | (data[1] << 8)) : uint16_t{0};
      ++found;
    }
    consume_frame();
  }
  // Motors answering after the window are late replies of this ping: any motor, the ping's
  // length. Only transactions whose replies have that length need a fence first.
  late_lengths_any_ |= length_bit(ping_reply_size);
  synchronized_ = false;
  if (found > 0) last_responder_ = ids[found - 1];
  if (!dynamixel) {
    // Feetech ping replies carry no model number: read it from each motor found.
    for (size_t i = 0; i < found; ++i) {
      uint8_t model[2] = {};
      if (read(ids[i], 3, 2, model, 1).ok())
        model_numbers[i] = static_cast<uint16_t>(load_unsigned(model, 2, byte_order()));
    }
  }
  return found;
}

}  // namespace dexloop::bus
