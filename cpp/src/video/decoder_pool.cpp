#include "dexloop/video/decoder_pool.hpp"

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <exception>
#include <list>
#include <mutex>
#include <new>
#include <thread>
#include <unordered_set>
#include <utility>
#include <vector>

#include "dexloop/error.hpp"

namespace dexloop::video {
namespace {

// Requests of one file, in time order, decoded by one thread with one decoder.
struct Run {
  int32_t file = 0;
  std::vector<size_t> requests;
};

struct Job {
  std::span<const std::string> files;
  std::span<const FrameRequest> requests;
  std::vector<Run> runs;
  double tolerance_s = 0.0;
  FrameLayout layout = FrameLayout::kCHW;
};

// Open decoders of one thread, most recently used first.
class DecoderCache {
 public:
  explicit DecoderCache(size_t capacity) : capacity_(std::max<size_t>(1, capacity)) {}

  VideoDecoder& get(const std::string& path) {
    auto found = std::find_if(entries_.begin(), entries_.end(),
                              [&](const VideoDecoder& decoder) { return decoder.path() == path; });
    if (found != entries_.end()) {
      entries_.splice(entries_.begin(), entries_, found);
      return entries_.front();
    }
    VideoDecoder opened(path, /*threads=*/1);
    if (entries_.size() >= capacity_) {
      retired_frames_ += entries_.back().frames_decoded();
      entries_.pop_back();
    }
    entries_.push_front(std::move(opened));
    return entries_.front();
  }

  int64_t frames_decoded() const {
    int64_t total = retired_frames_;
    for (const VideoDecoder& decoder : entries_) total += decoder.frames_decoded();
    return total;
  }

 private:
  size_t capacity_;
  std::list<VideoDecoder> entries_;
  int64_t retired_frames_ = 0;
};

std::vector<Run> plan_runs(std::span<const FrameRequest> requests, size_t files, int threads) {
  std::vector<std::vector<size_t>> by_file(files);
  for (size_t i = 0; i < requests.size(); ++i) {
    by_file[static_cast<size_t>(requests[i].file)].push_back(i);
  }
  // Several runs per thread balance the load; longer runs keep more forward decoding in one
  // decoder.
  size_t run_length =
      std::max<size_t>(1, (requests.size() + 2 * threads - 1) / (2 * static_cast<size_t>(threads)));
  std::vector<Run> runs;
  for (size_t file = 0; file < by_file.size(); ++file) {
    std::vector<size_t>& indices = by_file[file];
    std::stable_sort(indices.begin(), indices.end(), [&](size_t a, size_t b) {
      return requests[a].timestamp_s < requests[b].timestamp_s;
    });
    for (size_t start = 0; start < indices.size(); start += run_length) {
      size_t end = std::min(indices.size(), start + run_length);
      runs.push_back(
          Run{static_cast<int32_t>(file), {indices.begin() + start, indices.begin() + end}});
    }
  }
  return runs;
}

// Every live pool of the process, for DecoderPool::close_all(). Allocated once and never freed, so
// pools destroyed during static destruction still find it.
struct PoolRegistry {
  std::mutex mutex;
  std::unordered_set<DecoderPool*> pools;
};

PoolRegistry& pool_registry() {
  static PoolRegistry* registry = new PoolRegistry;
  return *registry;
}

}  // namespace

struct DecoderPool::State {
  explicit State(int slots, int decoders_per_thread) {
    caches.reserve(slots);
    for (int i = 0; i < slots; ++i) caches.emplace_back(decoders_per_thread);
    for (int slot = 1; slot < slots; ++slot)
      workers.emplace_back([this, slot] { work_loop(slot); });
  }

  ~State() {
    {
      std::lock_guard lock(mutex);
      stopping = true;
    }
    wake.notify_all();
    for (std::thread& worker : workers) worker.join();
  }

  void work_loop(int slot) {
    uint64_t seen = 0;
    while (true) {
      Job* taken = nullptr;
      {
        std::unique_lock lock(mutex);
        wake.wait(lock, [&] { return stopping || generation != seen; });
        if (stopping) return;
        seen = generation;
        if (job == nullptr) continue;
        taken = job;
        ++active_workers;
      }
      process_runs(*taken, slot);
      {
        std::lock_guard lock(mutex);
        --active_workers;
      }
      done.notify_all();
    }
  }

  void process_runs(const Job& current, int slot) {
    while (true) {
      size_t index = next_run.fetch_add(1);
      if (index >= current.runs.size()) return;
      if (cancelled.load()) continue;
      try {
        decode_run(current, current.runs[index], caches[static_cast<size_t>(slot)]);
      } catch (...) {
        std::lock_guard lock(error_mutex);
        if (!error) error = std::current_exception();
        cancelled.store(true);
      }
    }
  }

  static void decode_run(const Job& current, const Run& run, DecoderCache& cache) {
    const std::string& path = current.files[static_cast<size_t>(run.file)];
    VideoDecoder& decoder = cache.get(path);
    const StreamInfo& info = decoder.info();
    std::vector<double> timestamps;
    std::vector<uint8_t*> outputs;
    timestamps.reserve(run.requests.size());
    outputs.reserve(run.requests.size());
    for (size_t index : run.requests) {
      const FrameRequest& request = current.requests[index];
      if (request.output != nullptr &&
          (request.height != info.height || request.width != info.width)) {
        throw VideoDecodeError(
            path + ": frames are " + std::to_string(info.height) + "x" +
            std::to_string(info.width) + " (height x width) but the dataset expects " +
            std::to_string(request.height) + "x" + std::to_string(request.width));
      }
      timestamps.push_back(request.timestamp_s);
      outputs.push_back(request.output);
    }
    decoder.decode_at(timestamps, current.tolerance_s, outputs, current.layout);
  }

  void run(Job& current) {
    {
      std::lock_guard lock(mutex);
      job = &current;
      next_run.store(0);
      cancelled.store(false);
      error = nullptr;
      ++generation;
    }
    wake.notify_all();
    process_runs(current, 0);
    {
      std::unique_lock lock(mutex);
      done.wait(lock, [&] { return active_workers == 0; });
      job = nullptr;
    }
    if (error) std::rethrow_exception(error);
  }

  int64_t frames_decoded() {
    std::lock_guard lock(call_mutex);
    int64_t total = 0;
    for (const DecoderCache& cache : caches) total += cache.frames_decoded();
    return total;
  }

  std::vector<DecoderCache> caches;  // one per thread; slot 0 is the calling thread's
  std::vector<std::thread> workers;
  std::mutex call_mutex;  // one decode() at a time

  std::mutex mutex;  // guards generation, job, stopping, active_workers
  std::condition_variable wake;
  std::condition_variable done;
  uint64_t generation = 0;
  Job* job = nullptr;
  bool stopping = false;
  int active_workers = 0;

  std::atomic<size_t> next_run{0};
  std::atomic<bool> cancelled{false};
  std::mutex error_mutex;
  std::exception_ptr error;
};

DecoderPool::DecoderPool(int threads, int decoders_per_thread)
    : state_(nullptr), decoders_per_thread_(decoders_per_thread), owner_pid_(::getpid()) {
  if (threads < 0) throw std::invalid_argument("DecoderPool: threads must be >= 0");
  if (decoders_per_thread < 1)
    throw std::invalid_argument("DecoderPool: decoders_per_thread must be >= 1");
  threads_ =
      threads > 0 ? threads : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  state_ = new State(threads_, decoders_per_thread_);
  std::lock_guard lock(pool_registry().mutex);
  pool_registry().pools.insert(this);
}

DecoderPool::~DecoderPool() {
  std::lock_guard lock(pool_registry().mutex);  // close_all() may be closing this pool right now
  pool_registry().pools.erase(this);
  // In a forked child the parent's threads do not exist: joining them would hang, so the state is
  // left alone (its memory is the child's copy and goes with the process).
  if (::getpid() == owner_pid_) delete state_;
}

int DecoderPool::threads() const { return threads_; }

int64_t DecoderPool::frames_decoded() const {
  if (::getpid() != owner_pid_) return 0;
  std::lock_guard guard(lifecycle_);
  return closed_frames_ + (state_ != nullptr ? state_->frames_decoded() : 0);
}

void DecoderPool::close() {
  if (::getpid() != owner_pid_) return;  // a forked child: decode() replaces the parent's state
  std::lock_guard guard(lifecycle_);
  if (state_ == nullptr) return;
  closed_frames_ += state_->frames_decoded();
  delete state_;  // joins the threads
  state_ = nullptr;
}

void DecoderPool::close_all() {
  std::lock_guard lock(pool_registry().mutex);
  for (DecoderPool* pool : pool_registry().pools) pool->close();
}

void DecoderPool::decode(std::span<const std::string> files, std::span<const FrameRequest> requests,
                         double tolerance_s, FrameLayout layout) {
  for (const FrameRequest& request : requests) {
    if (request.file < 0 || static_cast<size_t>(request.file) >= files.size()) {
      throw std::out_of_range("DecoderPool::decode: request names file " +
                              std::to_string(request.file) + " of " + std::to_string(files.size()));
    }
  }
  if (::getpid() != owner_pid_) {
    // A forked child: the parent's threads do not exist here, and a lock the parent held at the
    // fork would never be released, so both the state and the lock start anew.
    new (&lifecycle_) std::mutex();
    state_ = nullptr;
    closed_frames_ = 0;
    owner_pid_ = ::getpid();
  }
  std::lock_guard guard(lifecycle_);
  if (state_ == nullptr) state_ = new State(threads_, decoders_per_thread_);
  std::lock_guard lock(state_->call_mutex);
  Job job;
  job.files = files;
  job.requests = requests;
  job.runs = plan_runs(requests, files.size(), threads_);
  job.tolerance_s = tolerance_s;
  job.layout = layout;
  state_->run(job);
}

}  // namespace dexloop::video
