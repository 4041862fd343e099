#include "ffmpeg.hpp"

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

}  // namespace dexloop::video::ffmpeg
