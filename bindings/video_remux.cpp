// dexloop._core.video, remuxing: remux_segments joins time ranges of mp4 files into a new mp4 by
// stream copy (the dataset tools' merge, split and episode deletion). Segments are converted and
// checked with the GIL held; the file work runs without it.
#include <nanobind/stl/optional.h>
#include <nanobind/stl/pair.h>
#include <nanobind/stl/string.h>
#include <nanobind/stl/tuple.h>
#include <nanobind/stl/vector.h>

#include <cmath>
#include <optional>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "bindings.hpp"
#include "dexloop/error.hpp"
#include "dexloop/video/video_remuxer.hpp"

namespace nb = nanobind;
using namespace nb::literals;

namespace dexloop::bindings {
namespace {

using Segment = std::tuple<std::string, double, std::optional<double>>;

std::vector<std::pair<double, double>> remux(const std::vector<Segment>& segments,
                                             const std::string& output_path) {
  std::vector<video::RemuxSegment> converted;
  converted.reserve(segments.size());
  for (const auto& [path, start_s, end_s] : segments) {
    converted.push_back(video::RemuxSegment{path, start_s, end_s});
  }
  std::vector<video::RemuxedSegment> placed;
  {
    nb::gil_scoped_release release;
    placed = video::remux_segments(converted, output_path);
  }
  std::vector<std::pair<double, double>> ranges;
  ranges.reserve(placed.size());
  for (const auto& segment : placed)
    ranges.emplace_back(segment.from_timestamp, segment.to_timestamp);
  return ranges;
}

}  // namespace

void register_video_remux(nb::module_& module) {
  module.def("remux_segments", &remux, "segments"_a, "output_path"_a,
             "Joins (path, start_s, end_s) ranges of mp4 files (seconds in each file's timeline, "
             "end exclusive, None: to the end) into a new mp4 at output_path by stream copy, "
             "index first. Returns each segment's (from_timestamp, to_timestamp) in the output. "
             "A range not starting on a keyframe, streams of other parameters, an empty range, a "
             "missing or damaged source, or an existing output is a VideoRemuxError.");
}

}  // namespace dexloop::bindings
