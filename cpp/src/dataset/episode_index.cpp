#include "dexloop/dataset/episode_index.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <sstream>
#include <stdexcept>
#include <string>

#include "dexloop/error.hpp"

namespace dexloop::dataset {

EpisodeIndex::EpisodeIndex(std::vector<EpisodeSpan> episodes) : episodes_(std::move(episodes)) {
  row_starts_.reserve(episodes_.size());
  int64_t next_row = 0;
  for (size_t e = 0; e < episodes_.size(); ++e) {
    const EpisodeSpan& span = episodes_[e];
    if (span.to_index <= span.from_index) {
      throw DatasetError(
          "episode " + std::to_string(e) + " of the loaded list has no frames (from " +
          std::to_string(span.from_index) + " to " + std::to_string(span.to_index) + ")");
    }
    if (span.first_row != next_row) {
      throw DatasetError("episode " + std::to_string(e) + " of the loaded list starts at row " +
                         std::to_string(span.first_row) + " but the previous episode ends at row " +
                         std::to_string(next_row));
    }
    row_starts_.push_back(span.first_row);
    next_row = span.first_row + (span.to_index - span.from_index);
  }
  num_rows_ = next_row;
}

int64_t EpisodeIndex::ordinal_of(int64_t row) const {
  if (row < 0 || row >= num_rows_) {
    throw std::out_of_range("row " + std::to_string(row) + " is out of range for a dataset of " +
                            std::to_string(num_rows_) + " frames");
  }
  auto after = std::upper_bound(row_starts_.begin(), row_starts_.end(), row);
  return static_cast<int64_t>(after - row_starts_.begin()) - 1;
}

void EpisodeIndex::episodes_of(std::span<const int64_t> rows, int64_t* ordinals) const {
  for (size_t n = 0; n < rows.size(); ++n) ordinals[n] = ordinal_of(rows[n]);
}

void EpisodeIndex::window(std::span<const int64_t> rows, std::span<const int64_t> deltas,
                          int64_t* source_rows, bool* is_pad) const {
  const size_t width = deltas.size();
  for (size_t n = 0; n < rows.size(); ++n) {
    const EpisodeSpan& span = episodes_[static_cast<size_t>(ordinal_of(rows[n]))];
    const int64_t global = span.from_index + (rows[n] - span.first_row);
    for (size_t j = 0; j < width; ++j) {
      // Saturating: an offset past either end of int64 is past that end of the episode too.
      int64_t wanted = 0;
      if (__builtin_add_overflow(global, deltas[j], &wanted)) {
        wanted = deltas[j] > 0 ? std::numeric_limits<int64_t>::max()
                               : std::numeric_limits<int64_t>::min();
      }
      const int64_t clamped = std::clamp(wanted, span.from_index, span.to_index - 1);
      source_rows[n * width + j] = span.first_row + (clamped - span.from_index);
      is_pad[n * width + j] = wanted < span.from_index || wanted >= span.to_index;
    }
  }
}

std::vector<int64_t> delta_indices(std::span<const double> deltas_s, double fps,
                                   double tolerance_s) {
  if (!(fps > 0.0)) throw std::invalid_argument("fps must be positive");
  if (!std::isfinite(fps)) throw std::invalid_argument("fps must be finite");
  std::vector<int64_t> indices;
  std::vector<double> outside;
  std::vector<double> too_far;
  indices.reserve(deltas_s.size());
  for (double delta : deltas_s) {
    const double frames = delta * fps;
    const double rounded = std::nearbyint(frames);  // ties to even under the default rounding mode
    if (!std::isfinite(frames) || !(std::abs(frames - rounded) / fps <= tolerance_s)) {
      outside.push_back(delta);
      continue;
    }
    if (std::abs(rounded) > static_cast<double>(kMaxDeltaFrames)) {
      too_far.push_back(delta);
      continue;
    }
    indices.push_back(static_cast<int64_t>(rounded));
  }
  if (!too_far.empty()) {
    std::ostringstream message;
    message.precision(17);
    message << "delta_timestamps must lie within " << kMaxDeltaFrames
            << " frames of the current frame; these do not: [";
    for (size_t i = 0; i < too_far.size(); ++i) message << (i ? ", " : "") << too_far[i];
    message << "]";
    throw std::invalid_argument(message.str());
  }
  if (!outside.empty()) {
    std::ostringstream message;
    message.precision(17);
    message << "delta_timestamps must be multiples of 1/fps = 1/" << fps
            << " s within tolerance_s=" << tolerance_s << "; these are not: [";
    for (size_t i = 0; i < outside.size(); ++i) message << (i ? ", " : "") << outside[i];
    message << "]";
    throw std::invalid_argument(message.str());
  }
  return indices;
}

}  // namespace dexloop::dataset
