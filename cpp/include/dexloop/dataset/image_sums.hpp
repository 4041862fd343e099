// The per-channel sums and value counts that LeRobot's image statistics rest on.
//
// LeRobot computes an episode's image stats with numpy over its sampled frames laid out as rows of
// pixels, one column per channel: np.mean along the rows of a float32 array. With two or more
// channels numpy sums one row after another into a float32 accumulator (not pairwise: the rows are
// the outer loop); over a few million pixels that rounds far from the exact mean, and the stored
// means carry its rounding. These sums are taken in exactly that order and precision, so the means
// they give are LeRobot's bit for bit, without the float copies numpy needs. (A single channel's
// rows are one contiguous run, which numpy sums pairwise instead: its sums here are not numpy's.)
// The counts of each value per channel give the extrema and the quantile histograms exactly, since
// every occurrence of a value falls in the same bin.
#pragma once

#include <cstdint>
#include <span>

namespace dexloop::dataset {

// Images (count, channels, pixels) in C order: `count` images of `channels` planes of `pixels`
// samples each, one of uint8, int8, uint16 or int16.
template <typename Sample>
struct ImagePlanes {
  const Sample* data = nullptr;
  int64_t count = 0;
  int64_t channels = 0;
  int64_t pixels = 0;
};

// Fills, per channel c: sums[c] and squares[c], the float32 sums of the samples and of their
// float32 squares accumulated image by image, pixel by pixel (numpy's order over rows of pixels);
// and counts[c * levels + (v - lowest)], how often each value v occurs, where `levels` is the
// number of values a Sample holds (256 or 65536) and `lowest` its smallest. Each span holds
// `channels` (sums, squares) or `channels * levels` (counts) entries.
template <typename Sample>
void channel_sums(const ImagePlanes<Sample>& images, std::span<float> sums,
                  std::span<float> squares, std::span<int64_t> counts);

}  // namespace dexloop::dataset
