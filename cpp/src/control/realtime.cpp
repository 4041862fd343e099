#include "dexloop/control/realtime.hpp"

#include <pthread.h>
#include <sched.h>
#include <sys/mman.h>
#include <time.h>

#include <cerrno>
#include <cstring>

namespace dexloop::control {
namespace {

timespec to_timespec(int64_t ns) {
  timespec ts;
  ts.tv_sec = static_cast<time_t>(ns / 1'000'000'000);
  ts.tv_nsec = static_cast<long>(ns % 1'000'000'000);
  return ts;
}

void note(std::string& refused, const char* what, int error) {
  if (!refused.empty()) refused += "; ";
  refused += what;
  refused += ": ";
  refused += std::strerror(error);
}

// Touches `bytes` of stack below the caller's frame, so those pages are mapped before the tick.
__attribute__((noinline)) void prefault_stack(size_t bytes) {
  volatile unsigned char* stack = static_cast<unsigned char*>(__builtin_alloca(bytes));
  for (size_t i = 0; i < bytes; i += 4096) stack[i] = 0;
}

// A hint to the core that this is a spin-wait (saves power, yields to a hyperthread sibling).
inline void cpu_relax() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__)
  asm volatile("yield");
#endif
}

}  // namespace

int64_t monotonic_ns() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
}

int64_t sleep_until(int64_t deadline_ns, int64_t spin_ns) {
  const timespec wake = to_timespec(deadline_ns - (spin_ns > 0 ? spin_ns : 0));
  while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &wake, nullptr) == EINTR) {
  }
  int64_t now = monotonic_ns();
  while (now < deadline_ns) {
    cpu_relax();
    now = monotonic_ns();
  }
  return now;
}

RealtimeReport apply_realtime(const RealtimeRequest& request) {
  RealtimeReport report;
  if (request.cpu >= 0) {
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(request.cpu, &set);
    const int error = pthread_setaffinity_np(pthread_self(), sizeof(set), &set);
    if (error == 0) {
      report.pinned = true;
    } else {
      note(report.refused, "CPU affinity", error);
    }
  }
  if (request.fifo) {
    sched_param param{};
    param.sched_priority = request.priority;
    const int error = pthread_setschedparam(pthread_self(), SCHED_FIFO, &param);
    if (error == 0) {
      report.fifo = true;
    } else {
      note(report.refused, "SCHED_FIFO", error);
    }
  }
  if (request.lock_memory) {
    if (mlockall(MCL_CURRENT | MCL_FUTURE) == 0) {
      report.memory_locked = true;
    } else {
      note(report.refused, "mlockall", errno);
    }
  }
  if (request.prefault_stack_bytes > 0) prefault_stack(request.prefault_stack_bytes);
  return report;
}

}  // namespace dexloop::control
