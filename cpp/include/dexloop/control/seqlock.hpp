// One writer publishes a value, any number of readers copy it, and the writer never waits: a
// sequence lock. The writer makes the sequence odd, writes, and makes it even; a reader retries
// when the sequence was odd or changed while it copied. The words are copied with relaxed atomic
// operations, so a torn copy is detected instead of being undefined behaviour.
#pragma once

#include <atomic>
#include <cstdint>
#include <cstring>
#include <type_traits>

namespace dexloop::control {

template <typename T>
class SeqLock {
  static_assert(std::is_trivially_copyable_v<T>);
  static constexpr size_t kWords = (sizeof(T) + 7) / 8;

 public:
  // Writer side (one thread).
  void store(const T& value) {
    uint64_t words[kWords] = {};
    std::memcpy(words, &value, sizeof(T));
    const uint64_t seq = seq_.load(std::memory_order_relaxed);
    seq_.store(seq + 1, std::memory_order_relaxed);
    std::atomic_thread_fence(std::memory_order_release);
    for (size_t i = 0; i < kWords; ++i) data_[i].store(words[i], std::memory_order_relaxed);
    seq_.store(seq + 2, std::memory_order_release);
  }

  // Reader side (any thread).
  T load() const {
    uint64_t words[kWords];
    for (;;) {
      const uint64_t before = seq_.load(std::memory_order_acquire);
      if (before & 1) continue;
      for (size_t i = 0; i < kWords; ++i) words[i] = data_[i].load(std::memory_order_relaxed);
      std::atomic_thread_fence(std::memory_order_acquire);
      if (seq_.load(std::memory_order_relaxed) == before) break;
    }
    T value;
    std::memcpy(&value, words, sizeof(T));
    return value;
  }

 private:
  std::atomic<uint64_t> seq_{0};
  std::atomic<uint64_t> data_[kWords] = {};
};

}  // namespace dexloop::control
