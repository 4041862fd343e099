#include "dexloop/video/video_decoder.hpp"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstring>
#include <limits>
#include <mutex>
#include <numeric>
#include <utility>
#include <vector>

#include "dexloop/error.hpp"
#include "ffmpeg.hpp"

namespace dexloop::video {
namespace {

constexpr int64_t kNoTimestamp = AV_NOPTS_VALUE;
// How many earlier keyframes a seek may step back when the decoder lands after the target (streams
// whose keyframes are indexed by decode time, e.g. H.264 with B-frames, can land one GOP late).
constexpr int kMaxSeekRetries = 8;

// Query ticks are clamped to this range before use: a huge or far-off timestamp then simply finds
// no frame near it instead of overflowing the conversion to int64.
constexpr double kMaxQueryTicks = 4.0e18;

// Extra request headers for videos read over HTTP(S) (e.g. a Hub token), set by set_http_headers.
std::mutex http_headers_mutex;
std::string http_headers;

bool is_url(const std::string& path) {
  return path.rfind("http://", 0) == 0 || path.rfind("https://", 0) == 0;
}

// Options of FFmpeg's HTTP protocol for a video read by range requests: keep one connection for
// the seeks of a decoder, follow the Hub's redirects, retry a dropped connection, and fail instead
// of waiting forever on a server that stopped answering.
void network_options(ffmpeg::Dictionary& options) {
  static std::once_flag network_ready;
  std::call_once(network_ready, [] { avformat_network_init(); });
  av_dict_set(&options.raw, "multiple_requests", "1", 0);
  av_dict_set(&options.raw, "reconnect", "1", 0);
  av_dict_set(&options.raw, "reconnect_on_network_error", "1", 0);
  av_dict_set(&options.raw, "reconnect_delay_max", "4", 0);
  av_dict_set(&options.raw, "rw_timeout", "30000000", 0);  // microseconds without progress
  std::lock_guard lock(http_headers_mutex);
  if (!http_headers.empty()) av_dict_set(&options.raw, "headers", http_headers.c_str(), 0);
}

int64_t frame_pts(const AVFrame* frame) {
  if (frame->pts != kNoTimestamp) return frame->pts;
  return frame->best_effort_timestamp;
}

// The decoder reported that this frame was produced despite errors (damaged bitstream, missing
// reference, concealed macroblocks): its pixels are not the recorded ones.
bool decoded_with_errors(const AVFrame* frame) {
  return frame->decode_error_flags != 0 || (frame->flags & AV_FRAME_FLAG_CORRUPT) != 0;
}

bool is_keyframe(const AVFrame* frame) {
#if LIBAVUTIL_VERSION_INT >= AV_VERSION_INT(58, 7, 100)
  return (frame->flags & AV_FRAME_FLAG_KEY) != 0;
#else
  return frame->key_frame != 0;
#endif
}

}  // namespace

struct VideoDecoder::Impl {
  std::string path;
  StreamInfo info;
  ffmpeg::InputFormatContext format;
  ffmpeg::CodecContext codec;
  AVStream* stream = nullptr;
  int stream_index = -1;
  double time_base = 0.0;  // seconds per stream tick

  ffmpeg::Packet packet = ffmpeg::make_packet();
  ffmpeg::Frame scratch = ffmpeg::make_frame();
  // The two most recent frames in presentation order: a query lands between them.
  ffmpeg::Frame previous = ffmpeg::make_frame();
  ffmpeg::Frame current = ffmpeg::make_frame();
  bool has_previous = false;
  bool has_current = false;
  // Whether each frame in hand is damaged: decoded with errors itself, or predicted from a damaged
  // frame since the last clean keyframe (concealment errors propagate through references).
  bool previous_damaged = false;
  bool current_damaged = false;
  bool references_damaged = false;
  std::atomic<bool> decoder_logged_error{false};  // set by FFmpeg's log callback (ffmpeg.cpp)
  // Timestamps of packets during whose demuxing (and parsing) FFmpeg logged an error, not yet
  // matched to a decoded frame: the first frame at or after one is damaged, with what follows it.
  std::vector<int64_t> damaged_packet_pts;
  double query_in_progress_s = std::numeric_limits<double>::quiet_NaN();

  bool positioned = false;   // decoding continues from an earlier seek
  bool input_ended = false;  // demuxer hit end of file; decoder is being drained
  bool drained = false;      // decoder returned every frame
  int64_t last_packet_dts = std::numeric_limits<int64_t>::min();
  int64_t packets_since_seek = 0;
  int64_t packet_budget = 0;  // bound on packets read after one seek, against looping demuxers

  ffmpeg::ScaleContext scaler;
  std::vector<uint8_t> scratch_rgb;  // converted frame with aligned rows, before copying out
  int64_t frames_decoded = 0;

  [[noreturn]] void fail(const std::string& what, int averror) const {
    fail(what + " (" + ffmpeg::error_text(averror) + ")");
  }
  [[noreturn]] void fail(const std::string& what) const {
    std::string where =
        std::isnan(query_in_progress_s)
            ? ""
            : " while decoding the frame at " + ffmpeg::format_seconds(query_in_progress_s) + " s";
    throw VideoDecodeError(path + ": " + what + where);
  }

  double seconds(int64_t pts) const { return static_cast<double>(pts) * time_base; }

  void open(int threads) {
    ffmpeg::quiet_logging_once();
    AVFormatContext* raw_format = nullptr;
    ffmpeg::Dictionary options;
    if (is_url(path)) network_options(options);
    int result = avformat_open_input(&raw_format, path.c_str(), nullptr, &options.raw);
    if (result < 0) fail(is_url(path) ? "cannot open video URL" : "cannot open video file", result);
    format.reset(raw_format);

    int stream_count = static_cast<int>(format->nb_streams);
    stream_index = av_find_best_stream(format.get(), AVMEDIA_TYPE_VIDEO, -1, -1, nullptr, 0);
    // The mp4 header already holds the codec and frame size; probing by decoding (slow for files
    // with many streams, needed for raw streams) runs only when it does not.
    bool header_complete = stream_index >= 0 && stream_count > 0 &&
                           format->streams[stream_index]->codecpar->width > 0 &&
                           format->streams[stream_index]->codecpar->height > 0;
    if (!header_complete) {
      result = avformat_find_stream_info(format.get(), nullptr);
      if (result < 0) fail("cannot read stream information; not a video file?", result);
      stream_index = av_find_best_stream(format.get(), AVMEDIA_TYPE_VIDEO, -1, -1, nullptr, 0);
    }
    if (stream_index < 0) fail("no video stream in the file");
    stream = format->streams[stream_index];
    for (int i = 0; i < static_cast<int>(format->nb_streams); ++i) {
      if (i != stream_index) format->streams[i]->discard = AVDISCARD_ALL;
    }

    const AVCodecParameters* parameters = stream->codecpar;
    const AVCodec* decoder = avcodec_find_decoder(parameters->codec_id);
    if (decoder == nullptr) {
      fail(std::string("no decoder for codec '") + avcodec_get_name(parameters->codec_id) + "'");
    }
    codec.reset(avcodec_alloc_context3(decoder));
    if (!codec) throw std::bad_alloc();
    result = avcodec_parameters_to_context(codec.get(), parameters);
    if (result < 0) fail("invalid codec parameters", result);
    codec->thread_count = threads;
    codec->pkt_timebase = stream->time_base;
    // Report damage instead of concealing it: decoders that honour these flags (H.264, HEVC) return
    // an error for a broken slice; others flag their frames (decoded_with_errors) or log it.
    codec->err_recognition |= AV_EF_CRCCHECK | AV_EF_BITSTREAM | AV_EF_BUFFER | AV_EF_EXPLODE;
    ffmpeg::report_logged_errors(codec.get(), &decoder_logged_error);
    result = avcodec_open2(codec.get(), decoder, nullptr);
    if (result < 0) fail("cannot open the decoder", result);

    if (stream->time_base.num <= 0 || stream->time_base.den <= 0) fail("stream has no time base");
    time_base = av_q2d(stream->time_base);

    info.codec = avcodec_get_name(parameters->codec_id);
    const char* pix_fmt = av_get_pix_fmt_name(static_cast<AVPixelFormat>(parameters->format));
    info.pix_fmt = pix_fmt ? pix_fmt : "";
    info.width = parameters->width;
    info.height = parameters->height;
    if (info.width <= 0 || info.height <= 0) fail("stream has no frame size");
    AVRational rate =
        stream->avg_frame_rate.num > 0 ? stream->avg_frame_rate : stream->r_frame_rate;
    info.fps = rate.num > 0 && rate.den > 0 ? av_q2d(rate) : 0.0;
    info.base_fps = stream->r_frame_rate.num > 0 && stream->r_frame_rate.den > 0
                        ? av_q2d(stream->r_frame_rate)
                        : 0.0;
    info.time_base_num = stream->time_base.num;
    info.time_base_den = stream->time_base.den;
    int index_entries = avformat_index_get_entries_count(stream);
    info.frame_count = stream->nb_frames > 0 ? stream->nb_frames : index_entries;
    info.start_s = stream->start_time != kNoTimestamp ? seconds(stream->start_time) : 0.0;
    if (stream->duration != kNoTimestamp && stream->duration > 0) {
      info.duration_s = seconds(stream->duration);
    } else if (format->duration != kNoTimestamp && format->duration > 0) {
      info.duration_s = static_cast<double>(format->duration) / AV_TIME_BASE;
    }
    packet_budget = 2 * std::max<int64_t>(info.frame_count, index_entries) + 1024;
  }

  void reset_decoding_state() {
    av_frame_unref(previous.get());
    av_frame_unref(current.get());
    has_previous = has_current = false;
    previous_damaged = current_damaged = references_damaged = false;
    decoder_logged_error = false;
    damaged_packet_pts.clear();
    input_ended = drained = false;
    last_packet_dts = std::numeric_limits<int64_t>::min();
    packets_since_seek = 0;
  }

  // Timestamp (stream ticks) of the keyframe `steps_back` keyframes before the one at or before
  // `target`, from the container index; nullopt-like INT64_MIN when the index cannot tell.
  int64_t keyframe_at_or_before(int64_t target, int steps_back) const {
    int entry = av_index_search_timestamp(stream, target, AVSEEK_FLAG_BACKWARD);
    if (entry < 0) return std::numeric_limits<int64_t>::min();
    while (steps_back > 0 && entry > 0) {
      --entry;
      const AVIndexEntry* candidate = avformat_index_get_entry(stream, entry);
      if (candidate != nullptr && (candidate->flags & AVINDEX_KEYFRAME)) --steps_back;
    }
    const AVIndexEntry* found = avformat_index_get_entry(stream, entry);
    return found != nullptr ? found->timestamp : std::numeric_limits<int64_t>::min();
  }

  void seek(int64_t target, int steps_back) {
    int64_t keyframe = keyframe_at_or_before(target, steps_back);
    int64_t seek_to = keyframe != std::numeric_limits<int64_t>::min() ? keyframe : target;
    if (keyframe == std::numeric_limits<int64_t>::min() && steps_back > 0) {
      // No index (e.g. a raw stream): step back in time instead, one second per retry.
      seek_to = target - static_cast<int64_t>(steps_back / time_base);
    }
    int result = av_seek_frame(format.get(), stream_index, seek_to, AVSEEK_FLAG_BACKWARD);
    if (result < 0) {
      result = avformat_seek_file(format.get(), stream_index, std::numeric_limits<int64_t>::min(),
                                  seek_to, seek_to, 0);
    }
    if (result < 0)
      fail("seek to " + ffmpeg::format_seconds(seconds(target)) + " s failed", result);
    avcodec_flush_buffers(codec.get());
    reset_decoding_state();
    positioned = true;
  }

  // Decodes the next frame in presentation order into `current`, keeping the one before in
  // `previous`. Returns false at the end of the stream.
  bool next_frame() {
    if (drained) return false;
    while (true) {
      int result = avcodec_receive_frame(codec.get(), scratch.get());
      if (result == 0) {
        ++frames_decoded;
        if (is_keyframe(scratch.get())) references_damaged = false;
        // An error logged since the previous frame may belong to this one or to one not yet
        // output (reordering): either way the frames from here to the next keyframe are suspect.
        bool follows_damage = follows_damaged_packet(frame_pts(scratch.get()));
        if (decoded_with_errors(scratch.get()) || decoder_logged_error.exchange(false) ||
            follows_damage) {
          references_damaged = true;
        }
        std::swap(previous, current);
        has_previous = has_current;
        previous_damaged = current_damaged;
        current_damaged = references_damaged;
        av_frame_unref(current.get());
        av_frame_move_ref(current.get(), scratch.get());
        has_current = true;
        return true;
      }
      if (result == AVERROR_EOF) {
        drained = true;
        return false;
      }
      if (result != AVERROR(EAGAIN)) fail("decoding failed", result);
      if (input_ended) {
        drained = true;  // a decoder that neither returns frames nor reports EOF after draining
        return false;
      }
      read_and_send_packet();
    }
  }

  // Whether a damaged packet's frame is this frame (presentation time `pts`) or one before it that
  // the decoder never output; forgets the packets it accounts for.
  bool follows_damaged_packet(int64_t pts) {
    if (damaged_packet_pts.empty()) return false;
    auto accounted = std::remove_if(damaged_packet_pts.begin(), damaged_packet_pts.end(),
                                    [pts](int64_t damaged) { return damaged <= pts; });
    bool any = accounted != damaged_packet_pts.end();
    damaged_packet_pts.erase(accounted, damaged_packet_pts.end());
    return any;
  }

  void read_and_send_packet() {
    while (true) {
      if (++packets_since_seek > packet_budget) {
        fail("read more packets than the stream holds; the file is corrupt");
      }
      bool demuxing_logged_error = false;
      int result;
      {
        ffmpeg::ThreadLoggedErrors errors(&demuxing_logged_error);
        result = av_read_frame(format.get(), packet.get());
      }
      if (result == AVERROR_EOF) {
        input_ended = true;
        result = avcodec_send_packet(codec.get(), nullptr);
        if (result < 0 && result != AVERROR_EOF) fail("flushing the decoder failed", result);
        return;
      }
      if (result < 0) fail("reading a packet failed", result);
      if (packet->stream_index != stream_index) {
        av_packet_unref(packet.get());
        continue;
      }
      if (packet->dts != kNoTimestamp) last_packet_dts = packet->dts;
      if (demuxing_logged_error) {
        // Without a timestamp, the next frame out is the first that can be the damaged one.
        damaged_packet_pts.push_back(
            packet->pts != kNoTimestamp ? packet->pts : std::numeric_limits<int64_t>::min());
      }
      result = avcodec_send_packet(codec.get(), packet.get());
      av_packet_unref(packet.get());
      if (result < 0 && result != AVERROR(EAGAIN)) fail("decoding a packet failed", result);
      return;
    }
  }

  // Makes the decoder able to reach `target` (stream ticks) by decoding forward: seeks when nothing
  // is decoded yet, when the target lies before the frames in hand, or when a keyframe lies between
  // the last packet read and the target (decoding the frames in between would be wasted work).
  void position_for(int64_t target) {
    if (!positioned) return seek(target, 0);
    int64_t earliest_in_hand = has_previous  ? frame_pts(previous.get())
                               : has_current ? frame_pts(current.get())
                                             : std::numeric_limits<int64_t>::max();
    if (target < earliest_in_hand) return seek(target, 0);
    if (drained) return;  // past the last frame: the last frame is the nearest
    int64_t keyframe = keyframe_at_or_before(target, 0);
    if (keyframe != std::numeric_limits<int64_t>::min() && keyframe > last_packet_dts) {
      seek(target, 0);
    }
  }

  // Decodes forward until the frame at or after `target` is in hand (or the stream ends).
  void decode_up_to(int64_t target) {
    while (!has_current || frame_pts(current.get()) < target) {
      if (!next_frame()) break;
    }
  }

  // The frame nearest to `query_s` among the two in hand (the earlier one on a tie, like LeRobot).
  const AVFrame* nearest_in_hand(double query_s) const {
    if (!has_current) return nullptr;
    if (!has_previous) return current.get();
    double to_previous = std::abs(seconds(frame_pts(previous.get())) - query_s);
    double to_current = std::abs(seconds(frame_pts(current.get())) - query_s);
    return to_previous <= to_current ? previous.get() : current.get();
  }

  bool is_damaged(const AVFrame* frame) const {
    return frame == previous.get() ? previous_damaged : current_damaged;
  }

  const AVFrame* find_frame(double query_s, double tolerance_s) {
    query_in_progress_s = query_s;
    const AVFrame* frame = find_nearest_frame(query_s, tolerance_s);
    if (is_damaged(frame)) {
      fail("the frame at " + ffmpeg::format_seconds(seconds(frame_pts(frame))) +
           " s is damaged (the decoder reported errors in it or in a frame it is predicted from)");
    }
    query_in_progress_s = std::numeric_limits<double>::quiet_NaN();
    return frame;
  }

  const AVFrame* find_nearest_frame(double query_s, double tolerance_s) {
    // Nearest tick at or below the query so that decode_up_to also brings in the frame after it.
    int64_t target = static_cast<int64_t>(
        std::clamp(std::floor(query_s / time_base), -kMaxQueryTicks, kMaxQueryTicks));
    position_for(target);
    for (int attempt = 0;; ++attempt) {
      decode_up_to(target);
      const AVFrame* frame = nearest_in_hand(query_s);
      if (frame == nullptr)
        fail("no frame could be decoded near " + ffmpeg::format_seconds(query_s) + " s");
      double distance = std::abs(seconds(frame_pts(frame)) - query_s);
      // Landed after the target right after a seek: an earlier keyframe is needed.
      bool overshot = !has_previous && frame_pts(frame) > target && distance > tolerance_s &&
                      frame_pts(frame) > stream_first_pts();
      if (!overshot || attempt >= kMaxSeekRetries) {
        if (distance > tolerance_s) {
          throw FrameTimestampError(
              path + ": no frame within tolerance_s=" + ffmpeg::format_seconds(tolerance_s) +
              " of the queried timestamp " + ffmpeg::format_seconds(query_s) +
              " s; the nearest decoded frame is at " +
              ffmpeg::format_seconds(seconds(frame_pts(frame))) + " s");
        }
        return frame;
      }
      seek(target, attempt + 1);
    }
  }

  int64_t stream_first_pts() const {
    return stream->start_time != kNoTimestamp ? stream->start_time
                                              : std::numeric_limits<int64_t>::min();
  }

  void convert(const AVFrame* frame, uint8_t* output, FrameLayout layout) {
    if (frame->width != info.width || frame->height != info.height) {
      fail("a frame is " + std::to_string(frame->width) + "x" + std::to_string(frame->height) +
           " but the stream declares " + std::to_string(info.width) + "x" +
           std::to_string(info.height));
    }
    AVPixelFormat source = static_cast<AVPixelFormat>(frame->format);
    if (info.pix_fmt.empty()) {
      const char* name = av_get_pix_fmt_name(source);
      info.pix_fmt = name ? name : "";
    }
    if (layout == FrameLayout::kGray16) {
      convert_gray12(frame, source, output);
      return;
    }
    // Packed RGB24 through swscale's default path gives the same bytes as torchcodec (LeRobot's
    // decoder); planar output takes another swscale path whose chroma interpolation differs by up
    // to tens of levels at edges. CHW is therefore made by splitting the packed pixels into planes.
    scaler.reset(sws_getCachedContext(scaler.release(), frame->width, frame->height, source,
                                      frame->width, frame->height, AV_PIX_FMT_RGB24, SWS_BILINEAR,
                                      nullptr, nullptr, nullptr));
    if (!scaler) fail(std::string("cannot convert pixel format ") + av_get_pix_fmt_name(source));
    int colorspace =
        frame->colorspace == AVCOL_SPC_UNSPECIFIED ? SWS_CS_DEFAULT : frame->colorspace;
    const int* coefficients = sws_getCoefficients(colorspace);
    sws_setColorspaceDetails(scaler.get(), coefficients, frame->color_range == AVCOL_RANGE_JPEG,
                             coefficients, 1, 0, 1 << 16, 1 << 16);
    const int width = frame->width;
    const int height = frame->height;
    const size_t row_bytes = static_cast<size_t>(3) * width;
    int stride = 0;
    const uint8_t* aligned =
        scale_into_scratch(frame, row_bytes, stride, "colour conversion failed");
    if (layout == FrameLayout::kHWC) {
      for (int y = 0; y < height; ++y) {
        std::memcpy(output + y * row_bytes, aligned + static_cast<size_t>(y) * stride, row_bytes);
      }
      return;
    }
    const size_t pixels = static_cast<size_t>(width) * height;
    for (int y = 0; y < height; ++y) {
      split_row(aligned + static_cast<size_t>(y) * stride, width, output + y * width, pixels);
    }
  }

  // Runs `scaler` on `frame` into the scratch frame and returns its first row (rows `stride` bytes
  // apart, each `row_bytes` long). swscale's SIMD paths may write past the end of a row (and of the
  // last row) unless rows are aligned, so it writes there and the caller copies rows out.
  const uint8_t* scale_into_scratch(const AVFrame* frame, size_t row_bytes, int& stride,
                                    const char* failure) {
    const int height = frame->height;
    stride = (static_cast<int>(row_bytes) + 63) / 64 * 64;
    scratch_rgb.resize(static_cast<size_t>(stride) * (height + 1) + 128);
    uint8_t* aligned =
        scratch_rgb.data() + (64 - reinterpret_cast<uintptr_t>(scratch_rgb.data()) % 64);
    uint8_t* planes[4] = {aligned, nullptr, nullptr, nullptr};
    int strides[4] = {stride, 0, 0, 0};
    int rows = sws_scale(scaler.get(), frame->data, frame->linesize, 0, height, planes, strides);
    if (rows != height) fail(failure);
    return aligned;
  }

  // The frame's samples as gray12le, row after row of uint16. A gray12le stream (LeRobot's depth
  // videos) is copied as decoded; any other format is converted by swscale, as PyAV converts it.
  void convert_gray12(const AVFrame* frame, AVPixelFormat source, uint8_t* output) {
    const int width = frame->width;
    const int height = frame->height;
    const size_t row_bytes = static_cast<size_t>(2) * width;
    if (source == AV_PIX_FMT_GRAY12LE) {
      for (int y = 0; y < height; ++y) {
        std::memcpy(output + y * row_bytes,
                    frame->data[0] + static_cast<ptrdiff_t>(y) * frame->linesize[0], row_bytes);
      }
      return;
    }
    scaler.reset(sws_getCachedContext(scaler.release(), width, height, source, width, height,
                                      AV_PIX_FMT_GRAY12LE, SWS_BILINEAR, nullptr, nullptr,
                                      nullptr));
    if (!scaler) {
      fail(std::string("cannot convert pixel format ") + av_get_pix_fmt_name(source) +
           " to gray12le");
    }
    int stride = 0;
    const uint8_t* aligned =
        scale_into_scratch(frame, row_bytes, stride, "conversion to gray12le failed");
    for (int y = 0; y < height; ++y) {
      std::memcpy(output + y * row_bytes, aligned + static_cast<size_t>(y) * stride, row_bytes);
    }
  }

  // One packed RGB row into the R, G and B planes of a CHW frame.
  static void split_row(const uint8_t* packed, int width, uint8_t* red, size_t plane) {
    uint8_t* green = red + plane;
    uint8_t* blue = red + 2 * plane;
    for (int x = 0; x < width; ++x) {
      red[x] = packed[3 * x];
      green[x] = packed[3 * x + 1];
      blue[x] = packed[3 * x + 2];
    }
  }
};

void set_http_headers(const std::string& headers) {
  std::lock_guard lock(http_headers_mutex);
  http_headers = headers;
}

VideoDecoder::VideoDecoder(const std::string& path, int threads) : impl_(std::make_unique<Impl>()) {
  impl_->path = path;
  impl_->open(threads);
}

VideoDecoder::~VideoDecoder() = default;
VideoDecoder::VideoDecoder(VideoDecoder&&) noexcept = default;
VideoDecoder& VideoDecoder::operator=(VideoDecoder&&) noexcept = default;

const std::string& VideoDecoder::path() const { return impl_->path; }
const StreamInfo& VideoDecoder::info() const { return impl_->info; }
int64_t VideoDecoder::frames_decoded() const { return impl_->frames_decoded; }

void VideoDecoder::decode_at(std::span<const double> timestamps, double tolerance_s,
                             std::span<uint8_t* const> outputs, FrameLayout layout) {
  if (outputs.size() != timestamps.size()) {
    throw std::invalid_argument("decode_at: " + std::to_string(timestamps.size()) +
                                " timestamps but " + std::to_string(outputs.size()) + " outputs");
  }
  for (double t : timestamps) {
    if (!std::isfinite(t)) throw std::invalid_argument("decode_at: timestamps must be finite");
  }
  if (!(tolerance_s >= 0.0)) throw std::invalid_argument("decode_at: tolerance_s must be >= 0");
  std::vector<size_t> order(timestamps.size());
  std::iota(order.begin(), order.end(), size_t{0});
  std::stable_sort(order.begin(), order.end(),
                   [&](size_t a, size_t b) { return timestamps[a] < timestamps[b]; });
  try {
    for (size_t i : order) {
      const AVFrame* frame = impl_->find_frame(timestamps[i], tolerance_s);
      if (outputs[i] != nullptr) impl_->convert(frame, outputs[i], layout);
    }
  } catch (...) {
    // After a failure the decoder's position is unknown; the next call starts with a seek.
    impl_->positioned = false;
    impl_->query_in_progress_s = std::numeric_limits<double>::quiet_NaN();
    throw;
  }
}

void VideoDecoder::decode_at(std::span<const double> timestamps, double tolerance_s,
                             uint8_t* output, FrameLayout layout) {
  const int64_t bytes = frame_bytes(impl_->info, layout);
  std::vector<uint8_t*> outputs(timestamps.size());
  for (size_t i = 0; i < outputs.size(); ++i) outputs[i] = output + i * bytes;
  decode_at(timestamps, tolerance_s, outputs, layout);
}

}  // namespace dexloop::video
