// Recycles large buffers by size. A batch of decoded frames is several megabytes; fresh memory
// costs a page fault per 4 KiB page on first touch (milliseconds per batch), while a buffer
// released by the previous batch is already mapped. Thread-safe.
#pragma once

#include <cstddef>
#include <map>
#include <mutex>
#include <vector>

namespace dexloop {

class BufferPool {
 public:
  // Keeps at most `max_cached_bytes` of released buffers for reuse; beyond that, memory is freed.
  explicit BufferPool(size_t max_cached_bytes);
  ~BufferPool();
  BufferPool(const BufferPool&) = delete;
  BufferPool& operator=(const BufferPool&) = delete;

  // A 64-byte aligned buffer of `bytes` bytes (contents unspecified). Throws std::bad_alloc.
  void* acquire(size_t bytes);
  // Gives back a buffer obtained from acquire(bytes).
  void release(void* buffer, size_t bytes);

  size_t cached_bytes() const;

  // The process-wide pool for decoded frame batches.
  static BufferPool& frames();

 private:
  mutable std::mutex mutex_;
  std::map<size_t, std::vector<void*>> free_;
  size_t cached_bytes_ = 0;
  size_t max_cached_bytes_;
};

}  // namespace dexloop
