// Transactions on a Feetech (SCS/STS) or Dynamixel (Protocol 2.0) servo bus.
//
// Each call sends one instruction packet and collects the replies it expects before a deadline
// computed from the baud rate and the bytes on the wire (request + replies) plus a margin for the
// USB adapter and the servos' turnaround. Failures are statuses (Result), retried immediately up to
// `retries` times when they are communication failures (timeout, corrupt or foreign replies), never
// when a servo reported error bits: the behaviour of LeRobot's buses. Buffers are preallocated; a
// transaction neither allocates nor throws.
//
// Every value returned comes from its own transaction's reply. Status packets carry an id and a
// length but no address (and Feetech's no instruction), so a late reply to an abandoned
// transaction looks like a timely reply to the next one. The driver relies on what a serial line
// does guarantee, order: bytes arrive in the order they were sent, and a servo answers each
// instruction once. So:
//  - a transaction takes its replies strictly in the order the servos send them (the order of
//    the ids in the request); anything else (a foreign id, a duplicate, a skipped motor, a wrong
//    length) fails it at once;
//  - when a transaction fails, or leaves bytes unread, the replies it did not take may still be
//    arriving. Before the next transaction that expects replies, the driver sends a fence: a READ
//    whose (id, length) no reply still on its way can have, and drops everything until its reply.
//    By the line's order, nothing older can come after it. A fence that gets no answer in time
//    fails the attempt (kResyncFailed, retried like a timeout) and is itself remembered as late.
// Clean transactions never send a fence, so the hot path is unchanged.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>

#include "dexloop/bus/control_table.hpp"
#include "dexloop/bus/protocol.hpp"
#include "dexloop/bus/serial_port.hpp"
#include "dexloop/bus/status.hpp"

namespace dexloop::bus {

struct BusOptions {
  Protocol protocol = Protocol::kFeetech;
  int baudrate = 1'000'000;
  // Allowance beyond the wire time of a transaction: USB adapter latency and servo turnaround.
  double latency_margin_ms = 10.0;
  // Extra allowance per replying servo (its Return_Delay_Time; LeRobot configures 0).
  double per_reply_margin_ms = 0.1;
  // Replies whose first byte has been arriving within this many microseconds (a simulator's pty,
  // a short read on a native UART) are awaited by polling the port without sleeping, which saves
  // a thread wake-up each; longer waits (a whole sync read on the wire, USB adapters, which hold
  // bytes for 125 us to 1 ms) are spent asleep in the kernel, at no CPU cost. 0: never poll.
  int max_spin_us = 100;

  Vendor vendor() const { return vendor_of(protocol); }
};

// Counters of what went over the wire since the bus was opened.
struct Traffic {
  uint64_t transactions = 0;
  uint64_t bytes_sent = 0;
  uint64_t bytes_received = 0;
  uint64_t retries = 0;
  uint64_t timeouts = 0;
  uint64_t corrupt_replies = 0;
  uint64_t fences = 0;  // resynchronising READs sent after failed transactions
};

class ServoBus {
 public:
  static constexpr size_t kMaxMotors = 64;

  ServoBus(std::string port, BusOptions options);

  // Throws BusError when the port cannot be opened or configured.
  void open();
  void close();
  bool is_open() const { return port_.is_open(); }
  const std::string& port_path() const { return path_; }
  const BusOptions& options() const { return options_; }
  // The allowance beyond each transaction's wire time (BusOptions::latency_margin_ms). A control
  // loop shortens it while it runs, so that a silent motor costs it one tick, not many. Not
  // thread-safe: call it while no transaction runs.
  void set_latency_margin_ms(double margin_ms) { options_.latency_margin_ms = margin_ms; }
  int baudrate() const { return options_.baudrate; }
  void set_baudrate(int baudrate);
  bool low_latency() const { return port_.low_latency(); }
  const Traffic& traffic() const { return traffic_; }
  ByteOrder byte_order() const;

  // A ServoBus serves one thread at a time. A control loop claims the bus while it runs, and the
  // Python edge refuses other transactions on a claimed bus instead of interleaving them.
  bool try_claim() {
    bool expected = false;
    return claimed_.compare_exchange_strong(expected, true, std::memory_order_acq_rel);
  }
  void release_claim() { claimed_.store(false, std::memory_order_release); }
  bool claimed() const { return claimed_.load(std::memory_order_acquire); }

  // The deadline a transaction of `sent` request bytes expecting `received` reply bytes from
  // `replies` servos gets, in milliseconds.
  double timeout_ms(size_t sent, size_t received, size_t replies) const;

  // PING `id`. Feetech also reads Model_Number, as its SDK does; Dynamixel's reply carries it and
  // the firmware version. Either output may be null.
  Result ping(uint8_t id, int retries, uint16_t* model_number, uint8_t* firmware);

  // READ `size` bytes at `address` of `id` into `out` (raw register bytes, the bus's byte order).
  Result read(uint8_t id, uint16_t address, uint16_t size, uint8_t* out, int retries);

  // WRITE `data` at `address` of `id`, waiting for its status packet.
  Result write(uint8_t id, uint16_t address, std::span<const uint8_t> data, int retries);

  // REG_WRITE: like write, but the servo holds the data until ACTION (to start several motors in
  // the same instant).
  Result reg_write(uint8_t id, uint16_t address, std::span<const uint8_t> data, int retries);

  // ACTION: applies what REG_WRITE registered (usually to the broadcast id, then without reply).
  Result action(uint8_t id, int retries);

  // SYNC_READ `size` bytes at `address` of every id into `out` (ids.size() * size bytes, in the
  // order of `ids`) and each reply's error byte into `errors` (may be null). With `fast`,
  // Dynamixel's FAST_SYNC_READ (one combined reply).
  Result sync_read(std::span<const uint8_t> ids, uint16_t address, uint16_t size, uint8_t* out,
                   uint8_t* errors, int retries, bool fast = false);

  // SYNC_WRITE `data` (ids.size() blocks of `size` bytes) at `address`: one broadcast, no reply.
  Result sync_write(std::span<const uint8_t> ids, uint16_t address, uint16_t size,
                    std::span<const uint8_t> data);

  // Dynamixel BULK_READ: sizes[i] bytes at addresses[i] of ids[i], concatenated into `out`.
  Result bulk_read(std::span<const uint8_t> ids, std::span<const uint16_t> addresses,
                   std::span<const uint16_t> sizes, uint8_t* out, uint8_t* errors, int retries);

  // PING to the broadcast id; every servo answering within `window_ms` is reported (id and model
  // number; Feetech model numbers are read afterwards, as LeRobot does). Returns how many were
  // found.
  size_t broadcast_ping(double window_ms, std::span<uint8_t> ids,
                        std::span<uint16_t> model_numbers);

 private:
  // One attempt: send `request` and wait for replies. `expected` ids reply in order of the list;
  // reply k is a status packet whose data has `sizes[k]` bytes (BULK_READ: each its own), copied
  // to `out` one after the other. The one transaction loop of every read.
  Result transact(std::span<const uint8_t> request, std::span<const uint8_t> expected,
                  std::span<const uint16_t> sizes, uint8_t* out, uint8_t* errors);
  // The same when every reply has `reply_size` bytes (PING, READ, SYNC_READ; 0 for writes).
  Result transact(std::span<const uint8_t> request, std::span<const uint8_t> expected,
                  size_t reply_size, uint8_t* out, uint8_t* errors);
  Result write_instruction(uint8_t instruction, uint8_t id, uint16_t address,
                           std::span<const uint8_t> data, int retries);
  Result transact_fast(std::span<const uint8_t> request, std::span<const uint8_t> expected,
                       size_t reply_size, uint8_t* out, uint8_t* errors);
  bool send(std::span<const uint8_t> request);
  size_t encode(uint8_t id, uint8_t instruction, std::span<const uint8_t> params,
                std::span<uint8_t> out);
  size_t encode_read(uint8_t id, uint16_t address, uint16_t size, std::span<uint8_t> out);

  // --- Resynchronisation after a failure (see the top of this file).
  // A reply of `id` with `size` data bytes may still arrive: remember its shape.
  void expect_late(uint8_t id, size_t size);
  // Before a transaction that expects replies from `expected` of the lengths in `reply_lengths`
  // (length_bit() mask): fences the line when a late reply could pass for one of them.
  Result resynchronize(std::span<const uint8_t> expected, uint64_t reply_lengths);
  // After a transaction to `expected` failed with the first `answered` replies taken: the motor
  // fences go to first is the last that answered, and never one of those that did not.
  void forget_responder_among(std::span<const uint8_t> expected, size_t answered);
  // Waits until no byte has arrived for `quiet_ms`, dropping what comes (last resort when every
  // fence shape is taken).
  void drain_until_quiet(double quiet_ms);

  // Reads until a status packet is found or the deadline passes; the packet stays at rx_[0..size).
  Status receive_frame(Clock::time_point deadline, bool fast, uint8_t* id, uint8_t* error,
                       std::span<const uint8_t>* data);
  void consume_frame();
  bool retryable(const Result& result) const;

  // Runs `attempt` until it succeeds, fails for a reason other than communication, or `retries`
  // more tries are spent; counts retries and records the tries made in the result. An attempt
  // that could not start because the line could not be resynchronised keeps the failure that
  // made it unsure as the one reported: that is what the caller can act on.
  template <typename Attempt>
  Result with_retries(int retries, Attempt attempt) {
    Result result;
    for (int tries = 0; tries <= retries; ++tries) {
      if (tries > 0) ++traffic_.retries;
      Result outcome = attempt();
      if (tries == 0 || outcome.status != Status::kResyncFailed) result = outcome;
      result.attempts = static_cast<uint8_t>(tries + 1);
      if (!retryable(outcome)) break;
    }
    return result;
  }

  std::atomic<bool> claimed_{false};
  std::string path_;
  BusOptions options_;
  SerialPort port_;
  Traffic traffic_;
  uint8_t tx_[1024];
  uint8_t rx_[8192];
  size_t rx_size_ = 0;
  size_t frame_size_ = 0;  // size of the frame at the front of rx_ after receive_frame
  // The last transaction got exactly the replies it expected and left no bytes unread, so the next
  // one needs no flush of the port's input.
  bool synchronized_ = false;
  // Replies of an earlier transaction may still be on their way: the next one needs a fence.
  bool line_unsure_ = false;
  // Per id, the data lengths of replies that may still arrive (bit n: n bytes, bit 63: 63 or
  // more), and lengths any id may still send (after a broadcast PING).
  uint64_t late_lengths_[256] = {};
  uint64_t late_lengths_any_ = 0;
  // The motor that answered last (fences go to it first), or kNoMotor; and a turn counter that
  // moves failed fences on to other motors.
  static constexpr int kNoMotor = -1;
  int last_responder_ = kNoMotor;
  uint32_t fence_turn_ = 0;
  uint8_t fence_tx_[32];
  Clock::time_point sent_at_;
  bool awaiting_first_byte_ = false;
  // Moving average of the time from a request to its first reply byte, in microseconds.
  double reply_latency_us_ = 1e6;
  uint8_t scratch_[1024];  // unstuffed Dynamixel params
};

}  // namespace dexloop::bus
