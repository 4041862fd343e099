#include "dexloop/video/video_encoder.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <deque>
#include <limits>
#include <utility>

#include "dexloop/error.hpp"
#include "ffmpeg.hpp"

namespace dexloop::video {
namespace {

constexpr int kIoBufferBytes = 1 << 16;

// avio_alloc_context's write callback takes const data from FFmpeg 7 (libavformat 61) on.
#if LIBAVFORMAT_VERSION_MAJOR >= 61
using IoData = const uint8_t*;
#else
using IoData = uint8_t*;
#endif

[[noreturn]] void fail(const std::string& path, const std::string& what) {
  throw VideoEncodeError(path + ": " + what);
}

[[noreturn]] void fail(const std::string& path, const std::string& what, int averror) {
  fail(path, what + " (" + ffmpeg::error_text(averror) + ")");
}

// The file an encoder writes, through a file descriptor of its own so that each ended episode can
// be fsynced: FFmpeg's own file protocol offers no way to reach the descriptor.
class FileOutput {
 public:
  FileOutput(const std::string& path, bool exclusive) : path_(path) {
    int flags = O_WRONLY | O_CREAT | O_CLOEXEC | (exclusive ? O_EXCL : O_TRUNC);
    fd_ = ::open(path.c_str(), flags, 0644);
    if (fd_ < 0) {
      fail(path, errno == EEXIST
                     ? "the file already exists; a recording never overwrites one"
                     : std::string("cannot create the file (") + std::strerror(errno) + ")");
    }
    auto* buffer = static_cast<unsigned char*>(av_malloc(kIoBufferBytes));
    if (buffer == nullptr) throw std::bad_alloc();
    io_ = avio_alloc_context(buffer, kIoBufferBytes, 1, this, nullptr, &FileOutput::write,
                             &FileOutput::seek);
    if (io_ == nullptr) {
      av_free(buffer);
      throw std::bad_alloc();
    }
  }
  ~FileOutput() {
    if (io_ != nullptr) {
      av_freep(&io_->buffer);
      avio_context_free(&io_);
    }
    if (fd_ >= 0) ::close(fd_);
  }
  FileOutput(const FileOutput&) = delete;
  FileOutput& operator=(const FileOutput&) = delete;

  AVIOContext* io() const { return io_; }

  // Everything written so far reaches the disk (or a VideoEncodeError says why not).
  void sync() {
    avio_flush(io_);
    if (io_->error < 0) fail(path_, "writing the file failed", io_->error);
    if (write_errno_ != 0)
      fail(path_, std::string("writing the file failed (") + std::strerror(write_errno_) + ")");
    if (::fsync(fd_) != 0) fail(path_, std::string("fsync failed (") + std::strerror(errno) + ")");
  }

 private:
  static int write(void* opaque, IoData data, int size) {
    auto* self = static_cast<FileOutput*>(opaque);
    int left = size;
    while (left > 0) {
      ssize_t written = ::write(self->fd_, data, static_cast<size_t>(left));
      if (written < 0 && errno == EINTR) continue;
      if (written <= 0) {
        self->write_errno_ = written < 0 ? errno : ENOSPC;
        return AVERROR(self->write_errno_);
      }
      data += written;
      left -= static_cast<int>(written);
    }
    return size;
  }

  static int64_t seek(void* opaque, int64_t offset, int whence) {
    auto* self = static_cast<FileOutput*>(opaque);
    if (whence == AVSEEK_SIZE) return -1;
    off_t result = ::lseek(self->fd_, static_cast<off_t>(offset), whence & ~AVSEEK_FORCE);
    return result < 0 ? AVERROR(errno) : result;
  }

  std::string path_;
  int fd_ = -1;
  int write_errno_ = 0;
  AVIOContext* io_ = nullptr;
};

// A regular mp4 being written, with one stream described as `like` is (parameters, time base,
// frame rate), through a FileOutput; its header written (index first with `faststart`). Failures
// name `named`.
struct Mp4Copy {
  std::unique_ptr<FileOutput> file;  // declared first: the muxer writes through it until freed
  ffmpeg::OutputFormatContext muxer;
  AVStream* stream = nullptr;
};

Mp4Copy start_mp4_copy(const std::string& path, const AVStream* like, bool faststart,
                       const std::string& named) {
  Mp4Copy copy;
  AVFormatContext* raw = nullptr;
  int result = avformat_alloc_output_context2(&raw, nullptr, "mp4", path.c_str());
  if (result < 0 || raw == nullptr) fail(named, "cannot set up the mp4 muxer", result);
  copy.muxer.reset(raw);
  copy.file = std::make_unique<FileOutput>(path, /*exclusive=*/false);
  copy.muxer->pb = copy.file->io();
  copy.muxer->flags |= AVFMT_FLAG_CUSTOM_IO;
  copy.stream = avformat_new_stream(copy.muxer.get(), nullptr);
  if (copy.stream == nullptr) throw std::bad_alloc();
  result = avcodec_parameters_copy(copy.stream->codecpar, like->codecpar);
  if (result < 0) fail(named, "cannot copy the stream parameters", result);
  copy.stream->codecpar->codec_tag = 0;
  copy.stream->time_base = like->time_base;
  copy.stream->avg_frame_rate = like->avg_frame_rate;
  ffmpeg::Dictionary options;
  if (faststart) av_dict_set(&options.raw, "movflags", "+faststart", 0);
  result = avformat_write_header(copy.muxer.get(), &options.raw);
  if (result < 0) fail(named, "cannot write the mp4 header", result);
  return copy;
}

// An encoder by its own name (libx264) or by its codec's (h264: FFmpeg's preferred encoder of it),
// as PyAV resolves the names LeRobot passes.
const AVCodec* find_video_encoder(const std::string& name) {
  const AVCodec* codec = avcodec_find_encoder_by_name(name.c_str());
  if (codec == nullptr) {
    if (const AVCodecDescriptor* descriptor = avcodec_descriptor_get_by_name(name.c_str())) {
      codec = avcodec_find_encoder(descriptor->id);
    }
  }
  return codec != nullptr && codec->type == AVMEDIA_TYPE_VIDEO ? codec : nullptr;
}

std::string extradata_of(const AVCodecContext* context) {
  if (context->extradata == nullptr || context->extradata_size <= 0) return {};
  return std::string(reinterpret_cast<const char*>(context->extradata),
                     static_cast<size_t>(context->extradata_size));
}

}  // namespace

struct VideoEncoder::Impl {
  std::string path;
  EncoderSettings settings;
  const AVCodec* codec = nullptr;
  AVPixelFormat pix_fmt = AV_PIX_FMT_NONE;
  int max_sample = 0;  // largest uint16 sample the pix_fmt holds (kGray16 input)

  std::unique_ptr<FileOutput> output;
  ffmpeg::OutputFormatContext muxer;
  AVStream* stream = nullptr;
  ffmpeg::CodecContext encoder;  // the codec instance of the episode in progress, if any
  // The episode's encoded packets, muxed only when it ends: discarding an episode then leaves no
  // trace in the file. Compressed frames are small (tens of kB), so an episode fits in memory.
  std::vector<ffmpeg::Packet> episode_packets;
  std::string stream_header;  // extradata written into the file's header

  ffmpeg::Frame frame = ffmpeg::make_frame();
  ffmpeg::Packet packet = ffmpeg::make_packet();
  ffmpeg::ScaleContext scaler;

  // With keep_held: copies of the frames the codec holds (sent, no packet out yet), by pts, and
  // buffers of released ones for reuse.
  bool keep_held = false;
  std::deque<std::pair<int64_t, std::vector<uint8_t>>> held;
  std::vector<std::vector<uint8_t>> spare_buffers;
  bool out_of_order = false;  // this episode's packets left the codec out of presentation order

  int64_t frames_in_file = 0;
  int64_t pending = 0;
  // Frames the codec's decode clock runs behind its presentation clock (kGray16: x265's B-frame
  // delay), taken from the first codec instance: every episode's decode times are laid out with it.
  int reorder_delay = -1;
  int64_t last_dts = std::numeric_limits<int64_t>::min();  // in stream ticks
  bool closed = false;

  [[noreturn]] void fail(const std::string& what) const { video::fail(path, what); }
  [[noreturn]] void fail(const std::string& what, int averror) const {
    video::fail(path, what, averror);
  }

  void open(const std::string& file, const EncoderSettings& wanted) {
    ffmpeg::quiet_logging_once();
    path = file;
    settings = wanted;
    if (settings.width <= 0 || settings.height <= 0) {
      fail("frame size " + std::to_string(settings.width) + "x" + std::to_string(settings.height) +
           " is not positive");
    }
    if (settings.fps <= 0) fail("fps " + std::to_string(settings.fps) + " is not positive");
    if (settings.gop <= 0)
      fail("keyframe interval g=" + std::to_string(settings.gop) + " is not positive");
    codec = find_video_encoder(settings.codec);
    if (codec == nullptr) {
      fail("no video encoder named '" + settings.codec + "' in this FFmpeg build");
    }
    pix_fmt = av_get_pix_fmt(settings.pix_fmt.c_str());
    if (pix_fmt == AV_PIX_FMT_NONE) fail("unknown pixel format '" + settings.pix_fmt + "'");
    if (settings.input == InputFormat::kGray16) {
      // Samples are written into the plane as given, so the pixel format must be one plane of
      // little-endian 16-bit words holding at most 16 significant bits (gray10le ... gray16le).
      const AVPixFmtDescriptor* descriptor = av_pix_fmt_desc_get(pix_fmt);
      if (descriptor->nb_components != 1 || descriptor->comp[0].step != 2 ||
          descriptor->comp[0].shift != 0 || (descriptor->flags & AV_PIX_FMT_FLAG_BE) != 0 ||
          (descriptor->flags & (AV_PIX_FMT_FLAG_PAL | AV_PIX_FMT_FLAG_FLOAT)) != 0) {
        fail(
            "uint16 gray frames need a one-plane 16-bit little-endian pixel format such as "
            "gray12le, not '" +
            settings.pix_fmt + "'");
      }
      max_sample = (1 << descriptor->comp[0].depth) - 1;
    }

    // The first episode's codec instance is opened now: its stream header goes into the file's.
    open_encoder();
    try {
      set_up_muxer();
    } catch (...) {
      // SVT-AV1 never returns from freeing an instance that was sent no frame: the header
      // instance gets its frame and end of stream before the error (the file exists, the muxer
      // refuses the stream) leaves.
      try {
        retire_header_codec();
      } catch (...) {
        (void)encoder.release();  // leaked rather than hung: the codec refused even that frame
      }
      throw;
    }
    // Fragmented: an empty index first, then one fragment per episode, written when it ends.
    ffmpeg::Dictionary muxer_options;
    av_dict_set(&muxer_options.raw, "movflags",
                "frag_custom+empty_moov+default_base_moof+negative_cts_offsets", 0);
    int result = avformat_write_header(muxer.get(), &muxer_options.raw);
    if (result < 0) fail("cannot write the mp4 header", result);
    output->sync();
  }

  // The file (refused if it exists), the mp4 muxer and its one stream, described by the header
  // codec instance.
  void set_up_muxer() {
    stream_header = extradata_of(encoder.get());
    AVFormatContext* raw = nullptr;
    int result = avformat_alloc_output_context2(&raw, nullptr, "mp4", path.c_str());
    if (result < 0 || raw == nullptr) fail("cannot set up the mp4 muxer", result);
    muxer.reset(raw);
    output = std::make_unique<FileOutput>(path, /*exclusive=*/true);
    muxer->pb = output->io();
    muxer->flags |= AVFMT_FLAG_CUSTOM_IO;
    stream = avformat_new_stream(muxer.get(), nullptr);
    if (stream == nullptr) throw std::bad_alloc();
    result = avcodec_parameters_from_context(stream->codecpar, encoder.get());
    if (result < 0) fail("cannot describe the stream", result);
    stream->time_base = encoder->time_base;
    stream->avg_frame_rate = encoder->framerate;
    retire_header_codec();
  }

  void open_encoder() {
    ffmpeg::CodecContext context(avcodec_alloc_context3(codec));
    if (!context) throw std::bad_alloc();
    context->width = settings.width;
    context->height = settings.height;
    context->pix_fmt = pix_fmt;
    context->time_base = AVRational{1, settings.fps};
    context->framerate = AVRational{settings.fps, 1};
    context->gop_size = settings.gop;
    // No B-frames (an option "bf" still overrides): each episode gets a fresh codec instance, whose
    // decode clock starts before its first frame when it reorders frames. After a short episode
    // that clock would fall below the previous episode's last decode time, which the mp4 cannot
    // hold. With LeRobot's keyframe every 2 frames, B-frames save next to nothing anyway.
    // Depth codes (kGray16) keep the codec's default, as LeRobot encodes them: x265's lossless mode
    // loses samples in some frames without B-frames, and its reordering delay is the same for every
    // instance, so the episodes' decode times still rise.
    if (settings.input != InputFormat::kGray16) context->max_b_frames = 0;
    context->flags |= AV_CODEC_FLAG_GLOBAL_HEADER;  // mp4 keeps the stream header in its index
    if (settings.threads > 0) context->thread_count = settings.threads;
    ffmpeg::Dictionary options;
    for (const auto& [key, value] : settings.options) {
      av_dict_set(&options.raw, key.c_str(), value.c_str(), 0);
    }
    int result = 0;
    {
      ffmpeg::NoRealtimeScope no_realtime;
      result = avcodec_open2(context.get(), codec, &options.raw);
    }
    if (result < 0) {
      fail("cannot open encoder " + settings.codec + " for " + std::to_string(settings.width) +
               "x" + std::to_string(settings.height) + " " + settings.pix_fmt,
           result);
    }
    if (const AVDictionaryEntry* unused =
            av_dict_get(options.raw, "", nullptr, AV_DICT_IGNORE_SUFFIX)) {
      fail(std::string("encoder ") + settings.codec + " has no option '" + unused->key + "'");
    }
    encoder = std::move(context);
  }

  void ensure_frame_buffer() {
    if (frame->data[0] != nullptr) {
      int result = av_frame_make_writable(frame.get());
      if (result < 0) fail("cannot allocate a frame", result);
      return;
    }
    frame->format = pix_fmt;
    frame->width = settings.width;
    frame->height = settings.height;
    int result = av_frame_get_buffer(frame.get(), 0);
    if (result < 0) fail("cannot allocate a frame", result);
  }

  void add_frame(const uint8_t* pixels, int64_t row_stride) {
    if (closed) fail("the encoder is closed");
    const int width = settings.width;
    const int height = settings.height;
    const int64_t row_bytes = int64_t{input_pixel_bytes(settings.input)} * width;
    if (row_stride == 0) row_stride = row_bytes;
    if (row_stride < row_bytes || row_stride > std::numeric_limits<int>::max()) {
      fail("row stride " + std::to_string(row_stride) + " is shorter than a row of " +
           std::to_string(width) +
           (settings.input == InputFormat::kGray16 ? " uint16 samples" : " RGB pixels"));
    }
    if (settings.input == InputFormat::kGray16) check_samples(pixels, row_stride);
    if (!encoder) {
      open_encoder();
      if (extradata_of(encoder.get()) != stream_header) {
        fail("the codec's stream header changed between episodes; the file cannot hold both");
      }
    }
    ensure_frame_buffer();
    if (settings.input == InputFormat::kGray16) {
      // The samples are the codes to store (LeRobot writes its depth codes into the plane as they
      // are): no conversion, no scaling.
      for (int y = 0; y < height; ++y) {
        std::memcpy(frame->data[0] + static_cast<ptrdiff_t>(y) * frame->linesize[0],
                    pixels + y * row_stride, static_cast<size_t>(row_bytes));
      }
    } else {
      // The same conversion PyAV applies to LeRobot's frames: swscale's default (BT.601, limited
      // range).
      scaler.reset(sws_getCachedContext(scaler.release(), width, height, AV_PIX_FMT_RGB24, width,
                                        height, pix_fmt, SWS_BILINEAR, nullptr, nullptr, nullptr));
      if (!scaler) fail("cannot convert RGB frames to " + settings.pix_fmt);
      const uint8_t* planes[4] = {pixels, nullptr, nullptr, nullptr};
      const int strides[4] = {static_cast<int>(row_stride), 0, 0, 0};
      sws_scale(scaler.get(), planes, strides, 0, height, frame->data, frame->linesize);
    }
    frame->pts = frames_in_file + pending;
    int result = avcodec_send_frame(encoder.get(), frame.get());
    if (result < 0) fail("encoding frame " + std::to_string(frame->pts) + " failed", result);
    ++pending;
    if (keep_held) hold_copy(frame->pts, pixels, row_stride, row_bytes);
    collect_packets();
  }

  void hold_copy(int64_t pts, const uint8_t* pixels, int64_t row_stride, int64_t row_bytes) {
    std::vector<uint8_t> copy;
    if (!spare_buffers.empty()) {
      copy = std::move(spare_buffers.back());
      spare_buffers.pop_back();
    }
    copy.resize(static_cast<size_t>(row_bytes) * settings.height);
    for (int y = 0; y < settings.height; ++y) {
      std::memcpy(copy.data() + static_cast<ptrdiff_t>(y) * row_bytes, pixels + y * row_stride,
                  static_cast<size_t>(row_bytes));
    }
    held.emplace_back(pts, std::move(copy));
  }

  void release_held() {
    for (auto& entry : held) spare_buffers.push_back(std::move(entry.second));
    held.clear();
    out_of_order = false;
  }

  int64_t write_progress(const std::string& packets_path, const HeldFrameSink& sink) {
    if (!keep_held) fail("write_progress needs keep_held_frames(true)");
    if (out_of_order) return -1;
    const auto encoded = static_cast<int64_t>(episode_packets.size());
    if (encoded + static_cast<int64_t>(held.size()) != pending) {
      fail("the episode's " + std::to_string(pending) + " frames are neither packets nor held (" +
           std::to_string(encoded) + " packets, " + std::to_string(held.size()) + " held frames)");
    }
    if (encoded > 0) write_packets_file(packets_path);
    for (const auto& entry : held) sink(entry.second.data(), entry.second.size());
    return encoded;
  }

  // The episode's packets so far as a regular mp4 of the file's stream, the episode's first frame
  // at time 0: with the frames the codec still holds, encoded again by a fresh instance, it makes
  // the episode's video.
  void write_packets_file(const std::string& packets_path) const {
    Mp4Copy output = start_mp4_copy(packets_path, stream, /*faststart=*/false, packets_path);
    const int64_t origin =
        av_rescale_q(frames_in_file, AVRational{1, settings.fps}, stream->time_base);
    ffmpeg::Packet copy = ffmpeg::make_packet();
    for (const ffmpeg::Packet& episode_packet : episode_packets) {
      int result = av_packet_ref(copy.get(), episode_packet.get());
      if (result < 0) throw std::bad_alloc();
      if (copy->pts != AV_NOPTS_VALUE) copy->pts -= origin;
      if (copy->dts != AV_NOPTS_VALUE) copy->dts -= origin;
      av_packet_rescale_ts(copy.get(), stream->time_base, output.stream->time_base);
      copy->stream_index = output.stream->index;
      result = av_write_frame(output.muxer.get(), copy.get());
      av_packet_unref(copy.get());
      if (result < 0) video::fail(packets_path, "writing a packet failed", result);
    }
    int result = av_write_trailer(output.muxer.get());
    if (result < 0) video::fail(packets_path, "writing the index failed", result);
    output.file->sync();
  }

  // A sample above the pixel format's bit depth would be stored truncated: refused instead.
  void check_samples(const uint8_t* pixels, int64_t row_stride) const {
    for (int y = 0; y < settings.height; ++y) {
      uint16_t row_max = 0;
      const uint8_t* row = pixels + y * row_stride;
      for (int x = 0; x < settings.width; ++x) {
        uint16_t sample;
        std::memcpy(&sample, row + 2 * x, 2);
        row_max = sample > row_max ? sample : row_max;
      }
      if (row_max > max_sample) {
        fail("frame " + std::to_string(frames_in_file + pending) + " holds the sample " +
             std::to_string(row_max) + " in row " + std::to_string(y) + ", above the " +
             std::to_string(max_sample) + " a " + settings.pix_fmt + " pixel holds");
      }
    }
  }

  // Takes every packet the codec has ready into the episode's packets.
  void collect_packets() {
    while (true) {
      int result = avcodec_receive_packet(encoder.get(), packet.get());
      if (result == AVERROR(EAGAIN) || result == AVERROR_EOF) return;
      if (result < 0) fail("encoding failed", result);
      if (settings.input == InputFormat::kGray16 && packet->dts != AV_NOPTS_VALUE) {
        // A fresh instance reorders (and so delays its decode clock) only once it has 3 frames:
        // a 1- or 2-frame episode would end with decode times after those the next episode starts
        // with. Every episode's k-th packet is decoded at (first frame + k - delay), as one long
        // encode would decode it; that is never after its presentation time, the delay being the
        // codec's deepest.
        const int64_t decoded = frames_in_file + static_cast<int64_t>(episode_packets.size());
        packet->dts = decoded - reorder_delay;
        if (packet->pts != AV_NOPTS_VALUE && packet->dts > packet->pts) {
          fail("the codec reorders frames deeper than the " + std::to_string(reorder_delay) +
               " frames it declared");
        }
      }
      if (keep_held) {
        if (!held.empty() && packet->pts == held.front().first) {
          spare_buffers.push_back(std::move(held.front().second));
          held.pop_front();
        } else {
          out_of_order = true;
        }
      }
      av_packet_rescale_ts(packet.get(), encoder->time_base, stream->time_base);
      packet->stream_index = stream->index;
      episode_packets.push_back(ffmpeg::make_packet());
      av_packet_move_ref(episode_packets.back().get(), packet.get());
    }
  }

  // Muxes the episode's packets into one fragment.
  void write_episode_packets() {
    for (ffmpeg::Packet& episode_packet : episode_packets) {
      AVPacket* packet = episode_packet.get();
      if (packet->dts != AV_NOPTS_VALUE) {
        // A fresh codec instance per episode may restart decode times below the last episode's
        // (codecs that reorder frames start their decode clock early): the file needs them rising.
        if (packet->dts <= last_dts) {
          fail("episode decode times overlap the previous episode's (codec " + settings.codec +
               " reorders frames across the episode boundary; do not set the option 'bf')");
        }
        last_dts = packet->dts;
      }
      int result = av_write_frame(muxer.get(), packet);
      if (result < 0) fail("writing a packet failed", result);
    }
    episode_packets.clear();
  }

  EncodedEpisode end_episode() {
    if (closed) fail("the encoder is closed");
    if (pending == 0) fail("an episode needs at least one frame");
    int result = avcodec_send_frame(encoder.get(), nullptr);
    if (result < 0) fail("draining the encoder failed", result);
    collect_packets();
    encoder.reset();
    write_episode_packets();
    result = av_write_frame(muxer.get(), nullptr);  // frag_custom: write the fragment now
    if (result < 0) fail("writing the episode's fragment failed", result);
    output->sync();
    release_held();
    EncodedEpisode episode;
    episode.file_bytes = avio_tell(output->io());
    episode.first_frame = frames_in_file;
    episode.frames = pending;
    episode.from_timestamp = static_cast<double>(frames_in_file) / settings.fps;
    episode.to_timestamp = static_cast<double>(frames_in_file + pending) / settings.fps;
    frames_in_file += pending;
    pending = 0;
    return episode;
  }

  // Frees the codec instance opened for the stream header. Each episode opens its own at its first
  // frame. It is given one frame before the end of stream: SVT-AV1 waits forever for packets after
  // an end of stream with no frame before it, and equally forever in its deinit without one.
  void retire_header_codec() {
    ensure_frame_buffer();
    const ptrdiff_t linesizes[4] = {frame->linesize[0], frame->linesize[1], frame->linesize[2],
                                    frame->linesize[3]};
    av_image_fill_black(frame->data, linesizes, pix_fmt, AVCOL_RANGE_MPEG, settings.width,
                        settings.height);
    if (settings.input == InputFormat::kGray16) {
      measure_reorder_delay();
      return;
    }
    frame->pts = 0;
    if (avcodec_send_frame(encoder.get(), frame.get()) < 0) {
      fail("the codec takes no frame of " + std::to_string(settings.width) + "x" +
           std::to_string(settings.height) + " " + settings.pix_fmt);
    }
    pending = 1;  // so that release_codec drains it
    release_codec();
    pending = 0;
  }

  // The header instance encodes a few frames, so that its packets show how far the codec's decode
  // clock runs behind (FFmpeg's libx265 wrapper does not say, and a codec only reorders once it has
  // a few frames), then is drained and freed.
  void measure_reorder_delay() {
    constexpr int kProbeFrames = 8;
    reorder_delay = 0;
    frame->pts = 0;
    for (int f = 0; f <= kProbeFrames; ++f) {
      int result = avcodec_send_frame(encoder.get(), f < kProbeFrames ? frame.get() : nullptr);
      if (result < 0) {
        fail("the codec takes no frame of " + std::to_string(settings.width) + "x" +
                 std::to_string(settings.height) + " " + settings.pix_fmt,
             result);
      }
      if (f < kProbeFrames) frame->pts = f + 1;
      while ((result = avcodec_receive_packet(encoder.get(), packet.get())) >= 0) {
        if (packet->pts != AV_NOPTS_VALUE && packet->dts != AV_NOPTS_VALUE) {
          reorder_delay = std::max(reorder_delay, static_cast<int>(packet->pts - packet->dts));
        }
        av_packet_unref(packet.get());
      }
      if (result != AVERROR(EAGAIN) && result != AVERROR_EOF) fail("encoding failed", result);
    }
    encoder.reset();
  }

  // Frees the codec instance of the episode in progress. It is drained first: SVT-AV1 waits
  // forever in its deinit for an end of stream that was never sent.
  void release_codec() noexcept {
    if (!encoder) return;
    // A codec instance exists only once it was sent a frame (see retire_header_codec).
    if (pending > 0 && avcodec_send_frame(encoder.get(), nullptr) >= 0) {
      while (avcodec_receive_packet(encoder.get(), packet.get()) >= 0)
        av_packet_unref(packet.get());
    }
    encoder.reset();
  }

  ~Impl() { release_codec(); }

  void discard_episode() {
    release_codec();
    release_held();
    episode_packets.clear();
    pending = 0;
  }

  void close() {
    if (closed) return;
    if (pending > 0) fail("close() with an episode in progress; end_episode() first");
    closed = true;
    int result = av_write_trailer(muxer.get());
    if (result < 0) fail("writing the end of the file failed", result);
    output->sync();
    muxer.reset();
    output.reset();
    rewrite_as_regular_mp4(path, frames_in_file);
  }
};

VideoEncoder::VideoEncoder(const std::string& path, const EncoderSettings& settings)
    : impl_(std::make_unique<Impl>()) {
  impl_->open(path, settings);
}

VideoEncoder::~VideoEncoder() = default;
VideoEncoder::VideoEncoder(VideoEncoder&&) noexcept = default;
VideoEncoder& VideoEncoder::operator=(VideoEncoder&&) noexcept = default;

void VideoEncoder::add_frame(const uint8_t* pixels, int64_t row_stride) {
  impl_->add_frame(pixels, row_stride);
}
EncodedEpisode VideoEncoder::end_episode() { return impl_->end_episode(); }
void VideoEncoder::keep_held_frames(bool keep) { impl_->keep_held = keep; }
int64_t VideoEncoder::write_progress(const std::string& packets_path, const HeldFrameSink& sink) {
  return impl_->write_progress(packets_path, sink);
}
int64_t VideoEncoder::pending_frames() const { return impl_->pending; }
int64_t VideoEncoder::frames_in_file() const { return impl_->frames_in_file; }
const std::string& VideoEncoder::path() const { return impl_->path; }
void VideoEncoder::discard_episode() { impl_->discard_episode(); }
void VideoEncoder::close() { impl_->close(); }

std::string video_encoder_name(const std::string& name) {
  const AVCodec* codec = find_video_encoder(name);
  return codec != nullptr ? codec->name : "";
}

namespace {

// An mp4 opened for reading its video stream's packets, and that stream's index.
std::pair<ffmpeg::InputFormatContext, int> open_video_packets(const std::string& path) {
  ffmpeg::quiet_logging_once();
  AVFormatContext* raw_input = nullptr;
  int result = avformat_open_input(&raw_input, path.c_str(), nullptr, nullptr);
  if (result < 0) fail(path, "cannot open the file", result);
  ffmpeg::InputFormatContext input(raw_input);
  result = avformat_find_stream_info(input.get(), nullptr);
  if (result < 0) fail(path, "cannot read the stream information", result);
  int video = av_find_best_stream(input.get(), AVMEDIA_TYPE_VIDEO, -1, -1, nullptr, 0);
  if (video < 0) fail(path, "no video stream in the file");
  return {std::move(input), video};
}

}  // namespace

int64_t complete_frames(const std::string& path) {
  auto [input, video] = open_video_packets(path);
  ffmpeg::Packet packet = ffmpeg::make_packet();
  int64_t frames = 0;
  while (av_read_frame(input.get(), packet.get()) >= 0) {
    const bool complete = (packet->flags & AV_PKT_FLAG_CORRUPT) == 0;
    const bool counted = packet->stream_index == video;
    av_packet_unref(packet.get());
    if (!counted) continue;
    if (!complete) break;
    ++frames;
  }
  return frames;
}

int64_t rewrite_as_regular_mp4(const std::string& path, int64_t keep_frames) {
  auto [input, video] = open_video_packets(path);
  const AVStream* source = input->streams[video];
  int result = 0;

  const std::string temporary = path + ".rewrite.tmp";
  std::remove(temporary.c_str());
  Mp4Copy output = start_mp4_copy(temporary, source, /*faststart=*/true, path);

  // A fragmented mp4 cannot start decoding before time 0, so the muxer shifted a reordering codec's
  // timestamps (x265: two frames) to make the first decode time 0. The first frame is put back at 0
  // (a regular mp4 keeps negative decode times in its edit list), where frame_index / fps puts it.
  const int64_t shift = source->start_time != AV_NOPTS_VALUE ? source->start_time : 0;
  ffmpeg::Packet packet = ffmpeg::make_packet();
  int64_t written = 0;
  while (keep_frames < 0 || written < keep_frames) {
    result = av_read_frame(input.get(), packet.get());
    if (result == AVERROR_EOF) break;
    if (result < 0) {
      if (keep_frames < 0) break;  // a truncated last fragment: keep what came before it
      fail(path, "reading frame " + std::to_string(written) + " failed", result);
    }
    if (packet->stream_index != video) {
      av_packet_unref(packet.get());
      continue;
    }
    if ((packet->flags & AV_PKT_FLAG_CORRUPT) != 0) {
      av_packet_unref(packet.get());
      if (keep_frames < 0) break;
      fail(path, "frame " + std::to_string(written) + " is incomplete");
    }
    if (packet->pts != AV_NOPTS_VALUE) packet->pts -= shift;
    if (packet->dts != AV_NOPTS_VALUE) packet->dts -= shift;
    av_packet_rescale_ts(packet.get(), source->time_base, output.stream->time_base);
    packet->stream_index = output.stream->index;
    packet->pos = -1;
    result = av_write_frame(output.muxer.get(), packet.get());
    av_packet_unref(packet.get());
    if (result < 0) fail(path, "writing frame " + std::to_string(written) + " failed", result);
    ++written;
  }
  if (keep_frames >= 0 && written < keep_frames) {
    fail(path, "holds " + std::to_string(written) + " complete frames where " +
                   std::to_string(keep_frames) + " were expected");
  }
  if (written == 0) fail(path, "holds no complete frame");
  // faststart moves the index to the front: it reads the file back through its path and rewrites
  // it through our (seekable) output.
  result = av_write_trailer(output.muxer.get());
  if (result < 0) fail(path, "writing the index failed", result);
  output.file->sync();
  output.muxer.reset();
  output.file.reset();
  input.reset();
  if (std::rename(temporary.c_str(), path.c_str()) != 0) {
    fail(path, std::string("cannot replace the file (") + std::strerror(errno) + ")");
  }
  return written;
}

}  // namespace dexloop::video
