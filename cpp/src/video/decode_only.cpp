#include "dexloop/video/decode_only.hpp"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <limits>
#include <map>
#include <thread>
#include <vector>

#include "dexloop/error.hpp"
#include "ffmpeg.hpp"

namespace dexloop::video {
namespace {

struct OpenFile {
  ffmpeg::InputFormatContext format;
  ffmpeg::CodecContext codec;
  int stream = -1;
  double time_base = 0.0;
};

OpenFile open_file(const std::string& path) {
  ffmpeg::quiet_logging_once();
  OpenFile file;
  AVFormatContext* raw = nullptr;
  if (avformat_open_input(&raw, path.c_str(), nullptr, nullptr) < 0) {
    throw VideoDecodeError(path + ": cannot open");
  }
  file.format.reset(raw);
  file.stream = av_find_best_stream(raw, AVMEDIA_TYPE_VIDEO, -1, -1, nullptr, 0);
  if (file.stream < 0) throw VideoDecodeError(path + ": no video stream");
  AVStream* stream = raw->streams[file.stream];
  const AVCodec* decoder = avcodec_find_decoder(stream->codecpar->codec_id);
  if (decoder == nullptr) throw VideoDecodeError(path + ": no decoder");
  file.codec.reset(avcodec_alloc_context3(decoder));
  avcodec_parameters_to_context(file.codec.get(), stream->codecpar);
  file.codec->thread_count = 1;
  if (avcodec_open2(file.codec.get(), decoder, nullptr) < 0) {
    throw VideoDecodeError(path + ": cannot open decoder");
  }
  file.time_base = av_q2d(stream->time_base);
  return file;
}

// Decodes the frames of `timestamps` (sorted) from `file`; returns frames decoded.
int64_t decode_sorted(OpenFile& file, const std::vector<double>& timestamps) {
  AVStream* stream = file.format->streams[file.stream];
  ffmpeg::Packet packet = ffmpeg::make_packet();
  ffmpeg::Frame frame = ffmpeg::make_frame();
  int64_t decoded = 0;
  int64_t last_dts = std::numeric_limits<int64_t>::min();
  int64_t last_pts = std::numeric_limits<int64_t>::min();
  bool positioned = false;
  for (double t : timestamps) {
    int64_t target = static_cast<int64_t>(std::floor(t / file.time_base));
    int entry = av_index_search_timestamp(stream, target, AVSEEK_FLAG_BACKWARD);
    int64_t keyframe = entry >= 0 ? avformat_index_get_entry(stream, entry)->timestamp : target;
    if (!positioned || keyframe > last_dts || target < last_pts) {
      av_seek_frame(file.format.get(), file.stream, keyframe, AVSEEK_FLAG_BACKWARD);
      avcodec_flush_buffers(file.codec.get());
      last_dts = last_pts = std::numeric_limits<int64_t>::min();
      positioned = true;
    }
    bool ended = false;
    while (last_pts < target && !ended) {
      int result = avcodec_receive_frame(file.codec.get(), frame.get());
      if (result == 0) {
        ++decoded;
        last_pts = frame->pts != AV_NOPTS_VALUE ? frame->pts : frame->best_effort_timestamp;
        av_frame_unref(frame.get());
        continue;
      }
      if (result != AVERROR(EAGAIN)) {
        ended = true;
        break;
      }
      if (av_read_frame(file.format.get(), packet.get()) < 0) {
        avcodec_send_packet(file.codec.get(), nullptr);
        continue;
      }
      if (packet->stream_index == file.stream) {
        if (packet->dts != AV_NOPTS_VALUE) last_dts = packet->dts;
        avcodec_send_packet(file.codec.get(), packet.get());
      }
      av_packet_unref(packet.get());
    }
    if (ended) positioned = false;
  }
  return decoded;
}

}  // namespace

int64_t decode_frames_only(std::span<const std::string> files, std::span<const FrameQuery> queries,
                           int threads, double* decode_seconds) {
  threads = std::max(1, threads);
  // Contiguous time-ordered runs per file, dealt to threads round-robin.
  std::map<int32_t, std::vector<double>> by_file;
  for (const FrameQuery& query : queries) by_file[query.file].push_back(query.timestamp_s);
  size_t run_length = std::max<size_t>(1, (queries.size() + 2 * threads - 1) / (2 * threads));
  std::vector<std::vector<std::pair<int32_t, std::vector<double>>>> work(threads);
  size_t next_thread = 0;
  for (auto& [file, timestamps] : by_file) {
    std::sort(timestamps.begin(), timestamps.end());
    for (size_t start = 0; start < timestamps.size(); start += run_length) {
      size_t end = std::min(timestamps.size(), start + run_length);
      work[next_thread++ % threads].emplace_back(
          file, std::vector<double>(timestamps.begin() + start, timestamps.begin() + end));
    }
  }
  // Open outside the timed part: the limit concerns decoding, and every loader keeps files open.
  std::vector<std::map<int32_t, OpenFile>> opened(threads);
  for (int t = 0; t < threads; ++t) {
    for (auto& [file, timestamps] : work[t]) {
      if (!opened[t].count(file))
        opened[t].emplace(file, open_file(files[static_cast<size_t>(file)]));
    }
  }
  std::atomic<int64_t> total{0};
  auto start = std::chrono::steady_clock::now();
  std::vector<std::thread> pool;
  for (int t = 0; t < threads; ++t) {
    pool.emplace_back([&, t] {
      int64_t count = 0;
      for (auto& [file, timestamps] : work[t])
        count += decode_sorted(opened[t].at(file), timestamps);
      total += count;
    });
  }
  for (std::thread& thread : pool) thread.join();
  if (decode_seconds != nullptr) {
    *decode_seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  }
  return total.load();
}

}  // namespace dexloop::video
