// A VideoEncoder on a thread of its own behind a bounded queue of frames: one per camera, so that
// recording a frame costs its copy into the queue and encoding runs while the next frames arrive.
// A full queue makes add_frame wait for a free slot (back-pressure): no frame is ever dropped, and
// every wait is counted so the recorder can report that the encoder falls behind.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "dexloop/video/video_encoder.hpp"

namespace dexloop::video {

struct EncoderQueueStats {
  int capacity = 0;            // frames the queue holds
  int64_t frames_added = 0;    // since construction
  int64_t frames_encoded = 0;  // handed to the codec so far
  int64_t full_waits = 0;      // add_frame calls that found the queue full and waited
  double waited_s = 0.0;       // total time those calls waited
  int max_depth = 0;           // most frames queued at once
};

class StreamingEncoder {
 public:
  // Opens the file (VideoEncoder's constructor and errors) and starts the encoding thread.
  StreamingEncoder(const std::string& path, const EncoderSettings& settings, int queue_frames = 30);
  // Finishes the episodes end_episode_soon ended, then stops the thread. An episode in progress is
  // discarded; ended ones stay readable in the file.
  ~StreamingEncoder();
  StreamingEncoder(const StreamingEncoder&) = delete;
  StreamingEncoder& operator=(const StreamingEncoder&) = delete;

  // Copies one frame (height rows of width pixels in the settings' input format, rows `row_stride`
  // bytes apart; 0: packed) into the queue, waiting while the queue is full. Throws the
  // VideoEncodeError that stopped the encoding thread, if one did: every frame after it would be
  // lost.
  void add_frame(const uint8_t* pixels, int64_t row_stride = 0);

  // Waits until every queued frame is encoded, then ends the episode (VideoEncoder::end_episode).
  EncodedEpisode end_episode();

  // Saves the episode in progress so that it need not wait for the codec to drain (which takes as
  // long as encoding the frames its lookahead holds, hundreds of milliseconds for SVT-AV1): returns
  // once every frame added so far is on disk, those encoded as the mp4
  // `<progress_path>.packets.mp4`, the others (held by the codec or still queued) as raw frames in
  // `<progress_path>.frames` (ProgressFramesHeader). False, with no file left, when it cannot: the
  // codec reorders frames (B-frames: a packet out may need a frame it holds) or the files cannot
  // be written (a full disk); end_episode() then makes the episode durable. The codec is left
  // alone meanwhile, so the caller has the CPU to itself while it saves the rest of the episode.
  bool save_progress(const std::string& progress_path);
  // Ends the episode without waiting: the thread drains the codec after the frames queued, writes
  // the episode's fragment, fsyncs it and removes the progress files save_progress wrote at
  // `progress_path`; take_ended() returns its EncodedEpisode then, or throws the VideoEncodeError
  // that kept the fragment from the file. Frames added next go to the next episode.
  void end_episode_soon(const std::string& progress_path);
  // The episodes ended by end_episode_soon whose fragments are on disk since the last call, in
  // order; with `wait`, after waiting for all of them. Throws the VideoEncodeError that stopped
  // one.
  std::vector<EncodedEpisode> take_ended(bool wait);
  // Episodes ended by end_episode_soon whose fragments are not written yet.
  int ends_pending() const;
  // Waits for the queue, then discards the episode in progress.
  void discard_episode();
  // Waits for the queue, then closes the file (VideoEncoder::close). The thread stops.
  void close();

  EncoderQueueStats stats() const;
  const std::string& path() const;
  int width() const;
  int height() const;
  InputFormat input() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// The raw frames of an episode saved by save_progress: a header (the magic "DXLFRAME", then
// little-endian uint32 version 1, uint32 input format (0 rgb24, 1 gray16), int32 width, int32
// height, int64 frame count, int64 index in the mp4 of the episode's first frame), then the frames'
// packed rows one after the other.
struct ProgressFramesHeader {
  InputFormat input = InputFormat::kRgb24;
  int width = 0;
  int height = 0;
  int64_t frames = 0;
  int64_t first_frame = 0;
};
constexpr size_t kProgressFramesHeaderBytes = 40;

}  // namespace dexloop::video
