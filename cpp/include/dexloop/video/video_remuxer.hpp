// Stream-copy remuxing: time ranges of mp4 files joined into one new mp4 without decoding or
// re-encoding, so every frame keeps its exact encoded bytes (and decodes to identical pixels).
//
// Dataset tools move episodes between files: a merge appends whole files, a split or a deletion
// keeps some episodes of a file. Each episode of a dexloop or LeRobot recording starts on a
// keyframe (a fresh encoder per episode), so these ranges can be copied packet by packet;
// timestamps are shifted so that the output's frames follow each other one frame period apart, as
// an encoder would have written them. A range that does not start on a keyframe, or files whose
// streams differ (codec, size, pixel format, time base, frame rate, stream headers) cannot be
// copied: the caller then decodes and re-encodes.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "dexloop/error.hpp"

namespace dexloop::video {

struct RemuxSegment {
  std::string path;
  // Seconds in the source file's timeline (a frame's presentation time, as the decoder reports
  // it): the frames with start_s <= time < end_s, within half a frame period; no end_s: to the end.
  double start_s = 0.0;
  std::optional<double> end_s;
};

// Where a segment's frames lie in the output.
struct RemuxedSegment {
  int64_t frames = 0;
  double from_timestamp = 0.0;  // presentation time of its first frame in the output
  double to_timestamp = 0.0;    // from_timestamp + frames / fps, as LeRobot records it
};

// Writes `segments`, in order, into a new mp4 at `output_path` (an existing file is an error) with
// its index first (+faststart), through a temporary file renamed into place once complete and
// fsynced. Returns one RemuxedSegment per segment. Throws VideoRemuxError naming the file and the
// segment on any of the failures listed above; no output file is left behind then.
std::vector<RemuxedSegment> remux_segments(const std::vector<RemuxSegment>& segments,
                                           const std::string& output_path);

}  // namespace dexloop::video
