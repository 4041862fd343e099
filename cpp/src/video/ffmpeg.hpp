// RAII owners for the FFmpeg objects the video code uses, and error-string helpers.
// Private to cpp/src/video: public headers never expose FFmpeg types.
#pragma once

extern "C" {
#include <libavcodec/avcodec.h>
#include <libavformat/avformat.h>
#include <libavutil/imgutils.h>
#include <libavutil/pixdesc.h>
#include <libswscale/swscale.h>
}

#include <atomic>
#include <memory>
#include <string>

namespace dexloop::video::ffmpeg {

// A format context opened for demuxing (avformat_open_input) and one allocated for muxing
// (avformat_alloc_output_context2) are released differently, so they are distinct types.
struct InputFormatContextCloser {
  void operator()(AVFormatContext* context) const { avformat_close_input(&context); }
};
struct OutputFormatContextFreer {
  void operator()(AVFormatContext* context) const {
    // A custom AVIOContext (AVFMT_FLAG_CUSTOM_IO) belongs to whoever made it.
    if (context->pb != nullptr && !(context->flags & AVFMT_FLAG_CUSTOM_IO) &&
        !(context->oformat->flags & AVFMT_NOFILE)) {
      avio_closep(&context->pb);
    }
    avformat_free_context(context);
  }
};
struct CodecContextFreer {
  void operator()(AVCodecContext* context) const { avcodec_free_context(&context); }
};
struct FrameFreer {
  void operator()(AVFrame* frame) const { av_frame_free(&frame); }
};
struct PacketFreer {
  void operator()(AVPacket* packet) const { av_packet_free(&packet); }
};
struct SwsContextFreer {
  void operator()(SwsContext* context) const { sws_freeContext(context); }
};

using InputFormatContext = std::unique_ptr<AVFormatContext, InputFormatContextCloser>;
using OutputFormatContext = std::unique_ptr<AVFormatContext, OutputFormatContextFreer>;
using CodecContext = std::unique_ptr<AVCodecContext, CodecContextFreer>;
using Frame = std::unique_ptr<AVFrame, FrameFreer>;
using Packet = std::unique_ptr<AVPacket, PacketFreer>;
using ScaleContext = std::unique_ptr<SwsContext, SwsContextFreer>;

// Owns an AVDictionary of options; FFmpeg's calls take `&dictionary.raw` and leave in it the
// entries they did not consume.
struct Dictionary {
  AVDictionary* raw = nullptr;
  Dictionary() = default;
  Dictionary(const Dictionary&) = delete;
  Dictionary& operator=(const Dictionary&) = delete;
  ~Dictionary() { av_dict_free(&raw); }
};

Frame make_frame();
Packet make_packet();

// A timestamp in seconds with enough digits to tell neighbouring frames apart, for messages.
std::string format_seconds(double seconds);

// The text FFmpeg gives for an AVERROR code, e.g. "Invalid data found when processing input".
std::string error_text(int averror);

// FFmpeg logs to stderr by default; dexloop reports failures through exceptions instead, so the
// library is kept quiet unless DEXLOOP_FFMPEG_LOG is set. Safe to call many times.
void quiet_logging_once();

// Makes `flag` become true whenever the decoder of `context` logs an error. Some damage is reported
// only there: H.264 substitutes another picture for a missing reference, and logs it, without
// flagging the frame. Needs quiet_logging_once() first; `flag` must outlive the context.
void report_logged_errors(AVCodecContext* context, std::atomic<bool>* flag);

// While alive, makes `*flag` true whenever FFmpeg logs an error on this thread, from any context.
// The demuxer, and the parser it runs over each packet, log through contexts dexloop does not own:
// FFmpeg's AV1 parser rejects damaged OBU headers that libdav1d decodes anyway, into wrong pixels,
// and says so only in its log. Scopes nest; needs quiet_logging_once() first.
class ThreadLoggedErrors {
 public:
  explicit ThreadLoggedErrors(bool* flag);
  ~ThreadLoggedErrors();
  ThreadLoggedErrors(const ThreadLoggedErrors&) = delete;
  ThreadLoggedErrors& operator=(const ThreadLoggedErrors&) = delete;

 private:
  bool* enclosing_;
};

// While alive, keeps codec libraries from raising the calling thread, or the threads they start,
// to real-time scheduling. SVT-AV1 (1.4, Debian's) switches the thread that opens an encoder to
// SCHED_FIFO at the highest priority whenever the process may, as root may, and the encoder threads
// it then starts inherit that: a Python thread recording as root would be left at FIFO 99, able to
// starve the whole machine, and busy encoder threads would preempt the control loop's FIFO 50
// thread. So, around opening a codec, the thread's CAP_SYS_NICE is lowered (the threads it starts
// meanwhile inherit that), and its policy and priority are put back as they were.
class NoRealtimeScope {
 public:
  NoRealtimeScope();
  ~NoRealtimeScope();
  NoRealtimeScope(const NoRealtimeScope&) = delete;
  NoRealtimeScope& operator=(const NoRealtimeScope&) = delete;

 private:
  int policy_ = 0;
  int priority_ = 0;
  bool lowered_capability_ = false;
};

}  // namespace dexloop::video::ffmpeg
