// Small test videos made with the ffmpeg command-line tool from painted frames whose red level
// identifies the frame: red = (frame * 23) mod 256, so a neighbouring frame differs by 23 levels.
#pragma once

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <stdexcept>
#include <string>
#include <vector>

namespace dexloop::testing {

inline std::filesystem::path scratch_dir() {
  std::filesystem::path dir = DEXLOOP_TEST_SCRATCH;
  std::filesystem::create_directories(dir);
  return dir;
}

inline int painted_red(int frame) { return (frame * 23) % 256; }

// Paints frame `frame` as HWC RGB: red identifies the frame, green is fixed, blue ramps along x.
inline std::vector<uint8_t> paint(int frame, int width, int height) {
  std::vector<uint8_t> rgb(static_cast<size_t>(width) * height * 3);
  for (int y = 0; y < height; ++y) {
    for (int x = 0; x < width; ++x) {
      uint8_t* pixel = &rgb[(static_cast<size_t>(y) * width + x) * 3];
      pixel[0] = static_cast<uint8_t>(painted_red(frame));
      pixel[1] = 96;
      pixel[2] = static_cast<uint8_t>(width > 1 ? x * 255 / (width - 1) : 0);
    }
  }
  return rgb;
}

struct TestVideo {
  std::string path;
  int width = 0;
  int height = 0;
  int fps = 0;
  int frames = 0;
};

// Encodes `frames` painted frames with `codec` ("libsvtav1", "libx264", "libx265") into
// scratch/<name>.mp4, once per scratch folder. SVT-AV1 needs frames of at least 64x64.
inline TestVideo make_test_video(const std::string& name, const std::string& codec, int width,
                                 int height, int fps, int frames, int gop = 2) {
  std::filesystem::path dir = scratch_dir();
  TestVideo video{(dir / (name + ".mp4")).string(), width, height, fps, frames};
  if (std::filesystem::exists(video.path)) return video;
  std::filesystem::path raw = dir / (name + ".rgb");
  {
    std::ofstream out(raw, std::ios::binary);
    for (int f = 0; f < frames; ++f) {
      std::vector<uint8_t> rgb = paint(f, width, height);
      out.write(reinterpret_cast<const char*>(rgb.data()),
                static_cast<std::streamsize>(rgb.size()));
    }
  }
  std::string options = codec == "libsvtav1" ? " -preset 12 -crf 30" : " -crf 20";
  if (codec == "libx265") options += " -x265-params log-level=none";
  // SVT_LOG=1: SVT-AV1 prints its configuration banner to stderr unless told to report errors only.
  std::string command =
      "SVT_LOG=1 ffmpeg -nostdin -loglevel error -y -f rawvideo -pix_fmt rgb24 -s " +
      std::to_string(width) + "x" + std::to_string(height) + " -r " + std::to_string(fps) +
      " -i '" + raw.string() + "' -c:v " + codec + " -g " + std::to_string(gop) + options +
      " -pix_fmt yuv420p '" + video.path + ".part.mp4'";
  if (std::system(command.c_str()) != 0) throw std::runtime_error("ffmpeg failed: " + command);
  std::filesystem::rename(video.path + ".part.mp4", video.path);
  std::filesystem::remove(raw);
  return video;
}

// Mean of channel `channel` of a CHW frame.
inline double channel_mean(const uint8_t* chw, int width, int height, int channel) {
  const uint8_t* plane = chw + static_cast<size_t>(channel) * width * height;
  double sum = 0;
  for (int i = 0; i < width * height; ++i) sum += plane[i];
  return sum / (static_cast<double>(width) * height);
}

}  // namespace dexloop::testing
