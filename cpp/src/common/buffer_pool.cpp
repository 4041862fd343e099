#include "dexloop/common/buffer_pool.hpp"

#include <cstdlib>
#include <new>

namespace dexloop {
namespace {

constexpr size_t kAlignment = 64;

size_t rounded(size_t bytes) { return (bytes + kAlignment - 1) / kAlignment * kAlignment; }

}  // namespace

BufferPool::BufferPool(size_t max_cached_bytes) : max_cached_bytes_(max_cached_bytes) {}

BufferPool::~BufferPool() {
  for (auto& [bytes, buffers] : free_) {
    for (void* buffer : buffers) std::free(buffer);
  }
}

void* BufferPool::acquire(size_t bytes) {
  const size_t size = rounded(bytes == 0 ? 1 : bytes);
  {
    std::lock_guard lock(mutex_);
    auto found = free_.find(size);
    if (found != free_.end() && !found->second.empty()) {
      void* buffer = found->second.back();
      found->second.pop_back();
      cached_bytes_ -= size;
      return buffer;
    }
  }
  void* buffer = std::aligned_alloc(kAlignment, size);
  if (buffer == nullptr) throw std::bad_alloc();
  return buffer;
}

void BufferPool::release(void* buffer, size_t bytes) {
  if (buffer == nullptr) return;
  const size_t size = rounded(bytes == 0 ? 1 : bytes);
  {
    std::lock_guard lock(mutex_);
    if (cached_bytes_ + size <= max_cached_bytes_) {
      free_[size].push_back(buffer);
      cached_bytes_ += size;
      return;
    }
  }
  std::free(buffer);
}

size_t BufferPool::cached_bytes() const {
  std::lock_guard lock(mutex_);
  return cached_bytes_;
}

BufferPool& BufferPool::frames() {
  // Leaked on purpose: buffers may be released by Python objects destroyed during interpreter
  // shutdown, after static destructors would have run.
  static BufferPool* pool = new BufferPool(size_t{256} << 20);
  return *pool;
}

}  // namespace dexloop
