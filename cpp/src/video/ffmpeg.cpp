#include "ffmpeg.hpp"

#include <linux/capability.h>
#include <pthread.h>
#include <sched.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>
#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <new>

namespace dexloop::video::ffmpeg {

Frame make_frame() {
  Frame frame(av_frame_alloc());
  if (!frame) throw std::bad_alloc();
  return frame;
}

Packet make_packet() {
  Packet packet(av_packet_alloc());
  if (!packet) throw std::bad_alloc();
  return packet;
}

std::string format_seconds(double seconds) {
  char buffer[64];
  std::snprintf(buffer, sizeof(buffer), "%.6f", seconds);
  return buffer;
}

std::string error_text(int averror) {
  char buffer[AV_ERROR_MAX_STRING_SIZE] = {};
  av_strerror(averror, buffer, sizeof(buffer));
  return buffer;
}

namespace {

thread_local bool* t_logged_error_flag =
    nullptr;  // the innermost ThreadLoggedErrors on this thread

// Records errors a decoder logs in the flag its context's `opaque` points at (see
// report_logged_errors) and errors logged inside a ThreadLoggedErrors scope, then hands the message
// to FFmpeg's own callback, which prints it only when DEXLOOP_FFMPEG_LOG is set.
void log_callback(void* object, int level, const char* format, va_list arguments) {
  // FFmpeg's convention: a non-null logging object starts with its AVClass pointer.
  if (level <= AV_LOG_ERROR && t_logged_error_flag != nullptr) *t_logged_error_flag = true;
  if (level <= AV_LOG_ERROR && object != nullptr &&
      *static_cast<const AVClass* const*>(object) == avcodec_get_class()) {
    auto* context = static_cast<AVCodecContext*>(object);
    if (context->opaque != nullptr) {
      static_cast<std::atomic<bool>*>(context->opaque)->store(true, std::memory_order_relaxed);
    }
  }
  av_log_default_callback(object, level, format, arguments);
}

}  // namespace

void quiet_logging_once() {
  static std::once_flag once;
  std::call_once(once, [] {
    if (std::getenv("DEXLOOP_FFMPEG_LOG") == nullptr) {
      av_log_set_level(AV_LOG_QUIET);
      // SVT-AV1 prints its configuration to stderr on every encoder it opens, unless told (before
      // the first one) to report errors only; a user's own SVT_LOG is left as it is.
      setenv("SVT_LOG", "1", /*overwrite=*/0);
    }
    av_log_set_callback(log_callback);
  });
}

void report_logged_errors(AVCodecContext* context, std::atomic<bool>* flag) {
  context->opaque = flag;
}

ThreadLoggedErrors::ThreadLoggedErrors(bool* flag) : enclosing_(t_logged_error_flag) {
  t_logged_error_flag = flag;
}

ThreadLoggedErrors::~ThreadLoggedErrors() { t_logged_error_flag = enclosing_; }

namespace {

// The calling thread's capability sets (raw syscalls: libcap is not a dependency).
bool thread_capabilities(__user_cap_data_struct (&data)[2]) {
  __user_cap_header_struct header{_LINUX_CAPABILITY_VERSION_3, 0};
  return syscall(SYS_capget, &header, data) == 0;
}

bool set_thread_capabilities(__user_cap_data_struct (&data)[2]) {
  __user_cap_header_struct header{_LINUX_CAPABILITY_VERSION_3, 0};
  return syscall(SYS_capset, &header, data) == 0;
}

constexpr uint32_t kSysNiceBit = 1u << CAP_SYS_NICE;  // CAP_SYS_NICE < 32: in data[0]

}  // namespace

NoRealtimeScope::NoRealtimeScope() {
  sched_param param{};
  if (pthread_getschedparam(pthread_self(), &policy_, &param) == 0)
    priority_ = param.sched_priority;
  __user_cap_data_struct data[2] = {};
  if (thread_capabilities(data) && (data[0].effective & kSysNiceBit)) {
    data[0].effective &= ~kSysNiceBit;  // still permitted: raised again on leaving
    lowered_capability_ = set_thread_capabilities(data);
  }
}

NoRealtimeScope::~NoRealtimeScope() {
  if (lowered_capability_) {
    __user_cap_data_struct data[2] = {};
    if (thread_capabilities(data)) {
      data[0].effective |= kSysNiceBit;
      set_thread_capabilities(data);
    }
  }
  int policy = 0;
  sched_param param{};
  if (pthread_getschedparam(pthread_self(), &policy, &param) == 0 &&
      (policy != policy_ || param.sched_priority != priority_)) {
    param.sched_priority = priority_;
    pthread_setschedparam(pthread_self(), policy_, &param);
  }
}

}  // namespace dexloop::video::ffmpeg
