// dexloop._core.video, encoding half: StreamingEncoder (one camera's mp4, encoded on its own thread
// behind a bounded frame queue) and the mp4 rewrite used to finish and repair recordings. Frames
// are checked with the GIL held; queueing (which may wait for a free slot) and encoding run without
// it.
#include <nanobind/ndarray.h>
#include <nanobind/stl/pair.h>
#include <nanobind/stl/string.h>
#include <nanobind/stl/vector.h>

#include <string>
#include <utility>
#include <vector>

#include "bindings.hpp"
#include "dexloop/error.hpp"
#include "dexloop/video/streaming_encoder.hpp"
#include "dexloop/video/video_encoder.hpp"

namespace nb = nanobind;
using namespace nb::literals;

namespace dexloop::bindings {
namespace {

using video::EncodedEpisode;
using video::EncoderQueueStats;
using video::EncoderSettings;
using video::StreamingEncoder;

// Any CPU array, read-only ones too (a camera's buffer): its dtype and shape are checked here, so
// that a wrong one is a VideoEncodeError naming the file (and never converted: a float frame cast
// to uint8 would be silently wrong).
using AnyFrame = nb::ndarray<nb::ro, nb::device::cpu>;

std::string shape_of(const AnyFrame& frame) {
  std::string shape;
  for (size_t axis = 0; axis < frame.ndim(); ++axis) {
    shape += (axis > 0 ? ", " : "") + std::to_string(frame.shape(axis));
  }
  return "(" + shape + ")";
}

// A gray16 encoder's frame: uint16 samples (H, W) or (H, W, 1), each row's samples packed.
void add_gray16_frame(StreamingEncoder& encoder, const AnyFrame& frame) {
  const std::string& path = encoder.path();
  if (frame.dtype() != nb::dtype<uint16_t>()) {
    throw VideoEncodeError(path + ": a frame of another dtype than uint16 (" +
                           std::to_string(frame.dtype().bits) + "-bit, type code " +
                           std::to_string(frame.dtype().code) + "); this video takes uint16 codes");
  }
  const size_t height = static_cast<size_t>(encoder.height());
  const size_t width = static_cast<size_t>(encoder.width());
  if ((frame.ndim() != 2 && !(frame.ndim() == 3 && frame.shape(2) == 1)) ||
      frame.shape(0) != height || frame.shape(1) != width) {
    throw VideoEncodeError(path + ": a frame of shape " + shape_of(frame) +
                           " where the video takes (" + std::to_string(height) + ", " +
                           std::to_string(width) + ") or (" + std::to_string(height) + ", " +
                           std::to_string(width) + ", 1) uint16");
  }
  if (frame.stride(1) != 1 && width > 1) {
    throw VideoEncodeError(path + ": a frame's samples must be packed along each row");
  }
  const auto* data = static_cast<const uint8_t*>(frame.data());
  const int64_t row_stride = frame.stride(0) * int64_t{2};  // nanobind strides count elements
  nb::gil_scoped_release release;
  encoder.add_frame(data, row_stride);
}

void add_frame(StreamingEncoder& encoder, AnyFrame frame) {
  if (encoder.input() == video::InputFormat::kGray16) {
    add_gray16_frame(encoder, frame);
    return;
  }
  const std::string& path = encoder.path();
  if (frame.dtype() != nb::dtype<uint8_t>()) {
    throw VideoEncodeError(path + ": a frame of another dtype than uint8 (" +
                           std::to_string(frame.dtype().bits) + "-bit, type code " +
                           std::to_string(frame.dtype().code) + "); frames are uint8 RGB");
  }
  const size_t height = static_cast<size_t>(encoder.height());
  const size_t width = static_cast<size_t>(encoder.width());
  if (frame.ndim() != 3 || frame.shape(0) != height || frame.shape(1) != width ||
      frame.shape(2) != 3) {
    throw VideoEncodeError(path + ": a frame of shape " + shape_of(frame) +
                           " where the video takes (" + std::to_string(height) + ", " +
                           std::to_string(width) + ", 3) uint8 RGB");
  }
  // The row stride is checked by StreamingEncoder::add_frame; pixels must be packed here.
  if (frame.stride(2) != 1 || frame.stride(1) != 3) {
    throw VideoEncodeError(path + ": a frame's pixels must be packed RGB (H, W, 3)");
  }
  const auto* data = static_cast<const uint8_t*>(frame.data());
  const int64_t row_stride = frame.stride(0);
  nb::gil_scoped_release release;
  encoder.add_frame(data, row_stride);
}

}  // namespace

void register_video_encoding(nb::module_& module) {
  nb::class_<EncodedEpisode>(module, "EncodedEpisode",
                             "Where an ended episode's frames lie in its mp4.")
      .def_ro("first_frame", &EncodedEpisode::first_frame, "Index of its first frame in the file.")
      .def_ro("frames", &EncodedEpisode::frames)
      .def_ro("from_timestamp", &EncodedEpisode::from_timestamp,
              "Presentation time of its first frame (seconds).")
      .def_ro("to_timestamp", &EncodedEpisode::to_timestamp,
              "from_timestamp + frames / fps, as LeRobot records it.")
      .def_ro("file_bytes", &EncodedEpisode::file_bytes,
              "The file's size once the episode's fragment is written.")
      .def("__repr__", [](const EncodedEpisode& e) {
        return "EncodedEpisode(first_frame=" + std::to_string(e.first_frame) +
               ", frames=" + std::to_string(e.frames) +
               ", from_timestamp=" + std::to_string(e.from_timestamp) +
               ", to_timestamp=" + std::to_string(e.to_timestamp) + ")";
      });

  nb::class_<EncoderQueueStats>(module, "EncoderQueueStats",
                                "A StreamingEncoder's frame queue so far.")
      .def_ro("capacity", &EncoderQueueStats::capacity)
      .def_ro("frames_added", &EncoderQueueStats::frames_added)
      .def_ro("frames_encoded", &EncoderQueueStats::frames_encoded)
      .def_ro("full_waits", &EncoderQueueStats::full_waits,
              "add_frame calls that found the queue full and waited for the encoder.")
      .def_ro("waited_s", &EncoderQueueStats::waited_s, "Total time those calls waited.")
      .def_ro("max_depth", &EncoderQueueStats::max_depth, "Most frames queued at once.");

  nb::class_<StreamingEncoder>(
      module, "StreamingEncoder",
      "Encodes one camera's frames into an mp4 on a thread of its own, episode after episode. The "
      "file is a fragmented mp4 while recording (each ended episode is on disk and readable), "
      "rewritten as a regular mp4 by close(). A full queue makes add_frame wait: no frame is "
      "dropped.")
      .def(
          "__init__",
          [](StreamingEncoder* self, const std::string& path, const std::string& codec, int width,
             int height, int fps, const std::string& pix_fmt, int gop,
             std::vector<std::pair<std::string, std::string>> options, int threads,
             int queue_frames, const std::string& input_format) {
            EncoderSettings settings;
            if (input_format == "gray16") {
              settings.input = video::InputFormat::kGray16;
            } else if (input_format != "rgb24") {
              throw VideoEncodeError(path + ": input_format must be 'rgb24' or 'gray16', not '" +
                                     input_format + "'");
            }
            settings.codec = codec;
            settings.pix_fmt = pix_fmt;
            settings.width = width;
            settings.height = height;
            settings.fps = fps;
            settings.gop = gop;
            settings.options = std::move(options);
            settings.threads = threads;
            nb::gil_scoped_release release;
            new (self) StreamingEncoder(path, settings, queue_frames);
          },
          "path"_a, "codec"_a, "width"_a, "height"_a, "fps"_a, "pix_fmt"_a = "yuv420p", "gop"_a = 2,
          "options"_a = std::vector<std::pair<std::string, std::string>>{}, "threads"_a = 0,
          "queue_frames"_a = 30, "input_format"_a = "rgb24",
          "Creates `path` (never overwriting a file). codec: an FFmpeg encoder name (libsvtav1, "
          "libx264, libx265, ...); options: the codec's own options as (name, value) pairs, in "
          "order; an option the codec does not take is a VideoEncodeError. input_format: 'rgb24' "
          "(uint8 RGB frames, converted to pix_fmt) or 'gray16' (uint16 samples written as they "
          "are into a one-plane pix_fmt such as gray12le: LeRobot's depth codes).")
      .def("add_frame", &add_frame, "frame"_a,
           "Queues one frame, waiting while the queue is full: uint8 RGB (H, W, 3), or for a "
           "'gray16' encoder uint16 (H, W) or (H, W, 1).")
      .def("end_episode", &StreamingEncoder::end_episode, nb::call_guard<nb::gil_scoped_release>(),
           "Encodes the queued frames, ends the episode and flushes it to disk; returns where its "
           "frames lie.")
      .def("save_progress", &StreamingEncoder::save_progress, "progress_path"_a,
           nb::call_guard<nb::gil_scoped_release>(),
           "Saves the episode in progress without draining the codec: returns once its frames are "
           "on disk, the encoded ones in '<progress_path>.packets.mp4', the others as raw frames "
           "in '<progress_path>.frames'. False (no file left) when the codec reorders frames or "
           "the files cannot be written: end_episode() then makes the episode durable.")
      .def("end_episode_soon", &StreamingEncoder::end_episode_soon, "progress_path"_a,
           "Ends the episode without waiting: the encoding thread drains the codec, writes and "
           "fsyncs the episode's fragment, then removes the progress files; take_ended() returns "
           "where its frames lie.")
      .def("take_ended", &StreamingEncoder::take_ended, "wait"_a = false,
           nb::call_guard<nb::gil_scoped_release>(),
           "The episodes end_episode_soon ended whose fragments are written since the last call "
           "(with wait: all of them, once written). Raises the error that stopped one.")
      .def_prop_ro("ends_pending", &StreamingEncoder::ends_pending,
                   "Episodes ended by end_episode_soon whose fragments are not written yet.")
      .def("discard_episode", &StreamingEncoder::discard_episode,
           nb::call_guard<nb::gil_scoped_release>(), "Drops the episode in progress.")
      .def("close", &StreamingEncoder::close, nb::call_guard<nb::gil_scoped_release>(),
           "Finishes the file as a regular mp4. An episode in progress is an error.")
      .def_prop_ro("stats", &StreamingEncoder::stats)
      .def_prop_ro("path", &StreamingEncoder::path)
      .def_prop_ro("width", &StreamingEncoder::width)
      .def_prop_ro("height", &StreamingEncoder::height);

  module.def(
      "video_encoder_name", &video::video_encoder_name, "name"_a,
      "The FFmpeg video encoder an encoder or codec name resolves to ('h264' -> 'libx264'); '' "
      "when this FFmpeg build has none.");
  module.def("rewrite_as_regular_mp4", &video::rewrite_as_regular_mp4, "path"_a,
             "keep_frames"_a = -1, nb::call_guard<nb::gil_scoped_release>(),
             "Rewrites an mp4 (fragmented or not) in place as a regular one, keeping its first "
             "keep_frames frames (all when negative). Returns the frames written.");
  module.def("complete_frames", &video::complete_frames, "path"_a,
             nb::call_guard<nb::gil_scoped_release>(),
             "The frames an mp4 (fragmented or not) holds before its first incomplete one.");
  module.attr("PROGRESS_FRAMES_HEADER_BYTES") = video::kProgressFramesHeaderBytes;
}

}  // namespace dexloop::bindings
