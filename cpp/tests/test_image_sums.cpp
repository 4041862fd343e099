#include <gtest/gtest.h>

#include <cstdint>
#include <vector>

#include "dexloop/dataset/image_sums.hpp"

namespace dexloop::dataset {
namespace {

TEST(ChannelSums, SumsAndCountsEachChannelOfEveryImage) {
  // Two images of 3 channels of 2 pixels: channel c of image i holds {10 i + c, 200}.
  std::vector<uint8_t> planes = {0, 200, 1, 200, 2, 200, 10, 200, 11, 200, 12, 200};
  std::vector<float> sums(3), squares(3);
  std::vector<int64_t> counts(3 * 256, -1);
  channel_sums<uint8_t>({planes.data(), 2, 3, 2}, sums, squares, counts);
  for (int c = 0; c < 3; ++c) {
    EXPECT_EQ(sums[c], static_cast<float>(c + 200 + 10 + c + 200));
    EXPECT_EQ(squares[c], static_cast<float>(c * c + 40000 + (10 + c) * (10 + c) + 40000));
    EXPECT_EQ(counts[c * 256 + 200], 2);
    EXPECT_EQ(counts[c * 256 + c], 1);
    EXPECT_EQ(counts[c * 256 + 10 + c], 1);
    int64_t total = 0;
    for (int v = 0; v < 256; ++v) total += counts[c * 256 + v];
    EXPECT_EQ(total, 4);
  }
}

TEST(ChannelSums, AccumulatesInFloat32OneValueAfterAnother) {
  // numpy's sum along rows stalls at 2**24 once adding 1 no longer changes a float32: the exact
  // total would be 2**24 + 100.
  const int64_t pixels = (int64_t{1} << 24) + 100;
  std::vector<uint8_t> ones(pixels, 1);
  std::vector<float> sums(1), squares(1);
  std::vector<int64_t> counts(256);
  channel_sums<uint8_t>({ones.data(), 1, 1, pixels}, sums, squares, counts);
  EXPECT_EQ(sums[0], 16777216.0f);
  EXPECT_EQ(squares[0], 16777216.0f);
  EXPECT_EQ(counts[1], pixels);
}

TEST(ChannelSums, CountsSignedSamplesFromTheirLowestValue) {
  std::vector<int16_t> planes = {-32768, -1, 0, 32767, -1};
  std::vector<float> sums(5), squares(5);
  std::vector<int64_t> counts(5 * 65536);
  channel_sums<int16_t>({planes.data(), 1, 5, 1}, sums, squares, counts);
  EXPECT_EQ(counts[0 * 65536 + 0], 1);      // -32768
  EXPECT_EQ(counts[1 * 65536 + 32767], 1);  // -1
  EXPECT_EQ(counts[2 * 65536 + 32768], 1);  // 0
  EXPECT_EQ(counts[3 * 65536 + 65535], 1);  // 32767
  EXPECT_EQ(sums[0], -32768.0f);
  EXPECT_EQ(squares[3], 32767.0f * 32767.0f);  // rounded to float32, as numpy's square is
}

TEST(ChannelSums, RefusesOutputsOfAnotherChannelCount) {
  std::vector<uint8_t> planes(6);
  std::vector<float> sums(2), squares(3);
  std::vector<int64_t> counts(3 * 256);
  EXPECT_THROW(channel_sums<uint8_t>({planes.data(), 1, 3, 2}, sums, squares, counts),
               std::invalid_argument);
}

}  // namespace
}  // namespace dexloop::dataset
