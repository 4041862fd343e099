#include "ffmpeg.hpp"

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

std::string error_text(int averror) {
  char buffer[AV_ERROR_MAX_STRING_SIZE] = {};
  av_strerror(averror, buffer, sizeof(buffer));
  return buffer;
}

void quiet_logging_once() {
  static std::once_flag once;
  std::call_once(once, [] {
    if (std::getenv("DEXLOOP_FFMPEG_LOG") == nullptr) av_log_set_level(AV_LOG_QUIET);
  });
}

}  // namespace dexloop::video::ffmpeg
