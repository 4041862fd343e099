#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <numeric>
#include <random>
#include <vector>

#include "dexloop/error.hpp"
#include "dexloop/video/video_decoder.hpp"
#include "test_videos.hpp"

namespace dexloop::video {
namespace {

using testing::channel_mean;
using testing::make_test_video;
using testing::painted_red;
using testing::TestVideo;

// Decodes every frame of `video` in a shuffled order and checks each is the frame it was asked for.
void expect_every_frame_identified(const TestVideo& video) {
  VideoDecoder decoder(video.path);
  std::vector<double> timestamps(video.frames);
  for (int f = 0; f < video.frames; ++f) timestamps[f] = static_cast<double>(f) / video.fps;
  std::vector<int> order(video.frames);
  std::iota(order.begin(), order.end(), 0);
  std::shuffle(order.begin(), order.end(), std::mt19937(7));
  std::vector<double> shuffled;
  for (int f : order) shuffled.push_back(timestamps[f]);
  const int64_t frame_bytes = rgb_frame_bytes(decoder.info());
  std::vector<uint8_t> frames(static_cast<size_t>(frame_bytes * video.frames));
  decoder.decode_at(shuffled, 1e-4, frames.data(), FrameLayout::kCHW);
  for (int i = 0; i < video.frames; ++i) {
    double red = channel_mean(frames.data() + i * frame_bytes, video.width, video.height, 0);
    EXPECT_NEAR(red, painted_red(order[i]), 4.0) << video.path << " frame " << order[i];
  }
}

TEST(VideoDecoder, ReportsStreamInfo) {
  TestVideo video = make_test_video("info_av1", "libsvtav1", 96, 64, 30, 20);
  VideoDecoder decoder(video.path);
  const StreamInfo& info = decoder.info();
  EXPECT_EQ(info.codec, "av1");
  EXPECT_EQ(info.width, 96);
  EXPECT_EQ(info.height, 64);
  EXPECT_NEAR(info.fps, 30.0, 1e-6);
  EXPECT_EQ(info.frame_count, 20);
  EXPECT_NEAR(info.duration_s, 20.0 / 30.0, 1.0 / 30.0);
  EXPECT_GT(info.time_base_den, 0);
  EXPECT_EQ(decoder.path(), video.path);
}

TEST(VideoDecoder, DecodesEveryAv1FrameInRandomOrder) {
  expect_every_frame_identified(make_test_video("random_av1", "libsvtav1", 64, 64, 30, 40));
}

TEST(VideoDecoder, DecodesEveryH264FrameWithBFramesAndLongGop) {
  expect_every_frame_identified(make_test_video("random_h264", "libx264", 64, 48, 25, 40, 12));
}

TEST(VideoDecoder, DecodesEveryHevcFrame) {
  expect_every_frame_identified(make_test_video("random_hevc", "libx265", 64, 48, 15, 30, 8));
}

TEST(VideoDecoder, ContinuesForwardWithoutSeekingWithinAGop) {
  TestVideo video = make_test_video("forward_h264", "libx264", 64, 48, 30, 60, 30);
  VideoDecoder decoder(video.path);
  std::vector<uint8_t> frame(static_cast<size_t>(rgb_frame_bytes(decoder.info())));
  std::vector<double> first = {10.0 / 30};
  decoder.decode_at(first, 1e-4, frame.data(), FrameLayout::kCHW);
  int64_t after_first = decoder.frames_decoded();
  std::vector<double> next = {12.0 / 30};
  decoder.decode_at(next, 1e-4, frame.data(), FrameLayout::kCHW);
  // Reaching frame 12 from frame 10 inside one GOP costs two more frames, not a re-decode from
  // the keyframe at frame 0.
  EXPECT_EQ(decoder.frames_decoded() - after_first, 2);
  EXPECT_NEAR(channel_mean(frame.data(), 64, 48, 0), painted_red(12), 4.0);
}

TEST(VideoDecoder, ChannelsLastIsTheTransposeOfChannelsFirst) {
  TestVideo video = make_test_video("layout_av1", "libsvtav1", 64, 64, 10, 6);
  VideoDecoder decoder(video.path);
  std::vector<double> at = {0.3};
  std::vector<uint8_t> chw(3 * 64 * 64), hwc(3 * 64 * 64);
  decoder.decode_at(at, 1e-4, chw.data(), FrameLayout::kCHW);
  decoder.decode_at(at, 1e-4, hwc.data(), FrameLayout::kHWC);
  int mismatches = 0;
  for (int y = 0; y < 64; ++y) {
    for (int x = 0; x < 64; ++x) {
      for (int c = 0; c < 3; ++c) {
        mismatches += chw[(c * 64 + y) * 64 + x] != hwc[(y * 64 + x) * 3 + c];
      }
    }
  }
  EXPECT_EQ(mismatches, 0);
}

TEST(VideoDecoder, RaisesFrameTimestampErrorNamingBothTimestamps) {
  TestVideo video = make_test_video("tolerance_av1", "libsvtav1", 64, 64, 10, 6);
  VideoDecoder decoder(video.path);
  std::vector<uint8_t> frame(3 * 64 * 64);
  std::vector<double> between = {0.34};
  try {
    decoder.decode_at(between, 1e-4, frame.data(), FrameLayout::kCHW);
    FAIL() << "expected FrameTimestampError";
  } catch (const FrameTimestampError& error) {
    std::string message = error.what();
    EXPECT_NE(message.find("0.340000"), std::string::npos) << message;
    EXPECT_NE(message.find("0.300000"), std::string::npos) << message;
    EXPECT_NE(message.find(video.path), std::string::npos) << message;
  }
  // The same query passes with a tolerance that admits the nearest frame.
  decoder.decode_at(between, 0.05, frame.data(), FrameLayout::kCHW);
  EXPECT_NEAR(channel_mean(frame.data(), 64, 64, 0), painted_red(3), 4.0);
  // Beyond the end: the nearest frame is the last one, 0.5 s, which is too far from 2.0 s.
  std::vector<double> beyond = {2.0};
  EXPECT_THROW(decoder.decode_at(beyond, 1e-4, frame.data(), FrameLayout::kCHW),
               FrameTimestampError);
}

TEST(VideoDecoder, MissingFileIsAVideoDecodeErrorNamingThePath) {
  try {
    VideoDecoder decoder("/nonexistent/dir/file-000.mp4");
    FAIL() << "expected VideoDecodeError";
  } catch (const VideoDecodeError& error) {
    EXPECT_NE(std::string(error.what()).find("/nonexistent/dir/file-000.mp4"), std::string::npos);
  }
}

TEST(VideoDecoder, TextFileIsAVideoDecodeError) {
  std::filesystem::path path = testing::scratch_dir() / "not_a_video.mp4";
  std::ofstream(path) << "this is not an mp4 file, just some text\n";
  EXPECT_THROW(VideoDecoder decoder(path.string()), VideoDecodeError);
}

TEST(VideoDecoder, TruncatedFileFailsWithATypedError) {
  TestVideo video = make_test_video("truncate_src", "libsvtav1", 64, 64, 30, 30);
  auto size = std::filesystem::file_size(video.path);
  for (double fraction : {0.1, 0.5, 0.9}) {
    std::filesystem::path truncated = testing::scratch_dir() / "truncated.mp4";
    std::filesystem::copy_file(video.path, truncated,
                               std::filesystem::copy_options::overwrite_existing);
    std::filesystem::resize_file(truncated, static_cast<uintmax_t>(size * fraction));
    try {
      VideoDecoder decoder(truncated.string());
      std::vector<uint8_t> frames(static_cast<size_t>(rgb_frame_bytes(decoder.info()) * 30));
      std::vector<double> all;
      for (int f = 0; f < 30; ++f) all.push_back(f / 30.0);
      decoder.decode_at(all, 1e-4, frames.data(), FrameLayout::kCHW);
      ADD_FAILURE() << "a file truncated to " << fraction << " decoded all 30 frames";
    } catch (const Error&) {
      // VideoDecodeError or FrameTimestampError: both say what is missing.
    }
  }
}

// Whether the ffmpeg tool, decoding every frame of `path`, reports any error.
bool ffmpeg_notices_damage(const std::string& path) {
  std::string log = path + ".log";
  std::string command = "ffmpeg -nostdin -v error -i '" + path + "' -f null - 2>'" + log + "'";
  int status = std::system(command.c_str());
  return status != 0 || std::filesystem::file_size(log) > 0;
}

TEST(VideoDecoder, NeverReturnsFramesTheDecoderConcealed) {
  // H.264 conceals broken slices by default; every byte flip FFmpeg notices must fail the decode
  // (naming the file and the queried time) or leave every frame the painted one.
  TestVideo video = make_test_video("conceal_h264", "libx264", 32, 32, 10, 12, 4);
  std::ifstream in(video.path, std::ios::binary);
  std::vector<char> original((std::istreambuf_iterator<char>(in)), {});
  std::filesystem::path damaged = testing::scratch_dir() / "conceal_damaged.mp4";
  int noticed = 0, raised = 0;
  for (size_t offset = original.size() / 8; offset < original.size(); offset += 37) {
    std::vector<char> bytes = original;
    bytes[offset] = static_cast<char>(bytes[offset] ^ 0xFF);
    std::ofstream(damaged, std::ios::binary | std::ios::trunc)
        .write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
    if (!ffmpeg_notices_damage(damaged.string())) continue;
    ++noticed;
    try {
      VideoDecoder decoder(damaged.string());
      std::vector<double> all;
      for (int f = 0; f < video.frames; ++f) all.push_back(f / 10.0);
      std::vector<uint8_t> frames(static_cast<size_t>(rgb_frame_bytes(decoder.info())) *
                                  all.size());
      decoder.decode_at(all, 1e-4, frames.data(), FrameLayout::kCHW);
      for (int f = 0; f < video.frames; ++f) {
        double red = channel_mean(frames.data() + f * 3 * 32 * 32, 32, 32, 0);
        EXPECT_NEAR(red, painted_red(f), 12.0) << "offset " << offset << " frame " << f;
      }
    } catch (const VideoDecodeError& error) {
      ++raised;
      EXPECT_NE(std::string(error.what()).find(damaged.string()), std::string::npos);
    } catch (const FrameTimestampError&) {
      ++raised;
    }
  }
  EXPECT_GT(noticed, 0);
  EXPECT_GT(raised, 0);
}

TEST(VideoDecoder, QueriesBeyondInt64TicksFindNoFrameInsteadOfOverflowing) {
  TestVideo video = make_test_video("tolerance_av1", "libsvtav1", 64, 64, 10, 6);
  VideoDecoder decoder(video.path);
  std::vector<uint8_t> frame(3 * 64 * 64);
  for (double far : {1e300, -1e300, 1e17}) {
    std::vector<double> query = {far};
    EXPECT_THROW(decoder.decode_at(query, 1e-4, frame.data(), FrameLayout::kCHW),
                 FrameTimestampError)
        << far;
  }
}

}  // namespace
}  // namespace dexloop::video
