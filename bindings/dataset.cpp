// dexloop._core.dataset: the episode index of delta_timestamps windows, batch at a time, and the
// channel sums of LeRobot's image statistics.
#include <nanobind/ndarray.h>
#include <nanobind/stl/vector.h>

#include <vector>

#include "bindings.hpp"
#include "dexloop/dataset/episode_index.hpp"
#include "dexloop/dataset/image_sums.hpp"

namespace nb = nanobind;
using namespace nb::literals;

namespace dexloop::bindings {
namespace {

using dataset::EpisodeIndex;
using dataset::EpisodeSpan;
using Int64Vector = nb::ndarray<const int64_t, nb::ndim<1>, nb::c_contig, nb::device::cpu>;

EpisodeIndex make_index(Int64Vector from_index, Int64Vector to_index, Int64Vector first_row) {
  const size_t count = from_index.shape(0);
  if (to_index.shape(0) != count || first_row.shape(0) != count) {
    throw nb::value_error("from_index, to_index and first_row must have the same length");
  }
  std::vector<EpisodeSpan> spans(count);
  for (size_t e = 0; e < count; ++e) {
    spans[e] = EpisodeSpan{from_index.data()[e], to_index.data()[e], first_row.data()[e]};
  }
  return EpisodeIndex(std::move(spans));
}

nb::ndarray<nb::numpy, int64_t> episodes_of(const EpisodeIndex& index, Int64Vector rows) {
  auto result = new_array<int64_t>({rows.shape(0)});
  std::span<const int64_t> input(rows.data(), rows.shape(0));
  int64_t* output = result.data();
  nb::gil_scoped_release release;
  index.episodes_of(input, output);
  return result;
}

nb::tuple window(const EpisodeIndex& index, Int64Vector rows, Int64Vector deltas) {
  const size_t count = rows.shape(0);
  const size_t width = deltas.shape(0);
  auto source_rows = new_array<int64_t>({count, width});
  auto is_pad = new_array<bool>({count, width});
  std::span<const int64_t> row_span(rows.data(), count);
  std::span<const int64_t> delta_span(deltas.data(), width);
  int64_t* rows_out = source_rows.data();
  bool* pad_out = is_pad.data();
  {
    nb::gil_scoped_release release;
    index.window(row_span, delta_span, rows_out, pad_out);
  }
  return nb::make_tuple(source_rows, is_pad);
}

template <typename Sample>
using Images = nb::ndarray<const Sample, nb::ndim<4>, nb::c_contig, nb::device::cpu>;

template <typename Sample>
nb::tuple image_channel_sums(Images<Sample> images) {
  const size_t channels = images.shape(1);
  if (channels == 0) throw nb::value_error("channel_sums: the images have no channel");
  constexpr size_t levels = size_t{1} << (8 * sizeof(Sample));
  auto sums = new_array<float>({channels});
  auto squares = new_array<float>({channels});
  auto counts = new_array<int64_t>({channels, levels});
  const dataset::ImagePlanes<Sample> planes{
      images.data(), static_cast<int64_t>(images.shape(0)), static_cast<int64_t>(channels),
      static_cast<int64_t>(images.shape(2) * images.shape(3))};
  std::span<float> sum_span(sums.data(), channels), square_span(squares.data(), channels);
  std::span<int64_t> count_span(counts.data(), channels * levels);
  {
    nb::gil_scoped_release release;
    dataset::channel_sums(planes, sum_span, square_span, count_span);
  }
  return nb::make_tuple(sums, squares, counts);
}

}  // namespace

void register_dataset(nb::module_& module) {
  nb::class_<EpisodeIndex>(
      module, "EpisodeIndex",
      "Episodes of a loaded table: global frame range [from_index, to_index) and "
      "first table row of each, in table order.")
      .def(nb::new_(&make_index), "from_index"_a, "to_index"_a, "first_row"_a)
      .def_prop_ro("num_rows", &EpisodeIndex::num_rows)
      .def_prop_ro("num_episodes", &EpisodeIndex::num_episodes)
      .def("episodes_of", &episodes_of, "rows"_a,
           "Ordinal (position in the loaded episode list) of the episode holding each row.")
      .def("window", &window, "rows"_a, "deltas"_a,
           "For rows (N,) and frame offsets (K,): (source_rows (N, K) int64, is_pad (N, K) bool), "
           "clamping inside each row's episode as LeRobot does.");

  module.def(
      "delta_indices",
      [](const std::vector<double>& deltas_s, double fps, double tolerance_s) {
        return dataset::delta_indices(deltas_s, fps, tolerance_s);
      },
      "deltas_s"_a, "fps"_a, "tolerance_s"_a,
      "LeRobot's delta_timestamps check and conversion to frame offsets (round half to even).");

  constexpr const char* channel_sums_doc =
      "For images (S, C, H, W) of uint8, int8, uint16 or int16: (sums (C,) float32, squares (C,) "
      "float32, counts (C, levels) int64). The sums of the samples and of their squares are "
      "accumulated in float32 image by image, pixel by pixel, as numpy's mean over rows of pixels "
      "accumulates them; counts[c, v - lowest] is how often value v occurs in channel c.";
  module.def("channel_sums", &image_channel_sums<uint8_t>, "images"_a, channel_sums_doc);
  module.def("channel_sums", &image_channel_sums<int8_t>, "images"_a);
  module.def("channel_sums", &image_channel_sums<uint16_t>, "images"_a);
  module.def("channel_sums", &image_channel_sums<int16_t>, "images"_a);
}

}  // namespace dexloop::bindings
