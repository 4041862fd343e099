// dexloop._core.video: VideoDecoder (one file), DecoderPool (whole batches over many files) and the
// decode-bound baseline used by benchmarks. Arrays are validated with the GIL held; decoding runs
// with it released and writes straight into the caller's uint8 arrays (numpy or torch, zero-copy).
#include <nanobind/ndarray.h>
#include <nanobind/stl/string.h>
#include <nanobind/stl/tuple.h>
#include <nanobind/stl/vector.h>

#include <string>
#include <vector>

#include "bindings.hpp"

extern "C" {
#include <libavutil/avutil.h>
}
#include "dexloop/video/decode_only.hpp"
#include "dexloop/video/decoder_pool.hpp"
#include "dexloop/video/video_decoder.hpp"

namespace nb = nanobind;
using namespace nb::literals;

namespace dexloop::bindings {
namespace {

using video::DecoderPool;
using video::FrameLayout;
using video::FrameRequest;
using video::StreamInfo;
using video::VideoDecoder;

using Timestamps = nb::ndarray<const double, nb::ndim<1>, nb::c_contig, nb::device::cpu>;
using Int32Vector = nb::ndarray<const int32_t, nb::ndim<1>, nb::c_contig, nb::device::cpu>;
using Int64Vector = nb::ndarray<const int64_t, nb::ndim<1>, nb::c_contig, nb::device::cpu>;
using FrameArray = nb::ndarray<uint8_t, nb::c_contig, nb::device::cpu>;

// Frame geometry of an output array holding frames (..., 3, H, W) or, channels last, (..., H, W,
// 3).
struct FrameGeometry {
  int32_t height = 0;
  int32_t width = 0;
  int64_t frames = 0;
  int64_t frame_bytes = 0;
};

FrameGeometry frame_geometry(const FrameArray& array, bool channels_last, const char* what) {
  const size_t ndim = array.ndim();
  if (ndim < 3) {
    throw nb::value_error(
        (std::string(what) + " must have at least 3 dimensions (..., 3, H, W)").c_str());
  }
  const size_t channel_axis = channels_last ? ndim - 1 : ndim - 3;
  if (array.shape(channel_axis) != 3) {
    throw nb::value_error((std::string(what) + " must have 3 colour channels on axis " +
                           std::to_string(channel_axis) + ", got " +
                           std::to_string(array.shape(channel_axis)))
                              .c_str());
  }
  FrameGeometry geometry;
  geometry.height =
      static_cast<int32_t>(channels_last ? array.shape(ndim - 3) : array.shape(ndim - 2));
  geometry.width =
      static_cast<int32_t>(channels_last ? array.shape(ndim - 2) : array.shape(ndim - 1));
  geometry.frame_bytes = int64_t{3} * geometry.height * geometry.width;
  geometry.frames =
      geometry.frame_bytes > 0 ? static_cast<int64_t>(array.size()) / geometry.frame_bytes : 0;
  return geometry;
}

FrameLayout layout_of(bool channels_last) {
  return channels_last ? FrameLayout::kHWC : FrameLayout::kCHW;
}

void decoder_decode_into(VideoDecoder& decoder, Timestamps timestamps, FrameArray output,
                         double tolerance_s, bool channels_last) {
  FrameGeometry geometry = frame_geometry(output, channels_last, "out");
  const StreamInfo& info = decoder.info();
  if (geometry.height != info.height || geometry.width != info.width) {
    throw nb::value_error(("out holds " + std::to_string(geometry.height) + "x" +
                           std::to_string(geometry.width) + " frames but " + decoder.path() +
                           " has " + std::to_string(info.height) + "x" + std::to_string(info.width))
                              .c_str());
  }
  if (geometry.frames != static_cast<int64_t>(timestamps.shape(0))) {
    throw nb::value_error(("out holds " + std::to_string(geometry.frames) + " frames for " +
                           std::to_string(timestamps.shape(0)) + " timestamps")
                              .c_str());
  }
  std::span<const double> times(timestamps.data(), timestamps.shape(0));
  uint8_t* data = output.data();
  nb::gil_scoped_release release;
  decoder.decode_at(times, tolerance_s, data, layout_of(channels_last));
}

nb::ndarray<nb::numpy, uint8_t> decoder_decode(VideoDecoder& decoder, Timestamps timestamps,
                                               double tolerance_s, bool channels_last) {
  const StreamInfo& info = decoder.info();
  const size_t count = timestamps.shape(0);
  const size_t height = static_cast<size_t>(info.height);
  const size_t width = static_cast<size_t>(info.width);
  auto result = new_array<uint8_t>(channels_last ? std::vector<size_t>{count, height, width, 3}
                                                 : std::vector<size_t>{count, 3, height, width});
  uint8_t* data = result.data();
  std::span<const double> times(timestamps.data(), count);
  {
    nb::gil_scoped_release release;
    decoder.decode_at(times, tolerance_s, data, layout_of(channels_last));
  }
  return result;
}

// The pool's requests for a batch: the frame of file `file_index[n]` at `timestamps[n]` goes to
// frame `slot[n]` of output `target[n]`, whose first byte `output_base(target)` gives; every index
// is checked against the outputs' geometry first.
template <typename OutputBase>
std::vector<FrameRequest> batch_requests(size_t file_count, Int32Vector file_index,
                                         Timestamps timestamps, Int32Vector target,
                                         Int64Vector slot,
                                         const std::vector<FrameGeometry>& geometry,
                                         OutputBase output_base) {
  const size_t count = timestamps.shape(0);
  if (file_index.shape(0) != count || target.shape(0) != count || slot.shape(0) != count) {
    throw nb::value_error("file_index, timestamps, target and slot must have the same length");
  }
  std::vector<FrameRequest> requests(count);
  for (size_t n = 0; n < count; ++n) {
    const int32_t array = target.data()[n];
    const int64_t frame = slot.data()[n];
    if (array < 0 || static_cast<size_t>(array) >= geometry.size()) {
      throw nb::index_error(("request " + std::to_string(n) + " targets output " +
                             std::to_string(array) + " of " + std::to_string(geometry.size()))
                                .c_str());
    }
    const FrameGeometry& g = geometry[static_cast<size_t>(array)];
    if (frame < 0 || frame >= g.frames) {
      throw nb::index_error(("request " + std::to_string(n) + " targets frame " +
                             std::to_string(frame) + " of an output holding " +
                             std::to_string(g.frames))
                                .c_str());
    }
    const int32_t file = file_index.data()[n];
    if (file < 0 || static_cast<size_t>(file) >= file_count) {
      throw nb::index_error(("request " + std::to_string(n) + " names file " +
                             std::to_string(file) + " of " + std::to_string(file_count))
                                .c_str());
    }
    requests[n] = FrameRequest{file, timestamps.data()[n],
                               output_base(static_cast<size_t>(array)) + frame * g.frame_bytes,
                               g.height, g.width};
  }
  return requests;
}

void pool_decode(DecoderPool& pool, const std::vector<std::string>& files, Int32Vector file_index,
                 Timestamps timestamps, Int32Vector target, Int64Vector slot,
                 std::vector<FrameArray> outputs, double tolerance_s, bool channels_last) {
  std::vector<FrameGeometry> geometry;
  geometry.reserve(outputs.size());
  for (size_t i = 0; i < outputs.size(); ++i) {
    geometry.push_back(
        frame_geometry(outputs[i], channels_last, ("outputs[" + std::to_string(i) + "]").c_str()));
  }
  std::vector<FrameRequest> requests =
      batch_requests(files.size(), file_index, timestamps, target, slot, geometry,
                     [&](size_t array) { return outputs[array].data(); });
  nb::gil_scoped_release release;
  pool.decode(files, requests, tolerance_s, layout_of(channels_last));
}

// Gray16 output (LeRobot's depth codes): uint16 arrays of frames (..., H, W), any single-channel
// axis included, e.g. (N, 1, H, W).
using GrayArray = nb::ndarray<uint16_t, nb::c_contig, nb::device::cpu>;

FrameGeometry gray_geometry(const GrayArray& array, const char* what) {
  const size_t ndim = array.ndim();
  if (ndim < 2) {
    throw nb::value_error(
        (std::string(what) + " must have at least 2 dimensions (..., H, W)").c_str());
  }
  FrameGeometry geometry;
  geometry.height = static_cast<int32_t>(array.shape(ndim - 2));
  geometry.width = static_cast<int32_t>(array.shape(ndim - 1));
  geometry.frame_bytes = int64_t{2} * geometry.height * geometry.width;
  geometry.frames =
      geometry.frame_bytes > 0 ? static_cast<int64_t>(array.size()) * 2 / geometry.frame_bytes : 0;
  return geometry;
}

nb::ndarray<nb::numpy, uint16_t> decoder_decode_gray16(VideoDecoder& decoder, Timestamps timestamps,
                                                       double tolerance_s) {
  const StreamInfo& info = decoder.info();
  const size_t count = timestamps.shape(0);
  const size_t height = static_cast<size_t>(info.height);
  const size_t width = static_cast<size_t>(info.width);
  auto result = new_array<uint16_t>({count, 1, height, width});
  uint16_t* data = result.data();
  std::span<const double> times(timestamps.data(), count);
  {
    nb::gil_scoped_release release;
    decoder.decode_at(times, tolerance_s, reinterpret_cast<uint8_t*>(data), FrameLayout::kGray16);
  }
  return result;
}

void pool_decode_gray16(DecoderPool& pool, const std::vector<std::string>& files,
                        Int32Vector file_index, Timestamps timestamps, Int32Vector target,
                        Int64Vector slot, std::vector<GrayArray> outputs, double tolerance_s) {
  std::vector<FrameGeometry> geometry;
  geometry.reserve(outputs.size());
  for (size_t i = 0; i < outputs.size(); ++i) {
    geometry.push_back(gray_geometry(outputs[i], ("outputs[" + std::to_string(i) + "]").c_str()));
  }
  std::vector<FrameRequest> requests = batch_requests(
      files.size(), file_index, timestamps, target, slot, geometry,
      [&](size_t array) { return reinterpret_cast<uint8_t*>(outputs[array].data()); });
  nb::gil_scoped_release release;
  pool.decode(files, requests, tolerance_s, FrameLayout::kGray16);
}

nb::tuple decode_frames_only(const std::vector<std::string>& files, Int32Vector file_index,
                             Timestamps timestamps, int threads) {
  const size_t count = timestamps.shape(0);
  if (file_index.shape(0) != count)
    throw nb::value_error("file_index and timestamps differ in length");
  std::vector<video::FrameQuery> queries(count);
  for (size_t n = 0; n < count; ++n) {
    const int32_t file = file_index.data()[n];
    if (file < 0 || static_cast<size_t>(file) >= files.size())
      throw nb::index_error("file index out of range");
    queries[n] = video::FrameQuery{file, timestamps.data()[n]};
  }
  double seconds = 0.0;
  int64_t frames = 0;
  {
    nb::gil_scoped_release release;
    frames = video::decode_frames_only(files, queries, threads, &seconds);
  }
  return nb::make_tuple(frames, seconds);
}

}  // namespace

void register_video(nb::module_& module) {
  nb::class_<StreamInfo>(module, "StreamInfo",
                         "What the container and codec say about a video stream.")
      .def_ro("codec", &StreamInfo::codec, "Canonical codec name: 'av1', 'h264', 'hevc', ...")
      .def_ro("pix_fmt", &StreamInfo::pix_fmt)
      .def_ro("width", &StreamInfo::width)
      .def_ro("height", &StreamInfo::height)
      .def_ro("fps", &StreamInfo::fps, "Average frame rate.")
      .def_ro("base_fps", &StreamInfo::base_fps,
              "FFmpeg's r_frame_rate: the rate all timestamps are multiples of (the recording rate "
              "where the average is skewed by short episodes).")
      .def_prop_ro(
          "time_base",
          [](const StreamInfo& info) {
            return nb::make_tuple(info.time_base_num, info.time_base_den);
          },
          "Stream time base as (numerator, denominator) seconds.")
      .def_ro("frame_count", &StreamInfo::frame_count)
      .def_ro("duration_s", &StreamInfo::duration_s)
      .def_ro("start_s", &StreamInfo::start_s, "Presentation time of the first frame.")
      .def("__repr__", [](const StreamInfo& info) {
        return "StreamInfo(codec='" + info.codec + "', pix_fmt='" + info.pix_fmt +
               "', width=" + std::to_string(info.width) +
               ", height=" + std::to_string(info.height) + ", fps=" + std::to_string(info.fps) +
               ", time_base=" + std::to_string(info.time_base_num) + "/" +
               std::to_string(info.time_base_den) +
               ", frame_count=" + std::to_string(info.frame_count) +
               ", duration_s=" + std::to_string(info.duration_s) + ")";
      });

  nb::class_<VideoDecoder>(module, "VideoDecoder",
                           "Frame-accurate random access into one video file. Keeps the file open; "
                           "queries moving forward continue decoding rather than seeking again.")
      // Without the GIL: opening a URL waits on the network (and on a server that may be Python
      // code of this very process).
      .def(nb::init<const std::string&, int>(), "path"_a, "threads"_a = 1,
           nb::call_guard<nb::gil_scoped_release>(),
           "Opens the best video stream of a file or an http(s) URL (read by range requests). "
           "threads: the codec's own threads (0: FFmpeg's choice).")
      .def_prop_ro("path", &VideoDecoder::path)
      .def_prop_ro("info", &VideoDecoder::info, nb::rv_policy::reference_internal)
      .def_prop_ro("frames_decoded", &VideoDecoder::frames_decoded,
                   "Frames decoded so far, counting those decoded only to reach a query.")
      .def("decode", &decoder_decode, "timestamps"_a, "tolerance_s"_a = 1e-4,
           "channels_last"_a = false,
           "Decodes the frame nearest each timestamp (seconds) into a new uint8 array (N, 3, H, "
           "W), or "
           "(N, H, W, 3) with channels_last. Raises FrameTimestampError beyond tolerance_s.")
      .def("decode_into", &decoder_decode_into, "timestamps"_a, "out"_a, "tolerance_s"_a = 1e-4,
           "channels_last"_a = false,
           "Like decode, writing into a preallocated C-contiguous uint8 array.")
      .def("decode_gray16", &decoder_decode_gray16, "timestamps"_a, "tolerance_s"_a = 1e-4,
           "Decodes the frame nearest each timestamp as gray12le samples into a new uint16 array "
           "(N, 1, H, W): a depth video's 12-bit codes, as LeRobot reads them.");

  module.def("set_http_headers", &dexloop::video::set_http_headers, "headers"_a,
             "Request headers ('Name: value\\r\\n' lines) sent when a decoder opens an http(s) URL "
             "from now on, e.g. the Hub token of a streamed dataset; '' sends none.");

  nb::class_<DecoderPool>(
      module, "DecoderPool",
      "Decodes the video frames of whole batches on a pool of threads, each with its "
      "own cache of open decoders keyed by file.")
      .def(nb::init<int, int>(), "threads"_a = 0, "decoders_per_thread"_a = 16,
           "threads: decoding threads including the caller's (0: one per core).")
      .def_prop_ro("threads", &DecoderPool::threads)
      .def_prop_ro("frames_decoded", &DecoderPool::frames_decoded)
      .def("decode", &pool_decode, "files"_a, "file_index"_a, "timestamps"_a, "target"_a, "slot"_a,
           "outputs"_a, "tolerance_s"_a = 1e-4, "channels_last"_a = false,
           "Request n decodes files[file_index[n]] at timestamps[n] into frame slot[n] of "
           "outputs[target[n]] (C-contiguous uint8 arrays of frames (..., 3, H, W)).")
      .def("decode_gray16", &pool_decode_gray16, "files"_a, "file_index"_a, "timestamps"_a,
           "target"_a, "slot"_a, "outputs"_a, "tolerance_s"_a = 1e-4,
           "Like decode, for depth videos: each frame as gray12le samples (12-bit codes) into "
           "C-contiguous uint16 arrays of frames (..., H, W).")
      .def("close", &DecoderPool::close, nb::call_guard<nb::gil_scoped_release>(),
           "Stops and joins the decoding threads (after a decode in progress); the next decode "
           "starts them again.");

  module.def("close_all_decoder_pools", &DecoderPool::close_all,
             nb::call_guard<nb::gil_scoped_release>(),
             "close() on every DecoderPool of the process (run at interpreter exit).");
  // Joins every pool's threads before the interpreter finalizes: a pool still referenced then
  // (a dataset in a global, a reference cycle) would otherwise keep threads running into process
  // teardown, where the C++ runtime aborts.
  nb::module_::import_("atexit").attr("register")(module.attr("close_all_decoder_pools"));

  module.def(
      "ffmpeg_version", [] { return std::string(av_version_info()); },
      "Version of the FFmpeg libraries dexloop decodes with.");

  module.def("decode_frames_only", &decode_frames_only, "files"_a, "file_index"_a, "timestamps"_a,
             "threads"_a = 1,
             "Benchmark baseline: the least FFmpeg work fetching these frames (no conversion, no "
             "output). Returns (frames decoded, seconds spent decoding); files are opened before "
             "the timed part.");
}

}  // namespace dexloop::bindings
