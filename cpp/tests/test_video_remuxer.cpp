// remux_segments: episode ranges of mp4 files stream-copied into one new file decode to the very
// pixels of their sources, at continuous timestamps; ranges that cannot be copied are typed errors
// that leave no output behind.
#include <gtest/gtest.h>

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "dexloop/error.hpp"
#include "dexloop/video/video_decoder.hpp"
#include "dexloop/video/video_encoder.hpp"
#include "dexloop/video/video_remuxer.hpp"
#include "test_videos.hpp"

namespace dexloop::video {
namespace {

constexpr int kFps = 10;

std::string scratch(const std::string& name) {
  std::filesystem::path path = testing::scratch_dir() / ("remux_" + name + ".mp4");
  std::filesystem::remove(path);
  return path.string();
}

// An mp4 of episodes written by VideoEncoder (a fresh codec per episode, so each starts on a
// keyframe); episode e holds painted frames first_paint[e] ... first_paint[e] + lengths[e] - 1.
std::string encode_episodes(const std::string& name, const std::vector<int>& lengths,
                            int first_paint, int width = 64, int height = 64) {
  const std::string path = scratch(name);
  EncoderSettings settings;
  settings.codec = "libx264";
  settings.width = width;
  settings.height = height;
  settings.fps = kFps;
  settings.options = {{"preset", "veryfast"}};
  VideoEncoder encoder(path, settings);
  int paint = first_paint;
  for (int length : lengths) {
    for (int f = 0; f < length; ++f)
      encoder.add_frame(testing::paint(paint++, width, height).data());
    encoder.end_episode();
  }
  encoder.close();
  return path;
}

// The decoded RGB frames of `path` at frames first .. first + count - 1.
std::vector<std::vector<uint8_t>> decode_frames(const std::string& path, int first, int count) {
  VideoDecoder decoder(path);
  const size_t bytes = rgb_frame_bytes(decoder.info());
  std::vector<double> times;
  for (int f = first; f < first + count; ++f) times.push_back(f / static_cast<double>(kFps));
  std::vector<uint8_t> all(times.size() * bytes);
  decoder.decode_at(times, 1e-4, all.data(), FrameLayout::kHWC);
  std::vector<std::vector<uint8_t>> frames;
  for (size_t i = 0; i < times.size(); ++i) {
    frames.emplace_back(all.begin() + static_cast<std::ptrdiff_t>(i * bytes),
                        all.begin() + static_cast<std::ptrdiff_t>((i + 1) * bytes));
  }
  return frames;
}

TEST(VideoRemuxer, JoinsEpisodeRangesWithTheirExactPixels) {
  const std::string a = encode_episodes("a", {4, 3}, 0);  // frames 0-3 and 4-6
  const std::string b = encode_episodes("b", {5}, 20);
  const std::string out = scratch("joined");
  std::vector<RemuxedSegment> placed =
      remux_segments({{a, 0.4, std::nullopt}, {b, 0.0, std::nullopt}, {a, 0.0, 0.4}}, out);
  ASSERT_EQ(placed.size(), 3u);
  EXPECT_EQ(placed[0].frames, 3);
  EXPECT_EQ(placed[1].frames, 5);
  EXPECT_EQ(placed[2].frames, 4);
  EXPECT_DOUBLE_EQ(placed[0].from_timestamp, 0.0);
  EXPECT_DOUBLE_EQ(placed[0].to_timestamp, 0.3);
  EXPECT_DOUBLE_EQ(placed[1].from_timestamp, 0.3);
  EXPECT_DOUBLE_EQ(placed[2].from_timestamp, placed[1].to_timestamp);
  EXPECT_NEAR(placed[2].to_timestamp, 1.2, 1e-12);

  VideoDecoder decoder(out);
  EXPECT_EQ(decoder.info().width, 64);
  std::vector<std::vector<uint8_t>> joined = decode_frames(out, 0, 12);
  std::vector<std::vector<uint8_t>> expected = decode_frames(a, 4, 3);
  for (auto& frame : decode_frames(b, 0, 5)) expected.push_back(frame);
  for (auto& frame : decode_frames(a, 0, 4)) expected.push_back(frame);
  ASSERT_EQ(joined.size(), expected.size());
  for (size_t i = 0; i < joined.size(); ++i) EXPECT_EQ(joined[i], expected[i]) << "frame " << i;
  // Nothing lies after the last segment.
  EXPECT_THROW(decode_frames(out, 12, 1), FrameTimestampError);
  EXPECT_FALSE(std::filesystem::exists(out + ".remux.tmp"));
}

TEST(VideoRemuxer, WholeFilesAreCopiedEndToEnd) {
  const std::string a = encode_episodes("whole_a", {3, 2}, 0);
  const std::string out = scratch("whole");
  std::vector<RemuxedSegment> placed =
      remux_segments({{a, 0.0, std::nullopt}, {a, 0.0, std::nullopt}}, out);
  EXPECT_EQ(placed[0].frames, 5);
  EXPECT_DOUBLE_EQ(placed[1].from_timestamp, 0.5);
  EXPECT_DOUBLE_EQ(placed[1].to_timestamp, 1.0);
  EXPECT_EQ(decode_frames(out, 5, 5), decode_frames(a, 0, 5));
}

TEST(VideoRemuxer, ARangeNotStartingOnAKeyframeIsRefused) {
  // The ffmpeg tool's x264 with a GOP of 4 (and keyframes at scene cuts): frame 2 is not one.
  testing::TestVideo video = testing::make_test_video("remux_gop4", "libx264", 64, 64, kFps, 8, 4);
  const std::string out = scratch("not_key");
  try {
    remux_segments({{video.path, 0.2, std::nullopt}}, out);
    FAIL() << "expected VideoRemuxError";
  } catch (const VideoRemuxError& error) {
    EXPECT_NE(std::string(error.what()).find("not a keyframe"), std::string::npos) << error.what();
  }
  EXPECT_FALSE(std::filesystem::exists(out));
  EXPECT_FALSE(std::filesystem::exists(out + ".remux.tmp"));
  // The same file from its keyframe at frame 4, B-frames (decode order != display order) and all.
  const std::string from_key = scratch("from_key");
  std::vector<RemuxedSegment> placed =
      remux_segments({{video.path, 0.4, std::nullopt}, {video.path, 0.0, std::nullopt}}, from_key);
  EXPECT_EQ(placed[0].frames, 4);
  EXPECT_EQ(placed[1].frames, 8);
  std::vector<std::vector<uint8_t>> expected = decode_frames(video.path, 4, 4);
  for (auto& frame : decode_frames(video.path, 0, 8)) expected.push_back(frame);
  EXPECT_EQ(decode_frames(from_key, 0, 12), expected);
}

TEST(VideoRemuxer, StreamsOfOtherParametersAreRefused) {
  const std::string a = encode_episodes("size_a", {2}, 0, 64, 64);
  const std::string b = encode_episodes("size_b", {2}, 0, 32, 64);
  const std::string out = scratch("sizes");
  try {
    remux_segments({{a, 0.0, std::nullopt}, {b, 0.0, std::nullopt}}, out);
    FAIL() << "expected VideoRemuxError";
  } catch (const VideoRemuxError& error) {
    EXPECT_NE(std::string(error.what()).find("size 32x64 instead of 64x64"), std::string::npos)
        << error.what();
  }
  EXPECT_FALSE(std::filesystem::exists(out));
}

TEST(VideoRemuxer, MissingDamagedAndEmptySourcesAreRefused) {
  const std::string a = encode_episodes("damage", {6}, 0);
  const std::string out = scratch("damaged_out");
  EXPECT_THROW(remux_segments({{scratch("absent"), 0.0, std::nullopt}}, out), VideoRemuxError);
  // Cut short: the index (at the front) lists frames the file no longer holds.
  const std::string cut = scratch("cut");
  std::filesystem::copy_file(a, cut);
  std::filesystem::resize_file(cut, std::filesystem::file_size(a) * 2 / 3);
  EXPECT_THROW(remux_segments({{cut, 0.0, std::nullopt}}, out), VideoRemuxError);
  // Not a video at all.
  const std::string text = scratch("text");
  std::ofstream(text) << "not an mp4";
  EXPECT_THROW(remux_segments({{text, 0.0, std::nullopt}}, out), VideoRemuxError);
  // No frame in the range, and ranges that are not ranges.
  EXPECT_THROW(remux_segments({{a, 5.0, std::nullopt}}, out), VideoRemuxError);
  EXPECT_THROW(remux_segments({{a, 0.3, 0.3}}, out), VideoRemuxError);
  EXPECT_THROW(remux_segments({{a, -1.0, std::nullopt}}, out), VideoRemuxError);
  EXPECT_THROW(remux_segments({}, out), VideoRemuxError);
  EXPECT_FALSE(std::filesystem::exists(out));
  // A VideoRemuxError is a VideoEncodeError.
  EXPECT_THROW(remux_segments({{a, 5.0, std::nullopt}}, out), VideoEncodeError);
}

TEST(VideoRemuxer, NeverOverwritesAFile) {
  const std::string a = encode_episodes("exists_src", {2}, 0);
  const std::string out = scratch("exists");
  std::ofstream(out) << "keep me";
  EXPECT_THROW(remux_segments({{a, 0.0, std::nullopt}}, out), VideoRemuxError);
  std::ifstream kept(out);
  std::string content;
  std::getline(kept, content);
  EXPECT_EQ(content, "keep me");
}

}  // namespace
}  // namespace dexloop::video
