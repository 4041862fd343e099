#include <gtest/gtest.h>

#include <cstdint>

#include "dexloop/common/buffer_pool.hpp"

namespace dexloop {
namespace {

TEST(BufferPool, ReusesAReleasedBufferOfTheSameSize) {
  BufferPool pool(1 << 20);
  void* first = pool.acquire(1000);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(first) % 64, 0u);
  pool.release(first, 1000);
  EXPECT_EQ(pool.cached_bytes(), 1024u);
  EXPECT_EQ(pool.acquire(1000), first);
  EXPECT_EQ(pool.cached_bytes(), 0u);
  void* other = pool.acquire(5000);
  EXPECT_NE(other, first);
  pool.release(first, 1000);
  pool.release(other, 5000);
}

TEST(BufferPool, FreesWhatExceedsItsCacheLimit) {
  BufferPool pool(4096);
  void* a = pool.acquire(4096);
  void* b = pool.acquire(4096);
  pool.release(a, 4096);
  pool.release(b, 4096);  // over the limit: freed, not cached
  EXPECT_EQ(pool.cached_bytes(), 4096u);
  EXPECT_EQ(pool.acquire(4096), a);
  pool.release(a, 4096);
}

}  // namespace
}  // namespace dexloop
