// The decode-bound limit of a batch: the least FFmpeg work that fetches a set of frames, with no
// colour conversion and no output. Benchmarks compare the full loader against it. Written as a
// plain FFmpeg loop, independent of VideoDecoder, so that it measures FFmpeg and nothing of ours.
#pragma once

#include <cstdint>
#include <span>
#include <string>

namespace dexloop::video {

struct FrameQuery {
  int32_t file = 0;
  double timestamp_s = 0.0;
};

// Opens each file once per thread (outside the timed part, which is returned in seconds through
// `decode_seconds`), then for each file's queries in time order: seeks to the keyframe at or before
// the query unless decoding forward reaches it without passing a keyframe, and decodes until the
// frame at or after the query. Work is split into contiguous runs over `threads` threads.
// Returns the number of frames decoded.
int64_t decode_frames_only(std::span<const std::string> files, std::span<const FrameQuery> queries,
                           int threads, double* decode_seconds);

}  // namespace dexloop::video
