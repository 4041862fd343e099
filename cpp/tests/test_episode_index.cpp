#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "dexloop/dataset/episode_index.hpp"
#include "dexloop/error.hpp"

namespace dexloop::dataset {
namespace {

// Episodes of 3, 1 and 4 frames at global indices [0,3), [3,4), [4,8), loaded whole.
EpisodeIndex three_episodes() { return EpisodeIndex({{0, 3, 0}, {3, 4, 3}, {4, 8, 4}}); }

TEST(EpisodeIndex, ClampsWindowsInsideEachEpisodeAndMarksPadding) {
  EpisodeIndex index = three_episodes();
  EXPECT_EQ(index.num_rows(), 8);
  std::vector<int64_t> rows = {0, 3, 6};
  std::vector<int64_t> deltas = {-2, 0, 1, 3};
  std::vector<int64_t> source(rows.size() * deltas.size());
  std::vector<char> pad_storage(rows.size() * deltas.size());
  bool* pad = reinterpret_cast<bool*>(pad_storage.data());
  index.window(rows, deltas, source.data(), pad);
  // Row 0 (episode [0,3)): -2 -> 0 pad, 0 -> 0, 1 -> 1, 3 -> 2 pad.
  EXPECT_EQ((std::vector<int64_t>(source.begin(), source.begin() + 4)),
            (std::vector<int64_t>{0, 0, 1, 2}));
  EXPECT_TRUE(pad[0]);
  EXPECT_FALSE(pad[1]);
  EXPECT_FALSE(pad[2]);
  EXPECT_TRUE(pad[3]);
  // Row 3 is a one-frame episode: every offset but 0 repeats it and is padding.
  EXPECT_EQ((std::vector<int64_t>(source.begin() + 4, source.begin() + 8)),
            (std::vector<int64_t>{3, 3, 3, 3}));
  EXPECT_TRUE(pad[4]);
  EXPECT_FALSE(pad[5]);
  EXPECT_TRUE(pad[6]);
  EXPECT_TRUE(pad[7]);
  // Row 6 (episode [4,8)): -2 -> 4, 0 -> 6, 1 -> 7, 3 -> 7 pad.
  EXPECT_EQ((std::vector<int64_t>(source.begin() + 8, source.end())),
            (std::vector<int64_t>{4, 6, 7, 7}));
  EXPECT_FALSE(pad[8]);
  EXPECT_FALSE(pad[9]);
  EXPECT_FALSE(pad[10]);
  EXPECT_TRUE(pad[11]);
}

TEST(EpisodeIndex, MapsGlobalIndicesToRowsOfAnEpisodeSubset) {
  // Episodes 1 and 2 of a dataset (global [45,75) and [75,87)) loaded alone: rows 0..41.
  EpisodeIndex index({{45, 75, 0}, {75, 87, 30}});
  std::vector<int64_t> rows = {30, 29};
  std::vector<int64_t> deltas = {-3, 0, 7};
  std::vector<int64_t> source(6);
  bool pad[6];
  index.window(rows, deltas, source.data(), pad);
  EXPECT_EQ(source, (std::vector<int64_t>{30, 30, 37, 26, 29, 29}));
  EXPECT_TRUE(pad[0]);
  EXPECT_FALSE(pad[2]);
  EXPECT_TRUE(pad[5]);
  std::vector<int64_t> ordinals(2);
  index.episodes_of(rows, ordinals.data());
  EXPECT_EQ(ordinals, (std::vector<int64_t>{1, 0}));
}

TEST(EpisodeIndex, RejectsRowsOutOfRange) {
  EpisodeIndex index = three_episodes();
  std::vector<int64_t> rows = {8};
  int64_t ordinal;
  EXPECT_THROW(index.episodes_of(rows, &ordinal), std::out_of_range);
  rows = {-1};
  EXPECT_THROW(index.episodes_of(rows, &ordinal), std::out_of_range);
}

TEST(EpisodeIndex, RejectsEmptyOrNonContiguousEpisodes) {
  EXPECT_THROW(EpisodeIndex({{0, 0, 0}}), DatasetError);
  EXPECT_THROW(EpisodeIndex({{0, 3, 0}, {3, 5, 4}}), DatasetError);
}

TEST(DeltaIndices, RoundsHalfToEvenLikePython) {
  EXPECT_EQ(delta_indices(std::vector<double>{-0.1, 0.0, 1.0 / 30, 0.2}, 30, 1e-4),
            (std::vector<int64_t>{-3, 0, 1, 6}));
  // 2.5 frames rounds to 2 and 3.5 to 4 (ties to even), admitted with a loose tolerance.
  EXPECT_EQ(delta_indices(std::vector<double>{0.25, 0.35}, 10, 0.1), (std::vector<int64_t>{2, 4}));
}

TEST(DeltaIndices, RejectsOffsetsBetweenFramesListingThem) {
  try {
    delta_indices(std::vector<double>{0.0, 0.05, 0.1, 0.15}, 10, 1e-4);
    FAIL() << "expected invalid_argument";
  } catch (const std::invalid_argument& error) {
    std::string message = error.what();
    EXPECT_NE(message.find("0.050000000000000003"), std::string::npos) << message;
    EXPECT_NE(message.find("0.14999999999999999"), std::string::npos) << message;
  }
  EXPECT_THROW(delta_indices(std::vector<double>{0.0}, 0, 1e-4), std::invalid_argument);
}

TEST(EpisodeIndex, OffsetsPastInt64PadAtTheEpisodeEnds) {
  // An episode near the top of int64: index + offset would overflow without saturation.
  const int64_t top = std::numeric_limits<int64_t>::max();
  EpisodeIndex index({{top - 4, top - 1, 0}});
  std::vector<int64_t> rows = {1};
  std::vector<int64_t> deltas = {top, std::numeric_limits<int64_t>::min(), 1};
  std::vector<int64_t> source(3);
  bool pad[3];
  index.window(rows, deltas, source.data(), pad);
  EXPECT_EQ(source, (std::vector<int64_t>{2, 0, 2}));
  EXPECT_TRUE(pad[0]);
  EXPECT_TRUE(pad[1]);
  EXPECT_FALSE(pad[2]);
}

TEST(DeltaIndices, RejectsOffsetsTooFarToIndexListingThem) {
  EXPECT_EQ(delta_indices(std::vector<double>{static_cast<double>(kMaxDeltaFrames) / 10}, 10, 1e-4),
            (std::vector<int64_t>{kMaxDeltaFrames}));
  try {
    delta_indices(std::vector<double>{0.0, 1e300, -1e18}, 10, 1e-4);
    FAIL() << "expected invalid_argument";
  } catch (const std::invalid_argument& error) {
    std::string message = error.what();
    EXPECT_NE(message.find("within 1099511627776 frames"), std::string::npos) << message;
    EXPECT_NE(message.find("1.0000000000000001e+300"), std::string::npos) << message;
    EXPECT_NE(message.find("-1e+18"), std::string::npos) << message;
  }
  EXPECT_THROW(delta_indices(std::vector<double>{std::nan("")}, 10, 1e-4), std::invalid_argument);
  EXPECT_THROW(delta_indices(std::vector<double>{0.0}, INFINITY, 1e-4), std::invalid_argument);
}

}  // namespace
}  // namespace dexloop::dataset
