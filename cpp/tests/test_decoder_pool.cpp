#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <random>
#include <string>
#include <vector>

#include "dexloop/error.hpp"
#include "dexloop/video/decoder_pool.hpp"
#include "test_videos.hpp"

namespace dexloop::video {
namespace {

using testing::make_test_video;
using testing::TestVideo;

struct Batch {
  std::vector<std::string> files;
  std::vector<FrameRequest> requests;
  std::vector<std::vector<uint8_t>> outputs;  // one frame each
};

// Random requests over two cameras of different sizes, each request with its own output buffer.
Batch random_batch(const TestVideo& a, const TestVideo& b, int count, unsigned seed) {
  Batch batch;
  batch.files = {a.path, b.path};
  std::mt19937 random(seed);
  for (int n = 0; n < count; ++n) {
    const TestVideo& video = n % 2 == 0 ? a : b;
    int frame = std::uniform_int_distribution<int>(0, video.frames - 1)(random);
    batch.outputs.emplace_back(static_cast<size_t>(3 * video.width * video.height));
    batch.requests.push_back(FrameRequest{n % 2, static_cast<double>(frame) / video.fps, nullptr,
                                          video.height, video.width});
  }
  for (size_t n = 0; n < batch.requests.size(); ++n)
    batch.requests[n].output = batch.outputs[n].data();
  return batch;
}

class DecoderPoolTest : public ::testing::Test {
 protected:
  TestVideo front = make_test_video("pool_front", "libsvtav1", 96, 64, 30, 60);
  TestVideo wrist = make_test_video("pool_wrist", "libx264", 40, 32, 30, 45, 6);
};

TEST_F(DecoderPoolTest, MatchesOneDecoderPerRequest) {
  Batch batch = random_batch(front, wrist, 64, 1);
  DecoderPool pool(3);
  pool.decode(batch.files, batch.requests, 1e-4, FrameLayout::kCHW);
  for (size_t n = 0; n < batch.requests.size(); ++n) {
    const FrameRequest& request = batch.requests[n];
    VideoDecoder reference(batch.files[request.file]);
    std::vector<uint8_t> expected(batch.outputs[n].size());
    std::vector<double> at = {request.timestamp_s};
    reference.decode_at(at, 1e-4, expected.data(), FrameLayout::kCHW);
    EXPECT_EQ(batch.outputs[n], expected) << "request " << n;
  }
  EXPECT_GE(pool.frames_decoded(), 64);
}

TEST_F(DecoderPoolTest, SameResultWithOneOrManyThreadsAcrossBatches) {
  DecoderPool single(1), many(4);
  for (unsigned seed = 0; seed < 4; ++seed) {
    Batch one = random_batch(front, wrist, 40, seed);
    Batch other = random_batch(front, wrist, 40, seed);
    single.decode(one.files, one.requests, 1e-4, FrameLayout::kCHW);
    many.decode(other.files, other.requests, 1e-4, FrameLayout::kCHW);
    EXPECT_EQ(one.outputs, other.outputs) << "seed " << seed;
  }
}

TEST_F(DecoderPoolTest, PropagatesTheFirstErrorAndStaysUsable) {
  DecoderPool pool(2);
  Batch batch = random_batch(front, wrist, 16, 3);
  batch.requests[5].timestamp_s = 100.0;  // far beyond both videos
  EXPECT_THROW(pool.decode(batch.files, batch.requests, 1e-4, FrameLayout::kCHW),
               FrameTimestampError);
  Batch missing = random_batch(front, wrist, 8, 4);
  missing.files[1] = "/nonexistent/wrist.mp4";
  EXPECT_THROW(pool.decode(missing.files, missing.requests, 1e-4, FrameLayout::kCHW),
               VideoDecodeError);
  Batch good = random_batch(front, wrist, 16, 5);
  EXPECT_NO_THROW(pool.decode(good.files, good.requests, 1e-4, FrameLayout::kCHW));
}

TEST_F(DecoderPoolTest, RejectsOutputsOfAnotherFrameSize) {
  DecoderPool pool(2);
  Batch batch = random_batch(front, wrist, 4, 6);
  batch.requests[0].width = front.width + 2;
  EXPECT_THROW(pool.decode(batch.files, batch.requests, 1e-4, FrameLayout::kCHW), VideoDecodeError);
  batch.requests[0].width = front.width;
  batch.requests[1].file = 7;
  EXPECT_THROW(pool.decode(batch.files, batch.requests, 1e-4, FrameLayout::kCHW),
               std::out_of_range);
}

TEST_F(DecoderPoolTest, WorksInAForkedChild) {
  DecoderPool pool(3);
  Batch warm = random_batch(front, wrist, 24, 8);
  pool.decode(warm.files, warm.requests, 1e-4, FrameLayout::kCHW);
  pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    // The parent's threads and open files are not usable here: the pool must start fresh ones.
    Batch batch = random_batch(front, wrist, 24, 9);
    Batch again = random_batch(front, wrist, 24, 9);
    try {
      pool.decode(batch.files, batch.requests, 1e-4, FrameLayout::kCHW);
      DecoderPool reference(1);
      reference.decode(again.files, again.requests, 1e-4, FrameLayout::kCHW);
    } catch (...) {
      _exit(2);
    }
    _exit(batch.outputs == again.outputs ? 0 : 1);
  }
  int status = 0;
  ASSERT_EQ(waitpid(child, &status, 0), child);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0);
  // The parent's pool is unaffected by the child.
  Batch after = random_batch(front, wrist, 24, 10);
  EXPECT_NO_THROW(pool.decode(after.files, after.requests, 1e-4, FrameLayout::kCHW));
}

TEST_F(DecoderPoolTest, CloseJoinsAndTheNextDecodeStartsAgain) {
  DecoderPool pool(3);
  Batch first = random_batch(front, wrist, 24, 11);
  pool.decode(first.files, first.requests, 1e-4, FrameLayout::kCHW);
  const int64_t decoded = pool.frames_decoded();
  pool.close();
  pool.close();                               // closing a closed pool does nothing
  EXPECT_EQ(pool.frames_decoded(), decoded);  // the closed threads' work still counts
  Batch again = random_batch(front, wrist, 24, 11);
  pool.decode(again.files, again.requests, 1e-4, FrameLayout::kCHW);
  EXPECT_EQ(again.outputs, first.outputs);
  DecoderPool other(2);
  DecoderPool::close_all();  // every live pool, idle ones included; both stay usable
  Batch after = random_batch(front, wrist, 24, 12);
  EXPECT_NO_THROW(other.decode(after.files, after.requests, 1e-4, FrameLayout::kCHW));
  EXPECT_NO_THROW(pool.decode(after.files, after.requests, 1e-4, FrameLayout::kCHW));
}

}  // namespace
}  // namespace dexloop::video
