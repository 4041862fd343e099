// VideoEncoder and StreamingEncoder round trips through VideoDecoder: episodes appended to one mp4
// at exact timestamps, readable after every end_episode, and typed errors for bad settings.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "dexloop/error.hpp"
#include "dexloop/video/decoder_pool.hpp"
#include "dexloop/video/streaming_encoder.hpp"
#include "dexloop/video/video_decoder.hpp"
#include "dexloop/video/video_encoder.hpp"
#include "test_videos.hpp"

namespace dexloop::video {
namespace {

constexpr int kWidth = 64;
constexpr int kHeight = 64;
constexpr int kFps = 10;

std::string fresh_path(const std::string& name) {
  std::filesystem::path path = testing::scratch_dir() / (name + ".mp4");
  std::filesystem::remove(path);
  return path.string();
}

EncoderSettings settings(const std::string& codec) {
  EncoderSettings s;
  s.codec = codec;
  s.width = kWidth;
  s.height = kHeight;
  s.fps = kFps;
  if (codec == "libsvtav1") s.options = {{"crf", "30"}, {"preset", "12"}};
  if (codec == "libx264") s.options = {{"preset", "veryfast"}};
  return s;
}

// The red level of the middle pixel of each decoded frame at `times`.
std::vector<int> decoded_reds(const std::string& path, const std::vector<double>& times) {
  VideoDecoder decoder(path);
  std::vector<uint8_t> frames(times.size() * rgb_frame_bytes(decoder.info()));
  decoder.decode_at(times, 1e-4, frames.data(), FrameLayout::kHWC);
  std::vector<int> reds;
  for (size_t i = 0; i < times.size(); ++i) {
    const size_t middle = (static_cast<size_t>(kHeight / 2) * kWidth + kWidth / 2) * 3;
    reds.push_back(frames[i * rgb_frame_bytes(decoder.info()) + middle]);
  }
  return reds;
}

// The presentation times of the first `count` frames of a file.
std::vector<double> first_times(int count) {
  std::vector<double> times;
  for (int f = 0; f < count; ++f) times.push_back(f / static_cast<double>(kFps));
  return times;
}

std::vector<int> first_frames(int count) {
  std::vector<int> frames;
  for (int f = 0; f < count; ++f) frames.push_back(f);
  return frames;
}

void expect_painted(const std::vector<int>& reds, const std::vector<int>& frames) {
  ASSERT_EQ(reds.size(), frames.size());
  for (size_t i = 0; i < reds.size(); ++i) {
    EXPECT_NEAR(reds[i], testing::painted_red(frames[i]), 8) << "frame " << i;
  }
}

TEST(VideoEncoder, AppendsEpisodesReadableAfterEachEnds) {
  for (const std::string codec : {"libsvtav1", "libx264"}) {
    const std::string path = fresh_path("encoder_" + codec);
    VideoEncoder encoder(path, settings(codec));
    for (int f = 0; f < 4; ++f) encoder.add_frame(testing::paint(f, kWidth, kHeight).data());
    EncodedEpisode first = encoder.end_episode();
    EXPECT_EQ(first.first_frame, 0);
    EXPECT_EQ(first.frames, 4);
    EXPECT_DOUBLE_EQ(first.to_timestamp, 0.4);
    // The fragmented file already holds the ended episode.
    expect_painted(decoded_reds(path, first_times(4)), first_frames(4));
    for (int f = 4; f < 9; ++f) encoder.add_frame(testing::paint(f, kWidth, kHeight).data());
    EncodedEpisode second = encoder.end_episode();
    EXPECT_EQ(second.first_frame, 4);
    EXPECT_DOUBLE_EQ(second.from_timestamp, 0.4);
    encoder.close();
    expect_painted(decoded_reds(path, first_times(9)), first_frames(9));
    EXPECT_EQ(VideoDecoder(path).info().frame_count, 9) << codec;
  }
}

TEST(StreamingEncoder, EncodesQueuedFramesInOrderAndCountsWaits) {
  const std::string path = fresh_path("streaming_encoder");
  StreamingEncoder encoder(path, settings("libx264"), /*queue_frames=*/1);
  for (int f = 0; f < 12; ++f) encoder.add_frame(testing::paint(f, kWidth, kHeight).data());
  EncodedEpisode episode = encoder.end_episode();
  EXPECT_EQ(episode.frames, 12);
  EncoderQueueStats stats = encoder.stats();
  EXPECT_EQ(stats.frames_encoded, 12);
  EXPECT_GT(stats.full_waits, 0);
  encoder.close();
  expect_painted(decoded_reds(path, first_times(12)), first_frames(12));
}

TEST(VideoEncoder, WriteProgressSavesThePacketsSoFarAndTheFramesTheCodecHolds) {
  const std::string path = fresh_path("progress");
  const std::string packets = fresh_path("progress_packets");
  VideoEncoder encoder(path, settings("libsvtav1"));
  encoder.keep_held_frames(true);
  for (int f = 0; f < 3; ++f) encoder.add_frame(testing::paint(f, kWidth, kHeight).data());
  encoder.end_episode();
  for (int f = 3; f < 15; ++f) encoder.add_frame(testing::paint(f, kWidth, kHeight).data());
  std::vector<std::vector<uint8_t>> held;
  const int64_t encoded = encoder.write_progress(packets, [&](const uint8_t* pixels, size_t bytes) {
    held.emplace_back(pixels, pixels + bytes);
  });
  // SVT-AV1's lookahead holds the last frames back; the others are out as packets.
  ASSERT_GE(encoded, 0);
  EXPECT_EQ(encoded + static_cast<int64_t>(held.size()), 12);
  EXPECT_FALSE(held.empty());
  for (size_t i = 0; i < held.size(); ++i) {
    EXPECT_EQ(held[i], testing::paint(static_cast<int>(3 + encoded + i), kWidth, kHeight));
  }
  if (encoded > 0) {
    EXPECT_EQ(complete_frames(packets), encoded);
    std::vector<int> frames;
    for (int f = 3; f < 3 + encoded; ++f) frames.push_back(f);
    expect_painted(decoded_reds(packets, first_times(static_cast<int>(encoded))), frames);
  }
  // The file still holds only the ended episode; ending this one writes all of it.
  EXPECT_EQ(complete_frames(path), 3);
  EXPECT_EQ(encoder.end_episode().frames, 12);
  encoder.close();
  expect_painted(decoded_reds(path, first_times(15)), first_frames(15));
}

TEST(StreamingEncoder, EndEpisodeSoonWritesEachFragmentInOrder) {
  const std::string path = fresh_path("streaming_soon");
  const std::string progress = (testing::scratch_dir() / "streaming_soon_progress").string();
  StreamingEncoder encoder(path, settings("libsvtav1"));
  for (int episode = 0; episode < 3; ++episode) {
    for (int f = 0; f < 5; ++f) {
      encoder.add_frame(testing::paint(episode * 5 + f, kWidth, kHeight).data());
    }
    EXPECT_TRUE(encoder.save_progress(progress + std::to_string(episode)));
    EXPECT_TRUE(std::filesystem::exists(progress + std::to_string(episode) + ".frames"));
    encoder.end_episode_soon(progress + std::to_string(episode));
  }
  std::vector<EncodedEpisode> ended = encoder.take_ended(/*wait=*/true);
  ASSERT_EQ(ended.size(), 3U);
  for (int episode = 0; episode < 3; ++episode) {
    EXPECT_EQ(ended[episode].first_frame, episode * 5);
    EXPECT_EQ(ended[episode].frames, 5);
    EXPECT_FALSE(std::filesystem::exists(progress + std::to_string(episode) + ".frames"));
  }
  EXPECT_EQ(encoder.ends_pending(), 0);
  encoder.close();
  expect_painted(decoded_reds(path, first_times(15)), first_frames(15));
}

TEST(VideoEncoder, RejectsBadSettingsWithTypedErrors) {
  EncoderSettings unknown = settings("libx264");
  unknown.codec = "no-such-encoder";
  EXPECT_THROW(VideoEncoder(fresh_path("bad_codec"), unknown), VideoEncodeError);
  EncoderSettings option = settings("libx264");
  option.options.push_back({"no-such-option", "1"});
  EXPECT_THROW(VideoEncoder(fresh_path("bad_option"), option), VideoEncodeError);
  EXPECT_EQ(video_encoder_name("h264"), "libx264");
  EXPECT_EQ(video_encoder_name("no-such-encoder"), "");
  const std::string path = fresh_path("exists");
  { VideoEncoder(path, settings("libx264")); }
  EXPECT_THROW(VideoEncoder(path, settings("libx264")), VideoEncodeError);
}

// LeRobot's depth encoding: 12-bit codes in hevc gray12le with x265's lossless mode.
EncoderSettings depth_settings() {
  EncoderSettings s;
  s.codec = "hevc";
  s.pix_fmt = "gray12le";
  s.width = kWidth;
  s.height = kHeight;
  s.fps = kFps;
  s.options = {{"crf", "30"}, {"x265-params", "lossless=1"}};
  s.input = InputFormat::kGray16;
  return s;
}

std::vector<uint16_t> depth_codes(int frame) {
  std::vector<uint16_t> codes(static_cast<size_t>(kWidth) * kHeight);
  for (int y = 0; y < kHeight; ++y) {
    for (int x = 0; x < kWidth; ++x) {
      // A depth map's codes: smooth, with a near object. (x265's lossless mode is not quite
      // lossless on noise-like content: a few samples of some frames come back changed, for
      // LeRobot's encodes too.)
      int code = 1000 + 37 * x + 11 * y + 9 * frame;
      if (x >= frame * 4 && x < frame * 4 + 10 && y >= 20 && y < 30) code = 300 + frame;
      codes[static_cast<size_t>(y) * kWidth + x] = static_cast<uint16_t>(code);
    }
  }
  return codes;
}

TEST(VideoEncoder, Gray12DepthCodesRoundTripExactly) {
  const std::string path = fresh_path("depth_gray12");
  {
    StreamingEncoder encoder(path, depth_settings(), /*queue_frames=*/2);
    for (int f = 0; f < 3; ++f) {
      encoder.add_frame(reinterpret_cast<const uint8_t*>(depth_codes(f).data()));
    }
    encoder.end_episode();
    for (int f = 3; f < 5; ++f) {
      // Rows further apart than the frame's width (a view into a wider buffer).
      std::vector<uint16_t> codes = depth_codes(f);
      std::vector<uint16_t> wide(static_cast<size_t>(kWidth + 8) * kHeight, 0);
      for (int y = 0; y < kHeight; ++y) {
        std::copy_n(codes.begin() + y * kWidth, kWidth, wide.begin() + y * (kWidth + 8));
      }
      encoder.add_frame(reinterpret_cast<const uint8_t*>(wide.data()), (kWidth + 8) * 2);
    }
    encoder.end_episode();
    encoder.close();
  }
  VideoDecoder decoder(path);
  EXPECT_EQ(decoder.info().codec, "hevc");
  EXPECT_EQ(decoder.info().frame_count, 5);
  std::vector<double> times = first_times(5);
  std::vector<uint16_t> decoded(times.size() * kWidth * kHeight);
  decoder.decode_at(times, 1e-4, reinterpret_cast<uint8_t*>(decoded.data()), FrameLayout::kGray16);
  EXPECT_EQ(decoder.info().pix_fmt, "gray12le");
  for (int f = 0; f < 5; ++f) {
    std::vector<uint16_t> expected = depth_codes(f);
    std::vector<uint16_t> got(decoded.begin() + static_cast<ptrdiff_t>(f) * kWidth * kHeight,
                              decoded.begin() + static_cast<ptrdiff_t>(f + 1) * kWidth * kHeight);
    EXPECT_EQ(got, expected) << "frame " << f;
  }
  // The pool decodes the same codes, out of order and on several threads.
  DecoderPool pool(2);
  std::vector<std::string> files{path};
  std::vector<uint16_t> pooled(decoded.size());
  std::vector<FrameRequest> requests;
  for (int f = 4; f >= 0; --f) {
    requests.push_back(FrameRequest{
        0, f / static_cast<double>(kFps),
        reinterpret_cast<uint8_t*>(pooled.data() + static_cast<ptrdiff_t>(f) * kWidth * kHeight),
        kHeight, kWidth});
  }
  pool.decode(files, requests, 1e-4, FrameLayout::kGray16);
  EXPECT_EQ(pooled, decoded);
  // The RGB path still works on the same stream (gray shown as RGB).
  std::vector<uint8_t> rgb(rgb_frame_bytes(decoder.info()));
  decoder.decode_at(std::vector<double>{0.0}, 1e-4, rgb.data(), FrameLayout::kHWC);
  EXPECT_EQ(rgb[0], rgb[1]);
}

TEST(VideoEncoder, Gray16InputRejectsCodesAboveTheBitDepthAndOtherPixelFormats) {
  const std::string path = fresh_path("depth_too_large");
  VideoEncoder encoder(path, depth_settings());
  std::vector<uint16_t> codes = depth_codes(0);
  codes[5] = 4096;  // above 12 bits
  EXPECT_THROW(encoder.add_frame(reinterpret_cast<const uint8_t*>(codes.data())), VideoEncodeError);
  EncoderSettings planar = depth_settings();
  planar.pix_fmt = "yuv420p";
  EXPECT_THROW(VideoEncoder(fresh_path("depth_yuv"), planar), VideoEncodeError);
}

}  // namespace
}  // namespace dexloop::video
