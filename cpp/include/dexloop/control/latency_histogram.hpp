// A histogram of durations that one thread records into and any thread reads while it runs.
//
// Log-linear buckets (those of HdrHistogram): values below 64 ns have a bucket each; above, each
// power-of-two range is split into 32 equal buckets, so a bucket's width is at most 1/32 of its
// value (a percentile is reported as its bucket's upper edge, capped at the maximum: at most 3.2%
// high, never low). The ranges reach 2^49 ns (six days). Recording is a few relaxed atomic
// increments: no lock, no allocation, so the control loop's tick can record into it.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <vector>

namespace dexloop::control {

class LatencyHistogram {
 public:
  static constexpr int kSubBucketBits = 5;  // 32 buckets per power of two
  static constexpr int kSubBuckets = 1 << kSubBucketBits;
  static constexpr int kRanges = 44;
  static constexpr int kBuckets = 2 * kSubBuckets + (kRanges - 1) * kSubBuckets;

  // Records one value in nanoseconds (negative values count as 0). Single writer.
  void record(int64_t nanoseconds);
  void reset();

  // Consistent enough for monitoring while the writer runs (each counter is read atomically).
  uint64_t count() const { return count_.load(std::memory_order_relaxed); }
  int64_t max() const { return max_.load(std::memory_order_relaxed); }
  int64_t min() const;  // 0 when empty
  double mean() const;  // 0 when empty
  // The smallest bucket upper edge below which `fraction` (0..1) of the values lie; 0 when empty.
  int64_t percentile(double fraction) const;

  // Bucket index of a value, and a bucket's [lower, upper) edges in nanoseconds.
  static int bucket_of(int64_t nanoseconds);
  static int64_t bucket_lower(int bucket);
  static int64_t bucket_upper(int bucket);
  // Counts of every bucket (a copy).
  std::vector<uint64_t> buckets() const;

 private:
  std::array<std::atomic<uint64_t>, kBuckets> buckets_{};
  std::atomic<uint64_t> count_{0};
  std::atomic<int64_t> sum_{0};
  std::atomic<int64_t> max_{0};
  std::atomic<int64_t> min_{INT64_MAX};
};

}  // namespace dexloop::control
