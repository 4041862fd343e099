// Frame-accurate random access into one video file, decoding straight into caller-owned uint8 RGB
// buffers. One VideoDecoder keeps its file and codec open between calls, so consecutive queries
// that move forward in the file continue decoding instead of seeking again.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>

namespace dexloop::video {

// What one decoded frame is written as, and in which memory order.
enum class FrameLayout {
  kCHW,  // RGB: three planes R, G, B of height*width bytes each (torch's image layout)
  kHWC,  // RGB: height*width pixels of 3 bytes R, G, B (numpy / PIL layout)
  // One plane of height*width uint16 samples, native byte order: the frame as gray12le (what PyAV's
  // to_ndarray(format="gray12le") gives LeRobot for a depth video: its 12-bit codes, exactly).
  kGray16,
};

// What the container and codec say about the video stream.
struct StreamInfo {
  std::string codec;    // canonical codec name: "av1", "h264", "hevc", ...
  std::string pix_fmt;  // e.g. "yuv420p"; "" until a frame is decoded when the container omits it
  int width = 0;
  int height = 0;
  double fps = 0.0;       // average frame rate
  double base_fps = 0.0;  // FFmpeg's r_frame_rate: the rate all timestamps are multiples of
  int time_base_num = 0;
  int time_base_den = 1;
  int64_t frame_count = 0;  // frames in the stream, from the container's sample index
  double duration_s = 0.0;
  double start_s = 0.0;  // presentation time of the first frame
};

// Size in bytes of one RGB frame of `info`.
inline int64_t rgb_frame_bytes(const StreamInfo& info) {
  return int64_t{3} * info.width * info.height;
}

// Size in bytes of one frame of `info` written in `layout`.
inline int64_t frame_bytes(const StreamInfo& info, FrameLayout layout) {
  return layout == FrameLayout::kGray16 ? int64_t{2} * info.width * info.height
                                        : rgb_frame_bytes(info);
}

// Request headers ("Name: value\r\n" lines, e.g. "Authorization: Bearer hf_...\r\n") sent when a
// VideoDecoder opens an http:// or https:// URL from now on; "" sends none. Process-wide: the Hub
// token of the datasets being streamed.
void set_http_headers(const std::string& headers);

class VideoDecoder {
 public:
  // Opens `path` (a file, or an http(s) URL read by range requests) and its best video stream.
  // `threads` is the codec's own thread count (1 suits many decoders working in parallel; 0 lets
  // FFmpeg choose). Throws VideoDecodeError naming the path.
  explicit VideoDecoder(const std::string& path, int threads = 1);
  ~VideoDecoder();
  VideoDecoder(VideoDecoder&&) noexcept;
  VideoDecoder& operator=(VideoDecoder&&) noexcept;
  VideoDecoder(const VideoDecoder&) = delete;
  VideoDecoder& operator=(const VideoDecoder&) = delete;

  const std::string& path() const;
  const StreamInfo& info() const;

  // For each timestamp (seconds, any order), decodes the frame whose presentation time is nearest
  // and writes it into `outputs[i]` (frame_bytes(info(), layout) bytes in `layout`). A null
  // output decodes the frame without converting it. Seeks once to the keyframe at or before the
  // earliest query, decodes forward, and seeks again only where a keyframe lies between the decoded
  // position and the next query. Throws FrameTimestampError (naming the query and the nearest
  // decoded time) when |pts - query| > tolerance_s, VideoDecodeError when the file cannot be
  // decoded.
  void decode_at(std::span<const double> timestamps, double tolerance_s,
                 std::span<uint8_t* const> outputs, FrameLayout layout);

  // Convenience form: frame i goes to `output + i * frame_bytes(info(), layout)`.
  void decode_at(std::span<const double> timestamps, double tolerance_s, uint8_t* output,
                 FrameLayout layout);

  // Frames decoded since construction, including those decoded only to reach a query.
  int64_t frames_decoded() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace dexloop::video
