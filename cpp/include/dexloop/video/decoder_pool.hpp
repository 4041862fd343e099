// Decodes every video frame of a training batch in parallel. Requests are grouped by file and
// sorted by time, split into runs, and the runs are shared among worker threads; each thread keeps
// its own cache of open decoders keyed by file, so a file is opened once per thread and reused
// across batches, and a run that moves forward through a file continues decoding instead of
// seeking.
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <span>
#include <string>

#include "dexloop/video/video_decoder.hpp"

namespace dexloop::video {

struct FrameRequest {
  int32_t file = 0;           // index into the `files` passed to DecoderPool::decode
  double timestamp_s = 0.0;   // presentation time to decode, in seconds from the file's start
  uint8_t* output = nullptr;  // destination of frame_bytes() in the layout, or null: decode only
  int32_t height = 0;         // frame size the destination holds; the file's frames must match
  int32_t width = 0;
};

class DecoderPool {
 public:
  // `threads` decoding threads in all, the calling thread included (so 1 means no extra thread);
  // 0 means one per CPU core. Each thread keeps up to `decoders_per_thread` files open.
  explicit DecoderPool(int threads = 0, int decoders_per_thread = 16);
  ~DecoderPool();
  DecoderPool(const DecoderPool&) = delete;
  DecoderPool& operator=(const DecoderPool&) = delete;

  int threads() const;

  // Decodes every request. Returns when all are written; on failure throws the first error
  // (VideoDecodeError, FrameTimestampError) after the other threads have stopped touching outputs.
  // Calls are serialised; safe to call from any thread. In a process forked from the one that made
  // the pool, the first call starts fresh threads and decoders (those of the parent do not exist
  // there, and its open files share their offsets with the parent).
  void decode(std::span<const std::string> files, std::span<const FrameRequest> requests,
              double tolerance_s, FrameLayout layout);

  // Frames decoded by all threads since the pool started (including frames decoded only to reach
  // a requested one): the work a batch really cost.
  int64_t frames_decoded() const;

  // Stops and joins the pool's threads and closes its decoders, after any decode() in progress.
  // The pool stays usable: the next decode() starts them again.
  void close();

  // close() on every pool of this process. The Python module calls it at interpreter exit (an
  // atexit hook), so no decoding thread outlives the interpreter whatever still holds a pool.
  static void close_all();

 private:
  struct State;
  State* state_;  // owned, null until the first decode() after close(); leaked in a forked child
  int threads_;
  int decoders_per_thread_;
  long owner_pid_;
  mutable std::mutex lifecycle_;  // guards state_ (held through decode(), close())
  int64_t closed_frames_ = 0;     // frames decoded by states already closed
};

}  // namespace dexloop::video
