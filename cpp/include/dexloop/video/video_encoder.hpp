// Streaming video encoding into one mp4 per camera file, episode after episode, as frames arrive:
// each frame is converted and encoded when it is added; ending an episode only drains the codec.
//
// An mp4 normally gets its index (the moov box) only when closed, so a recording killed before then
// leaves an unreadable file, and appending an episode means rewriting the file. VideoEncoder writes
// a fragmented mp4 instead: each episode ends with a fragment (moof + mdat) flushed to disk, after
// which every frame of every ended episode can be read back even if the process dies next. close()
// then rewrites the file once as a regular mp4 with its index first (what LeRobot writes and every
// player expects). An encoder cannot be resumed after it is drained, so each episode gets a fresh
// codec instance with the same settings (and so the same stream headers); timestamps continue
// across episodes, one frame period apart.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace dexloop::video {

// What the frames given to add_frame hold.
enum class InputFormat {
  kRgb24,   // packed RGB, 3 bytes a pixel (HWC), converted to pix_fmt by swscale as PyAV does
  kGray16,  // one uint16 sample a pixel (native byte order), written into a single-plane 16-bit
            // pix_fmt (gray10le/gray12le/...) as they are: LeRobot's 12-bit depth codes in gray12le
};

// Bytes of one input pixel: 3 for kRgb24, 2 for kGray16.
inline int input_pixel_bytes(InputFormat input) { return input == InputFormat::kGray16 ? 2 : 3; }

struct EncoderSettings {
  // An FFmpeg encoder (libsvtav1, libx264, libx265, ...) or codec name (h264, hevc: the build's
  // preferred encoder of it, as PyAV resolves LeRobot's names).
  std::string codec = "libsvtav1";
  std::string pix_fmt = "yuv420p";
  int width = 0;
  int height = 0;
  int fps = 0;  // frames per second; timestamps are frame_index / fps
  int gop = 2;  // keyframe interval ("g")
  // Codec private options (crf, preset, svtav1-params, tune, ...), applied in order; an option the
  // encoder does not know is an error, not silently ignored.
  std::vector<std::pair<std::string, std::string>> options;
  int threads = 0;  // the codec's thread count; 0 leaves the encoder's default
  InputFormat input = InputFormat::kRgb24;
};

// Where an episode's frames lie in the file.
struct EncodedEpisode {
  int64_t first_frame = 0;  // index of its first frame in the file
  int64_t frames = 0;
  double from_timestamp = 0.0;  // presentation time of its first frame, seconds
  double to_timestamp = 0.0;    // from_timestamp + frames / fps, as LeRobot records it
  int64_t file_bytes = 0;       // the file's size once the episode's fragment is written
};

// Receives one frame the codec still holds: its input rows, tightly packed.
using HeldFrameSink = std::function<void(const uint8_t* pixels, size_t bytes)>;

class VideoEncoder {
 public:
  // Creates `path` (an existing file is an error: recordings are never overwritten) and writes the
  // stream header. Throws VideoEncodeError naming the path: unknown codec or pixel format, an
  // option the encoder rejects, a size the codec cannot take, a file that cannot be created.
  VideoEncoder(const std::string& path, const EncoderSettings& settings);
  ~VideoEncoder();  // without close(): the fragments already written stay readable
  VideoEncoder(VideoEncoder&&) noexcept;
  VideoEncoder& operator=(VideoEncoder&&) noexcept;
  VideoEncoder(const VideoEncoder&) = delete;
  VideoEncoder& operator=(const VideoEncoder&) = delete;

  // Encodes one frame of the current episode: height rows of width pixels in settings.input
  // (packed RGB, or uint16 samples, which must fit the pix_fmt's bit depth), rows `row_stride`
  // bytes apart (0: tightly packed). Its packets are held until the episode ends.
  void add_frame(const uint8_t* pixels, int64_t row_stride = 0);

  // Ends the current episode: drains the codec, writes its fragment and flushes it to disk (fsync).
  // Returns where its frames lie. An episode with no frames is an error.
  EncodedEpisode end_episode();

  // Keeps a copy of each frame while the codec holds it (from add_frame until its packet comes
  // out), so that write_progress can save an episode before the codec drains. Off by default; set
  // it before an episode's first frame.
  void keep_held_frames(bool keep);

  // Saves the episode in progress as far as the codec got, so that it need not be drained first:
  // its packets so far go into a regular mp4 at `packets_path` (the episode's first frame at time
  // 0; fsynced; not written when there are none), then `sink` is given each frame the codec still
  // holds, in order. Returns the number of frames in the packets file, or -1 (nothing written)
  // when the codec put packets out of presentation order (B-frames): a packet may then depend on
  // a frame not yet put out, so the episode can only be saved drained. Needs keep_held_frames.
  int64_t write_progress(const std::string& packets_path, const HeldFrameSink& sink);

  // Frames added to the episode in progress (not yet ended).
  int64_t pending_frames() const;
  // Frames of all ended episodes.
  int64_t frames_in_file() const;
  const std::string& path() const;

  // Discards the episode in progress: none of its frames reach the file.
  void discard_episode();

  // Finishes the file: the fragmented mp4 is rewritten as a regular one (stream copy, index first),
  // atomically replacing it. An episode in progress is an error. Further calls do nothing.
  void close();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// The FFmpeg encoder `name` (an encoder or codec name) resolves to in this build; "" when none.
std::string video_encoder_name(const std::string& name);

// Rewrites an mp4 (fragmented or not) as a regular one, stream copy with the index at the front,
// in place: through a temporary file, fsynced, renamed over the original. Keeps the first
// `keep_frames` frames (all when negative): repairing the file of a killed recording keeps exactly
// the frames of the episodes its metadata holds. Returns the number of frames written; fewer frames
// in the file than `keep_frames` is a VideoEncodeError.
int64_t rewrite_as_regular_mp4(const std::string& path, int64_t keep_frames = -1);

// The frames an mp4 (fragmented or not) holds before its first incomplete one: for a killed
// recording, the frames of the episodes whose fragments reached the disk.
int64_t complete_frames(const std::string& path);

}  // namespace dexloop::video
