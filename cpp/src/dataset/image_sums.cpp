// Built with -ffp-contract=off (CMakeLists.txt): a fused multiply-add would round v * v + sum once
// where numpy rounds the square and the sum each, and the means would no longer be numpy's.
#include "dexloop/dataset/image_sums.hpp"

#include <algorithm>
#include <limits>
#include <stdexcept>
#include <vector>

namespace dexloop::dataset {

namespace {

template <typename Sample>
constexpr int64_t kLevels = int64_t{1} << (8 * sizeof(Sample));

// The channels are summed side by side, pixel by pixel: each channel's sequence of additions is
// numpy's (image after image, pixel after pixel), and the independent accumulators let the
// additions of different channels overlap.
template <typename Sample, int kChannels>
void sum_fixed(const ImagePlanes<Sample>& images, float* sums, float* squares, int64_t* counts) {
  constexpr int64_t levels = kLevels<Sample>;
  constexpr int64_t lowest = std::numeric_limits<Sample>::min();
  float sum[kChannels] = {};
  float square[kChannels] = {};
  for (int64_t image = 0; image < images.count; ++image) {
    const Sample* planes = images.data + image * kChannels * images.pixels;
    for (int64_t pixel = 0; pixel < images.pixels; ++pixel) {
      for (int c = 0; c < kChannels; ++c) {
        const Sample raw = planes[c * images.pixels + pixel];
        const float value = static_cast<float>(raw);
        const float value_squared = value * value;
        sum[c] += value;
        square[c] += value_squared;
        ++counts[c * levels + (static_cast<int64_t>(raw) - lowest)];
      }
    }
  }
  std::copy(sum, sum + kChannels, sums);
  std::copy(square, square + kChannels, squares);
}

template <typename Sample>
void sum_any(const ImagePlanes<Sample>& images, float* sums, float* squares, int64_t* counts) {
  constexpr int64_t levels = kLevels<Sample>;
  constexpr int64_t lowest = std::numeric_limits<Sample>::min();
  std::vector<float> sum(images.channels, 0.0f), square(images.channels, 0.0f);
  for (int64_t image = 0; image < images.count; ++image) {
    const Sample* planes = images.data + image * images.channels * images.pixels;
    for (int64_t c = 0; c < images.channels; ++c) {
      const Sample* plane = planes + c * images.pixels;
      for (int64_t pixel = 0; pixel < images.pixels; ++pixel) {
        const float value = static_cast<float>(plane[pixel]);
        const float value_squared = value * value;
        sum[c] += value;
        square[c] += value_squared;
        ++counts[c * levels + (static_cast<int64_t>(plane[pixel]) - lowest)];
      }
    }
  }
  std::copy(sum.begin(), sum.end(), sums);
  std::copy(square.begin(), square.end(), squares);
}

}  // namespace

template <typename Sample>
void channel_sums(const ImagePlanes<Sample>& images, std::span<float> sums,
                  std::span<float> squares, std::span<int64_t> counts) {
  const auto channels = static_cast<size_t>(images.channels);
  if (images.count < 0 || images.channels < 1 || images.pixels < 0) {
    throw std::invalid_argument("channel_sums: negative image count or size, or no channel");
  }
  if (sums.size() != channels || squares.size() != channels ||
      counts.size() != channels * static_cast<size_t>(kLevels<Sample>)) {
    throw std::invalid_argument("channel_sums: output spans do not match the channel count");
  }
  std::fill(counts.begin(), counts.end(), 0);
  switch (images.channels) {
    case 1:
      return sum_fixed<Sample, 1>(images, sums.data(), squares.data(), counts.data());
    case 3:
      return sum_fixed<Sample, 3>(images, sums.data(), squares.data(), counts.data());
    case 4:
      return sum_fixed<Sample, 4>(images, sums.data(), squares.data(), counts.data());
    default:
      return sum_any<Sample>(images, sums.data(), squares.data(), counts.data());
  }
}

template void channel_sums<uint8_t>(const ImagePlanes<uint8_t>&, std::span<float>, std::span<float>,
                                    std::span<int64_t>);
template void channel_sums<int8_t>(const ImagePlanes<int8_t>&, std::span<float>, std::span<float>,
                                   std::span<int64_t>);
template void channel_sums<uint16_t>(const ImagePlanes<uint16_t>&, std::span<float>,
                                     std::span<float>, std::span<int64_t>);
template void channel_sums<int16_t>(const ImagePlanes<int16_t>&, std::span<float>, std::span<float>,
                                    std::span<int64_t>);

}  // namespace dexloop::dataset
