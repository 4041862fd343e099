#include "dexloop/video/streaming_encoder.hpp"

#include <chrono>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <exception>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

#include "dexloop/error.hpp"

namespace dexloop::video {

struct StreamingEncoder::Impl {
  // The work the thread takes in order: a frame (its slot) or a call run on the encoder.
  struct Job {
    int slot = -1;                            // a frame in slots[slot], or
    std::function<void(VideoEncoder&)> call;  // a call made once the frames before it are encoded;
                                              // it marks itself done (see call())
  };

  VideoEncoder encoder;
  std::string path;
  EncoderSettings settings;
  size_t frame_bytes = 0;

  mutable std::mutex mutex;
  std::condition_variable slot_freed;  // the thread returned a slot, or stopped
  std::condition_variable work_added;  // a job was queued, or stopping
  std::condition_variable call_done;   // a call marked itself done
  std::vector<std::vector<uint8_t>> slots;
  std::vector<int> free_slots;
  std::deque<Job> jobs;
  std::exception_ptr failure;  // what stopped the thread's encoding; sticky
  bool stopping = false;
  bool closed = false;
  EncoderQueueStats stats;
  std::thread thread;

  Impl(const std::string& file, const EncoderSettings& wanted, int queue_frames)
      : encoder(file, wanted), path(file), settings(wanted) {
    if (queue_frames <= 0)
      throw VideoEncodeError(path + ": the frame queue needs at least one slot");
    frame_bytes =
        static_cast<size_t>(input_pixel_bytes(settings.input)) * settings.width * settings.height;
    slots.assign(static_cast<size_t>(queue_frames), std::vector<uint8_t>(frame_bytes));
    for (int i = queue_frames - 1; i >= 0; --i) free_slots.push_back(i);
    stats.capacity = queue_frames;
    thread = std::thread([this] { run(); });
  }

  ~Impl() {
    {
      std::lock_guard lock(mutex);
      stopping = true;
    }
    work_added.notify_all();
    if (thread.joinable()) thread.join();
  }

  void run() {
    while (true) {
      Job job;
      {
        std::unique_lock lock(mutex);
        work_added.wait(lock, [&] { return stopping || !jobs.empty(); });
        // Stopping (the owner is going away; calls are synchronous, so none is queued): the frames
        // still queued belong to an episode that will never end.
        if (stopping) return;
        job = std::move(jobs.front());
        jobs.pop_front();
      }
      if (job.slot >= 0) {
        encode_slot(job.slot);
      } else {
        job.call(encoder);
        call_done.notify_all();
      }
    }
  }

  void encode_slot(int slot) {
    bool failed;
    {
      std::lock_guard lock(mutex);
      failed = failure != nullptr;
    }
    if (!failed) {
      try {
        encoder.add_frame(slots[static_cast<size_t>(slot)].data());
      } catch (...) {
        std::lock_guard lock(mutex);
        failure = std::current_exception();
      }
    }
    {
      std::lock_guard lock(mutex);
      free_slots.push_back(slot);
      ++stats.frames_encoded;
    }
    slot_freed.notify_one();
  }

  void rethrow_failure_locked() const {
    if (failure) std::rethrow_exception(failure);
  }

  void add_frame(const uint8_t* pixels, int64_t row_stride) {
    const size_t row = static_cast<size_t>(input_pixel_bytes(settings.input)) * settings.width;
    if (row_stride == 0) row_stride = static_cast<int64_t>(row);
    if (row_stride < static_cast<int64_t>(row)) {
      throw VideoEncodeError(
          path + ": row stride " + std::to_string(row_stride) + " is shorter than a row of " +
          std::to_string(settings.width) +
          (settings.input == InputFormat::kGray16 ? " uint16 samples" : " RGB pixels"));
    }
    int slot;
    {
      std::unique_lock lock(mutex);
      if (closed) throw VideoEncodeError(path + ": the encoder is closed");
      rethrow_failure_locked();
      if (free_slots.empty()) {
        ++stats.full_waits;
        auto start = std::chrono::steady_clock::now();
        slot_freed.wait(lock, [&] { return !free_slots.empty() || failure != nullptr; });
        stats.waited_s +=
            std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
        rethrow_failure_locked();
      }
      slot = free_slots.back();
      free_slots.pop_back();
    }
    // The copy runs outside the lock: the slot belongs to this call until it is queued.
    uint8_t* target = slots[static_cast<size_t>(slot)].data();
    for (int y = 0; y < settings.height; ++y) {
      std::memcpy(target + y * row, pixels + y * row_stride, row);
    }
    {
      std::lock_guard lock(mutex);
      jobs.push_back(Job{slot, {}});
      ++stats.frames_added;
      int depth = stats.capacity - static_cast<int>(free_slots.size());
      if (depth > stats.max_depth) stats.max_depth = depth;
    }
    work_added.notify_one();
  }

  // Runs `body` on the encoding thread after every frame queued before it, and waits for it. A
  // failure of the thread (earlier frames) or of `body` is thrown here; with `forgive_failure` an
  // earlier frame's failure is cleared instead (the frames it concerned are being discarded).
  template <typename Body>
  void call(Body body, bool forgive_failure = false) {
    std::exception_ptr outcome;
    bool done = false;  // set by the job, under the mutex, once it has run
    {
      std::unique_lock lock(mutex);
      if (closed) throw VideoEncodeError(path + ": the encoder is closed");
      jobs.push_back(Job{-1, [&](VideoEncoder& target) {
                           try {
                             {
                               std::lock_guard inner(mutex);
                               if (forgive_failure) failure = nullptr;
                               rethrow_failure_locked();
                             }
                             body(target);
                           } catch (...) {
                             outcome = std::current_exception();
                           }
                           std::lock_guard inner(mutex);
                           done = true;
                         }});
    }
    work_added.notify_one();
    {
      std::unique_lock lock(mutex);
      call_done.wait(lock, [&] { return done; });
    }
    if (outcome) std::rethrow_exception(outcome);
  }
};

StreamingEncoder::StreamingEncoder(const std::string& path, const EncoderSettings& settings,
                                   int queue_frames)
    : impl_(std::make_unique<Impl>(path, settings, queue_frames)) {}

StreamingEncoder::~StreamingEncoder() = default;

void StreamingEncoder::add_frame(const uint8_t* pixels, int64_t row_stride) {
  impl_->add_frame(pixels, row_stride);
}

EncodedEpisode StreamingEncoder::end_episode() {
  EncodedEpisode episode;
  impl_->call([&](VideoEncoder& encoder) { episode = encoder.end_episode(); });
  return episode;
}

void StreamingEncoder::discard_episode() {
  // A failure while encoding the discarded frames concerns only them: the file is still whole, and
  // the next episode gets a fresh codec instance.
  impl_->call([](VideoEncoder& encoder) { encoder.discard_episode(); }, /*forgive_failure=*/true);
}

void StreamingEncoder::close() {
  impl_->call([](VideoEncoder& encoder) { encoder.close(); });
  std::lock_guard lock(impl_->mutex);
  impl_->closed = true;
}

EncoderQueueStats StreamingEncoder::stats() const {
  std::lock_guard lock(impl_->mutex);
  return impl_->stats;
}

const std::string& StreamingEncoder::path() const { return impl_->path; }
int StreamingEncoder::width() const { return impl_->settings.width; }
int StreamingEncoder::height() const { return impl_->settings.height; }
InputFormat StreamingEncoder::input() const { return impl_->settings.input; }

}  // namespace dexloop::video
