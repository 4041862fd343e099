// A VideoEncoder on a thread of its own behind a bounded queue of frames: one per camera, so that
// recording a frame costs its copy into the queue and encoding runs while the next frames arrive.
// A full queue makes add_frame wait for a free slot (back-pressure): no frame is ever dropped, and
// every wait is counted so the recorder can report that the encoder falls behind.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

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
  // Stops the thread. An episode in progress is discarded; ended ones stay readable in the file.
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

}  // namespace dexloop::video
