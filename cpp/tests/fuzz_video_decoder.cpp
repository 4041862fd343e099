// Feeds corrupted mp4 bytes to VideoDecoder: flipped bytes, garbage runs, zeroed ranges,
// truncation, duplicated and dropped spans. Every outcome must be success or a dexloop::Error; a
// crash, another exception type, or an iteration exceeding the watchdog fails the run.
//
//   dexloop_fuzz_decoder --seconds 45 --scratch DIR [--seed N]
#include <unistd.h>

#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <random>
#include <string>
#include <vector>

#include "dexloop/error.hpp"
#include "dexloop/video/video_decoder.hpp"

namespace {

using Bytes = std::vector<uint8_t>;

Bytes read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return Bytes(std::istreambuf_iterator<char>(in), {});
}

void write_file(const std::string& path, const Bytes& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(reinterpret_cast<const char*>(bytes.data()),
            static_cast<std::streamsize>(bytes.size()));
}

std::string make_seed_video(const std::filesystem::path& dir, const char* codec, const char* name,
                            int gop) {
  std::string path = (dir / name).string();
  std::string command =
      std::string(
          "SVT_LOG=1 ffmpeg -nostdin -loglevel error -y -f lavfi -i testsrc2=size=64x64:rate=15 ") +
      "-frames:v 24 -c:v " + codec + " -g " + std::to_string(gop) + " -pix_fmt yuv420p '" + path +
      "'";
  if (std::system(command.c_str()) != 0) {
    std::fprintf(stderr, "cannot make seed video: %s\n", command.c_str());
    std::exit(2);
  }
  return path;
}

Bytes mutate(const Bytes& original, std::mt19937_64& random) {
  Bytes bytes = original;
  auto pick = [&](size_t bound) {
    return std::uniform_int_distribution<size_t>(0, bound ? bound - 1 : 0)(random);
  };
  int edits = 1 + static_cast<int>(pick(8));
  for (int e = 0; e < edits && !bytes.empty(); ++e) {
    switch (pick(6)) {
      case 0:  // flip bytes
        for (int i = 0, n = 1 + static_cast<int>(pick(16)); i < n; ++i)
          bytes[pick(bytes.size())] ^= 1u << pick(8);
        break;
      case 1: {  // garbage run
        size_t at = pick(bytes.size());
        size_t length = std::min(bytes.size() - at, 1 + pick(64));
        for (size_t i = 0; i < length; ++i) bytes[at + i] = static_cast<uint8_t>(pick(256));
        break;
      }
      case 2: {  // zero a range
        size_t at = pick(bytes.size());
        size_t length = std::min(bytes.size() - at, 1 + pick(256));
        std::memset(bytes.data() + at, 0, length);
        break;
      }
      case 3:  // truncate
        bytes.resize(pick(bytes.size()));
        break;
      case 4: {  // duplicate a span
        size_t at = pick(bytes.size());
        size_t length = std::min(bytes.size() - at, 1 + pick(128));
        Bytes span(bytes.begin() + at, bytes.begin() + at + length);
        bytes.insert(bytes.begin() + pick(bytes.size()), span.begin(), span.end());
        break;
      }
      default: {  // drop a span
        size_t at = pick(bytes.size());
        size_t length = std::min(bytes.size() - at, 1 + pick(128));
        bytes.erase(bytes.begin() + at, bytes.begin() + at + length);
        break;
      }
    }
  }
  return bytes;
}

void on_watchdog(int) {
  const char message[] = "fuzz: one iteration exceeded the watchdog (hang)\n";
  (void)!write(2, message, sizeof(message) - 1);
  _exit(3);
}

}  // namespace

int main(int argc, char** argv) {
  double seconds = 45;
  std::string scratch = "fuzz-scratch";
  uint64_t seed = std::random_device{}();
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string flag = argv[i];
    if (flag == "--seconds")
      seconds = std::atof(argv[i + 1]);
    else if (flag == "--scratch")
      scratch = argv[i + 1];
    else if (flag == "--seed")
      seed = std::strtoull(argv[i + 1], nullptr, 10);
  }
  std::filesystem::create_directories(scratch);
  std::vector<Bytes> seeds = {read_file(make_seed_video(scratch, "libsvtav1", "seed_av1.mp4", 2)),
                              read_file(make_seed_video(scratch, "libx264", "seed_h264.mp4", 6))};
  std::string target = (std::filesystem::path(scratch) / "mutant.mp4").string();
  std::mt19937_64 random(seed);
  std::signal(SIGALRM, on_watchdog);
  auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(seconds);
  long iterations = 0, decoded = 0, typed_errors = 0;
  std::printf("fuzz: seed %llu, %.0f s budget\n", static_cast<unsigned long long>(seed), seconds);
  while (std::chrono::steady_clock::now() < deadline) {
    const Bytes& original = seeds[static_cast<size_t>(iterations) % seeds.size()];
    write_file(target, mutate(original, random));
    alarm(10);
    try {
      dexloop::video::VideoDecoder decoder(target);
      const auto& info = decoder.info();
      if (info.width > 4096 || info.height > 4096)
        throw dexloop::VideoDecodeError("implausible size");
      std::vector<double> timestamps = {0.0, 0.4, 1.0, 0.2, 1.5};
      std::vector<uint8_t> frames(static_cast<size_t>(dexloop::video::rgb_frame_bytes(info)) *
                                  timestamps.size());
      decoder.decode_at(timestamps, 0.05, frames.data(), dexloop::video::FrameLayout::kCHW);
      ++decoded;
    } catch (const dexloop::Error&) {
      ++typed_errors;
    } catch (const std::exception& error) {
      std::fprintf(stderr, "fuzz: untyped exception at iteration %ld (seed %llu): %s\n", iterations,
                   static_cast<unsigned long long>(seed), error.what());
      write_file(target + ".failing", read_file(target));
      return 1;
    }
    alarm(0);
    ++iterations;
  }
  std::printf("fuzz: %ld iterations, %ld decoded, %ld typed errors, no crash\n", iterations,
              decoded, typed_errors);
  return iterations > 0 ? 0 : 1;
}
