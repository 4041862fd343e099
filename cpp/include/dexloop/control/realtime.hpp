// What a real-time thread asks of Linux, each step attempted and its outcome reported (a shared
// machine or a container usually refuses SCHED_FIFO and mlockall; the loop then runs as a normal
// thread and says so), and the absolute-deadline sleep the loop paces itself with.
#pragma once

#include <cstdint>
#include <string>

namespace dexloop::control {

// CLOCK_MONOTONIC in nanoseconds: the clock of every timestamp the loop publishes (Python's
// time.monotonic_ns() reads the same clock).
int64_t monotonic_ns();

// Sleeps until `deadline_ns` (CLOCK_MONOTONIC): clock_nanosleep(TIMER_ABSTIME) to `spin_ns`
// before it, then polls the clock, which wakes on time even when the kernel's timer slack or a
// busy core would wake the thread late. Returns the time it woke.
int64_t sleep_until(int64_t deadline_ns, int64_t spin_ns);

struct RealtimeRequest {
  bool fifo = false;                         // SCHED_FIFO at `priority`
  int priority = 50;                         // 1..99
  int cpu = -1;                              // pin to this CPU (-1: any)
  bool lock_memory = false;                  // mlockall(MCL_CURRENT | MCL_FUTURE)
  size_t prefault_stack_bytes = 256 * 1024;  // touched so the tick never page-faults on its stack
};

struct RealtimeReport {
  bool fifo = false;
  bool pinned = false;
  bool memory_locked = false;
  // Why a requested step was refused ("" when everything requested was granted).
  std::string refused;
};

// Applies `request` to the calling thread.
RealtimeReport apply_realtime(const RealtimeRequest& request);

}  // namespace dexloop::control
