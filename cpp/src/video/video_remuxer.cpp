#include "dexloop/video/video_remuxer.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <limits>

#include "ffmpeg.hpp"

namespace dexloop::video {
namespace {

[[noreturn]] void fail(const std::string& what) { throw VideoRemuxError(what); }

[[noreturn]] void fail(const std::string& what, int averror) {
  fail(what + " (" + ffmpeg::error_text(averror) + ")");
}

std::string describe(const RemuxSegment& segment, size_t index) {
  std::string text = "segment " + std::to_string(index) + " (" + segment.path + " from " +
                     ffmpeg::format_seconds(segment.start_s) + " s to ";
  text += segment.end_s ? ffmpeg::format_seconds(*segment.end_s) + " s)" : std::string("its end)");
  return text;
}

// The parameters two streams must share for their packets to be joined into one stream: a decoder
// set up from the first file's headers has to decode the second file's packets to the same pixels.
struct StreamParameters {
  AVCodecID codec = AV_CODEC_ID_NONE;
  int width = 0;
  int height = 0;
  int format = -1;
  AVRational time_base{0, 1};
  AVRational frame_rate{0, 1};
  std::string extradata;

  static StreamParameters of(const AVStream* stream, AVRational frame_rate) {
    const AVCodecParameters* codecpar = stream->codecpar;
    StreamParameters parameters;
    parameters.codec = codecpar->codec_id;
    parameters.width = codecpar->width;
    parameters.height = codecpar->height;
    parameters.format = codecpar->format;
    parameters.time_base = stream->time_base;
    parameters.frame_rate = frame_rate;
    if (codecpar->extradata != nullptr && codecpar->extradata_size > 0) {
      parameters.extradata.assign(reinterpret_cast<const char*>(codecpar->extradata),
                                  static_cast<size_t>(codecpar->extradata_size));
    }
    return parameters;
  }

  // "" when equal, else what differs, with both values.
  std::string difference(const StreamParameters& other) const {
    auto rational = [](AVRational value) {
      return std::to_string(value.num) + "/" + std::to_string(value.den);
    };
    auto format_name = [](int value) {
      const char* name = av_get_pix_fmt_name(static_cast<AVPixelFormat>(value));
      return std::string(name != nullptr ? name : "unknown");
    };
    if (codec != other.codec) {
      return std::string("codec ") + avcodec_get_name(other.codec) + " instead of " +
             avcodec_get_name(codec);
    }
    if (width != other.width || height != other.height) {
      return "size " + std::to_string(other.width) + "x" + std::to_string(other.height) +
             " instead of " + std::to_string(width) + "x" + std::to_string(height);
    }
    if (format != other.format) {
      return "pixel format " + format_name(other.format) + " instead of " + format_name(format);
    }
    if (av_cmp_q(time_base, other.time_base) != 0) {
      return "time base " + rational(other.time_base) + " instead of " + rational(time_base);
    }
    if (av_cmp_q(frame_rate, other.frame_rate) != 0) {
      return "frame rate " + rational(other.frame_rate) + " instead of " + rational(frame_rate);
    }
    if (extradata != other.extradata) return "other stream headers (codec extradata)";
    return {};
  }
};

// One opened source file: its video stream, frame rate and parameters.
struct Source {
  ffmpeg::InputFormatContext input;
  int stream_index = -1;
  AVStream* stream = nullptr;
  AVRational frame_rate{0, 1};
  StreamParameters parameters;

  Source(const RemuxSegment& segment, const std::string& where) {
    AVFormatContext* raw = nullptr;
    int result = avformat_open_input(&raw, segment.path.c_str(), nullptr, nullptr);
    if (result < 0) fail(where + ": cannot open the file", result);
    input.reset(raw);
    result = avformat_find_stream_info(input.get(), nullptr);
    if (result < 0) fail(where + ": cannot read the stream information", result);
    stream_index = av_find_best_stream(input.get(), AVMEDIA_TYPE_VIDEO, -1, -1, nullptr, 0);
    if (stream_index < 0) fail(where + ": no video stream in the file");
    stream = input->streams[stream_index];
    if (stream->time_base.num <= 0 || stream->time_base.den <= 0) {
      fail(where + ": the video stream has no time base");
    }
    frame_rate = stream->avg_frame_rate;
    if (frame_rate.num <= 0 || frame_rate.den <= 0) frame_rate = stream->r_frame_rate;
    if (frame_rate.num <= 0 || frame_rate.den <= 0) {
      fail(where + ": the video stream has no frame rate");
    }
    parameters = StreamParameters::of(stream, frame_rate);
  }
};

// The output file: written under a temporary name, renamed into place once complete.
class Output {
 public:
  Output(const std::string& path, const StreamParameters& parameters,
         const AVStream* template_stream)
      : path_(path), temporary_(path + ".remux.tmp") {
    struct stat existing {};
    if (::stat(path.c_str(), &existing) == 0) {
      fail(path + ": the file already exists; remuxing never overwrites one");
    }
    std::remove(temporary_.c_str());
    AVFormatContext* raw = nullptr;
    int result = avformat_alloc_output_context2(&raw, nullptr, "mp4", temporary_.c_str());
    if (result < 0 || raw == nullptr) fail(path + ": cannot set up the mp4 muxer", result);
    muxer_.reset(raw);
    stream_ = avformat_new_stream(muxer_.get(), nullptr);
    if (stream_ == nullptr) throw std::bad_alloc();
    result = avcodec_parameters_copy(stream_->codecpar, template_stream->codecpar);
    if (result < 0) fail(path + ": cannot copy the stream parameters", result);
    stream_->codecpar->codec_tag = 0;
    stream_->time_base = parameters.time_base;
    stream_->avg_frame_rate = parameters.frame_rate;
    result = avio_open(&muxer_->pb, temporary_.c_str(), AVIO_FLAG_WRITE);
    if (result < 0) fail(path + ": cannot create the file", result);
    ffmpeg::Dictionary options;
    // The index at the front, as LeRobot's files and the encoder's finished files have it.
    av_dict_set(&options.raw, "movflags", "+faststart", 0);
    result = avformat_write_header(muxer_.get(), &options.raw);
    if (result < 0) fail(path + ": cannot write the mp4 header", result);
  }

  ~Output() {
    if (!finished_) {
      muxer_.reset();
      std::remove(temporary_.c_str());
    }
  }
  Output(const Output&) = delete;
  Output& operator=(const Output&) = delete;

  const AVStream* stream() const { return stream_; }

  void write(AVPacket* packet, const std::string& where) {
    packet->stream_index = stream_->index;
    packet->pos = -1;
    int result = av_write_frame(muxer_.get(), packet);
    if (result < 0) fail(where + ": writing a frame to " + path_ + " failed", result);
  }

  void finish() {
    int result = av_write_trailer(muxer_.get());
    if (result < 0) fail(path_ + ": writing the index failed", result);
    result = avio_closep(&muxer_->pb);
    if (result < 0) fail(path_ + ": writing the file failed", result);
    muxer_.reset();
    int fd = ::open(temporary_.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0 || ::fsync(fd) != 0) {
      int error = errno;
      if (fd >= 0) ::close(fd);
      std::remove(temporary_.c_str());
      fail(path_ + ": fsync failed (" + std::strerror(error) + ")");
    }
    ::close(fd);
    if (std::rename(temporary_.c_str(), path_.c_str()) != 0) {
      int error = errno;
      std::remove(temporary_.c_str());
      fail(path_ + ": cannot move the file into place (" + std::strerror(error) + ")");
    }
    finished_ = true;
  }

 private:
  std::string path_;
  std::string temporary_;
  ffmpeg::OutputFormatContext muxer_;
  AVStream* stream_ = nullptr;
  bool finished_ = false;
};

void check_segment(const RemuxSegment& segment, const std::string& where) {
  if (segment.path.empty()) fail(where + ": no source file");
  if (!std::isfinite(segment.start_s) || segment.start_s < 0.0) {
    fail(where + ": the start must be a finite, non-negative number of seconds");
  }
  if (segment.end_s && (!std::isfinite(*segment.end_s) || *segment.end_s <= segment.start_s)) {
    fail(where + ": the end must be a finite number of seconds after the start");
  }
}

}  // namespace

std::vector<RemuxedSegment> remux_segments(const std::vector<RemuxSegment>& segments,
                                           const std::string& output_path) {
  ffmpeg::quiet_logging_once();
  if (segments.empty()) fail(output_path + ": no segments to remux");
  for (size_t index = 0; index < segments.size(); ++index) {
    check_segment(segments[index], describe(segments[index], index));
  }

  std::vector<RemuxedSegment> placed;
  std::unique_ptr<Output> output;
  StreamParameters first;
  double cursor_s = 0.0;  // where the next segment's first frame goes in the output
  int64_t last_output_dts = std::numeric_limits<int64_t>::min();
  ffmpeg::Packet packet = ffmpeg::make_packet();

  for (size_t index = 0; index < segments.size(); ++index) {
    const RemuxSegment& segment = segments[index];
    const std::string where = describe(segment, index);
    Source source(segment, where);
    if (!output) {
      first = source.parameters;
      output = std::make_unique<Output>(output_path, first, source.stream);
    } else if (std::string difference = first.difference(source.parameters); !difference.empty()) {
      fail(where + ": its video stream cannot be joined to segment 0's: " + difference);
    }
    const double tick_s = av_q2d(source.stream->time_base);
    const double fps = av_q2d(source.frame_rate);
    // Frame times are multiples of 1/fps; half a period either way absorbs their rounding into
    // the stream's ticks and into the seconds the caller computed.
    const double tolerance_s = 0.5 / fps;
    const AVRational output_time_base = output->stream()->time_base;

    int64_t frames = 0;
    int64_t packets_read = 0;
    int64_t first_pts = AV_NOPTS_VALUE;
    int64_t shift = 0;  // output tick = source tick rescaled + shift
    bool past_end = false;
    while (!past_end) {
      int result = av_read_frame(source.input.get(), packet.get());
      if (result == AVERROR_EOF) break;
      if (result < 0) fail(where + ": reading the file failed; it is damaged", result);
      if (packet->stream_index != source.stream_index) {
        av_packet_unref(packet.get());
        continue;
      }
      ++packets_read;
      if ((packet->flags & AV_PKT_FLAG_CORRUPT) != 0) {
        av_packet_unref(packet.get());
        fail(where + ": frame " + std::to_string(packets_read - 1) +
             " of the file is incomplete; the file is truncated or damaged");
      }
      const int64_t pts = packet->pts != AV_NOPTS_VALUE ? packet->pts : packet->dts;
      if (pts == AV_NOPTS_VALUE) {
        av_packet_unref(packet.get());
        fail(where + ": a frame without a timestamp");
      }
      const double time_s = static_cast<double>(pts) * tick_s;
      const bool before = time_s < segment.start_s - tolerance_s;
      const bool after = segment.end_s && time_s >= *segment.end_s - tolerance_s;
      if (before || after) {
        // Packets come in decode order; without reordering past the range (the encoders dexloop
        // and LeRobot use emit none across an episode's keyframe), the first packet past the end
        // ends the segment. Reordering codecs put later frames first, so keep reading a little.
        if (after && frames > 0 && time_s >= *segment.end_s + 16.0 / fps) past_end = true;
        av_packet_unref(packet.get());
        continue;
      }
      if (frames == 0) {
        if ((packet->flags & AV_PKT_FLAG_KEY) == 0) {
          av_packet_unref(packet.get());
          fail(where + ": its first frame (at " + ffmpeg::format_seconds(time_s) +
               " s) is not a keyframe, so the range cannot be stream-copied");
        }
        first_pts = pts;
        const int64_t cursor_ticks = std::llround(cursor_s / av_q2d(output_time_base));
        shift = cursor_ticks - av_rescale_q(first_pts, source.stream->time_base, output_time_base);
      } else if (pts < first_pts) {
        av_packet_unref(packet.get());
        fail(where +
             ": a frame shown before the segment's first keyframe depends on earlier "
             "frames, so the range cannot be stream-copied");
      }
      av_packet_rescale_ts(packet.get(), source.stream->time_base, output_time_base);
      if (packet->pts != AV_NOPTS_VALUE) packet->pts += shift;
      if (packet->dts != AV_NOPTS_VALUE) {
        packet->dts += shift;
        if (packet->dts <= last_output_dts) {
          av_packet_unref(packet.get());
          fail(where + ": its decode times overlap the previous segment's");
        }
        last_output_dts = packet->dts;
      }
      output->write(packet.get(), where);
      av_packet_unref(packet.get());
      ++frames;
    }
    // A file cut short loses its last frames without a read error: its index still lists them.
    if (!past_end && source.stream->nb_frames > 0 && packets_read < source.stream->nb_frames) {
      fail(where + ": the file holds " + std::to_string(packets_read) + " of the " +
           std::to_string(source.stream->nb_frames) +
           " frames its index lists; it is truncated or damaged");
    }
    if (frames == 0) fail(where + ": no frame of the file lies in the segment");
    RemuxedSegment result;
    result.frames = frames;
    result.from_timestamp = cursor_s;
    result.to_timestamp = cursor_s + static_cast<double>(frames) / fps;
    cursor_s = result.to_timestamp;
    placed.push_back(result);
  }
  output->finish();
  return placed;
}

}  // namespace dexloop::video
