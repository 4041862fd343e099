#include "dexloop/video/streaming_encoder.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstring>
#include <deque>
#include <exception>
#include <functional>
#include <mutex>
#include <thread>
#include <utility>
#include <vector>

#include "dexloop/error.hpp"

namespace dexloop::video {
namespace {

// Makes the entries of the folder holding `path` durable (the files a save_progress created), or a
// VideoEncodeError naming it.
void fsync_folder_of(const std::string& path) {
  const size_t slash = path.rfind('/');
  const std::string folder = slash == std::string::npos ? "." : path.substr(0, slash + 1);
  int folder_fd = ::open(folder.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  const bool synced = folder_fd >= 0 && ::fsync(folder_fd) == 0;
  const int error = errno;
  if (folder_fd >= 0) ::close(folder_fd);
  if (!synced) {
    throw VideoEncodeError(folder + ": cannot fsync the folder (" + std::strerror(error) + ")");
  }
}

// The raw frames file of save_progress (ProgressFramesHeader): made, filled frame by frame, then
// finished (its frame count written, the file fsynced), or a VideoEncodeError naming it.
class ProgressFramesFile {
 public:
  ProgressFramesFile(const std::string& path, const ProgressFramesHeader& header) : path_(path) {
    fd_ = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd_ < 0) fail("cannot create the file");
    uint8_t bytes[kProgressFramesHeaderBytes] = {};
    const uint32_t version = 1;
    const uint32_t input = header.input == InputFormat::kGray16 ? 1 : 0;
    const int32_t width = header.width;
    const int32_t height = header.height;
    std::memcpy(bytes, "DXLFRAME", 8);
    std::memcpy(bytes + 8, &version, 4);
    std::memcpy(bytes + 12, &input, 4);
    std::memcpy(bytes + 16, &width, 4);
    std::memcpy(bytes + 20, &height, 4);
    std::memcpy(bytes + kFrameCountOffset, &frames_, 8);
    std::memcpy(bytes + 32, &header.first_frame, 8);
    write_all(bytes, sizeof(bytes));
  }
  ~ProgressFramesFile() {
    if (fd_ >= 0) ::close(fd_);
  }
  ProgressFramesFile(const ProgressFramesFile&) = delete;
  ProgressFramesFile& operator=(const ProgressFramesFile&) = delete;

  void add_frame(const uint8_t* pixels, size_t bytes) {
    write_all(pixels, bytes);
    ++frames_;
  }

  void finish() {
    if (::pwrite(fd_, &frames_, sizeof(frames_), kFrameCountOffset) != sizeof(frames_)) {
      fail("writing the frame count failed");
    }
    if (::fsync(fd_) != 0) fail("fsync failed");
  }

 private:
  static constexpr off_t kFrameCountOffset = 24;

  void write_all(const uint8_t* data, size_t size) {
    while (size > 0) {
      ssize_t written = ::write(fd_, data, size);
      if (written < 0 && errno == EINTR) continue;
      if (written <= 0) fail("writing the file failed", written < 0 ? errno : ENOSPC);
      data += written;
      size -= static_cast<size_t>(written);
    }
  }

  [[noreturn]] void fail(const std::string& what, int error = errno) const {
    throw VideoEncodeError(path_ + ": " + what + " (" + std::strerror(error) + ")");
  }

  std::string path_;
  int fd_ = -1;
  int64_t frames_ = 0;
};

}  // namespace

struct StreamingEncoder::Impl {
  // The work the thread takes in order: a frame (its slot), a call run on the encoder, or the end
  // of an episode ended by end_episode_soon.
  struct Job {
    int slot = -1;                            // a frame in slots[slot], or
    std::function<void(VideoEncoder&)> call;  // a call made once the frames before it are encoded;
                                              // it marks itself done (see call()), or
    int64_t end = -1;                         // the ordinal of an episode end_episode_soon ended
    std::string progress_path;                // ... and where its progress files are
  };

  // A save_progress call waiting: the thread serves it between two jobs, once the episodes ended
  // before it are finished, so that every queued frame is the episode's.
  struct ProgressRequest {
    int64_t after_ends = 0;
    std::string progress_path;
    bool done = false;
    bool saved = false;
    std::exception_ptr outcome;
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
  std::exception_ptr failure;          // what stopped the thread's encoding; sticky
  bool failure_is_final = false;       // it ended a saved episode: discarding the next one keeps it
  ProgressRequest* request = nullptr;  // the save_progress call waiting, if any
  int64_t ends_queued = 0;             // episodes end_episode_soon ended
  int64_t ends_done = 0;               // ... whose end job ran
  std::vector<EncodedEpisode> ended;   // ... not yet taken by take_ended
  std::condition_variable end_done;    // an end job ran, or a progress request was served
  bool stopping = false;
  bool closed = false;
  EncoderQueueStats stats;
  std::thread thread;

  Impl(const std::string& file, const EncoderSettings& wanted, int queue_frames)
      : encoder(file, wanted), path(file), settings(wanted) {
    encoder.keep_held_frames(true);
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

  bool request_servable_locked() const {
    return request != nullptr && !request->done && ends_done == request->after_ends;
  }

  void run() {
    while (true) {
      Job job;
      {
        std::unique_lock lock(mutex);
        work_added.wait(lock, [&] {
          return (stopping && ends_done == ends_queued) || !jobs.empty() ||
                 request_servable_locked();
        });
        if (request_servable_locked()) {
          serve_progress_request(lock);
          continue;
        }
        // Stopping (the owner is going away; calls are synchronous, so none is queued) once the
        // episodes already ended are written: the frames queued after them belong to an episode
        // that will never end.
        if (stopping && ends_done == ends_queued) return;
        job = std::move(jobs.front());
        jobs.pop_front();
      }
      if (job.slot >= 0) {
        encode_slot(job.slot);
      } else if (job.end >= 0) {
        finish_ended_episode(job);
      } else {
        job.call(encoder);
        call_done.notify_all();
      }
    }
  }

  // Saves the requested episode's progress: its packets so far, then the frames the codec holds
  // and the queued ones, as raw frames. The queued slots stay untouched until encoded, so they are
  // read without the lock.
  void serve_progress_request(std::unique_lock<std::mutex>& lock) {
    ProgressRequest* serving = request;
    std::vector<int> queued;
    for (const Job& job : jobs) {
      if (job.slot >= 0) queued.push_back(job.slot);
    }
    const bool failed = failure != nullptr;
    lock.unlock();
    // Not saved (the episode must then be drained to be durable) when the codec reorders, or when
    // the progress cannot be written (a full disk: the fragment is far smaller than raw frames).
    bool saved = false;
    std::exception_ptr outcome;
    if (failed) {
      outcome = failure;
    } else {
      try {
        saved = save_progress(serving->progress_path, queued);
      } catch (const std::exception&) {
        saved = false;
      }
      if (!saved) {
        std::remove((serving->progress_path + ".packets.mp4").c_str());
        std::remove((serving->progress_path + ".frames").c_str());
      }
    }
    lock.lock();
    serving->saved = saved;
    serving->outcome = outcome;
    serving->done = true;
    lock.unlock();
    end_done.notify_all();
    lock.lock();
  }

  // False when the codec reorders frames (nothing written).
  bool save_progress(const std::string& progress_path, const std::vector<int>& queued) {
    std::unique_ptr<ProgressFramesFile> frames;
    auto write_frame = [&](const uint8_t* pixels, size_t bytes) {
      if (!frames) {
        ProgressFramesHeader header;
        header.input = settings.input;
        header.width = settings.width;
        header.height = settings.height;
        header.first_frame = encoder.frames_in_file();
        frames = std::make_unique<ProgressFramesFile>(progress_path + ".frames", header);
      }
      frames->add_frame(pixels, bytes);
    };
    if (encoder.write_progress(progress_path + ".packets.mp4", write_frame) < 0) return false;
    for (int slot : queued) write_frame(slots[static_cast<size_t>(slot)].data(), frame_bytes);
    if (frames) frames->finish();
    // Both files' entries in their folder, whichever of them the episode needed.
    fsync_folder_of(progress_path);
    return true;
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

  // The end job of an episode end_episode_soon ended: the codec drains, the fragment is written
  // and fsynced, and the progress files, no longer needed, are removed.
  void finish_ended_episode(const Job& job) {
    EncodedEpisode episode;
    std::exception_ptr outcome;
    {
      std::lock_guard lock(mutex);
      outcome = failure;
    }
    if (!outcome) {
      try {
        episode = encoder.end_episode();
        std::remove((job.progress_path + ".packets.mp4").c_str());
        std::remove((job.progress_path + ".frames").c_str());
      } catch (...) {
        outcome = std::current_exception();
      }
    }
    {
      std::lock_guard lock(mutex);
      if (outcome) {
        // A saved episode's frames did not reach the mp4 (its progress files keep them for a
        // repair): nothing after it may be written, and discarding an episode does not forgive it.
        failure = outcome;
        failure_is_final = true;
      } else {
        ended.push_back(episode);
      }
      ++ends_done;
    }
    end_done.notify_all();
    work_added.notify_all();  // a progress request may wait for this end
  }

  bool save_progress(const std::string& progress_path) {
    ProgressRequest waiting;
    waiting.progress_path = progress_path;
    {
      std::unique_lock lock(mutex);
      if (closed) throw VideoEncodeError(path + ": the encoder is closed");
      rethrow_failure_locked();
      waiting.after_ends = ends_queued;
      request = &waiting;
    }
    work_added.notify_one();
    std::unique_lock lock(mutex);
    end_done.wait(lock, [&] { return waiting.done; });
    request = nullptr;
    if (waiting.outcome) std::rethrow_exception(waiting.outcome);
    return waiting.saved;
  }

  void end_episode_soon(const std::string& progress_path) {
    {
      std::lock_guard lock(mutex);
      if (closed) throw VideoEncodeError(path + ": the encoder is closed");
      // A failure since save_progress (a queued frame that would not encode) is not thrown here:
      // the episode is saved in its progress files, and its end job makes the failure final,
      // thrown by take_ended and every later call.
      Job job;
      job.end = ends_queued++;
      job.progress_path = progress_path;
      jobs.push_back(std::move(job));
    }
    work_added.notify_one();
  }

  std::vector<EncodedEpisode> take_ended(bool wait) {
    std::unique_lock lock(mutex);
    if (wait) end_done.wait(lock, [&] { return ends_done == ends_queued; });
    if (failure_is_final) rethrow_failure_locked();
    return std::exchange(ended, {});
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
      Job job;
      job.slot = slot;
      jobs.push_back(std::move(job));
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
      Job job;
      job.call = [&](VideoEncoder& target) {
        try {
          {
            std::lock_guard inner(mutex);
            if (forgive_failure && !failure_is_final) failure = nullptr;
            rethrow_failure_locked();
          }
          body(target);
        } catch (...) {
          outcome = std::current_exception();
        }
        std::lock_guard inner(mutex);
        done = true;
      };
      jobs.push_back(std::move(job));
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

bool StreamingEncoder::save_progress(const std::string& progress_path) {
  return impl_->save_progress(progress_path);
}

void StreamingEncoder::end_episode_soon(const std::string& progress_path) {
  impl_->end_episode_soon(progress_path);
}

std::vector<EncodedEpisode> StreamingEncoder::take_ended(bool wait) {
  return impl_->take_ended(wait);
}

int StreamingEncoder::ends_pending() const {
  std::lock_guard lock(impl_->mutex);
  return static_cast<int>(impl_->ends_queued - impl_->ends_done);
}

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
