#include "dexloop/control/latency_histogram.hpp"

#include <bit>

namespace dexloop::control {

// Buckets 0..63 hold the values 0..63 one each. A value v >= 64 with its highest bit at position
// b (b >= 6) lies in range r = b - 5 (r >= 1), whose 32 buckets each span 2^(b-5) ns.
int LatencyHistogram::bucket_of(int64_t nanoseconds) {
  if (nanoseconds < 2 * kSubBuckets) return nanoseconds < 0 ? 0 : static_cast<int>(nanoseconds);
  const uint64_t v = static_cast<uint64_t>(nanoseconds);
  const int bit = 63 - std::countl_zero(v);
  const int range = bit - kSubBucketBits;  // >= 1
  const int sub = static_cast<int>((v >> (bit - kSubBucketBits)) & (kSubBuckets - 1));
  const int bucket = 2 * kSubBuckets + (range - 1) * kSubBuckets + sub;
  return bucket < kBuckets ? bucket : kBuckets - 1;
}

int64_t LatencyHistogram::bucket_lower(int bucket) {
  if (bucket < 2 * kSubBuckets) return bucket;
  const int range = (bucket - 2 * kSubBuckets) / kSubBuckets + 1;
  const int sub = (bucket - 2 * kSubBuckets) % kSubBuckets;
  const int bit = range + kSubBucketBits;
  return (int64_t{1} << bit) + (static_cast<int64_t>(sub) << (bit - kSubBucketBits));
}

int64_t LatencyHistogram::bucket_upper(int bucket) {
  if (bucket < 2 * kSubBuckets) return bucket + 1;
  const int range = (bucket - 2 * kSubBuckets) / kSubBuckets + 1;
  return bucket_lower(bucket) + (int64_t{1} << range);
}

void LatencyHistogram::record(int64_t nanoseconds) {
  if (nanoseconds < 0) nanoseconds = 0;
  buckets_[bucket_of(nanoseconds)].fetch_add(1, std::memory_order_relaxed);
  sum_.fetch_add(nanoseconds, std::memory_order_relaxed);
  // Single writer: plain load + store is enough, and atomic for the readers.
  if (nanoseconds > max_.load(std::memory_order_relaxed))
    max_.store(nanoseconds, std::memory_order_relaxed);
  if (nanoseconds < min_.load(std::memory_order_relaxed))
    min_.store(nanoseconds, std::memory_order_relaxed);
  count_.fetch_add(1, std::memory_order_release);
}

void LatencyHistogram::reset() {
  for (auto& bucket : buckets_) bucket.store(0, std::memory_order_relaxed);
  sum_.store(0, std::memory_order_relaxed);
  max_.store(0, std::memory_order_relaxed);
  min_.store(INT64_MAX, std::memory_order_relaxed);
  count_.store(0, std::memory_order_release);
}

int64_t LatencyHistogram::min() const {
  const int64_t value = min_.load(std::memory_order_relaxed);
  return value == INT64_MAX ? 0 : value;
}

double LatencyHistogram::mean() const {
  const uint64_t n = count();
  return n == 0 ? 0.0 : static_cast<double>(sum_.load(std::memory_order_relaxed)) / n;
}

int64_t LatencyHistogram::percentile(double fraction) const {
  std::vector<uint64_t> counts = buckets();
  uint64_t total = 0;
  for (uint64_t c : counts) total += c;
  if (total == 0) return 0;
  if (fraction < 0) fraction = 0;
  if (fraction > 1) fraction = 1;
  // The rank of the value the percentile names (1-based), at least the first.
  uint64_t rank = static_cast<uint64_t>(fraction * static_cast<double>(total) + 0.5);
  if (rank < 1) rank = 1;
  uint64_t seen = 0;
  for (int bucket = 0; bucket < kBuckets; ++bucket) {
    seen += counts[bucket];
    if (seen >= rank) {
      // Never above the largest value recorded.
      const int64_t upper = bucket_upper(bucket);
      const int64_t top = max();
      return upper < top ? upper : top;
    }
  }
  return max();
}

std::vector<uint64_t> LatencyHistogram::buckets() const {
  std::vector<uint64_t> counts(kBuckets);
  for (int i = 0; i < kBuckets; ++i) counts[i] = buckets_[i].load(std::memory_order_relaxed);
  return counts;
}

}  // namespace dexloop::control
