// Index maths of LeRobot's delta_timestamps, for whole batches at once.
//
// A dataset is a table of frame rows grouped in episodes. For a row at global frame index i inside
// an episode spanning global indices [from, to), a delta of k frames reads the row of clamp(i + k,
// from, to - 1) and marks the slot as padding when i + k falls outside [from, to): boundary frames
// are repeated, never zero-filled (LeRobot 0.6.1, DatasetReader._get_query_indices).
#pragma once

#include <cstdint>
#include <span>
#include <vector>

namespace dexloop::dataset {

// One episode as loaded: its global frame range and the table row holding its first frame.
struct EpisodeSpan {
  int64_t from_index = 0;  // global index of the first frame (dataset_from_index)
  int64_t to_index = 0;    // one past the last frame (dataset_to_index)
  int64_t first_row = 0;   // row of the first frame in the loaded table
};

class EpisodeIndex {
 public:
  // `episodes` in table order: rows are contiguous per episode and each episode's rows follow the
  // previous one's. Throws DatasetError when spans are empty, overlap rows, or leave gaps.
  explicit EpisodeIndex(std::vector<EpisodeSpan> episodes);

  int64_t num_rows() const { return num_rows_; }
  int64_t num_episodes() const { return static_cast<int64_t>(episodes_.size()); }
  const EpisodeSpan& episode(int64_t ordinal) const {
    return episodes_[static_cast<size_t>(ordinal)];
  }

  // Ordinal (position in the loaded episode list) of the episode holding each row.
  // Throws std::out_of_range naming the first row outside [0, num_rows()).
  void episodes_of(std::span<const int64_t> rows, int64_t* ordinals) const;

  // For each row r_n and each delta k_j: source_rows[n * K + j] = row of clamp(i + k_j) and
  // is_pad[n * K + j] = whether i + k_j lies outside the episode, i being r_n's global index.
  void window(std::span<const int64_t> rows, std::span<const int64_t> deltas, int64_t* source_rows,
              bool* is_pad) const;

 private:
  int64_t ordinal_of(int64_t row) const;

  std::vector<EpisodeSpan> episodes_;
  std::vector<int64_t> row_starts_;  // first_row of each episode, for binary search
  int64_t num_rows_ = 0;
};

// Largest |frame offset| delta_indices accepts: far inside int64, so that index + offset cannot
// overflow, and far beyond any dataset's length.
inline constexpr int64_t kMaxDeltaFrames = int64_t{1} << 40;

// LeRobot's conversion of delta_timestamps (seconds) to frame offsets: round(d * fps) with ties to
// even (Python's round). Each d must satisfy |d*fps - round(d*fps)| / fps <= tolerance_s and
// |round(d*fps)| <= kMaxDeltaFrames; otherwise throws std::invalid_argument listing every offending
// value.
std::vector<int64_t> delta_indices(std::span<const double> deltas_s, double fps,
                                   double tolerance_s);

}  // namespace dexloop::dataset
